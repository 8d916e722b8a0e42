"""``chromexpr report``: one self-contained HTML page (+ PNG/SVG figures) from evaluations.

Several EVAL_DIRs are shown side by side (one model each, or more); the ``mean`` baseline rows of
the first directory that has them are kept. Model names that collide between directories get the
directory name appended. Figures use the held-out split (``test``, else out-of-fold, else ``dev``)
and say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chromexpr.evaluate.baselines import BASELINE_SUFFIX as REFITTED_BASELINE_SUFFIX
from chromexpr.evaluate.baselines import is_baseline
from chromexpr.log import logger
from chromexpr.report import figures as F

__all__ = ["FigureItem", "ReportData", "collect", "held_out_split", "make_report", "overall_rows"]

#: Preference order of the split the figures show.
HELD_OUT_PREFERENCE = (
    "test",
    "oof",
    "out_of_fold",
    "out-of-fold",
    "heldout",
    "held_out",
    "dev",
    "valid",
)
#: ``group`` values that mean "all samples" in metrics.tsv.
OVERALL_GROUPS = {"all", "", "overall", "(all)", "*", "nan"}


@dataclass
class ReportData:
    """Every table of the report, models of all directories together (``model`` column)."""

    models: list[str]
    metrics: pd.DataFrame
    per_gene: pd.DataFrame
    per_sample: pd.DataFrame
    predictions: pd.DataFrame
    history: pd.DataFrame
    profiles: pd.DataFrame
    eval_dirs: list[Path]
    attribution_dirs: list[Path] = field(default_factory=list)
    attribution_meta: list[dict[str, Any]] = field(default_factory=list)
    comparison: pd.DataFrame = field(default_factory=pd.DataFrame)
    truth: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class FigureItem:
    """A report figure: file stem, title, caption and matplotlib figure (None = not drawable)."""

    name: str
    title: str
    caption: str
    figure: Any | None
    missing: str = ""


def held_out_split(splits: Sequence[Any]) -> str | None:
    """The split figures show: ``test``, else out-of-fold, else ``dev``, else the first one.

    Examples
    --------
    >>> held_out_split(["train", "dev", "test"]), held_out_split(["dev"]), held_out_split([])
    ('test', 'dev', None)
    """
    present = [str(s) for s in dict.fromkeys(splits) if isinstance(s, str) or not pd.isna(s)]
    for name in HELD_OUT_PREFERENCE:
        if name in present:
            return name
    return present[0] if present else None


def overall_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``metrics`` over all samples (``group`` absent, empty, NaN or ``all``)."""
    if "group" not in metrics:
        return metrics
    group = metrics["group"].astype(str).str.strip().str.lower()
    mask = group.isin(OVERALL_GROUPS) | metrics["group"].isna()
    return metrics[mask] if mask.any() else metrics


def _rename(frame: pd.DataFrame | None, mapping: dict[str, str]) -> pd.DataFrame | None:
    if frame is None or not mapping or "model" not in frame:
        return frame
    out = frame.copy()
    out["model"] = out["model"].astype(str).replace(mapping)
    return out


