"""The self-contained HTML page: a one-minute summary, metrics tables and the embedded figures.

Nothing on the page is fetched: figures are base64 PNG (``<img src="data:...">``) or inline SVG with
its XML prologue, DOCTYPE, metadata and namespace URIs removed; the style sheet is inline; there is
no script.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from chromexpr.report import figures as F

if TYPE_CHECKING:
    from chromexpr.report.run import FigureItem, ReportData

__all__ = ["metrics_table", "render_figure", "render_page", "svg_inline", "trust_summary"]

#: Column order of the metrics table (others follow alphabetically).
METRIC_ORDER = [
    "gene_pearson_median",
    "gene_pearson_deviation_median",
    "gene_spearman_median",
    "sample_pearson_median",
    "pearson",
    "spearman",
    "r2",
    "mse",
]
#: Metrics where lower is better.
LOWER_IS_BETTER = {"mse", "rmse", "mae"}
#: Within-gene margin over the best baseline below which a model is "not clearly better".
MARGIN = 0.05

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1180px;margin:2em
auto; padding:0 1em;color:#222;line-height:1.45} h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
.summary{background:#f6f8fa;border-left:4px solid #1f77b4;padding:.6em 1.2em} .summary
li{margin:.35em 0} table{border-collapse:collapse;font-size:.86em;margin:.6em 0} th,td{border:1px
solid #ddd;padding:.25em .55em;text-align:right} th{background:#f0f0f0} td.l,th.l{text-align:left}
tr.held td{background:#fffbea} td.best{font-weight:bold} figure{margin:1.4em 0} figure img,figure
svg{max-width:100%;height:auto} figcaption{font-size:.88em;color:#444;max-width:60em}
.muted{color:#777;font-size:.85em} code{background:#f0f0f0;padding:0 .2em;border-radius:3px}
.wide{max-width:100%;overflow-x:auto}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any, digits: int = 3) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "NA"
    if not math.isfinite(number):
        return "NA"
    return f"{number:.{digits}f}"


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def svg_inline(svg: str) -> str:
    """Matplotlib SVG text made safe to inline in HTML5 (no prologue, DOCTYPE, metadata or URIs).

    Examples
    --------
    >>> s = '<?xml version="1.0"?>\\n<!DOCTYPE svg PUBLIC "x" "http://w">\\n'
    >>> s += '<svg xmlns="http://www.w3.org/2000/svg" '
    >>> s += 'xmlns:xlink="http://www.w3.org/1999/xlink"><metadata>m</metadata><g/></svg>'
    >>> svg_inline(s)
    '<svg><g/></svg>'
    """
    text = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    return text.strip()


def render_figure(
    item: FigureItem, *, embed: str = "png", dpi: int = 110
) -> tuple[bytes, str, str]:
    """Render a figure to PNG bytes and SVG text, and its ``<figure>`` block for the page.

    The figure is closed (its memory released) afterwards.
    """
    fig = item.figure
    if fig is None:
        raise ValueError(f"figure {item.name!r} has nothing to render")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    png = buffer.getvalue()
    fig.set_layout_engine("none")  # keep the layout just computed: the SVG needs no second pass
    text = io.StringIO()
    fig.savefig(text, format="svg", metadata={"Date": None})
    svg = text.getvalue()
    fig.clear()
    if embed == "svg":
        body = svg_inline(svg)
    else:
        encoded = base64.b64encode(png).decode("ascii")
        body = f'<img alt="{_e(item.title)}" src="data:image/png;base64,{encoded}">'
    block = (
        f'<figure id="fig-{_e(item.name)}">\n<h3>{_e(item.title)}</h3>\n{body}\n'
        f'<figcaption>{item.caption} <span class="muted">[{_e(item.name)}.png / .svg]</span>'
        "</figcaption>\n</figure>"
    )
    return png, svg, block


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def metrics_table(metrics: pd.DataFrame, models: Sequence[str], *, held_out: str | None) -> str:
    """HTML table: one row per (model, split), one column per metric; held-out rows shaded and the
    best non-baseline value of each column on the held-out split in bold."""
    if metrics.empty:
        return '<p class="muted">no metrics</p>'
    wide = metrics.pivot_table(
        index=["model", "split"], columns="metric", values="value", aggfunc="first"
    )
    columns = [m for m in METRIC_ORDER if m in wide.columns]
    columns += sorted(c for c in wide.columns if c not in columns)
    model_rank = {m: i for i, m in enumerate([*models, F.BASELINE])}
    split_rank = {"train": 0, "dev": 1, "valid": 1, "test": 2}
    keys = sorted(
        wide.index,
        key=lambda k: (model_rank.get(k[0], 99), split_rank.get(str(k[1]), 3), str(k[1])),
    )
    best: dict[str, float] = {}
    for column in columns:
        if str(column).startswith("n_"):
            continue
        held = [wide.loc[k, column] for k in keys if k[1] == held_out and k[0] != F.BASELINE]
        held = [v for v in held if pd.notna(v)]
        if held:
            best[column] = min(held) if column in LOWER_IS_BETTER else max(held)
    rows = [
        '<div class="wide"><table>',
        '<tr><th class="l">model</th><th class="l">split</th>'
        # long metric names may break after an underscore, so the table fits the page
        + "".join(f"<th>{_e(c).replace('_', '_<wbr>')}</th>" for c in columns)
        + "</tr>",
    ]
    for key in keys:
        cells = []
        for column in columns:
            value = wide.loc[key, column]
            is_best = (
                key[1] == held_out
                and key[0] != F.BASELINE
                and column in best
                and value == best[column]
            )
            text = _fmt(value, 0) if str(column).startswith("n_") else _fmt(value)
            cells.append(('<td class="best">' if is_best else "<td>") + f"{text}</td>")
        cls = ' class="held"' if key[1] == held_out else ""
        rows.append(
            f'<tr{cls}><td class="l">{_e(key[0])}</td><td class="l">{_e(key[1])}</td>'
            + "".join(cells)
            + "</tr>"
        )
    rows.append("</table></div>")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# The one-minute summary
# --------------------------------------------------------------------------------------------


def _value(rows: pd.DataFrame, model: str, metric: str) -> float:
    v = rows.loc[(rows["model"] == model) & (rows["metric"] == metric), "value"]
    return float(v.iloc[0]) if len(v) else float("nan")


def _strongest_gap(data: ReportData, model: str, split: str | None) -> str:
    """``"+0.02 [95% CI +0.01, +0.03] over the strongest baseline, neighbors"`` (or ``""``)."""
    table = data.comparison
    if table.empty or "strongest" not in table:
        return ""
    rows = table[
        (table["model"].astype(str) == model)
        & (table["split"].astype(str) == str(split))
        & table["strongest"].astype(bool)
    ]
    if rows.empty:
        return ""
    row = rows.iloc[0]
    return (
        f"<b>{float(row['difference']):+.3f}</b> [95% CI {float(row['ci_low']):+.3f}, "
        f"{float(row['ci_high']):+.3f}, bootstrap over genes] over the strongest baseline, "
        f"<code>{_e(str(row['baseline']))}</code>"
    )


def trust_summary(data: ReportData) -> list[str]:
    """Bullet points (HTML): which model to trust, for which samples, and why, from the numbers."""
    from chromexpr.report.run import best_model, held_out_split, is_baseline_model, overall_rows

    lines: list[str] = []
    if not data.models or data.metrics.empty:
        return ["No model metrics were found."]
    split = held_out_split(data.metrics["split"])
    overall = overall_rows(data.metrics)
    overall = overall[overall["split"].astype(str) == split]
    best = best_model(data) or data.models[0]
    lead = next(
        (
            m
            for m in ("gene_pearson_deviation_median", "gene_pearson_median")
            if math.isfinite(_value(overall, best, m))
        ),
        None,
    )
    if lead is None:
        lines.append(
            f"No within-gene metric was evaluated; <code>{_e(best)}</code> scores best on the "
            "available metrics (table below), but whether it follows a gene across samples is "
            "unknown."
        )
    else:
        raw = _value(overall, best, "gene_pearson_median")
        deviation = lead.endswith("deviation_median")
        value = _value(overall, best, lead)
        refs: dict[str, float] = {}
        baseline_models = [m for m in data.models if is_baseline_model(m)]
        for ref in (F.BASELINE, *baseline_models):
            if ref == best or ref.removesuffix(" (baseline)") in refs:
                continue  # a baseline trained as a model and refitted: shown once
            v = _value(overall, ref, lead)
            if (
                ref == F.BASELINE
                and deviation
                and not math.isfinite(v)
                and (overall["model"] == ref).any()
            ):
                v = 0.0  # the mean baseline predicts no deviation at all
            if math.isfinite(v):
                refs[ref] = v
        others = [
            (m, _value(overall, m, lead))
            for m in data.models
            if m != best and not is_baseline_model(m)
        ]
        ref_text = "; ".join(
            f"{_fmt(v, 2)} for the "
            + (
                "mean baseline"
                if m == F.BASELINE
                else f"<code>{_e(m.removesuffix(' (baseline)'))}</code> baseline"
            )
            + (", which predicts no change" if m == F.BASELINE and deviation else "")
            for m, v in refs.items()
        )
        others_text = "; ".join(
            f"{_fmt(v, 2)} for <code>{_e(m)}</code>" for m, v in others if math.isfinite(v)
        )
        against = "; ".join(t for t in (ref_text, others_text) if t)
        margin = value - max(refs.values()) if refs else float("nan")
        what = (
            "median within-gene correlation between predicted and observed deviations from each "
            "gene's training mean"
            if deviation
            else "median within-gene correlation across samples"
        )
        detail = f"on held-out data (split <code>{_e(split)}</code>) its {what} is "
        detail += f"<b>{_fmt(value, 2)}</b>"
        detail += f" (vs {against})" if against else ""
        gap = _strongest_gap(data, best, split)
        if gap:
            detail += f"; {gap}"
        if deviation and math.isfinite(raw):
            detail += f"; the raw within-gene correlation is {_fmt(raw, 2)}"
        if refs and margin < 0:
            lines.append(
                f"<b>Do not trust any model within genes.</b> The best, <code>{_e(best)}</code>, "
                f"does not beat the no-learning baseline: {detail}. Its predictions say which "
                "genes are high or low, not how a gene changes in a new sample."
            )
        elif refs and margin < MARGIN:
            lines.append(
                f"<b><code>{_e(best)}</code> is only marginally better than the baselines:</b> "
                f"{detail}. Treat its sample-to-sample changes with caution."
            )
        else:
            close = [(m, v) for m, v in others if math.isfinite(v) and value - v < MARGIN]
            tie = ""
            if close:
                names = ", ".join(f"<code>{_e(m)}</code> ({_fmt(v, 2)})" for m, v in close)
                tie = (
                    f" {names} {'is' if len(close) == 1 else 'are'} about as good (within "
                    f"{MARGIN}): either will do."
                )
            lines.append(
                f"<b>Trust <code>{_e(best)}</code></b> for how a gene's expression changes between "
                f"samples: {detail}.{tie}"
            )
    across = _value(overall, best, "sample_pearson_median")
    base_across = _value(overall, F.BASELINE, "sample_pearson_median")
    if math.isfinite(across) and math.isfinite(base_across):
        lines.append(
            f"Across genes within a sample <code>{_e(best)}</code> reaches r = {_fmt(across, 2)}, "
            f"but the mean baseline alone reaches {_fmt(base_across, 2)}: that number mostly says "
            "which genes are expressed at all, not what the model learned from accessibility."
        )
    lines.extend(_sample_lines(data, best, split))
    lines.extend(_gene_lines(data, best))
    lines.extend(_training_lines(data))
    lines.extend(_attribution_lines(data))
    lines.extend(_link_lines(data))
    return lines


def _link_lines(data: ReportData) -> list[str]:
    """Planted-link recovery (simulated data, ``truth.tsv``) beside distance alone and random."""
    truth = data.truth
    if truth.empty:
        return []
    out = []
    for model, rows in truth[truth["check"].astype(str) == "links"].groupby("model", sort=False):
        values = dict(zip(rows["metric"].astype(str), rows["value"].astype(float), strict=False))
        auprc = values.get("auprc", float("nan"))
        distance = values.get("distance_auprc", float("nan"))
        if not math.isfinite(auprc):
            continue
        verdict = (
            "better than" if auprc > distance else "no better than"
        ) + " ranking bins by distance to the TSS alone"
        out.append(
            f"Links of <code>{_e(str(model))}</code> recover the planted enhancers with AUPRC "
            f"{_fmt(auprc, 3)} against {_fmt(distance, 3)} for distance alone and "
            f"{_fmt(values.get('baseline_auprc', float('nan')), 3)} for a random ranking: "
            f"{verdict}."
        )
    return out


def _sample_lines(data: ReportData, best: str, split: str | None) -> list[str]:
    rows = data.per_sample
    rows = (
        rows[(rows["model"] == best) & (rows["split"].astype(str) == split)] if len(rows) else rows
    )
    out = []
    if len(rows):
        median = float(rows["mse"].median())
        flagged = rows[rows["is_outlier"].astype(bool)] if "is_outlier" in rows else rows.iloc[:0]
        if len(flagged):
            parts = []
            for _, r in flagged.sort_values("mse", ascending=False).head(5).iterrows():
                group = (
                    f" ({_e(r['group'])})"
                    if "group" in r and pd.notna(r["group"]) and str(r["group"])
                    else ""
                )
                ratio = r["mse"] / median if median > 0 else float("nan")
                parts.append(
                    f"<code>{_e(r['sample'])}</code>{group}, error {_fmt(ratio, 1)}× the median "
                    "sample's"
                )
            lines = "; ".join(parts)
            worst = float(flagged["mse"].max()) / median if median > 0 else float("nan")
            if math.isfinite(worst) and worst < 1.5:
                out.append(
                    f"<b>Samples flagged as outliers:</b> {lines}. The excess is modest: with "
                    f"{len(rows)} samples the robust rule is sensitive; no sample stands out much."
                )
            else:
                out.append(
                    f"<b>Samples to doubt:</b> {lines} (flagged as outliers). Check their data "
                    "quality or whether their cell type is represented in training."
                )
        else:
            out.append(
                f"No sample is flagged as an outlier for <code>{_e(best)}</code>; the worst "
                f"sample's error is {_fmt(float(rows['mse'].max()) / median, 1)}× the median "
                "sample's."
            )
    groups = data.metrics
    if "group" in groups and len(groups):
        g = groups[
            (groups["model"] == best)
            & (groups["split"].astype(str) == split)
            & (groups["metric"] == "gene_pearson_median")
        ]
        g = g[~g["group"].astype(str).str.lower().isin({"all", "", "overall", "(all)", "*", "nan"})]
        g = g[np.isfinite(g["value"].astype(float))]
        if len(g) >= 2:
            lo = g.loc[g["value"].astype(float).idxmin()]
            hi = g.loc[g["value"].astype(float).idxmax()]
            out.append(
                f"<b>By group:</b> within-gene r is lowest for <code>{_e(lo['group'])}</code> "
                f"({_fmt(lo['value'], 2)}) and highest for <code>{_e(hi['group'])}</code> "
                f"({_fmt(hi['value'], 2)})."
            )
    return out


def _gene_lines(data: ReportData, best: str) -> list[str]:
    from chromexpr.report.run import held_out_split

    rows = data.per_gene
    if rows.empty:
        return []
    split = held_out_split(rows["split"])
    rows = rows[(rows["model"] == best) & (rows["split"].astype(str) == split)]
    if rows.empty:
        return []
    column = (
        "pearson_deviation"
        if "pearson_deviation" in rows and rows["pearson_deviation"].notna().any()
        else "pearson"
    )
    r = rows[column].dropna()
    text = (
        f"<b>Genes:</b> {100 * float((r > 0.5).mean()):.0f}% of {len(r):,} genes have r &gt; 0.5 "
        f"({'deviations' if column == 'pearson_deviation' else 'predictions'} vs observed across "
        "samples)"
    )
    if "baseline_mse" in rows and rows["baseline_mse"].notna().any():
        better = float((rows["mse"] < rows["baseline_mse"]).mean())
        text += f", and {100 * better:.0f}% have a lower error than the mean baseline"
    return [text + "."]


def _training_lines(data: ReportData) -> list[str]:
    out = []
    for model in data.models:
        h = data.history[data.history["model"] == model] if len(data.history) else data.history
        if h.empty or "dev_mse" not in h or h["dev_mse"].isna().all():
            continue
        h = h.sort_values("epoch")
        best = h.loc[h["dev_mse"].idxmin()]
        last = h.iloc[-1]
        note = ""
        if last["dev_mse"] > 1.1 * best["dev_mse"]:
            note = " and rose afterwards (overfitting; the best epoch should be the one kept)"
        gap = best["dev_mse"] / best["train_mse"] if best["train_mse"] > 0 else float("nan")
        out.append(
            f"<b>Training of <code>{_e(model)}</code>:</b> dev loss was lowest at epoch "
            f"{int(best['epoch'])} of {int(last['epoch'])}{note}; there dev MSE is {_fmt(gap, 1)}× "
            "the training MSE."
        )
    return out


def _attribution_lines(data: ReportData) -> list[str]:
    p = data.profiles
    if p.empty:
        return []
    source = str(p["source"].iloc[0])
    rows = p[(p["source"] == source) & (p["group"] == "all")]
    total = float(rows["mean_abs_attribution"].sum())
    if total <= 0:
        return []
    near = float(rows.loc[rows["bin_offset"].abs() < 10_000, "mean_abs_attribution"].sum()) / total
    mid = float(rows.loc[rows["bin_offset"].abs() < 100_000, "mean_abs_attribution"].sum()) / total
    return [
        f"<b>What drives predictions</b> ({_e(source)}): {100 * near:.0f}% of the mean "
        f"|attribution| lies within 10 kb of the TSS and {100 * mid:.0f}% within 100 kb."
    ]


# --------------------------------------------------------------------------------------------
# Page
# --------------------------------------------------------------------------------------------


def shown_path(path: Path, report_dir: Path | None) -> str:
    """How an input is named in a report: relative to the report's folder, else its last part.

    Examples
    --------
    >>> shown_path(Path("/home/ann/x/eval/lasso"), Path("/home/ann/x"))
    'eval/lasso'
    >>> shown_path(Path("/home/ann/private/eval"), Path("/tmp/r"))
    'eval'
    """
    path = Path(path)
    if report_dir is not None:
        try:
            return path.resolve().relative_to(Path(report_dir).resolve()).as_posix()
        except ValueError:
            pass
    return path.name or str(path)


def render_page(
    data: ReportData,
    items: Sequence[FigureItem],
    blocks: Sequence[str],
    *,
    title: str,
    figure_folder: str,
    report_dir: Path | None = None,
) -> str:
    """The whole HTML document.

    Inputs are listed by their path relative to ``report_dir`` (the report's folder) when they lie
    inside it, else by their folder name only: a shared report does not show where its author's
    files are.
    """
    from chromexpr._version import __version__
    from chromexpr.report.run import held_out_split, overall_rows

    split = held_out_split(data.metrics["split"]) if len(data.metrics) else None
    overall = overall_rows(data.metrics)
    summary = "\n".join(f"<li>{line}</li>" for line in trust_summary(data))
    missing = [i for i in items if i.figure is None]
    missing_html = ""
    if missing:
        missing_html = (
            '<p class="muted">Not shown (input missing): '
            + "; ".join(f"{_e(i.title)} (needs {_e(i.missing)})" for i in missing)
            + ".</p>"
        )
    per_group = ""
    if "group" in data.metrics and len(data.metrics) > len(overall):
        grouped = data.metrics.drop(overall.index)
        grouped = grouped[grouped["split"].astype(str) == split]
        if len(grouped):
            tables = []
            for group, rows in grouped.groupby("group", sort=True):
                tables.append(
                    f"<h4>group {_e(group)}</h4>" + metrics_table(rows, data.models, held_out=split)
                )
            per_group = (
                "<details><summary>Metrics per sample group (split "
                f"<code>{_e(split)}</code>)</summary>{''.join(tables)}</details>"
            )
    sources = "".join(
        f"<li><code>{_e(shown_path(p, report_dir))}</code></li>"
        for p in [*data.eval_dirs, *data.attribution_dirs]
    )
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="muted">Models: {", ".join(f"<code>{_e(m)}</code>" for m in data.models)}.
Held-out split shown in figures: <code>{_e(split)}</code>.
chromexpr {_e(__version__)}, {created}.</p>
<h2>In one minute</h2>
<ul class="summary">
{summary}
</ul>
<h2>Metrics per model and split</h2>
<p class="muted">All samples. Held-out rows shaded; bold: best model on the held-out split.
Within-gene metrics (<code>gene_*</code>) first: they are the ones a new sample depends on.</p>
{metrics_table(overall, data.models, held_out=split)}
{per_group}
<h2>Figures</h2>
<p class="muted">Each figure is also saved as PNG and SVG in <code>{_e(figure_folder)}/</code>.</p>
{missing_html}
{chr(10).join(blocks)}
<h2>Inputs</h2>
<ul class="muted">{sources}</ul>
</body>
</html>
"""
