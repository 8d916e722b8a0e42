"""The evaluate API: MODEL_DIR + dataset + expression -> long predictions -> metric tables ->
EVAL_DIR.

Which model predicts which pair:

* a model trained with ``--folds``: each sample is predicted by the fold model that held it out
  (split ``oof``, scored like ``test``); samples no fold knew are predicted by the top-level model
  (``test``);
* otherwise the model predicts every matched pair and the pair's split is the one recorded in the
  model (``train``/``dev``/``test``); samples the model never saw are ``test``.

Observed and predicted values are on the model's expression scale (e.g. log2(TPM+1)); ``train_mean``
is the gene's training mean of the model (or fold) that made the prediction, the ``mean`` baseline.
EVAL_DIR holds ``metrics.tsv``, ``per_gene.tsv``, ``per_sample.tsv``, ``predictions.tsv``, a copy of
the model's ``history.tsv`` and ``model.json`` (what was evaluated, for the report).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.atomic import atomic_path, check_writable
from chromexpr.dataset.store import Dataset, open_dataset
from chromexpr.errors import InputError
from chromexpr.evaluate.baselines import BASELINE_MODELS, baseline_comparison, baseline_predictions
from chromexpr.evaluate.metrics import metrics_table, per_gene_table, per_sample_table
from chromexpr.io.evaluation_files import write_evaluation
from chromexpr.io.expression import (
    match_expression,
    read_expression,
    read_long_table,
    require_non_negative,
)
from chromexpr.log import logger
from chromexpr.models.base import (
    HISTORY_TSV,
    FittedModel,
    fold_directories,
    load_model,
    read_config,
)
from chromexpr.models.predict import predict_matrix
from chromexpr.models.splits import ROLE_NAMES
from chromexpr.models.train import predictions_frame
from chromexpr.models.transforms import forward_expression

__all__ = ["EVAL_TABLES", "evaluate", "evaluation_predictions"]

#: Tables written to EVAL_DIR (``NAME.tsv``), besides ``model.json``.
EVAL_TABLES = ("metrics", "per_gene", "per_sample", "predictions", "history", "comparison")
MODEL_JSON = "model.json"


def _observed(
    fitted: FittedModel, dataset: Dataset, expression: str | Path
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Observed values of the model's genes (rows) x matched samples, on the model's scale.

    Returns ``(values (n_model_genes, n_samples) with NaN for genes without expression, samples,
    has_gene (n_model_genes,) bool)``.
    """
    table = read_expression(expression)
    require_non_negative(table, fitted.expression_kind)
    matched = match_expression(
        table,
        dataset.genes["gene_id"].tolist(),
        dataset.genes["gene_name"].tolist(),
        dataset.samples,
    )
    logger.info(matched.summary())
    values = forward_expression(
        matched.values,
        fitted.expression_kind,
        gene_ids=dataset.genes["gene_id"].to_numpy()[matched.gene_index].tolist(),
        samples=matched.samples,
    )
    row_of = {int(g): i for i, g in enumerate(matched.gene_index)}
    rows = np.asarray(
        [row_of.get(int(g), -1) for g in fitted.genes["dataset_index"]], dtype=np.int64
    )
    has = rows >= 0
    if not has.any():
        raise InputError("none of the model's genes has expression in this file", path=expression)
    out = np.full((rows.size, len(matched.samples)), np.nan)
    out[has] = values[rows[has]]
    return out, matched.samples, has