def collect(
    eval_dirs: Sequence[Any], attributions: Sequence[tuple[Path, pd.DataFrame, dict[str, Any]]] = ()
) -> ReportData:
    """Merge the tables of several EVAL_DIRs (``EvalTables``) and attribution profiles into one."""
    models: list[str] = []
    parts: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("metrics", "per_gene", "per_sample", "predictions", "history")
    }
    have_baseline = {k: False for k in ("metrics", "per_gene", "per_sample")}
    # a baseline trained as a model of its own (``neighbors``) makes its refitted copy
    # (``neighbors (baseline)``, the same predictions) redundant
    trained = {str(m) for t in eval_dirs for m in t.metrics["model"].astype(str)}
    refitted_seen: set[str] = {f"{m}{REFITTED_BASELINE_SUFFIX}" for m in trained} - {F.BASELINE}
    comparisons: list[pd.DataFrame] = []
    truths: list[pd.DataFrame] = []
    for tables in eval_dirs:
        labels = [str(m) for m in dict.fromkeys(tables.metrics["model"].astype(str))]
        # refitted baselines (``neighbors (baseline)``...) are the same in every EVAL_DIR of one
        # dataset: shown once, from the first directory that has them
        repeated = {
            m for m in labels if m.endswith(REFITTED_BASELINE_SUFFIX) and m in refitted_seen
        }
        refitted_seen.update(m for m in labels if m.endswith(REFITTED_BASELINE_SUFFIX))
        names = [m for m in labels if m != F.BASELINE and m not in repeated]
        if tables.comparison is not None and len(tables.comparison):
            comparisons.append(tables.comparison)
        evaluated = [m for m in names if not is_baseline(m)]
        if tables.truth is not None and len(tables.truth) and evaluated:
            truths.append(tables.truth.assign(model=evaluated[0]))
        mapping: dict[str, str] = {}
        for name in list(names):
            if name in models:
                new = f"{name} ({tables.path.name})"
                mapping[name] = new
                names[names.index(name)] = new
        models.extend(names)
        for key in ("metrics", "per_gene", "per_sample"):
            frame = _rename(getattr(tables, key), mapping)
            if frame is None:
                continue
            is_base = frame["model"].astype(str) == F.BASELINE
            frame = frame[~frame["model"].astype(str).isin(repeated)]
            is_base = is_base.loc[frame.index]
            if have_baseline[key]:
                frame = frame[~is_base]
            have_baseline[key] = have_baseline[key] or bool(is_base.any())
            parts[key].append(frame)
        predictions = _rename(tables.predictions, mapping)
        if predictions is not None:
            keep = ~predictions["model"].astype(str).isin({F.BASELINE, *repeated})
            parts["predictions"].append(predictions[keep])
        if tables.history is not None:
            history = tables.history.copy()
            if "model" not in history:
                history["model"] = names[0] if names else tables.path.name
            parts["history"].append(_rename(history, mapping))

    def cat(key: str, columns: Sequence[str]) -> pd.DataFrame:
        frames = [f for f in parts[key] if f is not None and len(f)]
        return (
            pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))
        )

    profiles = []
    for path, profile, meta in attributions:
        label = _attribution_label(path, meta)
        profiles.append(profile.assign(source=label))
    return ReportData(
        models=list(dict.fromkeys(models)),
        metrics=cat("metrics", ["model", "split", "group", "metric", "value"]),
        per_gene=cat("per_gene", ["model", "split", "gene_id", "pearson", "mse"]),
        per_sample=cat("per_sample", ["model", "split", "sample", "group", "mse"]),
        predictions=cat(
            "predictions", ["model", "split", "gene_id", "sample", "observed", "predicted"]
        ),
        history=cat("history", ["model", "epoch", "train_mse", "dev_mse"]),
        profiles=(
            pd.concat(profiles, ignore_index=True)
            if profiles
            else pd.DataFrame(columns=["source", "group", "bin_offset", "mean_abs_attribution"])
        ),
        eval_dirs=[t.path for t in eval_dirs],
        attribution_dirs=[a[0] for a in attributions],
        attribution_meta=[a[2] for a in attributions],
        comparison=(
            pd.concat(comparisons, ignore_index=True).drop_duplicates(
                ["model", "split", "baseline"]
            )
            if comparisons
            else pd.DataFrame()
        ),
        truth=pd.concat(truths, ignore_index=True) if truths else pd.DataFrame(),
    )


def _attribution_label(path: Path, meta: dict[str, Any]) -> str:
    params = dict(meta.get("provenance", {}).get("parameters", {}))
    model = meta.get("model")
    bits = [str(b) for b in (model, params.get("method"), params.get("target")) if b]
    return " / ".join(bits) if bits else path.name


