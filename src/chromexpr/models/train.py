"""The train API: dataset + expression -> split -> fitted transforms -> model(s) -> MODEL_DIR.

:func:`train` is what ``chromexpr train`` calls. One fit (:func:`fit_split`) fits, on the training
pairs of one split only, the openness transform, the expression standardisation, the per-gene
training means and the model; it then predicts the split's held-out pairs. ``--folds K`` repeats
that for K sample folds (out-of-fold predictions for every sample) and fits the model saved at the
top of MODEL_DIR on all samples. ``--model auto`` chooses among candidate models by inner
cross-validation over the training samples, on the median within-gene correlation of predicted
deviations (prediction minus the fold's training mean).
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from chromexpr.atomic import atomic_path, check_writable
from chromexpr.dataset.store import Dataset, open_dataset
from chromexpr.errors import InputError
from chromexpr.io.expression import (
    MatchedExpression,
    match_expression,
    read_expression,
    require_non_negative,
    write_long_table,
)
from chromexpr.log import logger, progress_bar
from chromexpr.models.base import (
    FOLDS_DIR,
    HISTORY_COLUMNS,
    HISTORY_TSV,
    PREDICTIONS_TSV,
    FittedModel,
    Model,
    TrainingData,
    gene_checksum,
    get_model_class,
    make_params,
    save_model,
)
from chromexpr.models.design import (
    FORMULATIONS,
    BlockSource,
    RawCache,
    bin_distances,
    sample_statistics,
)
from chromexpr.models.splits import (
    DEV,
    ROLE_NAMES,
    TEST,
    TRAIN,
    Split,
    SplitConfig,
    auto_groups,
    groups_kept_whole,
    make_folds,
    make_split,
)
from chromexpr.models.transforms import (
    ExpressionTransformKind,
    OpennessConfig,
    SampleStatistics,
    fit_expression_scaler,
    fit_openness,
    forward_expression,
)

__all__ = ["AUTO_CANDIDATES", "TrainContext", "TrainOptions", "fit_split", "load_context", "train"]

GroupMode = Literal["auto", "sheet", "none"]
FormulationChoice = Literal["auto", "deviation", "raw"]
#: Models ``--model auto`` compares by default (``fc`` and the pooled ``lasso`` are left out for
#: their cost and their accuracy on real cell types; add them explicitly).
AUTO_CANDIDATES: tuple[str, ...] = ("activity", "neighbors", "lasso-gene", "hybrid")
#: The model ``chromexpr train`` fits when none is named.
DEFAULT_MODEL = "hybrid"
#: Dev fraction of models that use a dev set (early stopping) when none is given.
DEFAULT_DEV_FRACTION = 0.1
PREDICTION_COLUMNS = [
    "gene_id",
    "gene_name",
    "sample",
    "group",
    "split",
    "observed",
    "predicted",
    "train_mean",
    "model",
]


@dataclass(frozen=True)
class TrainOptions:
    """Everything ``chromexpr train`` can set.

    Attributes
    ----------
    model
        A model name, or ``auto``.
    params
        Model parameters that differ from the model's defaults (keys of its ``Params``).
    formulation
        ``auto`` (``deviation`` with sample splits, ``raw`` otherwise), ``deviation`` or ``raw``.
    expr_transform, standardize
        Expression transform and per-gene standardisation.
    openness
        Openness transforms.
    split
        Train/dev/test split (ignored for the fold fits of ``folds``).
    folds
        K-fold cross-validation over samples (``None``: a single split).
    groups
        ``auto`` (expression PCA + k-means), ``sheet`` (the dataset's groups), ``none``, or
        ``None``: ``sheet`` when the dataset has groups.
    inner_folds
        Inner cross-validation folds over training samples (alpha choice, ``--model auto``).
    auto_candidates
        Models compared by ``--model auto``.
    seed
        Random seed of everything (splits, folds, initialisation, shuffling).
    fc_dev_fraction
        With ``folds``: fraction of each fold's training samples kept for early stopping (models
        that use a dev set only).
    runtime
        Where the work runs, not what it computes (e.g. ``scheduler``: the Dask cluster of the
        lasso statistics pass); passed to every fit, not recorded as a model parameter.
    """

    model: str = DEFAULT_MODEL
    params: dict[str, Any] = field(default_factory=dict)
    formulation: FormulationChoice = "auto"
    expr_transform: ExpressionTransformKind = "log2p1"
    standardize: bool = False
    openness: OpennessConfig = field(default_factory=OpennessConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    folds: int | None = None
    groups: GroupMode | None = None
    inner_folds: int = 5
    auto_candidates: tuple[str, ...] = AUTO_CANDIDATES
    seed: int = 0
    fc_dev_fraction: float = DEFAULT_DEV_FRACTION
    runtime: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without ``runtime``)."""
        out = asdict(self)
        out.pop("runtime")
        out["split"] = asdict(self.split)
        out["openness"] = asdict(self.openness)
        return out