def _frame_for(
    fitted: FittedModel,
    dataset: Dataset,
    observed: np.ndarray,
    samples: Sequence[str],
    has_gene: np.ndarray,
    labels_of: dict[str, str] | None,
    label_default: str,
    model_label: str,
) -> pd.DataFrame:
    """Predict ``samples`` with ``fitted`` and label the pairs."""
    if not samples:
        return pd.DataFrame()
    cols = [i for i, _ in enumerate(samples)]
    pred = predict_matrix(fitted, dataset, list(samples))
    genes = fitted.genes
    if labels_of is None:
        roles = fitted.split.roles(
            genes["gene_id"].tolist(), genes["chrom"].tolist(), list(samples)
        )
        labels = np.full(roles.shape, "", dtype=object)
        for code, name in ROLE_NAMES.items():
            labels[roles == code] = name
    else:
        labels = np.tile(
            np.asarray([labels_of.get(s, label_default) for s in samples], dtype=object),
            (len(genes), 1),
        )
    labels[~has_gene] = ""
    recorded = fitted.record.get("group_of", {})
    groups = [recorded.get(s, dataset.groups[int(dataset.sample_position(s)[0])]) for s in samples]
    return predictions_frame(
        genes,
        list(samples),
        groups,
        observed[:, cols],
        pred,
        fitted.train_mean,
        labels,
        model_label,
    )


def evaluation_predictions(
    model_dir: str | Path, dataset: str | Path | Dataset, expression: str | Path
) -> pd.DataFrame:
    """Long predictions of every (gene, sample) pair with expression, labelled by split.

    See the module docstring for which model predicts which pair.
    """
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    config = read_config(model_dir)
    main = load_model(model_dir)
    label = (
        str(config.get("options", {}).get("model", main.name)) if config.get("folds") else main.name
    )
    if label == "auto" and not config.get("folds"):
        label = main.name
    # metrics per group use the groups the model was trained with (sheet or auto)
    group_of = dict(config.get("groups", {}).get("samples", {}))
    main.record["group_of"] = group_of
    observed, samples, has = _observed(main, ds, expression)
    folds = fold_directories(model_dir)
    parts: list[pd.DataFrame] = []
    if folds:
        done: set[str] = set()
        for directory in folds:
            fold = load_model(directory)
            fold.record["group_of"] = group_of
            members = [s for s in samples if fold.split.sample_roles.get(s) == "test"]
            idx = [samples.index(s) for s in members]
            logger.info("evaluating %s: %d held-out sample(s)", directory.name, len(members))
            parts.append(_frame_for(fold, ds, observed[:, idx], members, has, {}, "oof", label))
            done.update(members)
        rest = [s for s in samples if s not in done]
        if rest:
            idx = [samples.index(s) for s in rest]
            parts.append(_frame_for(main, ds, observed[:, idx], rest, has, {}, "test", label))
    else:
        parts.append(_frame_for(main, ds, observed, samples, has, None, "test", label))
    frames = [p for p in parts if len(p)]
    if not frames:
        raise InputError("no (gene, sample) pair to evaluate")
    return pd.concat(frames, ignore_index=True)