def _split_rows(frame: pd.DataFrame, split: str | None) -> pd.DataFrame:
    if split is None or "split" not in frame or frame.empty:
        return frame
    return frame[frame["split"].astype(str) == split]


def _esc(value: Any) -> str:
    """HTML-escaped text of a name that comes from the data."""
    import html

    return html.escape(str(value))


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def build_figures(data: ReportData) -> list[FigureItem]:
    """Every report figure with its caption (``figure=None`` where inputs are missing)."""
    colors = F.model_colors([*data.models, F.BASELINE])
    items: list[FigureItem] = []
    metric_split = held_out_split(data.metrics["split"]) if len(data.metrics) else None
    overall = _split_rows(overall_rows(data.metrics), metric_split)

    items.append(
        FigureItem(
            "model_comparison",
            "Model comparison",
            f"Headline metrics on the held-out split <code>{_esc(metric_split)}</code>, all "
            "samples. Within-gene correlations (top two) ask whether the prediction rises where "
            "the gene rises across samples, the question a new cell type asks; the across-gene "
            "correlation is high even for the mean baseline, which only knows each gene's "
            "average.",
            F.metric_overview(overall, colors=colors) if len(overall) else None,
            "metrics.tsv",
        )
    )

    items.append(
        FigureItem(
            "loss_curves",
            "Training and dev loss",
            "Training (dashed) and dev (solid) MSE by epoch, one panel per model on a shared "
            "axis; open circle: the epoch with the lowest dev loss. Models fitted without epochs "
            "(LASSO, baselines) have no curve.",
            F.loss_curves(data.history, data.models, colors=colors) if data.models else None,
            "history.tsv",
        )
    )

    pred_split = held_out_split(data.predictions["split"]) if len(data.predictions) else None
    preds = _split_rows(data.predictions, pred_split)
    n_pairs = int((preds["model"] == data.models[0]).sum()) if len(preds) and data.models else 0
    items.append(
        FigureItem(
            "predicted_vs_observed",
            "Predicted vs observed",
            f"Predicted against observed expression for the {_fmt_int(n_pairs)} (gene, sample) "
            f"pairs of split <code>{_esc(pred_split)}</code> per model, as 2-D histograms "
            "(log-scaled counts; dashed: identity). Last panel: the mean baseline (each gene's "
            "training mean).",
            F.predicted_vs_observed(preds, data.models) if len(preds) else None,
            "predictions.tsv",
        )
    )
    items.append(
        FigureItem(
            "error_vs_observed",
            "Error by expression level",
            "Root mean squared error in 20 equal-count bins of observed expression (split "
            f"<code>{_esc(pred_split)}</code>), per model; dashed grey: the mean baseline. "
            "Bottom: how many pairs lie at each level.",
            F.error_vs_observed(preds, data.models, colors=colors) if len(preds) else None,
            "predictions.tsv",
        )
    )

    sample_split = held_out_split(data.per_sample["split"]) if len(data.per_sample) else None
    samples = _split_rows(data.per_sample, sample_split)
    items.append(
        FigureItem(
            "per_sample_error",
            "Per-sample error and outliers",
            f"Each sample's MSE across genes (split <code>{_esc(sample_split)}</code>), worst "
            "first. Red: samples <code>chromexpr evaluate</code> flagged as outliers "
            "(<code>is_outlier</code>) by the modified z-score of the per-sample MSE, z = "
            "0.6745 (MSE − median) / MAD across samples, flagged when z &gt; 3.5 (Iglewicz and "
            f"Hoaglin){_outlier_rule(samples)}. Only high errors are flagged. Grey crosses: the "
            "same sample under the mean baseline.",
            F.per_sample_error(samples, data.models, colors=colors) if len(samples) else None,
            "per_sample.tsv",
        )
    )

    gene_split = held_out_split(data.per_gene["split"]) if len(data.per_gene) else None
    genes = _split_rows(data.per_gene, gene_split)
    items.append(
        FigureItem(
            "error_removal",
            "Error as the worst samples or genes are removed",
            "Pooled MSE of the remaining (gene, sample) pairs as the worst samples (left) or "
            "genes (right) are removed, each model removing its own worst first; dashed: the "
            "mean baseline. A steep drop means a few samples or genes carry most of the error.",
            F.error_removal(samples, genes, data.models, colors=colors)
            if len(samples) or len(genes)
            else None,
            "per_sample.tsv / per_gene.tsv",
        )
    )

    base = overall[overall["model"] == F.BASELINE]
    medians = (
        {
            "pearson": _metric(base, "gene_pearson_median"),
            "pearson_deviation": _metric(base, "gene_pearson_deviation_median"),
        }
        if len(base)
        else {}
    )
    items.append(
        FigureItem(
            "gene_correlation",
            "Per-gene correlation against the mean baseline",
            "Distribution over genes of the Pearson correlation across held-out samples (split "
            f"<code>{_esc(gene_split)}</code>) between predicted and observed expression (left) "
            "and between predicted and observed deviations from each gene's training mean "
            "(right, when evaluated: free of the leave-one-out mean artifact). Dotted lines: "
            "medians; grey: the mean baseline.",
            F.gene_correlation(genes, data.models, colors=colors, baseline_medians=medians)
            if len(genes)
            else None,
            "per_gene.tsv",
        )
    )

    sources = (
        ", ".join(dict.fromkeys(data.profiles["source"].astype(str))) if len(data.profiles) else ""
    )
    items.append(
        FigureItem(
            "attribution_profile",
            "Attribution by distance to the TSS",
            "Mean |attribution| by bin offset from the TSS (gene orientation; negative = "
            "upstream) over every attributed gene and sample (black) and per sample group; "
            f"windows wider than 200 kb get a ±100 kb zoom on the right. Source: {_esc(sources)}.",
            F.attribution_profile(data.profiles) if len(data.profiles) else None,
            "an attribution directory (--attribution)",
        )
    )

    pca = _pca_inputs(data, sample_split)
    best = best_model(data)
    items.append(
        FigureItem(
            "sample_pca",
            "Samples by expression",
            "PCA of samples by observed expression (all splits; genes centred). Left: by group; "
            f"right: by the per-sample MSE of <code>{_esc(best)}</code> on split "
            f"<code>{_esc(sample_split)}</code> (grey: not in that split); red rings: flagged "
            "outliers.",
            F.sample_pca(pca[0], pca[1]) if pca is not None else None,
            "predictions.tsv",
        )
    )
    return items