@dataclass
class TrainContext:
    """The inputs of every fit, read once.

    Attributes
    ----------
    dataset
        The opened dataset.
    expression
        Expression matched to it.
    y
        ``float64 (n_genes, n_samples)`` transformed expression of the matched genes x samples.
    groups
        Group of each matched sample (``""``: none).
    group_mode
        How ``groups`` were made.
    stats
        Each matched sample's own openness statistics.
    genes
        Matched genes: ``gene_id, gene_name, chrom, dataset_index``.
    options
        The options.
    """

    dataset: Dataset
    expression: MatchedExpression
    y: np.ndarray
    groups: list[str]
    group_mode: str
    stats: SampleStatistics
    genes: pd.DataFrame
    options: TrainOptions
    expression_path: Path | None = None
    cache: RawCache | None = None

    @property
    def samples(self) -> list[str]:
        """Samples with expression."""
        return self.expression.samples

    def raw_cache(self, bins: np.ndarray | None) -> RawCache | None:
        """The matched genes x samples' raw values in ``bins``, read once for every fit of the
        run when they fit in :data:`~chromexpr.models.design.RAW_CACHE_BYTES` (else ``None``)."""
        genes = self.genes["dataset_index"].to_numpy(np.int64)
        positions = self.expression.sample_position
        if self.cache is not None and self.cache.take(genes[:1], positions, bins) is not None:
            return self.cache
        wanted = bins if self.cache is None or bins is None else np.union1d(self.cache.bins, bins)
        cache = RawCache.build(self.dataset, genes, positions, wanted)
        if cache is not None:
            self.cache = cache
        return cache


def load_context(
    dataset: str | Path | Dataset, expression: str | Path, options: TrainOptions
) -> TrainContext:
    """Open the dataset, read and match the expression, transform it, resolve groups, compute
    statistics."""
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    if ds.n_samples == 0:
        raise InputError("the dataset has no complete sample", path=ds.path)
    table = read_expression(expression)
    require_non_negative(table, options.expr_transform)
    matched = match_expression(
        table, ds.genes["gene_id"].tolist(), ds.genes["gene_name"].tolist(), ds.samples
    )
    logger.info(matched.summary())
    if len(matched.samples) < 2 and options.split.kind != "chromosome":
        raise InputError(
            f"only {len(matched.samples)} of the dataset's {ds.n_samples} samples has expression "
            f"({', '.join(matched.samples)}): nothing is left to test a model on",
            path=expression,
            fix="give expression for more samples, or hold out chromosomes (--split chromosome)",
        )
    genes_frame = ds.genes.iloc[matched.gene_index]
    y = forward_expression(
        matched.values,
        options.expr_transform,
        gene_ids=genes_frame["gene_id"].tolist(),
        samples=matched.samples,
    )
    ds_groups = [ds.groups[int(p)] for p in matched.sample_position]
    mode = options.groups
    if mode is None:
        mode = "sheet" if any(ds_groups) else "none"
    if mode == "sheet":
        if not any(ds_groups):
            raise InputError(
                "--groups sheet: the dataset's samples have no group",
                path=ds.path,
                fix="add a group column to the sample sheet, or use --groups auto",
            )
        groups = list(ds_groups)
    elif mode == "auto":
        groups = auto_groups(y, matched.samples, seed=options.seed)
    elif mode == "none":
        groups = [""] * len(matched.samples)
    else:
        raise InputError(f"unknown --groups {mode!r}", fix="use auto, sheet or none")
    config = options.openness
    with progress_bar("sample statistics", len(matched.samples)) as bar:
        stats = sample_statistics(ds, matched.sample_position, config, progress=bar.advance)  # type: ignore[attr-defined]
    genes = pd.DataFrame(
        {
            "gene_id": genes_frame["gene_id"].to_numpy(),
            "gene_name": genes_frame["gene_name"].to_numpy(),
            "chrom": genes_frame["chrom"].to_numpy(),
            "dataset_index": matched.gene_index,
        }
    ).reset_index(drop=True)
    return TrainContext(ds, matched, y, groups, mode, stats, genes, options, Path(expression))