def evaluate(
    model_dir: str | Path,
    dataset: str | Path,
    expression: str | Path,
    output: str | Path,
    *,
    force: bool = False,
    splits: Sequence[str] | None = None,
    truth: str | Path | None = None,
    noise_free: str | Path | None = None,
    baselines: Sequence[str] = BASELINE_MODELS,
) -> dict[str, Path]:
    """Score a model and write EVAL_DIR, as a whole and atomically.

    Every input is read and checked before anything is written; EVAL_DIR appears complete or not
    at all (an existing one is replaced only with ``force``, and stays as it was if the run fails).

    Parameters
    ----------
    model_dir
        MODEL_DIR from ``chromexpr train``.
    dataset
        Dataset with the model's geometry and gene list.
    expression
        Observed expression (same layout as for training).
    output
        EVAL_DIR to create.
    force
        Replace an existing EVAL_DIR.
    splits
        Keep only these splits (default: all of train, dev, test, oof).
    truth
        Planted links (``chromexpr simulate``'s ``truth/links.bedpe``): link recovery in
        ``truth.tsv``.
    noise_free
        Noise-free expression (``truth/expression_noise_free.tsv``): the noise ceiling in
        ``truth.tsv``.
    baselines
        Baselines refitted on the model's own training samples and scored beside it
        (:mod:`chromexpr.evaluate.baselines`; ``()``: only the ``mean`` baseline). Their gap to the
        model, with a bootstrap interval over genes, is ``comparison.tsv``.

    Returns
    -------
    dict
        Table name to path.
    """
    from chromexpr.io.evaluation_files import read_truth_links

    out = check_writable(output, force=force)
    for name, path in (("--truth", truth), ("--noise-free", noise_free)):
        if path is not None and not Path(path).is_file():
            raise InputError(f"{name} file not found", path=path)
    ds = open_dataset(dataset)
    if truth is not None:  # read now: a bad file must fail before the work, not after it
        read_truth_links(truth, genes=ds.genes[["gene_id", "chrom", "tss"]])
    if noise_free is not None:
        read_expression(noise_free)
    pred = evaluation_predictions(model_dir, ds, expression)
    if baselines:
        refitted = baseline_predictions(model_dir, ds, expression, baselines)
        if len(refitted):
            pred = pd.concat([pred, refitted[list(pred.columns)]], ignore_index=True)
    if splits:
        pred = pred[pred["split"].isin(list(splits))].reset_index(drop=True)
        if pred.empty:
            raise InputError(f"no prediction in split(s) {', '.join(splits)}")
    logger.info("scoring %d predictions", len(pred))
    tables = {
        "metrics": metrics_table(pred),
        "per_gene": per_gene_table(pred),
        "per_sample": per_sample_table(pred),
        "predictions": pred,
    }
    tables["comparison"] = baseline_comparison(tables["per_gene"])
    history = Path(model_dir) / HISTORY_TSV
    if history.is_file():
        tables["history"] = read_long_table(history)
    checks = None
    if truth is not None or noise_free is not None:
        from chromexpr.evaluate.truth import truth_checks

        checks = truth_checks(model_dir, ds, expression, truth=truth, noise_free=noise_free)
    config = read_config(model_dir)
    info = {
        "model": config.get("model"),
        "requested_model": config.get("options", {}).get("model"),
        "formulation": config.get("formulation"),
        "params": config.get("params"),
        "fitted": config.get("fitted"),
        "split": config.get("split", {}).get("config"),
        "folds": config.get("folds"),
        "model_dir": str(Path(model_dir).resolve()),
        "dataset": str(Path(dataset).resolve()),
        "expression": str(Path(expression).resolve()),
        "auto": config.get("auto"),
    }
    with atomic_path(out, force=force) as tmp:
        tmp.mkdir()
        written = write_evaluation(tmp, tables)
        (tmp / MODEL_JSON).write_text(json.dumps(info, indent=1, default=str) + "\n")
        if checks is not None:
            from chromexpr.evaluate.truth import TRUTH_TSV

            checks.to_csv(tmp / TRUTH_TSV, sep="\t", index=False)
    paths = {name: out / path.name for name, path in written.items()}
    paths["model"] = out / MODEL_JSON
    _log_headline(tables["metrics"])
    _log_comparison(tables["comparison"])
    if checks is not None:
        from chromexpr.evaluate.truth import TRUTH_TSV, truth_summary

        paths["truth"] = out / TRUTH_TSV
        summary = truth_summary(checks)
        logger.info("ground truth: %s", "; ".join(f"{k} {v:.3g}" for k, v in summary.items()))
    return paths


def _log_headline(metrics: pd.DataFrame) -> None:
    """Log the within-gene headline: median r of predicted deviations on held-out splits."""
    sel = metrics[
        (metrics["group"] == "all") & (metrics["metric"] == "gene_pearson_deviation_median")
    ]
    for row in sel.itertuples(index=False):
        if row.split in ("dev", "test", "oof") and np.isfinite(row.value):
            logger.info(
                "%s %s: median within-gene r (deviations) %.3f", row.model, row.split, row.value
            )


def _log_comparison(comparison: pd.DataFrame) -> None:
    """Log how much each model beats its strongest baseline."""
    for row in comparison[comparison["strongest"]].itertuples(index=False):
        logger.info(
            "%s %s: %+.3f [%+.3f, %+.3f] vs the strongest baseline, %s (%.3f)",
            row.model,
            row.split,
            row.difference,
            row.ci_low,
            row.ci_high,
            row.baseline,
            row.baseline_median,
        )


#: Observed expression of a model's genes on its scale (public name, used by attribution targets).
observed_expression = _observed
