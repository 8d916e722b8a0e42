"""Report figures: one function per figure, DataFrames in, a matplotlib ``Figure`` out.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, Agg rendering), so
they can be made in any thread and never open a window. Dense data (millions of prediction rows) are
drawn as 2-D histograms, never as scatter plots. Colours: one per model (stable across figures, from
:func:`model_colors`), grey for the ``mean`` baseline.

Column conventions follow the ``chromexpr evaluate`` tables: ``model, split, observed, predicted,
train_mean`` (predictions), ``model, sample, group, mse, baseline_mse, n_genes, robust_z,
is_outlier`` (per sample), ``model, gene_id, pearson, pearson_deviation, mse, baseline_mse,
n_samples`` (per gene), ``model, epoch, train_mse, dev_mse`` (history), ``source, group, bin_offset,
mean_abs_attribution`` (attribution profiles).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

__all__ = [
    "BASELINE",
    "BASELINE_COLOR",
    "attribution_profile",
    "error_removal",
    "error_vs_observed",
    "gene_correlation",
    "loss_curves",
    "metric_overview",
    "model_colors",
    "per_sample_error",
    "predicted_vs_observed",
    "sample_pca",
]

#: Model name of the per-gene training-mean baseline in evaluate's tables.
BASELINE = "mean (baseline)"
BASELINE_COLOR = "#7f7f7f"
OUTLIER_COLOR = "#d62728"
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
_PANEL = 3.6  # inches per panel


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """A stable colour per model (baseline grey), whatever the order the models are given in.

    Colours follow the models' sorted names, so ``report a b`` and ``report b a`` draw each model
    in the same colour; the returned dictionary keeps the given order.

    Examples
    --------
    >>> model_colors(["fc", "mean (baseline)", "lasso"])
    {'fc': '#1f77b4', 'mean (baseline)': '#7f7f7f', 'lasso': '#ff7f0e'}
    >>> model_colors(["lasso", "fc"])
    {'lasso': '#ff7f0e', 'fc': '#1f77b4'}
    """
    ranked = sorted({str(m) for m in models if m != BASELINE})
    index = {m: i for i, m in enumerate(ranked)}
    return {
        m: BASELINE_COLOR if m == BASELINE else _PALETTE[index[str(m)] % len(_PALETTE)]
        for m in models
    }


def _grid(
    n: int,
    *,
    max_cols: int = 4,
    height: float = _PANEL,
    width: float = _PANEL,
    sharey: bool = False,
    sharex: bool = False,
) -> tuple[Figure, list]:
    cols = max(1, min(n, max_cols))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(width * cols + 0.6, height * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey, sharex=sharex).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _empty(message: str) -> Figure:
    fig = Figure(figsize=(6, 2), layout="constrained")
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


# --------------------------------------------------------------------------------------------
# Model comparison
# --------------------------------------------------------------------------------------------

#: Headline metrics (evaluate's names) and their labels, within-gene first (EVALUATION.md item 1).
HEADLINE_METRICS = {
    "gene_pearson_median": "within gene: median r across samples",
    "gene_pearson_deviation_median": "within gene: median r of deviations",
    "sample_pearson_median": "across genes: median r within a sample",
    "r2": "overall R²",
}


def metric_overview(metrics: pd.DataFrame, *, colors: dict[str, str]) -> Figure:
    """Headline metrics per model (bars), the baseline included.

    Parameters
    ----------
    metrics
        ``model, metric, value`` for one split and the overall group.
    colors
        Colour per model.
    """
    present = [m for m in HEADLINE_METRICS if m in set(metrics["metric"])]
    if not present:
        return _empty("no headline metrics in metrics.tsv")
    models = list(colors)
    table = metrics.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    fig = Figure(
        figsize=(7.5, 0.55 * len(present) * max(2, len(models)) * 0.5 + 1.4), layout="constrained"
    )
    ax = fig.subplots()
    height = 0.8 / max(1, len(models))
    for j, model in enumerate(models):
        if model not in table.index:
            continue
        vals = [table.loc[model].get(m, np.nan) for m in present]
        y = np.arange(len(present)) + (j - (len(models) - 1) / 2) * height
        ax.barh(y, vals, height=height * 0.95, color=colors[model], label=model)
        for yy, v in zip(y, vals, strict=True):
            if np.isfinite(v):
                ax.text(
                    v, yy, f" {v:.2f}", va="center", ha="left" if v >= 0 else "right", fontsize=8
                )
    ax.set_yticks(np.arange(len(present)), [HEADLINE_METRICS[m] for m in present])
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    values = table.reindex(columns=present).to_numpy(dtype=float)
    low = float(np.nanmin(values)) if np.isfinite(values).any() else 0.0
    ax.set_xlim(min(0.0, low) - (0.15 if low < 0 else 0.0), 1.08)
    ax.set_xlabel("value")
    fig.legend(loc="outside lower center", ncols=min(4, len(models)), fontsize=8, frameon=False)
    ax.set_title("Model comparison (higher is better)")
    return fig


def loss_curves(history: pd.DataFrame, models: Sequence[str], *, colors: dict[str, str]) -> Figure:
    """Training and dev loss per epoch, one panel per model, side by side (shared y axis).

    Parameters
    ----------
    history
        ``model, epoch, train_mse, dev_mse`` (models without rows get a note instead of a curve).
    models
        Panels, in order.
    colors
        Colour per model.
    """
    fig, axes = _grid(len(models), sharey=True)
    values = (
        history[["train_mse", "dev_mse"]].to_numpy(dtype=float)
        if len(history)
        else np.empty((0, 2))
    )
    finite = values[np.isfinite(values) & (values > 0)]
    log = finite.size > 0 and finite.max() / finite.min() > 20
    for ax, model in zip(axes, models, strict=True):
        h = history[history["model"] == model].sort_values("epoch")
        ax.set_title(model)
        ax.set_xlabel("epoch")
        if h.empty:
            ax.text(
                0.5,
                0.5,
                "no training curve\n(fitted without epochs)",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.4",
            )
            ax.tick_params(axis="x", bottom=False, labelbottom=False)
            continue
        color = colors.get(model, "black")
        if len(h) == 1:
            ax.plot(h["epoch"], h["train_mse"], "o", color=color, label="train")
            train_mse = float(h["train_mse"].iloc[0])
            said = (
                f"train MSE {train_mse:.3g}" if np.isfinite(train_mse) else "train MSE not recorded"
            )
            ax.text(
                0.5,
                0.5,
                f"fitted in one pass\n{said}",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.4",
            )
            ax.tick_params(axis="x", bottom=False, labelbottom=False)
            continue
        ax.plot(h["epoch"], h["train_mse"], color=color, ls="--", label="train")
        if "dev_mse" in h and h["dev_mse"].notna().any():
            ax.plot(h["epoch"], h["dev_mse"], color=color, label="dev")
            best = h.loc[h["dev_mse"].idxmin()]
            ax.plot([best["epoch"]], [best["dev_mse"]], "o", color=color, mfc="white")
            ax.annotate(
                f"best dev: epoch {int(best['epoch'])}",
                (best["epoch"], best["dev_mse"]),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
        ax.legend(fontsize=8, frameon=False)
        if log:
            ax.set_yscale("log")
    axes[0].set_ylabel("MSE")
    return fig


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------


def _limits(values: Sequence[np.ndarray]) -> tuple[float, float]:
    allv = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(1)
    if allv.size == 0:
        return 0.0, 1.0
    lo, hi = np.quantile(allv, [0.001, 0.999])
    pad = 0.03 * (hi - lo or 1.0)
    return float(lo - pad), float(hi + pad)


def predicted_vs_observed(
    predictions: pd.DataFrame,
    models: Sequence[str],
    *,
    bins: int = 120,
    include_baseline: bool = True,
) -> Figure:
    """2-D histogram (log counts) of predicted against observed expression, one panel per model.

    Parameters
    ----------
    predictions
        ``model, observed, predicted, train_mean``, one split.
    models
        Panels, in order; with ``include_baseline`` a last panel shows the ``mean`` baseline
        (``train_mean``) of the first model's rows.
    bins
        Bins per axis.
    """
    panels: list[tuple[str, np.ndarray, np.ndarray]] = []
    for model in models:
        rows = predictions[predictions["model"] == model]
        panels.append((model, rows["observed"].to_numpy(float), rows["predicted"].to_numpy(float)))
    if include_baseline and models and "train_mean" in predictions:
        rows = predictions[predictions["model"] == models[0]]
        panels.append(
            (BASELINE, rows["observed"].to_numpy(float), rows["train_mean"].to_numpy(float))
        )
    if not panels:
        return _empty("no predictions")
    lo, hi = _limits([p[1] for p in panels] + [p[2] for p in panels])
    fig, axes = _grid(len(panels), sharey=True, sharex=True)
    image = None
    for ax, (name, obs, pred) in zip(axes, panels, strict=True):
        ok = np.isfinite(obs) & np.isfinite(pred)
        counts, _, _ = np.histogram2d(obs[ok], pred[ok], bins=bins, range=[[lo, hi], [lo, hi]])
        counts = np.where(counts > 0, counts, np.nan)
        vmax = np.nanmax(counts) if np.isfinite(counts).any() else 1.0
        image = ax.imshow(
            counts.T,
            origin="lower",
            extent=(lo, hi, lo, hi),
            aspect="auto",
            cmap="viridis",
            norm=LogNorm(vmin=1, vmax=max(vmax, 1.0)),
            interpolation="nearest",
        )
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
        r = _pearson(obs[ok], pred[ok])
        ax.set_title(name)
        ax.text(
            0.03,
            0.97,
            f"r = {r:.2f}\nn = {int(ok.sum()):,}",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "lw": 0},
        )
        ax.set_xlabel("observed")
    axes[0].set_ylabel("predicted")
    if image is not None:
        fig.colorbar(image, ax=axes, label="(gene, sample) pairs", shrink=0.8)
    return fig


def error_vs_observed(
    predictions: pd.DataFrame, models: Sequence[str], *, colors: dict[str, str], n_bins: int = 20
) -> Figure:
    """RMSE in bins of observed expression (equal-count bins), per model and for the mean baseline.

    A histogram of observed values sits below, so that sparse bins are visible.
    """
    if predictions.empty:
        return _empty("no predictions")
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax, hist_ax = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    first = predictions[predictions["model"] == models[0]] if models else predictions
    edges = np.unique(np.quantile(first["observed"].dropna(), np.linspace(0, 1, n_bins + 1)))
    curves = [(m, predictions[predictions["model"] == m], "predicted") for m in models]
    if "train_mean" in predictions:
        curves.append((BASELINE, first, "train_mean"))
    for name, rows, column in curves:
        obs = rows["observed"].to_numpy(float)
        err = (rows[column].to_numpy(float) - obs) ** 2
        idx = np.clip(np.searchsorted(edges, obs, side="right") - 1, 0, edges.size - 2)
        ok = np.isfinite(err)
        sums = np.bincount(idx[ok], weights=err[ok], minlength=edges.size - 1)
        counts = np.bincount(idx[ok], minlength=edges.size - 1)
        centers = 0.5 * (edges[:-1] + edges[1:])
        with np.errstate(invalid="ignore", divide="ignore"):
            rmse = np.sqrt(sums / counts)
        ax.plot(
            centers,
            rmse,
            marker="o",
            ms=3,
            color=colors.get(name, BASELINE_COLOR),
            label=name,
            ls="--" if name == BASELINE else "-",
        )
    ax.set_ylabel("RMSE")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Error by expression level")
    hist_ax.hist(first["observed"].dropna().to_numpy(float), bins=60, color="0.7")
    hist_ax.set_xlabel("observed expression")
    hist_ax.set_ylabel("pairs")
    return fig


# --------------------------------------------------------------------------------------------
# Samples and genes
# --------------------------------------------------------------------------------------------


def per_sample_error(
    per_sample: pd.DataFrame, models: Sequence[str], *, colors: dict[str, str], max_labels: int = 8
) -> Figure:
    """Per-sample MSE ranked from worst, one panel per model; flagged outliers in red and named.

    Grey crosses: the same sample's MSE under the mean baseline.
    """
    fig, axes = _grid(len(models), sharey=True, width=4.2)
    for ax, model in zip(axes, models, strict=True):
        rows = per_sample[per_sample["model"] == model].sort_values("mse", ascending=False)
        rank = np.arange(1, len(rows) + 1)
        outlier = (
            rows["is_outlier"].astype(bool).to_numpy()
            if "is_outlier" in rows
            else np.zeros(len(rows), bool)
        )
        if "baseline_mse" in rows:
            ax.plot(rank, rows["baseline_mse"], "x", color=BASELINE_COLOR, ms=4, label=BASELINE)
        ax.plot(
            rank[~outlier],
            rows["mse"].to_numpy()[~outlier],
            "o",
            color=colors.get(model, "black"),
            ms=4,
            label=model,
        )
        ax.plot(
            rank[outlier],
            rows["mse"].to_numpy()[outlier],
            "o",
            color=OUTLIER_COLOR,
            ms=6,
            label="flagged outlier",
        )
        for r, (_, row) in zip(
            rank[outlier][:max_labels], rows[outlier].head(max_labels).iterrows(), strict=False
        ):
            label = str(row["sample"]) + (
                f" ({row['group']})" if "group" in row and pd.notna(row["group"]) else ""
            )
            ax.annotate(
                label,
                (r, row["mse"]),
                textcoords="offset points",
                xytext=(6, 0),
                fontsize=8,
                color=OUTLIER_COLOR,
                va="center",
            )
        ax.set_title(model)
        ax.set_xlabel("sample rank (worst first)")
        ax.legend(fontsize=7, frameon=False, loc="upper right")
    if axes:
        axes[0].set_ylabel("MSE across genes")
    return fig


def _removal_curve(
    mse: np.ndarray, weight: np.ndarray, order: np.ndarray, max_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled MSE of what remains after removing the first k units of ``order`` (k = 0..)."""
    sse = (mse * weight)[order]
    w = weight[order]
    total_sse, total_w = sse.sum(), w.sum()
    k_max = int(np.floor(max_fraction * order.size))
    removed_sse = np.concatenate([[0.0], np.cumsum(sse)])[: k_max + 1]
    removed_w = np.concatenate([[0.0], np.cumsum(w)])[: k_max + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        rest = (total_sse - removed_sse) / (total_w - removed_w)
    return 100.0 * np.arange(k_max + 1) / order.size, rest


def error_removal(
    per_sample: pd.DataFrame,
    per_gene: pd.DataFrame,
    models: Sequence[str],
    *,
    colors: dict[str, str],
    max_fraction: float = 0.5,
) -> Figure:
    """Pooled MSE of the remaining data as the worst samples (left) or genes (right) are removed.

    Each model removes its own worst units; the dashed grey line removes the mean baseline's worst.
    """
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    specs = [(axes[0], per_sample, "n_genes", "samples"), (axes[1], per_gene, "n_samples", "genes")]
    for ax, table, weight_col, unit in specs:
        ax.set_title(f"Removing the worst {unit}")
        ax.set_xlabel(f"% of {unit} removed (worst first)")
        if table is None or table.empty:
            ax.text(
                0.5,
                0.5,
                f"no per-{unit[:-1]} table",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            continue
        for i, model in enumerate(models):
            rows = table[(table["model"] == model) & table["mse"].notna()]
            if rows.empty:
                continue
            mse = rows["mse"].to_numpy(float)
            weight = rows[weight_col].to_numpy(float) if weight_col in rows else np.ones(len(rows))
            x, y = _removal_curve(mse, weight, np.argsort(-mse, kind="stable"), max_fraction)
            ax.plot(x, y, color=colors.get(model, "black"), label=model)
            if i == 0 and "baseline_mse" in rows:
                base = rows["baseline_mse"].to_numpy(float)
                ok = np.isfinite(base)
                x, y = _removal_curve(
                    base[ok], weight[ok], np.argsort(-base[ok], kind="stable"), max_fraction
                )
                ax.plot(x, y, color=BASELINE_COLOR, ls="--", label=BASELINE)
        ax.legend(fontsize=8, frameon=False)
    axes[0].set_ylabel("MSE of the remaining pairs")
    return fig


def gene_correlation(
    per_gene: pd.DataFrame,
    models: Sequence[str],
    *,
    colors: dict[str, str],
    baseline_medians: dict[str, float] | None = None,
) -> Figure:
    """Distribution of per-gene correlations across samples, per model, against the mean baseline.

    Left: correlation of predictions with observed values; right (when ``pearson_deviation`` is
    present): correlation of predicted deviations from each gene's training mean (free of the
    leave-one-out mean artifact). Vertical dashed lines: medians; grey: the mean baseline (its own
    rows if present, else its median from ``baseline_medians``).
    """
    columns = [
        c for c in ("pearson", "pearson_deviation") if c in per_gene and per_gene[c].notna().any()
    ]
    if not columns:
        return _empty("no per-gene correlations")
    titles = {
        "pearson": "within-gene r (predicted vs observed)",
        "pearson_deviation": "within-gene r of predicted deviations",
    }
    fig = Figure(figsize=(4.6 * len(columns) + 0.4, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(columns), sharey=True)).tolist()
    edges = np.linspace(-1, 1, 41)
    medians = baseline_medians or {}
    for ax, column in zip(axes, columns, strict=True):
        for model in [*models, BASELINE]:
            values = per_gene.loc[per_gene["model"] == model, column].dropna().to_numpy(float)
            color = colors.get(model, BASELINE_COLOR)
            if values.size:
                ax.hist(
                    values,
                    bins=edges,
                    histtype="step",
                    lw=1.6,
                    color=color,
                    label=model,
                    ls="--" if model == BASELINE else "-",
                )
                ax.axvline(np.median(values), color=color, ls=":", lw=1)
            elif model == BASELINE and column in medians:
                if np.isfinite(medians[column]):
                    ax.axvline(
                        medians[column],
                        color=BASELINE_COLOR,
                        ls="--",
                        lw=1.2,
                        label=f"{BASELINE} median",
                    )
                else:  # r undefined: no deviation predicted, or one training set (constant)
                    why = "no deviation" if column == "pearson_deviation" else "constant in a gene"
                    ax.axvline(
                        0.0, color=BASELINE_COLOR, ls="--", lw=1.2, label=f"{BASELINE}: {why}"
                    )
        ax.axvline(0, color="black", lw=0.6)
        ax.set_title(titles[column])
        ax.set_xlabel("Pearson r across samples")
        ax.legend(fontsize=8, frameon=False, loc="upper left")
    axes[0].set_ylabel("genes")
    return fig


# --------------------------------------------------------------------------------------------
# Attribution and sample structure
# --------------------------------------------------------------------------------------------


def attribution_profile(profiles: pd.DataFrame, *, zoom_kb: float = 100.0) -> Figure:
    """Mean |attribution| by bin offset: the whole window (left) and the TSS region (right).

    Parameters
    ----------
    profiles
        ``source, group, bin_offset, mean_abs_attribution`` (``group == "all"``: over every sample).
        With one source, groups are drawn as thin lines; with several, only each source's overall
        line.
    zoom_kb
        Half-width of the right panel (kb).
    """
    if profiles.empty:
        return _empty("no attribution profile")
    sources = list(dict.fromkeys(profiles["source"]))
    half_kb = float(profiles["bin_offset"].abs().max()) / 1000.0
    zooms: list[float | None] = [None, zoom_kb] if half_kb > 2 * zoom_kb else [None]
    fig = Figure(figsize=(5 * len(zooms), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(zooms), sharey=True)).tolist()
    colors = model_colors(sources)
    group_colors = model_colors([g for g in dict.fromkeys(profiles["group"]) if g != "all"])
    for ax, zoom in zip(axes, zooms, strict=True):
        for source in sources:
            rows = profiles[profiles["source"] == source]
            if len(sources) == 1:
                for group, g_rows in rows[rows["group"] != "all"].groupby("group", sort=False):
                    ax.plot(
                        g_rows["bin_offset"] / 1000,
                        g_rows["mean_abs_attribution"],
                        lw=0.8,
                        alpha=0.8,
                        color=group_colors[str(group)],
                        label=str(group),
                    )
            overall = rows[rows["group"] == "all"]
            ax.plot(
                overall["bin_offset"] / 1000,
                overall["mean_abs_attribution"],
                lw=1.8,
                color="black" if len(sources) == 1 else colors[source],
                label="all samples" if len(sources) == 1 else source,
            )
        ax.axvline(0, color="0.5", lw=0.6, ls=":")
        ax.set_xlabel("bin start relative to TSS (kb, gene orientation; - = upstream)")
        if zoom is not None:
            ax.set_xlim(-zoom, zoom)
            ax.set_title(f"±{zoom:g} kb")
        else:
            ax.set_title("whole window")
    axes[0].set_ylabel("mean |attribution|")
    axes[-1].legend(fontsize=8, frameon=False)
    return fig


def sample_pca(
    observed: pd.DataFrame, samples: pd.DataFrame, *, error_label: str = "MSE"
) -> Figure:
    """PCA of samples by observed expression, coloured by group (left) and by error (right).

    Parameters
    ----------
    observed
        ``genes x samples`` matrix of observed (transformed) expression; genes with missing values
        or no variance are dropped; genes are centred (not scaled).
    samples
        Indexed by sample: ``group``, ``error`` (NaN = not evaluated, drawn grey), ``is_outlier``.
    error_label
        Colour-bar label.
    """
    matrix = observed.dropna(axis=0, how="any")
    matrix = matrix[matrix.var(axis=1) > 0]
    if matrix.shape[1] < 3 or matrix.shape[0] < 2:
        return _empty("too few samples or genes for a PCA")
    x = matrix.to_numpy(float).T
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    pcs = u[:, :2] * s[:2]
    explained = s**2 / np.sum(s**2)
    names = list(matrix.columns)
    info = samples.reindex(names)
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    groups = info["group"].fillna("").astype(str) if "group" in info else pd.Series("", index=names)
    palette = model_colors(list(dict.fromkeys(groups)))
    for group in dict.fromkeys(groups):
        sel = (groups == group).to_numpy()
        left.scatter(
            pcs[sel, 0],
            pcs[sel, 1],
            s=28,
            color=palette[group],
            label=group or "(no group)",
            edgecolor="white",
            lw=0.5,
        )
    left.legend(fontsize=8, frameon=False, title="group")
    left.set_title("coloured by group")
    error = info["error"].to_numpy(float) if "error" in info else np.full(len(names), np.nan)
    has = np.isfinite(error)
    if (~has).any():
        right.scatter(pcs[~has, 0], pcs[~has, 1], s=20, color="0.85", label="not evaluated")
    points = right.scatter(
        pcs[has, 0], pcs[has, 1], s=32, c=error[has], cmap="magma_r", edgecolor="0.3", lw=0.4
    )
    if has.any():
        fig.colorbar(points, ax=right, label=error_label)
    flagged = (
        info["is_outlier"].fillna(False).astype(bool).to_numpy()
        if "is_outlier" in info
        else has & False
    )
    if flagged.any():
        right.scatter(
            pcs[flagged, 0],
            pcs[flagged, 1],
            s=110,
            facecolor="none",
            edgecolor=OUTLIER_COLOR,
            lw=1.5,
            label="flagged outlier",
        )
        for i in np.flatnonzero(flagged):
            right.annotate(
                names[i],
                (pcs[i, 0], pcs[i, 1]),
                textcoords="offset points",
                xytext=(7, 4),
                fontsize=8,
                color=OUTLIER_COLOR,
            )
    if (~has).any() or flagged.any():
        right.legend(fontsize=8, frameon=False)
    right.set_title(f"coloured by error ({error_label})")
    for ax in (left, right):
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)")
    left.set_ylabel(f"PC2 ({100 * explained[1]:.0f}% of variance)")
    return fig