def _masked_mean(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (y * mask).sum(axis=1) / np.maximum(n, 1), np.nan)


def resolve_formulation(choice: str, split: Split, cls: type[Model]) -> str:
    """The formulation of one fit (see :class:`TrainOptions`); raises InputError for impossible
    ones."""
    sample_only = split.config.kind == "sample"
    if cls.per_gene and not sample_only:
        raise InputError(
            f"{cls.name} fits one model per gene across samples; it cannot predict held-out "
            "chromosomes "
            f"or pairs",
            fix="use --split sample",
        )
    if choice == "auto":
        formulation = "deviation" if sample_only and "deviation" in cls.formulations else "raw"
        if formulation not in cls.formulations:
            formulation = cls.formulations[0]
        return formulation
    if choice not in FORMULATIONS:
        raise InputError(f"unknown formulation {choice!r}", fix="use auto, deviation or raw")
    if choice not in cls.formulations:
        raise InputError(f"{cls.name} supports only the {', '.join(cls.formulations)} formulation")
    if choice == "deviation" and not sample_only:
        raise InputError(
            "the deviation formulation needs each gene's training mean, which held-out "
            "chromosomes or "
            "pairs do not share with the training data",
            fix="use --formulation raw, or --split sample",
        )
    return choice


@dataclass
class FitResult:
    """One fit: the fitted model, its history and its held-out predictions (long frame)."""

    fitted: FittedModel
    history: list[dict[str, float]]
    predictions: pd.DataFrame