def _metric(rows: pd.DataFrame, metric: str) -> float:
    values = rows.loc[rows["metric"] == metric, "value"]
    return float(values.iloc[0]) if len(values) else float("nan")


def _outlier_rule(samples: pd.DataFrame) -> str:
    if "robust_z" not in samples or "is_outlier" not in samples or samples.empty:
        return ""
    flagged = samples["is_outlier"].astype(bool)
    z = samples["robust_z"].astype(float)
    if not flagged.any():
        return f"; none flagged here (largest z = {z.max():.1f})"
    low = z[flagged].min()
    high = z[~flagged].max() if (~flagged).any() else float("nan")
    return f"; here every flagged sample has z ≥ {low:.1f}" + (
        f" and every other z ≤ {high:.1f}" if math.isfinite(high) else ""
    )


#: Models that are baselines (no regulatory model of any gene), refitted or trained as such.
BASELINE_NAMES = frozenset({"mean", "activity", "neighbors"})


def is_baseline_model(name: str) -> bool:
    """Whether ``name`` is a baseline: ``mean``, ``activity``, ``neighbors`` or a refitted one."""
    return name in BASELINE_NAMES or is_baseline(name)


def best_model(data: ReportData) -> str | None:
    """The model with the highest within-gene metric on the held-out split (None without models).

    Baselines are chosen only when nothing else was evaluated.
    """
    if not data.models:
        return None
    split = held_out_split(data.metrics["split"]) if len(data.metrics) else None
    overall = _split_rows(overall_rows(data.metrics), split)
    candidates = [m for m in data.models if not is_baseline_model(m)] or data.models
    for metric in ("gene_pearson_deviation_median", "gene_pearson_median", "r2", "pearson"):
        rows = overall[(overall["metric"] == metric) & overall["model"].isin(candidates)]
        rows = rows[np.isfinite(rows["value"].astype(float))]
        if len(rows):
            return str(rows.loc[rows["value"].astype(float).idxmax(), "model"])
    return data.models[0]


