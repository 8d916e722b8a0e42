"""Baselines refitted beside an evaluated model, and how much the model beats them.

``chromexpr evaluate`` scores every model next to the no-learning baselines ``activity`` (gene
activity score) and ``neighbors`` (expression of the training samples whose accessibility looks
alike), besides the ``mean`` baseline that :func:`chromexpr.evaluate.metrics.metrics_table` adds.
Each baseline is refitted on exactly the training samples of the model (of each fold for a model
trained with ``--folds``), with the model's expression and openness transforms, so the comparison
is paired: same genes, same held-out samples, same training data.

:func:`baseline_comparison` turns per-gene correlations into the difference a user asks about:
the model's median within-gene r of predicted deviations minus each baseline's, with a bootstrap
interval over genes (genes resampled with replacement, the same draw for both, so the interval is
that of the paired difference).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.dataset.store import Dataset
from chromexpr.log import logger

__all__ = [
    "BASELINE_MODELS",
    "BASELINE_SUFFIX",
    "COMPARISON_COLUMNS",
    "baseline_comparison",
    "baseline_name",
    "baseline_predictions",
    "is_baseline",
]

#: Baselines refitted by ``chromexpr evaluate`` by default.
BASELINE_MODELS: tuple[str, ...] = ("activity", "neighbors")
#: Suffix of a refitted baseline's model label in predictions and metrics.
BASELINE_SUFFIX = " (baseline)"
#: Columns of :func:`baseline_comparison`.
COMPARISON_COLUMNS = [
    "model",
    "split",
    "baseline",
    "n_genes",
    "model_median",
    "baseline_median",
    "difference",
    "ci_low",
    "ci_high",
    "strongest",
]


def baseline_name(model: str) -> str:
    """Label of a refitted baseline.

    Examples
    --------
    >>> baseline_name("neighbors")
    'neighbors (baseline)'
    """
    return f"{model}{BASELINE_SUFFIX}"


def is_baseline(label: str) -> bool:
    """Whether a model label names a baseline (refitted ones and the ``mean`` baseline rows).

    Examples
    --------
    >>> [is_baseline(m) for m in ("activity (baseline)", "mean (baseline of fc)", "fc")]
    [True, True, False]
    """
    return label.endswith(BASELINE_SUFFIX) or label.startswith("mean (baseline")


def baseline_predictions(
    model_dir: str | Path,
    dataset: Dataset,
    expression: str | Path,
    names: Sequence[str] = BASELINE_MODELS,
) -> pd.DataFrame:
    """Held-out predictions of each baseline in ``names``, refitted on the model's training samples.

    Returns the long predictions frame (``chromexpr.evaluate.metrics.PREDICTION_COLUMNS``) with
    model labels :func:`baseline_name`; held-out splits only (``oof`` for fold models, ``dev`` and
    ``test`` otherwise). A baseline that cannot be fitted on the model's split (``neighbors`` on a
    chromosome split) is left out with a log line.
    """
    from chromexpr.errors import InputError
    from chromexpr.models.base import fold_directories, load_model, read_config
    from chromexpr.models.splits import SplitConfig
    from chromexpr.models.train import TrainOptions, fit_split, load_context
    from chromexpr.models.transforms import OpennessConfig

    config = read_config(model_dir)
    recorded = dict(config.get("options", {}))
    openness = dict(recorded.get("openness", {}))
    groups = config.get("groups", {}).get("mode")
    options = TrainOptions(
        expr_transform=recorded.get("expr_transform", "log2p1"),
        standardize=bool(recorded.get("standardize", False)),
        openness=OpennessConfig(
            **{
                k: openness[k]
                for k in ("depth", "log1p", "quantile", "n_quantiles")
                if k in openness
            }
        ),
        split=SplitConfig(),
        groups=groups if groups in ("auto", "sheet", "none") else None,
        inner_folds=int(recorded.get("inner_folds", 5)),
        seed=int(recorded.get("seed", 0)),
    )
    folds = fold_directories(model_dir)
    directories = folds or [Path(model_dir)]
    todo = [n for n in names if n != config.get("model")]
    if not todo:
        return pd.DataFrame()
    ctx = load_context(dataset, expression, options)
    parts: list[pd.DataFrame] = []
    for name in todo:
        rows: list[pd.DataFrame] = []
        try:
            for directory in directories:
                split = load_model(directory).split
                if folds:
                    split_config = split.config
                    if split_config.kind != "sample":
                        raise InputError("fold models hold out samples")
                result = fit_split(
                    ctx, split, name, held_out_label="oof" if folds else None, options={}
                )
                frame = result.predictions
                keep = frame["split"] == "oof" if folds else frame["split"].isin(["dev", "test"])
                rows.append(frame[keep])
        except InputError as exc:
            logger.info("baseline %s left out: %s", name, exc)
            continue
        if rows:
            frame = pd.concat(rows, ignore_index=True)
            frame["model"] = baseline_name(name)
            parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def baseline_comparison(
    per_gene: pd.DataFrame,
    *,
    metric: str = "pearson_deviation",
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Each model's median per-gene ``metric`` minus each baseline's, with a bootstrap interval.

    Parameters
    ----------
    per_gene
        :func:`chromexpr.evaluate.metrics.per_gene_table` output holding models and their baselines
        (labels for which :func:`is_baseline` is true).
    metric
        Per-gene column compared.
    n_boot
        Bootstrap draws over genes.
    seed
        Seed of the draws.
    level
        Coverage of the percentile interval.

    Returns
    -------
    pandas.DataFrame
        :data:`COMPARISON_COLUMNS`, one row per (model, held-out split, baseline): over the genes
        both score, ``difference = median(model) - median(baseline)`` and its interval;
        ``strongest`` marks the baseline with the highest median.

    Examples
    --------
    >>> pg = pd.DataFrame({"model": ["m"] * 3 + ["b (baseline)"] * 3, "split": "test",
    ...     "gene_id": ["a", "b", "c"] * 2, "pearson_deviation": [0.9, 0.8, 0.7, 0.5, 0.4, 0.3]})
    >>> baseline_comparison(pg, n_boot=200)[["baseline", "difference", "ci_low"]].round(2)
           baseline  difference  ci_low
    0  b (baseline)         0.4     0.4
    """
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    held = per_gene[per_gene["split"].isin(["dev", "test", "oof"])]
    for split, part in held.groupby("split", sort=True):
        wide = part.pivot_table(index="gene_id", columns="model", values=metric, aggfunc="first")
        models = [m for m in wide.columns if not is_baseline(str(m))]
        baselines = [m for m in wide.columns if is_baseline(str(m))]
        for model in models:
            found: list[dict[str, object]] = []
            for base in baselines:
                pair = wide[[model, base]].dropna()
                if pair.empty:
                    continue
                a = pair[model].to_numpy(np.float64)
                b = pair[base].to_numpy(np.float64)
                draws = rng.integers(0, a.size, size=(n_boot, a.size))
                diffs = np.median(a[draws], axis=1) - np.median(b[draws], axis=1)
                tail = (1.0 - level) / 2.0
                found.append(
                    {
                        "model": model,
                        "split": split,
                        "baseline": base,
                        "n_genes": int(a.size),
                        "model_median": float(np.median(a)),
                        "baseline_median": float(np.median(b)),
                        "difference": float(np.median(a) - np.median(b)),
                        "ci_low": float(np.quantile(diffs, tail)),
                        "ci_high": float(np.quantile(diffs, 1.0 - tail)),
                        "strongest": False,
                    }
                )
            if found:
                best = max(range(len(found)), key=lambda i: float(found[i]["baseline_median"]))  # type: ignore[arg-type]
                found[best]["strongest"] = True
                rows.extend(found)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