def fit_split(
    ctx: TrainContext,
    split: Split,
    model_name: str,
    *,
    held_out_label: str | None = None,
    options: dict[str, Any] | None = None,
) -> FitResult:
    """Fit one model on the training pairs of ``split`` and predict its dev/test pairs.

    Parameters
    ----------
    ctx
        Inputs.
    split
        The split; only its training pairs are seen by any fitted statistic.
    model_name
        A registered model.
    held_out_label
        Split label of the test pairs in the predictions (``"oof"`` for folds; default ``"test"``).
    options
        Run-time options passed to the model (checkpoint directory, resume, on_epoch).
    """
    opts = ctx.options
    cls = get_model_class(model_name)
    model = cls(make_params(cls, opts.params))
    formulation = resolve_formulation(opts.formulation, split, cls)
    samples = ctx.samples
    genes = ctx.genes
    roles = split.roles(genes["gene_id"].tolist(), genes["chrom"].tolist(), samples)
    train_mask = roles == TRAIN
    if not train_mask.any():
        raise InputError("the split leaves no training pair")
    train_cols = np.flatnonzero(train_mask.any(axis=0))
    train_samples = [samples[int(c)] for c in train_cols]
    openness = fit_openness(model.openness_config(opts.openness), ctx.stats.subset(train_samples))
    y = ctx.y
    train_mean = _masked_mean(y, train_mask)
    # the scaler sees training pairs only (genes without training pairs keep mean 0, scale 1)
    y_train_only = np.where(train_mask, y, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # genes without training pairs
        mean = np.nanmean(y_train_only, axis=1)
        sd = np.nanstd(y_train_only, axis=1)
    scaler = fit_expression_scaler(np.zeros((y.shape[0], 1)), enabled=opts.standardize)
    if opts.standardize:
        scaler = replace(scaler, mean=np.nan_to_num(mean), scale=np.where(sd > 1e-12, sd, 1.0))
    y_model = scaler.apply(y)
    y_mean_model = _masked_mean(y_model, train_mask)
    geometry = ctx.dataset.spec
    offsets = geometry.bin_offsets()
    bins = model.feature_bins(offsets, geometry.bin_size)
    kept = offsets if bins is None else offsets[bins]
    source = BlockSource(
        ctx.dataset,
        genes["dataset_index"].to_numpy(np.int64),
        ctx.expression.sample_position,
        ctx.stats,
        openness,
        bins,
        cache=ctx.raw_cache(bins) if cls.reads_openness else None,
    )
    inner = np.full(len(samples), -1, dtype=np.int64)
    if train_cols.size >= 2:
        train_groups = [ctx.groups[int(c)] if split.grouped else "" for c in train_cols]
        folds = inner_folds(train_samples, train_groups, opts.inner_folds, seed=opts.seed)
        position = {s: i for i, s in enumerate(samples)}
        for f, members in enumerate(folds):
            for s in members:
                inner[position[s]] = f
    group_names = sorted({ctx.groups[int(c)] for c in train_cols} - {""})
    codes = {g: i + 1 for i, g in enumerate(group_names)}
    group_codes = np.asarray([codes.get(g, 0) for g in ctx.groups], dtype=np.int64)
    if getattr(model.params, "group_input", False) and ctx.group_mode != "sheet":
        raise InputError(
            "--group-input needs groups known for new samples too", fix="use --groups sheet"
        )
    data = TrainingData(
        source=source,
        y=y_model,
        roles=roles,
        inner_folds=inner,
        y_mean=y_mean_model,
        formulation=formulation,  # type: ignore[arg-type]
        bin_distance=bin_distances(kept, geometry.bin_size),
        groups=group_codes if group_names else None,
        n_groups=len(group_names) + 1,
        seed=opts.seed,
        options=dict(options or {}),
    )
    logger.info(
        "fitting %s (%s formulation) on %d training pairs (%d samples, %d genes)",
        model_name,
        formulation,
        int(train_mask.sum()),
        train_cols.size,
        int(train_mask.any(axis=1).sum()),
    )
    history = model.fit(data)
    tm = np.where(np.isfinite(train_mean), train_mean, np.nanmean(train_mean))
    fitted = FittedModel(
        model=model,
        formulation=formulation,  # type: ignore[arg-type]
        openness=openness,
        expression_kind=opts.expr_transform,
        scaler=scaler,
        genes=genes,
        train_mean=tm,
        split=split,
        geometry={**geometry.to_dict(), "n_bins": geometry.n_bins},
        dataset_genes={
            "n": ctx.dataset.n_genes,
            "checksum": gene_checksum(
                ctx.dataset.genes["gene_id"], ctx.dataset.genes["tss"], ctx.dataset.genes["strand"]
            ),
        },
        bins=bins,
        group_names=group_names,
    )
    held = np.isin(roles, (DEV, TEST))
    frame = _held_out_predictions(ctx, fitted, source, roles, held, held_out_label)
    dev = frame[frame["split"] == "dev"]
    if len(dev) and history and not np.isfinite(history[-1].get("dev_mse", np.nan)):
        history[-1]["dev_mse"] = float(((dev["predicted"] - dev["observed"]) ** 2).mean())
    return FitResult(fitted, history, frame)


def predictions_frame(
    ctx_genes: pd.DataFrame,
    samples: Sequence[str],
    groups: Sequence[str],
    observed: np.ndarray,
    predicted: np.ndarray,
    train_mean: np.ndarray,
    labels: np.ndarray,
    model: str,
) -> pd.DataFrame:
    """Long predictions (``gene_id ... model``) of the pairs whose label is not empty.

    ``labels`` is an object array ``(n_genes, n_samples)`` of split names (``""``: leave out).
    """
    g, s = np.nonzero(labels != "")
    sample_arr = np.asarray(samples, dtype=object)
    group_arr = np.asarray(groups, dtype=object)
    return pd.DataFrame(
        {
            "gene_id": ctx_genes["gene_id"].to_numpy()[g],
            "gene_name": ctx_genes["gene_name"].to_numpy()[g],
            "sample": sample_arr[s],
            "group": group_arr[s],
            "split": labels[g, s],
            "observed": observed[g, s],
            "predicted": predicted[g, s],
            "train_mean": train_mean[g],
            "model": model,
        },
        columns=PREDICTION_COLUMNS,
    )


def _held_out_predictions(
    ctx: TrainContext,
    fitted: FittedModel,
    source: BlockSource,
    roles: np.ndarray,
    held: np.ndarray,
    held_out_label: str | None,
) -> pd.DataFrame:
    cols = np.flatnonzero(held.any(axis=0))
    if cols.size == 0:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    sub = BlockSource(
        source.dataset,
        source.gene_index,
        source.sample_position[cols],
        source.stats.subset([ctx.samples[int(c)] for c in cols]),
        source.openness,
        source.bins,
        cache=source.cache,
    )
    with progress_bar(f"{fitted.name}: predicting held-out pairs", int(held[:, cols].size)) as bar:
        pred = fitted.predict_source(sub, [ctx.groups[int(c)] for c in cols], progress=bar.advance)  # type: ignore[attr-defined]
    labels = np.full(roles[:, cols].shape, "", dtype=object)
    labels[roles[:, cols] == DEV] = ROLE_NAMES[DEV]
    labels[roles[:, cols] == TEST] = held_out_label or ROLE_NAMES[TEST]
    return predictions_frame(
        ctx.genes,
        [ctx.samples[int(c)] for c in cols],
        [ctx.groups[int(c)] for c in cols],
        ctx.y[:, cols],
        pred,
        fitted.train_mean,
        labels,
        fitted.name,
    )


def _fold_split(ctx: TrainContext, members: list[str], fold: int, uses_dev: bool) -> Split:
    """Split of fold ``fold``: its members are tested; a dev fraction of the rest for models that
    use it."""
    rest = [s for s in ctx.samples if s not in set(members)]
    groups = dict(zip(ctx.samples, ctx.groups, strict=True))
    opts = ctx.options
    dev_fraction = opts.fc_dev_fraction if uses_dev else 0.0
    config = SplitConfig(
        kind="sample", dev_fraction=dev_fraction, test_fraction=0.0, seed=opts.seed + fold
    )
    grouped = groups_kept_whole(ctx.samples, ctx.groups, [members])
    # the dev set follows the folds' design: whole groups only when the folds hold out groups
    rest_groups = [groups[s] if grouped else "" for s in rest]
    inner = make_split(config, rest, rest_groups, ctx.genes["chrom"].tolist())
    roles = {s: inner.sample_roles.get(s, "test") for s in ctx.samples}
    for s in members:
        roles[s] = "test"
    return Split(
        config=replace(config, test_samples=tuple(members)),
        sample_roles=roles,
        fold=fold,
        grouped=grouped,
    )


def _full_split(ctx: TrainContext, uses_dev: bool, *, grouped: bool) -> Split:
    """All samples train (a dev fraction for models that use one): the model saved with
    ``--folds``."""
    opts = ctx.options
    config = SplitConfig(
        kind="sample",
        dev_fraction=opts.fc_dev_fraction if uses_dev else 0.0,
        test_fraction=0.0,
        seed=opts.seed,
    )
    groups = ctx.groups if grouped else [""] * len(ctx.samples)
    split = make_split(config, ctx.samples, groups, ctx.genes["chrom"].tolist())
    return replace(split, grouped=grouped)


def inner_folds(
    samples: Sequence[str], groups: Sequence[str], k: int, *, seed: int
) -> list[list[str]]:
    """Inner cross-validation folds over training samples.

    With sample groups, whole groups are held out (``min(k, n_groups)`` folds, at least 2), as the
    outer split holds out whole groups; otherwise ``min(k, n_samples)`` folds of single samples.
    """
    names = sorted(set(groups) - {""})
    if len(names) >= 2 and all(groups):
        return make_folds(samples, groups, min(k, len(names)), seed=seed)
    return make_folds(samples, [""] * len(samples), max(2, min(k, len(samples))), seed=seed)


def select_model(
    ctx: TrainContext, train_samples: Sequence[str], candidates: Sequence[str], *, grouped: bool
) -> tuple[str, dict[str, float]]:
    """Choose among ``candidates`` by cross-validation over ``train_samples``.

    Each candidate is fitted on the inner folds' training samples and scored on the median over
    genes of the correlation between predicted and observed deviations from the fold's training mean
    (held-out samples pooled over folds). Returns the winner and every candidate's score.
    """
    from chromexpr.evaluate.metrics import per_gene_table

    opts = ctx.options
    train_samples = list(train_samples)
    groups = dict(zip(ctx.samples, ctx.groups, strict=True))
    if len(train_samples) < 2:
        raise InputError("--model auto needs at least 2 training samples")
    folds = inner_folds(
        train_samples,
        [groups[s] if grouped else "" for s in train_samples],
        opts.inner_folds,
        seed=opts.seed,
    )
    scores: dict[str, float] = {}
    if "hybrid" in candidates:
        # one hybrid fit scores itself and its parts on its inner folds (shared work)
        scores.update(_hybrid_scores(ctx, train_samples, candidates, grouped=grouped))
    for name in candidates:
        if name in scores:
            continue
        cls = get_model_class(name)
        parts = []
        for f, members in enumerate(folds):
            rest = [s for s in train_samples if s not in set(members)]
            roles = dict.fromkeys(ctx.samples, "none")
            roles.update(dict.fromkeys(rest, "train"))
            roles.update(dict.fromkeys(members, "test"))
            if cls.uses_dev:
                n_dev = max(1, round(opts.fc_dev_fraction * len(rest))) if len(rest) > 2 else 0
                for s in rest[:n_dev]:
                    roles[s] = "dev"
            split = Split(
                SplitConfig(kind="sample", test_samples=tuple(members)),
                roles,
                fold=f,
                grouped=grouped,
            )
            result = fit_split(ctx, split, name, held_out_label="oof", options=opts.runtime)
            parts.append(result.predictions[result.predictions["split"] == "oof"])
        table = per_gene_table(pd.concat(parts, ignore_index=True))
        scores[name] = (
            float(np.nanmedian(table["pearson_deviation"])) if len(table) else float("nan")
        )
        logger.info("--model auto: %s scores a median within-gene r of %.3f", name, scores[name])
    finite = {k: v for k, v in scores.items() if np.isfinite(v)}
    if not finite:
        raise InputError(
            "--model auto: no candidate could be scored", fix="choose --model explicitly"
        )
    best = max(finite, key=lambda n: finite[n])
    logger.info("--model auto: chose %s", best)
    return best, scores


def _hybrid_scores(
    ctx: TrainContext, train_samples: Sequence[str], candidates: Sequence[str], *, grouped: bool
) -> dict[str, float]:
    """Inner-CV scores of ``hybrid`` and of the parts it mixes, from one ``hybrid`` fit.

    The hybrid's inner cross-validation already predicts every training sample with the
    similarity term alone, its LASSO alone and their mix, and a neighbours average over the same
    folds; ``lasso-gene`` and ``neighbors`` are scored from those (the LASSO with the hybrid's
    window and path, the neighbours with exponent 8) instead of being cross-validated again.
    """
    roles = dict.fromkeys(ctx.samples, "none")
    roles.update(dict.fromkeys(train_samples, "train"))
    split = Split(SplitConfig(kind="sample"), roles, grouped=grouped)
    fitted = fit_split(ctx, split, "hybrid", options=ctx.options.runtime).fitted
    parts = dict(getattr(fitted.model, "component_scores", {}))
    found = {"hybrid": float(parts.get("hybrid", float("nan")))}
    if "lasso-gene" in candidates:
        found["lasso-gene"] = float(parts.get("lasso-gene", float("nan")))
    if "neighbors" in candidates:
        found["neighbors"] = float(parts.get("neighbors (exponent 8)", float("nan")))
    for name, value in found.items():
        logger.info("--model auto: %s scores a median within-gene r of %.3f", name, value)
    return {k: v for k, v in found.items() if np.isfinite(v)}


@dataclass
class TrainResult:
    """What :func:`train` wrote."""

    output: Path
    model: str
    history: list[dict[str, float]]
    predictions: pd.DataFrame
    record: dict[str, Any]


def _history_frame(history: list[dict[str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(history)
    for column in HISTORY_COLUMNS:
        if column not in frame:
            frame[column] = np.nan
    extra = [c for c in frame.columns if c not in HISTORY_COLUMNS]
    return frame[HISTORY_COLUMNS + extra]


def _versions() -> dict[str, str]:
    """Versions of the libraries a fitted model depends on."""
    from importlib import metadata

    out = {}
    for name in ("chromexpr", "numpy", "numba", "pandas", "zarr", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _quiet_logging() -> None:
    """Warnings and errors only, no progress bars (``torchrun`` ranks other than 0)."""
    from chromexpr import log

    log.configure(quiet=True)


#: File in the checkpoint directory with the settings of the run that wrote it.
RUN_JSON = "run.json"
#: Settings that may change on --resume (they do not change what the finished run computes).
RESUMABLE_CHANGES = frozenset({"params.epochs", "params.patience", "params.device"})


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and tuples kept as lists)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(value) if isinstance(value, tuple) else value}


def record_run(checkpoints: Path, options: TrainOptions) -> None:
    """Write the run's settings beside its checkpoints (compared by :func:`check_resumable_run`)."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    text = json.dumps(options.to_dict(), indent=1, sort_keys=True, default=str) + "\n"
    with atomic_path(checkpoints / RUN_JSON, force=True) as tmp:
        tmp.write_text(text)


def check_resumable_run(checkpoints: Path, options: TrainOptions) -> None:
    """Raise :class:`InputError` naming each setting that differs from the interrupted run's.

    Only epochs, patience and the device may change (:data:`RESUMABLE_CHANGES`).
    """
    path = checkpoints / RUN_JSON
    fix = "resume with the original settings, or drop --resume and add --force to start afresh"
    if not path.is_file():
        return  # checkpoints of an older chromexpr: each fit still checks its own settings
    try:
        saved = _flat(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(
            "the interrupted run's settings are unreadable", path=path, fix=fix
        ) from None
    now = _flat(json.loads(json.dumps(options.to_dict(), default=str)))
    differ = sorted(
        k
        for k in saved.keys() | now.keys()
        if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k)
    )
    if differ:
        detail = "; ".join(f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in differ)
        raise InputError(
            f"cannot resume: settings differ from the interrupted run's ({detail})",
            path=checkpoints,
            fix=fix,
        )


def checkpoint_directory(output: Path) -> Path:
    """Where ``fc`` checkpoints of ``output`` live while training (kept if interrupted, for
    --resume)."""
    return output.with_name(output.name + ".checkpoints")


def _group_device(options: TrainOptions) -> Any:
    """The device the ``torchrun`` process group serves: fc's (nccl on CUDA), else the CPU."""
    import torch

    from chromexpr.models.fc_net import resolve_device

    candidates = options.auto_candidates if options.model == "auto" else (options.model,)
    if "fc" in candidates:
        return resolve_device(str(options.params.get("device", "auto")))
    return torch.device("cpu")


def train(
    dataset: str | Path,
    expression: str | Path,
    output: str | Path,
    options: TrainOptions,
    *,
    force: bool = False,
    resume: bool = False,
    on_epoch: Callable[..., Any] | None = None,
) -> TrainResult:
    """Train a model and write MODEL_DIR; under ``torchrun``, in one process group for the run.

    See :func:`_train` for the parameters. The group (nccl when fc trains on CUDA, else gloo) is
    opened once, so every fit of the run (folds, ``--model auto`` candidates, the lasso statistics
    and the fc network) uses the same one.
    """
    from chromexpr.models import distributed

    args = (dataset, expression, output, options)
    kwargs: dict[str, Any] = {"force": force, "resume": resume, "on_epoch": on_epoch}
    if not distributed.env_info().distributed:
        return _train(*args, **kwargs)
    with distributed.process_group(_group_device(options)):
        return _train(*args, **kwargs)


def _train(
    dataset: str | Path,
    expression: str | Path,
    output: str | Path,
    options: TrainOptions,
    *,
    force: bool = False,
    resume: bool = False,
    on_epoch: Callable[..., Any] | None = None,
) -> TrainResult:
    """Train a model and write MODEL_DIR (atomically; never over an existing one without ``force``).

    Parameters
    ----------
    dataset
        Binned dataset (``chromexpr bin``).
    expression
        Expression TSV (plain or nf-core layout).
    output
        MODEL_DIR to create.
    options
        What to train and how.
    force
        Replace an existing MODEL_DIR.
    resume
        Continue an interrupted ``fc`` run from its checkpoints (``OUTPUT.checkpoints``).
    on_epoch
        Called after each ``fc`` epoch (tests use it to interrupt a run).

    Notes
    -----
    Under ``torchrun`` every process runs this function and trains the one ``fc`` network
    together (``docs/models.md``); only rank 0 writes MODEL_DIR and checkpoints and logs progress
    (the other ranks log warnings and errors only).
    """
    from chromexpr import provenance
    from chromexpr.models import distributed

    start = time.perf_counter()
    writer = distributed.is_main_process()
    if not writer:
        _quiet_logging()
    out = check_writable(output, force=force)
    checkpoints = checkpoint_directory(out)
    if resume and not checkpoints.is_dir():
        raise InputError(
            "nothing to resume: no checkpoints", path=checkpoints, fix="run without --resume"
        )
    if not resume and checkpoints.exists() and not force:
        raise InputError(
            "an interrupted run left its checkpoints here",
            path=checkpoints,
            fix="add --resume to continue it with the same settings, or --force to start "
            "afresh (deletes them)",
        )
    if resume:
        check_resumable_run(checkpoints, options)
    ctx = load_context(dataset, expression, options)
    if writer and not resume:  # only now: a run that fails to load its data deletes nothing
        if checkpoints.exists():
            shutil.rmtree(checkpoints)
        candidates = options.auto_candidates if options.model == "auto" else (options.model,)
        if "fc" in candidates:  # the model that checkpoints
            record_run(checkpoints, options)
    model_name = options.model
    record: dict[str, Any] = {}
    fold_results: list[tuple[FitResult, str]] = []
    if options.folds:
        folds = make_folds(ctx.samples, ctx.groups, int(options.folds), seed=options.seed)
        for f, members in enumerate(folds):
            name = model_name
            if model_name == "auto":
                train_samples = [s for s in ctx.samples if s not in set(members)]
                name, scores = select_model(
                    ctx,
                    train_samples,
                    options.auto_candidates,
                    grouped=groups_kept_whole(ctx.samples, ctx.groups, folds),
                )
                record.setdefault("auto_fold_choices", []).append(
                    {"fold": f, "model": name, "scores": scores}
                )
            cls = get_model_class(name)
            split = _fold_split(ctx, members, f, cls.uses_dev)
            logger.info("fold %d of %d: %d held-out sample(s)", f + 1, len(folds), len(members))
            run_opts = {
                **options.runtime,
                "checkpoint_dir": checkpoints / f"fold_{f:03d}",
                "resume": resume,
                "on_epoch": on_epoch,
            }
            fold_results.append(
                (fit_split(ctx, split, name, held_out_label="oof", options=run_opts), name)
            )
        if model_name == "auto":
            model_name, scores = select_model(
                ctx,
                ctx.samples,
                options.auto_candidates,
                grouped=groups_kept_whole(ctx.samples, ctx.groups, folds),
            )
            record["auto"] = {"scores": scores, "chosen": model_name}
        split = _full_split(
            ctx,
            get_model_class(model_name).uses_dev,
            grouped=groups_kept_whole(ctx.samples, ctx.groups, folds),
        )
    else:
        config = options.split
        if config.dev_fraction is None:
            uses_dev = model_name != "auto" and get_model_class(model_name).uses_dev
            config = replace(config, dev_fraction=DEFAULT_DEV_FRACTION if uses_dev else 0.0)
        split = make_split(config, ctx.samples, ctx.groups, ctx.genes["chrom"].tolist())
        if model_name == "auto":
            model_name, scores = select_model(
                ctx, split.train_samples, options.auto_candidates, grouped=split.grouped
            )
            record["auto"] = {"scores": scores, "chosen": model_name}
    run_opts = {
        **options.runtime,
        "checkpoint_dir": checkpoints / "main",
        "resume": resume,
        "on_epoch": on_epoch,
    }
    main = fit_split(ctx, split, model_name, options=run_opts)
    if fold_results:
        # out-of-fold rows only: a sample is in the dev set of several folds
        predictions = pd.concat(
            [r.predictions[r.predictions["split"] == "oof"] for r, _ in fold_results],
            ignore_index=True,
        )
        # with --model auto each fold may have chosen another model: the label is the procedure
        predictions["model"] = "auto" if options.model == "auto" else model_name
    else:
        predictions = main.predictions
    prov = provenance.record(
        step="train",
        parameters={**options.to_dict(), "model": model_name, "requested_model": options.model},
        inputs=[expression],
    )
    prov["dataset"] = {
        "path": str(ctx.dataset.path),
        "provenance": ctx.dataset.attrs.get("provenance"),
    }
    record.update(
        {
            "provenance": prov,
            "options": options.to_dict(),
            "groups": {
                "mode": ctx.group_mode,
                "samples": dict(zip(ctx.samples, ctx.groups, strict=True)),
            },
            "expression_match": {
                "n_genes": len(ctx.genes),
                "n_by_name": ctx.expression.n_by_name,
                "n_unmatched_genes": len(ctx.expression.unmatched_genes),
                "unmatched_samples": ctx.expression.unmatched_samples,
                "samples_without_expression": ctx.expression.dataset_only_samples,
            },
            "folds": len(fold_results) or None,
            "versions": _versions(),
            "seconds": None,
        }
    )
    if not writer:
        return TrainResult(out, model_name, main.history, predictions, record)
    with atomic_path(out, force=force) as tmp:
        tmp.mkdir(parents=True)
        for i, (result, name) in enumerate(fold_results):
            fold_dir = tmp / FOLDS_DIR / f"fold_{i:03d}"
            save_model(fold_dir, result.fitted, extra={"fold": i, "model_requested": name})
            write_long_table(fold_dir / HISTORY_TSV, _history_frame(result.history))
        record["seconds"] = round(time.perf_counter() - start, 3)
        save_model(tmp, main.fitted, extra=record)
        write_long_table(tmp / HISTORY_TSV, _history_frame(main.history))
        write_long_table(tmp / PREDICTIONS_TSV, predictions)
    if checkpoints.exists():
        shutil.rmtree(checkpoints, ignore_errors=True)
    logger.info("wrote %s (%s, %.1f s)", out, model_name, time.perf_counter() - start)
    return TrainResult(out, model_name, main.history, predictions, record)