def _pca_inputs(data: ReportData, split: str | None) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    preds = data.predictions
    if preds.empty or not data.models:
        return None
    first = preds[preds["model"] == preds["model"].iloc[0]]
    observed = first.pivot_table(
        index="gene_id", columns="sample", values="observed", aggfunc="first", observed=True
    )
    best = best_model(data)
    rows = _split_rows(data.per_sample, split)
    rows = rows[rows["model"] == best].drop_duplicates("sample").set_index("sample")
    info = pd.DataFrame(index=observed.columns)
    groups = (
        first.drop_duplicates("sample").set_index("sample")["group"] if "group" in first else None
    )
    info["group"] = groups.reindex(info.index) if groups is not None else ""
    info["error"] = rows["mse"].reindex(info.index) if len(rows) else np.nan
    info["is_outlier"] = (
        rows["is_outlier"].reindex(info.index).fillna(False).astype(bool)
        if "is_outlier" in rows
        else False
    )
    return observed, info


def make_report(
    eval_dirs: Sequence[str | Path],
    output: str | Path,
    *,
    attribution_dirs: Sequence[str | Path] = (),
    force: bool = False,
    embed: str = "png",
    title: str = "chromexpr report",
) -> Path:
    """Write the HTML report and its figures (PNG and SVG in ``<output stem>_figures/``).

    Parameters
    ----------
    eval_dirs
        Directories written by ``chromexpr evaluate`` (one or more; models side by side).
    output
        The HTML file.
    attribution_dirs
        Directories written by ``chromexpr attribute`` (their ``profile.tsv`` is plotted).
    force
        Replace existing outputs.
    embed
        ``png`` (base64 PNG) or ``svg`` (inline SVG) figures in the HTML.
    title
        Page title.

    Returns
    -------
    pathlib.Path
        The HTML file.
    """
    from chromexpr.atomic import check_writable
    from chromexpr.errors import InputError
    from chromexpr.io.report_files import (
        figure_directory,
        read_attribution_dir,
        read_eval_dir,
        write_report,
    )
    from chromexpr.report.html import render_figure, render_page

    if not eval_dirs:
        raise InputError("no evaluation directory given")
    if embed not in ("png", "svg"):
        raise InputError(f"unknown embedding {embed!r}; use png or svg")
    final = Path(output)
    check_writable(final, force=force)
    check_writable(figure_directory(final), force=force)
    tables = [read_eval_dir(p) for p in eval_dirs]
    attributions = [(Path(p), *read_attribution_dir(p)) for p in attribution_dirs]
    data = collect(tables, attributions)
    items = build_figures(data)
    rendered = {}
    blocks = []
    for item in items:
        if item.figure is None:
            logger.warning("figure %r skipped: needs %s", item.name, item.missing)
            continue
        png, svg, html = render_figure(item, embed=embed)
        rendered[item.name] = (png, svg)
        blocks.append(html)
    page = render_page(
        data,
        items,
        blocks,
        title=title,
        figure_folder=figure_directory(final).name,
        report_dir=final.parent,
    )
    write_report(final, page, rendered, force=force)
    return final
