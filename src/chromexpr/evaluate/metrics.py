"""Metrics of expression predictions, as pure functions over a long predictions frame.

Input contract (:data:`PREDICTION_COLUMNS`, one row per (model, split, gene, sample) prediction,
values on the transformed scale, e.g. log2(TPM+1)):

``gene_id``, ``gene_name``, ``sample``, ``group`` (str, ``""`` when the sample has no group; NaN is
read as ``""``), ``split`` (``"train"``, ``"dev"``, ``"test"`` or ``"oof"``; ``"oof"`` = out-of-fold
predictions of K-fold cross-validation, scored like ``"test"``), ``observed``, ``predicted``,
``train_mean`` (the gene's mean target over the training samples of the model or fold that made this
prediction: what the ``mean`` baseline predicts) and ``model``. Ids are compared as strings.

Missing data: NaN or infinite ``observed``, ``predicted`` or ``train_mean`` are an error (drop those
rows before scoring), as are NaN ids, duplicated (model, split, gene_id, sample) rows, unknown
splits and a sample with two groups in one model.

Two families of metrics answer two questions (``docs/evaluation.md`` defines each one):

* **within a gene, across samples** (:func:`per_gene_table`, the ``gene_*`` metrics): does the
  prediction rise in the samples where the gene rises? This is the informative one for a new cell
  type. ``pearson_deviation`` correlates the deviations from the fold's training mean, which removes
  the negative bias that leave-one-out training means put into the raw correlation. A gene needs at
  least ``min_samples`` (3) samples in the split (and group) for a within-gene correlation;
  otherwise it is NaN and not counted.
* **within a sample, across genes** (:func:`per_sample_table`, the ``sample_*`` metrics): dominated
  by which genes are on and which are off, so the ``mean`` baseline already scores high.

Every metric of :func:`metrics_table` is also reported for the ``mean`` baseline (``train_mean`` as
the prediction) under the model name :data:`BASELINE_MODEL`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.evaluate.outliers import robust_outliers

__all__ = [
    "ALL_GROUPS",
    "BASELINE_MODEL",
    "EXPRESSION_BIN_COLUMNS",
    "GENE_TABLE_COLUMNS",
    "HELD_OUT_SPLITS",
    "MEAN_MODEL",
    "METRICS",
    "METRICS_TABLE_COLUMNS",
    "MIN_SAMPLES",
    "PREDICTION_COLUMNS",
    "REMOVAL_COLUMNS",
    "SAMPLE_TABLE_COLUMNS",
    "SPLITS",
    "PreparedPredictions",
    "check_predictions",
    "error_vs_expression",
    "error_vs_removal",
    "metrics_table",
    "noise_ceiling",
    "pearson",
    "per_gene_table",
    "per_sample_table",
    "prepare_predictions",
    "spearman",
]

GENE_ID = "gene_id"
GENE_NAME = "gene_name"
SAMPLE = "sample"
GROUP = "group"
SPLIT = "split"
OBSERVED = "observed"
PREDICTED = "predicted"
TRAIN_MEAN = "train_mean"
MODEL = "model"

#: Columns of the long predictions frame every function here takes.
PREDICTION_COLUMNS = [
    GENE_ID,
    GENE_NAME,
    SAMPLE,
    GROUP,
    SPLIT,
    OBSERVED,
    PREDICTED,
    TRAIN_MEAN,
    MODEL,
]
#: Allowed values of ``split``.
SPLITS = ("train", "dev", "test", "oof")
#: Splits whose samples the model did not train on (``oof`` is scored like ``test``).
HELD_OUT_SPLITS = ("dev", "test", "oof")
#: Name of the model that predicts each gene's training mean (it gets no separate baseline rows).
MEAN_MODEL = "mean"
#: Model name of the baseline rows in :func:`metrics_table`.
BASELINE_MODEL = "mean (baseline)"
#: Label suffix of baselines refitted beside a model (``activity (baseline)``, ``neighbors
#: (baseline)``; :mod:`chromexpr.evaluate.baselines`): scored as models, with ``baseline_of`` set.
REFITTED_BASELINE_SUFFIX = " (baseline)"
#: ``group`` value of the rows of :func:`metrics_table` computed over every sample of a split.
ALL_GROUPS = "all"
#: Fewest points for a correlation (fewer: NaN), hence fewest samples for a within-gene metric.
MIN_SAMPLES = 3

#: Metrics of :func:`metrics_table`, in output order.
METRICS = (
    "n_pairs",
    "n_genes",
    "n_genes_scored",
    "n_samples",
    "mse",
    "r2",
    "pearson",
    "spearman",
    "gene_pearson_median",
    "gene_pearson_deviation_median",
    "gene_spearman_median",
    "gene_pearson_q25",
    "gene_pearson_q75",
    "fraction_genes_r_gt_0",
    "sample_pearson_median",
    "sample_mse_median",
)
#: Columns of :func:`metrics_table`.
METRICS_TABLE_COLUMNS = [MODEL, SPLIT, GROUP, "metric", "value", "baseline_of"]
#: Columns of :func:`per_gene_table`.
GENE_TABLE_COLUMNS = [
    MODEL,
    SPLIT,
    GENE_ID,
    GENE_NAME,
    "n_samples",
    "pearson",
    "pearson_deviation",
    "spearman",
    "mse",
    "baseline_mse",
    "baseline_pearson",
    "mean_observed",
    "sd_observed",
]
#: Columns of :func:`per_sample_table`.
SAMPLE_TABLE_COLUMNS = [
    MODEL,
    SPLIT,
    SAMPLE,
    GROUP,
    "n_genes",
    "pearson",
    "spearman",
    "mse",
    "r2",
    "baseline_mse",
    "baseline_pearson",
    "mse_rank",
    "robust_z",
    "is_outlier",
]
#: Columns of :func:`error_vs_removal`.
REMOVAL_COLUMNS = [
    MODEL,
    SPLIT,
    "by",
    "removed_n",
    "removed_fraction",
    "n_remaining",
    "mse",
    "gene_pearson_median",
    "gene_pearson_deviation_median",
]
#: Columns of :func:`error_vs_expression`.
EXPRESSION_BIN_COLUMNS = [
    MODEL,
    SPLIT,
    "bin",
    "bin_lo",
    "bin_hi",
    "bin_center",
    "n",
    "mse",
    "mean_abs_error",
    "bias",
    "mean_observed",
    "mean_predicted",
]

_STRING_COLUMNS = (MODEL, SPLIT, GENE_ID, GENE_NAME, SAMPLE, GROUP)
_VALUE_COLUMNS = (OBSERVED, PREDICTED, TRAIN_MEAN)

RemovalUnit = Literal["sample", "gene"]
Binning = Literal["width", "quantile"]


# ------------------------------------------------------------------------------ prepared input


@dataclass(frozen=True, eq=False)
class PreparedPredictions:
    """A checked long predictions frame as arrays (from :func:`prepare_predictions`).

    Every function here accepts it in place of the frame, so that a caller computing several tables
    checks and encodes the predictions once.

    Attributes
    ----------
    codes
        ``int64 (n,)`` per id column (model, split, gene_id, sample, group);
        ``labels[col][codes[col]]`` gives the strings back. Codes follow the sorted order of the
        labels, so sorting by code sorts by label.
    labels
        ``object (n_distinct,)`` per id column: the sorted distinct strings.
    gene_names
        ``object (n,)``: ``gene_name`` of each row (NaN read as ``""``).
    observed, predicted, train_mean
        ``float64 (n,)``.
    """

    codes: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    gene_names: np.ndarray
    observed: np.ndarray
    predicted: np.ndarray
    train_mean: np.ndarray

    @property
    def n(self) -> int:
        return int(self.observed.shape[0])

    def label(self, col: str, rows: np.ndarray) -> np.ndarray:
        """The strings of column ``col`` at row positions ``rows``."""
        if col == GENE_NAME:
            return np.asarray([str(v) for v in self.gene_names[rows]], dtype=object)
        return self.labels[col][self.codes[col][rows]]

    def key(self, *cols: str) -> np.ndarray:
        """One int64 per row that orders rows like the tuple of their labels in ``cols``."""
        key = np.zeros(self.n, dtype=np.int64)
        size = 1
        for col in cols:
            n_col = max(int(self.labels[col].shape[0]), 1)
            size *= n_col
            if size >= 2**62:  # pragma: no cover - needs ~1e18 combinations
                raise InputError("predictions: too many distinct ids to index")
            key = key * n_col + self.codes[col]
        return key

    def take(self, rows: np.ndarray) -> PreparedPredictions:
        """The rows at positions ``rows`` (labels unchanged)."""
        return PreparedPredictions(
            codes={c: v[rows] for c, v in self.codes.items()},
            labels=self.labels,
            gene_names=self.gene_names[rows],
            observed=self.observed[rows],
            predicted=self.predicted[rows],
            train_mean=self.train_mean[rows],
        )

    def with_prediction(self, predicted: np.ndarray) -> PreparedPredictions:
        """The same rows with another prediction."""
        return PreparedPredictions(
            self.codes, self.labels, self.gene_names, self.observed, predicted, self.train_mean
        )


def _string_codes(values: pd.Series, col: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted-label codes of a column compared as strings (NaN: ``""`` for group, else an error)."""
    codes, uniques = pd.factorize(values, sort=False, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    as_text = [str(u) for u in uniques]
    if (codes < 0).any():
        if col != GROUP:
            raise InputError(f"predictions: column {col!r} has missing values")
        as_text.append("")
        codes = np.where(codes < 0, len(as_text) - 1, codes)
    labels, inverse = np.unique(np.asarray(as_text, dtype=str), return_inverse=True)
    return np.asarray(inverse, dtype=np.int64)[codes], labels.astype(object)


def prepare_predictions(pred: pd.DataFrame | PreparedPredictions) -> PreparedPredictions:
    """Check a long predictions frame and encode it as arrays (see :func:`check_predictions`)."""
    if isinstance(pred, PreparedPredictions):
        return pred
    if not isinstance(pred, pd.DataFrame):
        raise InputError(f"predictions must be a pandas DataFrame, got {type(pred).__name__}")
    missing = [c for c in PREDICTION_COLUMNS if c not in pred.columns]
    if missing:
        raise InputError(
            f"predictions: missing column(s) {', '.join(missing)}",
            fix=f"the long predictions frame needs {', '.join(PREDICTION_COLUMNS)}",
        )
    codes: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for col in _STRING_COLUMNS:
        if col != GENE_NAME:
            codes[col], labels[col] = _string_codes(pred[col], col)
    gene_names = pred[GENE_NAME].fillna("").to_numpy(dtype=object)
    values: dict[str, np.ndarray] = {}
    for col in _VALUE_COLUMNS:
        try:
            arr = pd.to_numeric(pred[col], errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"predictions: column {col!r} is not numeric ({exc})") from exc
        bad = ~np.isfinite(arr)
        if bad.any():
            raise InputError(
                f"predictions: column {col!r} has {int(bad.sum())} NaN or infinite value(s) "
                f"(first at row {int(np.flatnonzero(bad)[0])})",
                fix="drop or fill those rows before evaluating",
            )
        values[col] = arr
    unknown = sorted(set(labels[SPLIT].tolist()) - set(SPLITS))
    if unknown:
        raise InputError(
            f"predictions: unknown split(s) {', '.join(map(repr, unknown))}",
            fix=f"split must be one of {', '.join(SPLITS)}",
        )
    prep = PreparedPredictions(
        codes, labels, gene_names, values[OBSERVED], values[PREDICTED], values[TRAIN_MEAN]
    )
    key = prep.key(MODEL, SPLIT, GENE_ID, SAMPLE)
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    if same.any():
        row = order[int(np.argmax(same))]
        raise InputError(
            "predictions: duplicated (model, split, gene_id, sample) row ("
            + ", ".join(
                str(prep.label(c, np.array([row]))[0]) for c in (MODEL, SPLIT, GENE_ID, SAMPLE)
            )
            + ")"
        )
    key = prep.key(MODEL, SAMPLE)
    order = np.argsort(key, kind="stable")
    group = codes[GROUP][order]
    clash = (key[order][1:] == key[order][:-1]) & (group[1:] != group[:-1])
    if clash.any():
        row = np.array([order[int(np.argmax(clash))]])
        raise InputError(
            f"predictions: sample {prep.label(SAMPLE, row)[0]!r} has more than one group "
            f"in model {prep.label(MODEL, row)[0]!r}"
        )
    return prep


def check_predictions(pred: pd.DataFrame | PreparedPredictions) -> pd.DataFrame:
    """Validate a long predictions frame; return a clean copy with only :data:`PREDICTION_COLUMNS`.

    Id columns become ``str`` (a NaN ``group`` or ``gene_name`` becomes ``""``), value columns
    ``float64``.

    Raises
    ------
    InputError
        A column is missing; an id column has NaN; a value is NaN or infinite; a split is not one of
        :data:`SPLITS`; a (model, split, gene_id, sample) row is duplicated; a sample has two groups
        within one model.
    """
    prep = prepare_predictions(pred)
    rows = np.arange(prep.n)
    out = pd.DataFrame({col: prep.label(col, rows) for col in _STRING_COLUMNS})
    out[OBSERVED] = prep.observed
    out[PREDICTED] = prep.predicted
    out[TRAIN_MEAN] = prep.train_mean
    return out[PREDICTION_COLUMNS]


# ---------------------------------------------------------------------------- grouped numerics


class _Grouping:
    """Rows split into contiguous groups (by sorted integer codes) for ``reduceat`` sums."""

    def __init__(self, codes: np.ndarray) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        self.order = np.argsort(codes, kind="stable")
        sorted_codes = codes[self.order]
        n = sorted_codes.shape[0]
        if n:
            self.starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        else:
            self.starts = np.zeros(0, dtype=np.int64)
        self.sizes = np.diff(np.r_[self.starts, n]).astype(np.int64)
        #: group number (0 .. n_groups - 1) of each row, in grouped order
        self.index = np.repeat(np.arange(self.starts.shape[0]), self.sizes)

    @property
    def n_groups(self) -> int:
        return int(self.starts.shape[0])

    def first_rows(self) -> np.ndarray:
        """Row positions (in the original order) of the first row of each group."""
        return self.order[self.starts]

    def take(self, values: np.ndarray) -> np.ndarray:
        """``values`` (original row order) in grouped order."""
        return np.asarray(values)[self.order]

    def sum(self, xs: np.ndarray) -> np.ndarray:
        if self.n_groups == 0:
            return np.zeros(0)
        return np.add.reduceat(xs, self.starts)

    def mean(self, xs: np.ndarray) -> np.ndarray:
        return self.sum(xs) / np.maximum(self.sizes, 1)

    def is_constant(self, xs: np.ndarray) -> np.ndarray:
        if self.n_groups == 0:
            return np.zeros(0, dtype=bool)
        hi = np.maximum.reduceat(xs, self.starts)
        lo = np.minimum.reduceat(xs, self.starts)
        return np.asarray(hi == lo)

    def pearson(self, xs: np.ndarray, ys: np.ndarray, *, min_n: int = MIN_SAMPLES) -> np.ndarray:
        """Pearson r per group of grouped ``xs``, ``ys``; NaN below ``min_n`` or if constant."""
        r = np.full(self.n_groups, np.nan)
        if self.n_groups == 0:
            return r
        dx = xs - np.repeat(self.mean(xs), self.sizes)
        dy = ys - np.repeat(self.mean(ys), self.sizes)
        sxx = self.sum(dx * dx)
        syy = self.sum(dy * dy)
        sxy = self.sum(dx * dy)
        ok = (
            (self.sizes >= max(min_n, 2))
            & ~self.is_constant(xs)
            & ~self.is_constant(ys)
            & (sxx > 0)
            & (syy > 0)
        )
        r[ok] = np.clip(sxy[ok] / np.sqrt(sxx[ok] * syy[ok]), -1.0, 1.0)
        return r

    def rank(self, xs: np.ndarray) -> np.ndarray:
        """Average ranks (1-based, ties share their mean) of grouped ``xs`` within each group."""
        n = xs.shape[0]
        if n == 0:
            return np.zeros(0)
        if n < 2**31:
            # one sort by value, then one by (group, position by value): unique int64 keys
            position = np.empty(n, dtype=np.int64)
            position[np.argsort(xs)] = np.arange(n)
            o = np.argsort(self.index * n + position)
        else:  # pragma: no cover - more rows than int64 keys can combine
            o = np.lexsort((xs, self.index))
        v = xs[o]
        c = self.index[o]
        new_run = np.r_[True, (v[1:] != v[:-1]) | (c[1:] != c[:-1])]
        run_start = np.flatnonzero(new_run)
        run_len = np.diff(np.r_[run_start, n])
        within = np.arange(n) - self.starts[c]
        average = within[run_start] + (run_len - 1) / 2.0 + 1.0
        ranks = np.empty(n)
        ranks[o] = np.repeat(average, run_len)
        return ranks

    def spearman(self, xs: np.ndarray, ys: np.ndarray, *, min_n: int = MIN_SAMPLES) -> np.ndarray:
        return self.pearson(self.rank(xs), self.rank(ys), min_n=min_n)


Vector: TypeAlias = Sequence[float] | np.ndarray | pd.Series


def _pair(a: Vector, b: Vector, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{what}: lengths differ ({x.shape[0]} and {y.shape[0]})")
    if np.isnan(x).any() or np.isnan(y).any() or x.shape[0] < MIN_SAMPLES:
        return None
    return x, y


def pearson(a: Vector, b: Vector) -> float:
    """Pearson correlation of two equally long vectors.

    NaN when there are fewer than 3 points, when either vector is constant (zero variance: the
    correlation is undefined), or when either contains NaN.

    Examples
    --------
    >>> pearson([1, 2, 3, 4], [2, 4, 5, 9])
    0.9647638212377322
    >>> import math; math.isnan(pearson([1, 2, 3], [5, 5, 5]))
    True
    """
    pair = _pair(a, b, "pearson")
    if pair is None:
        return float("nan")
    g = _Grouping(np.zeros(pair[0].shape[0], dtype=np.int64))
    return float(g.pearson(*pair)[0])


def spearman(a: Vector, b: Vector) -> float:
    """Spearman rank correlation (Pearson r of average ranks; ties share their mean rank).

    NaN in the same cases as :func:`pearson`.

    Examples
    --------
    >>> spearman([1, 2, 3, 4], [1, 3, 2, 9])
    0.8
    """
    pair = _pair(a, b, "spearman")
    if pair is None:
        return float("nan")
    g = _Grouping(np.zeros(pair[0].shape[0], dtype=np.int64))
    return float(g.spearman(*pair)[0])


def _nan_median(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(np.median(v)) if v.shape[0] else float("nan")


def _nan_quantile(values: np.ndarray, q: float) -> float:
    v = values[~np.isnan(values)]
    return float(np.quantile(v, q)) if v.shape[0] else float("nan")


def _fraction_positive(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(np.mean(v > 0)) if v.shape[0] else float("nan")


def _gene_correlations(
    prep: PreparedPredictions, g: _Grouping, *, min_samples: int
) -> dict[str, np.ndarray]:
    """Within-group (gene) ``pearson``, ``pearson_deviation`` and ``spearman``."""
    obs = g.take(prep.observed)
    prd = g.take(prep.predicted)
    tm = g.take(prep.train_mean)
    return {
        "pearson": g.pearson(prd, obs, min_n=min_samples),
        "pearson_deviation": g.pearson(prd - tm, obs - tm, min_n=min_samples),
        "spearman": g.spearman(prd, obs, min_n=min_samples),
    }


def _gene_stats(
    prep: PreparedPredictions, g: _Grouping, *, min_samples: int
) -> dict[str, np.ndarray]:
    """Per-group (gene) statistics of :data:`GENE_TABLE_COLUMNS`."""
    obs = g.take(prep.observed)
    prd = g.take(prep.predicted)
    tm = g.take(prep.train_mean)
    n = g.sizes
    correlations = _gene_correlations(prep, g, min_samples=min_samples)
    err = prd - obs
    base_err = tm - obs
    mean_obs = g.mean(obs)
    centred = obs - np.repeat(mean_obs, n)
    ss = g.sum(centred * centred)
    sd = np.full(g.n_groups, np.nan)
    sd[n >= 2] = np.sqrt(ss[n >= 2] / (n[n >= 2] - 1))
    return {
        "n_samples": n,
        **correlations,
        "mse": g.mean(err * err),
        "baseline_mse": g.mean(base_err * base_err),
        "baseline_pearson": g.pearson(tm, obs, min_n=min_samples),
        "mean_observed": mean_obs,
        "sd_observed": sd,
    }


# -------------------------------------------------------------------------------------- tables


def per_gene_table(
    pred: pd.DataFrame | PreparedPredictions, *, min_samples: int = MIN_SAMPLES
) -> pd.DataFrame:
    """One row per (model, split, gene): how well the prediction follows the gene across samples.

    Parameters
    ----------
    pred
        Long predictions frame (:data:`PREDICTION_COLUMNS`).
    min_samples
        Fewest samples of the gene in the split for its correlations (fewer: NaN).

    Returns
    -------
    pandas.DataFrame
        :data:`GENE_TABLE_COLUMNS`, sorted by model, split, gene_id.

        - ``pearson``: r of ``predicted`` vs ``observed`` across the gene's samples;
        - ``pearson_deviation``: r of ``predicted - train_mean`` vs ``observed - train_mean``; equal
          to ``pearson`` when every sample shares one training set, and free of the leave-one-out
          bias otherwise. NaN for the ``mean`` model (its deviation is constant, 0);
        - ``spearman``: rank r;
        - ``mse``, ``baseline_mse``: mean squared error of the prediction and of ``train_mean``;
        - ``baseline_pearson``: r of ``train_mean`` vs ``observed`` (NaN with one fixed training
          set, where the baseline is constant; exactly -1 under leave-one-out);
        - ``mean_observed``, ``sd_observed`` (ddof=1): the gene's observed values in the split.

    Examples
    --------
    >>> pred = pd.DataFrame({"gene_id": "g1", "gene_name": "A", "sample": ["s1", "s2", "s3"],
    ...     "group": "", "split": "test", "observed": [1.0, 2.0, 3.0],
    ...     "predicted": [1.5, 2.0, 2.5], "train_mean": 2.0, "model": "lasso"})
    >>> per_gene_table(pred)[["n_samples", "pearson", "pearson_deviation", "mse"]]
       n_samples  pearson  pearson_deviation       mse
    0          3      1.0                1.0  0.166667
    """
    prep = prepare_predictions(pred)
    g = _Grouping(prep.key(MODEL, SPLIT, GENE_ID))
    first = g.first_rows()
    out = pd.DataFrame({col: prep.label(col, first) for col in (MODEL, SPLIT, GENE_ID, GENE_NAME)})
    for name, values in _gene_stats(prep, g, min_samples=min_samples).items():
        out[name] = values
    return out[GENE_TABLE_COLUMNS]


def per_sample_table(
    pred: pd.DataFrame | PreparedPredictions,
    *,
    threshold: float = 3.5,
    min_genes: int = MIN_SAMPLES,
) -> pd.DataFrame:
    """One row per (model, split, sample): how well the prediction ranks genes within the sample.

    Parameters
    ----------
    pred
        Long predictions frame (:data:`PREDICTION_COLUMNS`).
    threshold
        Modified z-score above which a sample's MSE flags it as an outlier
        (:func:`chromexpr.evaluate.outliers.robust_outliers`); z-scores are computed over the
        samples of the same model and split.
    min_genes
        Fewest genes for a correlation (fewer: NaN).

    Returns
    -------
    pandas.DataFrame
        :data:`SAMPLE_TABLE_COLUMNS`, sorted by model, split, sample.

        - ``pearson``, ``spearman``: r across the sample's genes;
        - ``mse``; ``r2 = 1 - SSE / SST`` with SST around the sample's mean observed value (NaN when
          SST = 0);
        - ``baseline_mse``, ``baseline_pearson``: the same for ``train_mean`` as the prediction;
        - ``mse_rank``: 1 for the largest MSE of its model and split (ties: by sample name);
        - ``robust_z``, ``is_outlier``: the outlier rule applied to ``mse``.
    """
    prep = prepare_predictions(pred)
    g = _Grouping(prep.key(MODEL, SPLIT, SAMPLE))
    first = g.first_rows()
    out = pd.DataFrame({col: prep.label(col, first) for col in (MODEL, SPLIT, SAMPLE, GROUP)})
    obs = g.take(prep.observed)
    prd = g.take(prep.predicted)
    tm = g.take(prep.train_mean)
    n = g.sizes
    err = prd - obs
    base_err = tm - obs
    centred = obs - np.repeat(g.mean(obs), n)
    sst = g.sum(centred * centred)
    sse = g.sum(err * err)
    mse = sse / np.maximum(n, 1)
    r2 = np.full(g.n_groups, np.nan)
    r2[sst > 0] = 1.0 - sse[sst > 0] / sst[sst > 0]
    rank = np.zeros(g.n_groups, dtype=np.int64)
    z = np.full(g.n_groups, np.nan)
    flag = np.zeros(g.n_groups, dtype=bool)
    slice_key = prep.key(MODEL, SPLIT)[first]
    for value in np.unique(slice_key):
        rows = np.flatnonzero(slice_key == value)
        z[rows], flag[rows] = robust_outliers(mse[rows], threshold=threshold)
        rank[rows[np.argsort(-mse[rows], kind="stable")]] = np.arange(1, rows.shape[0] + 1)
    out["n_genes"] = n
    out["pearson"] = g.pearson(prd, obs, min_n=min_genes)
    out["spearman"] = g.spearman(prd, obs, min_n=min_genes)
    out["mse"] = mse
    out["r2"] = r2
    out["baseline_mse"] = g.mean(base_err * base_err)
    out["baseline_pearson"] = g.pearson(tm, obs, min_n=min_genes)
    out["mse_rank"] = rank
    out["robust_z"] = z
    out["is_outlier"] = flag
    return out[SAMPLE_TABLE_COLUMNS]


def _slice_metrics(
    prep: PreparedPredictions, *, min_samples: int, deviation: bool = True
) -> dict[str, float]:
    """Every metric of :data:`METRICS` over one slice (model, split, group) of prepared rows."""
    obs = prep.observed
    prd = prep.predicted
    n_pairs = prep.n
    err = prd - obs
    sse = float(np.sum(err * err))
    sst = float(np.sum((obs - obs.mean()) ** 2)) if n_pairs else 0.0
    gg = _Grouping(prep.codes[GENE_ID])
    stats = _gene_correlations(prep, gg, min_samples=min_samples)
    r_gene = stats["pearson"]
    sg = _Grouping(prep.codes[SAMPLE])
    s_obs = sg.take(obs)
    s_prd = sg.take(prd)
    s_err = s_prd - s_obs
    dev = stats["pearson_deviation"] if deviation else np.full(gg.n_groups, np.nan)
    return {
        "n_pairs": float(n_pairs),
        "n_genes": float(gg.n_groups),
        "n_genes_scored": float(np.sum(~np.isnan(r_gene))),
        "n_samples": float(sg.n_groups),
        "mse": sse / n_pairs if n_pairs else float("nan"),
        "r2": 1.0 - sse / sst if sst > 0 else float("nan"),
        "pearson": pearson(prd, obs),
        "spearman": spearman(prd, obs),
        "gene_pearson_median": _nan_median(r_gene),
        "gene_pearson_deviation_median": _nan_median(dev),
        "gene_spearman_median": _nan_median(stats["spearman"]),
        "gene_pearson_q25": _nan_quantile(r_gene, 0.25),
        "gene_pearson_q75": _nan_quantile(r_gene, 0.75),
        "fraction_genes_r_gt_0": _fraction_positive(r_gene),
        "sample_pearson_median": _nan_median(sg.pearson(s_prd, s_obs, min_n=MIN_SAMPLES)),
        "sample_mse_median": _nan_median(sg.mean(s_err * s_err)),
    }


def _slices(prep: PreparedPredictions, *cols: str) -> list[np.ndarray]:
    """Row indices of each combination of ``cols``, in label order."""
    g = _Grouping(prep.key(*cols))
    return np.split(g.order, g.starts[1:]) if prep.n else []


def _model_rows(
    prep: PreparedPredictions, model: str, baseline_of: str, *, min_samples: int
) -> list[dict[str, object]]:
    """Rows of :func:`metrics_table` for one model's prepared rows."""
    rows: list[dict[str, object]] = []
    for split_rows in _slices(prep, SPLIT):
        part = prep.take(split_rows)
        split = str(prep.label(SPLIT, split_rows[:1])[0])
        slices = [(ALL_GROUPS, part)]
        for group_rows in _slices(part, GROUP):
            group = str(part.label(GROUP, group_rows[:1])[0])
            if group != "":
                slices.append((group, part.take(group_rows)))
        for group, piece in slices:
            values = _slice_metrics(piece, min_samples=min_samples)
            rows.extend(
                {
                    MODEL: model,
                    SPLIT: split,
                    GROUP: group,
                    "metric": metric,
                    "value": values[metric],
                    "baseline_of": baseline_of,
                }
                for metric in METRICS
            )
    return rows


def metrics_table(
    pred: pd.DataFrame | PreparedPredictions,
    *,
    min_samples: int = MIN_SAMPLES,
    baseline: bool = True,
) -> pd.DataFrame:
    """Summary metrics per model, split and group, with the ``mean`` baseline beside every model.

    Parameters
    ----------
    pred
        Long predictions frame (:data:`PREDICTION_COLUMNS`).
    min_samples
        Fewest samples of a gene (in the split and group) for its within-gene correlations.
    baseline
        Add the rows of the ``mean`` baseline (``train_mean`` as the prediction) for every model
        other than :data:`MEAN_MODEL`.

    Returns
    -------
    pandas.DataFrame
        Long table :data:`METRICS_TABLE_COLUMNS`: one row per (model, split, group, metric), metrics
        in :data:`METRICS` order. ``group`` is :data:`ALL_GROUPS` (every sample of the split) or one
        non-empty sample group (samples of group ``""`` count only in ``"all"``). Baseline rows have
        model :data:`BASELINE_MODEL` and ``baseline_of`` = the model(s) whose ``train_mean`` they
        score (comma-separated when several models share identical training means). When models
        in ``pred`` have different training means, each baseline is named ``"mean (baseline of
        MODEL)"`` instead, so that (model, split, group, metric) stays unique. ``baseline_of`` is
        ``""`` on model rows. Models labelled ``NAME (baseline)`` (baselines refitted beside a
        model by ``chromexpr evaluate``) get no ``mean`` rows of their own; their ``baseline_of``
        names the other models.

    Notes
    -----
    The ``mean`` baseline predicts no deviation from the training mean, so its deviation
    correlation is undefined: ``gene_pearson_deviation_median`` is NaN for it (read: no within-gene
    information). Its raw within-gene correlations are NaN too with one fixed training set (a
    constant prediction) and exactly -1 under leave-one-out (see ``docs/evaluation.md``).
    """
    prep = prepare_predictions(pred)
    if ALL_GROUPS in set(prep.labels[GROUP].tolist()):
        raise InputError(
            f"predictions: a sample group is named {ALL_GROUPS!r}, reserved for all samples",
            fix="rename that group",
        )
    rows: list[dict[str, object]] = []
    baselines: list[tuple[list[str], PreparedPredictions, np.ndarray]] = []
    names = [str(m) for m in np.unique(prep.labels[MODEL].astype(str))]
    owners_of_refitted = ",".join(m for m in names if not m.endswith(REFITTED_BASELINE_SUFFIX))
    for model_rows in _slices(prep, MODEL):
        part = prep.take(model_rows)
        model = str(prep.label(MODEL, model_rows[:1])[0])
        refitted = model.endswith(REFITTED_BASELINE_SUFFIX)
        rows.extend(
            _model_rows(
                part, model, owners_of_refitted if refitted else "", min_samples=min_samples
            )
        )
        if not baseline or model == MEAN_MODEL or refitted:
            continue
        base = part.with_prediction(part.train_mean)
        order = np.argsort(base.key(SPLIT, GENE_ID, SAMPLE), kind="stable")
        signature = np.column_stack(
            [
                base.key(SPLIT, GENE_ID, SAMPLE, GROUP)[order].astype(np.float64),
                base.observed[order],
                base.train_mean[order],
            ]
        )
        for owners, _, other in baselines:
            if other.shape == signature.shape and np.array_equal(other, signature):
                owners.append(model)
                break
        else:
            baselines.append(([model], base, signature))
    for owners, base, _ in baselines:
        name = BASELINE_MODEL if len(baselines) == 1 else f"mean (baseline of {owners[0]})"
        rows.extend(_model_rows(base, name, ",".join(owners), min_samples=min_samples))
    table = pd.DataFrame(rows, columns=METRICS_TABLE_COLUMNS)
    table["value"] = table["value"].astype(np.float64)
    return table


# ------------------------------------------------------------------------------- noise ceiling


def noise_ceiling(
    observed: pd.DataFrame,
    noise_free: pd.DataFrame,
    samples: Sequence[str],
    *,
    min_samples: int = MIN_SAMPLES,
) -> dict[str, float]:
    """What the truth itself achieves: the metrics of the noise-free expression as a prediction.

    On simulated data the noise-free expression is the best any model could predict; its scores
    against the observed (noisy) expression are the ceiling to report beside every model.

    Parameters
    ----------
    observed, noise_free
        Wide frames, genes x samples, index ``gene_id``, on the same (transformed) scale as the
        predictions, e.g. log2(TPM+1). Genes present in both are scored.
    samples
        The samples to score (usually the held-out ones); each must be a column of both frames.
    min_samples
        Fewest samples for a within-gene correlation.

    Returns
    -------
    dict
        The keys of :data:`METRICS` except ``gene_pearson_deviation_median`` (there is no training
        mean), e.g. ``gene_pearson_median`` (the ceiling of the lead metric), ``mse``.

    Raises
    ------
    InputError
        No sample given, a sample missing from either frame, no common gene, or a NaN or infinite
        value among those scored.
    """
    names = [str(s) for s in samples]
    if not names:
        raise InputError("noise_ceiling: no samples given")
    if len(set(names)) != len(names):
        raise InputError("noise_ceiling: a sample is listed twice")
    obs = observed.copy()
    free = noise_free.copy()
    for label, frame in (("observed", obs), ("noise_free", free)):
        frame.columns = frame.columns.astype(str)
        frame.index = frame.index.astype(str)
        absent = [s for s in names if s not in frame.columns]
        if absent:
            raise InputError(
                f"noise_ceiling: sample(s) {', '.join(absent)} not in the {label} frame"
            )
        if frame.index.has_duplicates:
            raise InputError(f"noise_ceiling: duplicated gene_id in the {label} frame")
    genes = obs.index.intersection(free.index, sort=False)
    if len(genes) == 0:
        raise InputError("noise_ceiling: no gene_id in common between the two frames")
    o = obs.loc[genes, names].to_numpy(np.float64)
    f = free.loc[genes, names].to_numpy(np.float64)
    if not (np.isfinite(o).all() and np.isfinite(f).all()):
        raise InputError("noise_ceiling: NaN or infinite expression among the values scored")
    n_g, n_s = o.shape
    gene_codes = np.repeat(np.arange(n_g, dtype=np.int64), n_s)
    sample_codes = np.tile(np.arange(n_s, dtype=np.int64), n_g)
    prep = PreparedPredictions(
        codes={GENE_ID: gene_codes, SAMPLE: sample_codes},
        labels={GENE_ID: np.asarray(genes, dtype=object), SAMPLE: np.asarray(names, dtype=object)},
        gene_names=np.repeat(np.asarray(genes, dtype=object), n_s),
        observed=o.reshape(-1),
        predicted=f.reshape(-1),
        train_mean=np.zeros(n_g * n_s),
    )
    values = _slice_metrics(prep, min_samples=min_samples, deviation=False)
    del values["gene_pearson_deviation_median"]
    return values


# ------------------------------------------------------------------------------ error analyses


def _removal_counts(n_units: int, steps: int, max_fraction: float) -> np.ndarray:
    max_removed = min(max(n_units - 1, 0), int(np.floor(max_fraction * n_units)))
    return np.unique(np.round(np.linspace(0, max_removed, steps + 1)).astype(np.int64))


def error_vs_removal(
    pred: pd.DataFrame | PreparedPredictions,
    by: RemovalUnit,
    steps: int = 10,
    *,
    max_fraction: float = 0.5,
    min_samples: int = MIN_SAMPLES,
) -> pd.DataFrame:
    """Error as the worst samples (or genes), ranked by their own MSE, are removed.

    Within each model and split, units (samples or genes) are ranked by their MSE, worst first
    (ties by name). The ``k`` worst are removed for ``k`` in ``round(linspace(0, K, steps + 1))``
    (repeats dropped, so one by one when ``K <= steps``), where ``K = min(n_units - 1,
    floor(max_fraction * n_units))``. The pooled MSE of the remaining pairs never rises as ``k``
    grows: every removed unit's MSE is at least that of every unit left.

    Parameters
    ----------
    pred
        Long predictions frame (:data:`PREDICTION_COLUMNS`).
    by
        ``"sample"`` or ``"gene"``.
    steps
        Number of removal steps after ``k = 0``.
    max_fraction
        Largest fraction of units removed, in ``[0, 1)``.
    min_samples
        Fewest samples for a within-gene correlation (recomputed on the remaining samples when
        ``by="sample"``).

    Returns
    -------
    pandas.DataFrame
        :data:`REMOVAL_COLUMNS`: ``removed_fraction = removed_n / n_units``, ``mse`` pooled over the
        remaining pairs, and the medians of the remaining genes' within-gene ``pearson`` and
        ``pearson_deviation``.
    """
    if by not in ("sample", "gene"):
        raise ValueError(f"by must be 'sample' or 'gene', got {by!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 0 <= max_fraction < 1:
        raise ValueError(f"max_fraction must be in [0, 1), got {max_fraction}")
    prep = prepare_predictions(pred)
    unit_col = SAMPLE if by == "sample" else GENE_ID
    rows: list[dict[str, object]] = []
    for slice_rows in _slices(prep, MODEL, SPLIT):
        part = prep.take(slice_rows)
        model = str(prep.label(MODEL, slice_rows[:1])[0])
        split = str(prep.label(SPLIT, slice_rows[:1])[0])
        unit_codes, units = pd.factorize(part.codes[unit_col], sort=True)
        n_units = int(units.shape[0])
        sq = (part.predicted - part.observed) ** 2
        unit_n = np.bincount(unit_codes, minlength=n_units)
        unit_sse = np.bincount(unit_codes, weights=sq, minlength=n_units)
        # units sorted by label code, so a stable sort on -MSE breaks ties by name
        worst_first = np.argsort(-(unit_sse / unit_n), kind="stable")
        gene_r = gene_rd = np.zeros(0)
        if by == "gene":
            gg = _Grouping(unit_codes)
            o, p, t = gg.take(part.observed), gg.take(part.predicted), gg.take(part.train_mean)
            gene_r = gg.pearson(p, o, min_n=min_samples)
            gene_rd = gg.pearson(p - t, o - t, min_n=min_samples)
        for k in _removal_counts(n_units, steps, max_fraction):
            keep_unit = np.ones(n_units, dtype=bool)
            keep_unit[worst_first[:k]] = False
            mse = float(unit_sse[keep_unit].sum() / unit_n[keep_unit].sum())
            if by == "gene":
                r_med = _nan_median(gene_r[keep_unit])
                rd_med = _nan_median(gene_rd[keep_unit])
            else:
                kept = part.take(np.flatnonzero(keep_unit[unit_codes]))
                gg = _Grouping(kept.codes[GENE_ID])
                o, p, t = gg.take(kept.observed), gg.take(kept.predicted), gg.take(kept.train_mean)
                r_med = _nan_median(gg.pearson(p, o, min_n=min_samples))
                rd_med = _nan_median(gg.pearson(p - t, o - t, min_n=min_samples))
            rows.append(
                {
                    MODEL: model,
                    SPLIT: split,
                    "by": by,
                    "removed_n": int(k),
                    "removed_fraction": k / n_units,
                    "n_remaining": int(n_units - k),
                    "mse": mse,
                    "gene_pearson_median": r_med,
                    "gene_pearson_deviation_median": rd_med,
                }
            )
    return pd.DataFrame(rows, columns=REMOVAL_COLUMNS)


def error_vs_expression(
    pred: pd.DataFrame | PreparedPredictions, n_bins: int = 20, *, binning: Binning = "width"
) -> pd.DataFrame:
    """Error binned by the observed expression level.

    Bin edges are shared by every model and split (computed over all of ``pred``) so that curves
    compare. ``binning="width"``: ``n_bins`` equal-width bins from the smallest to the largest
    observed value; ``"quantile"``: edges at the observed quantiles (equal counts; repeated edges
    merged, so there may be fewer bins). A bin holds ``bin_lo <= observed < bin_hi``; the largest
    value falls in the last bin. Empty bins are kept (``n = 0``, NaN errors).

    Returns
    -------
    pandas.DataFrame
        :data:`EXPRESSION_BIN_COLUMNS`, where ``bias`` = mean of ``predicted - observed`` (negative:
        under-predicted) and ``bin_center = (bin_lo + bin_hi) / 2``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if binning not in ("width", "quantile"):
        raise ValueError(f"binning must be 'width' or 'quantile', got {binning!r}")
    prep = prepare_predictions(pred)
    obs_all = prep.observed
    lo, hi = (float(obs_all.min()), float(obs_all.max())) if prep.n else (0.0, 1.0)
    if binning == "quantile" and prep.n:
        edges = np.unique(np.quantile(obs_all, np.linspace(0.0, 1.0, n_bins + 1)))
    else:
        edges = np.linspace(lo, hi, n_bins + 1)
    if edges.shape[0] < 2 or edges[-1] <= edges[0]:
        edges = np.array([lo, lo + 1.0])
    nb = edges.shape[0] - 1
    rows: list[dict[str, object]] = []
    for slice_rows in _slices(prep, MODEL, SPLIT):
        model = str(prep.label(MODEL, slice_rows[:1])[0])
        split = str(prep.label(SPLIT, slice_rows[:1])[0])
        obs = prep.observed[slice_rows]
        err = prep.predicted[slice_rows] - obs
        b = np.clip(np.searchsorted(edges, obs, side="right") - 1, 0, nb - 1)
        n = np.bincount(b, minlength=nb)
        denom = np.where(n > 0, n, 1)
        empty = n == 0
        mse = np.where(empty, np.nan, np.bincount(b, weights=err * err, minlength=nb) / denom)
        mae = np.where(empty, np.nan, np.bincount(b, weights=np.abs(err), minlength=nb) / denom)
        bias = np.where(empty, np.nan, np.bincount(b, weights=err, minlength=nb) / denom)
        mean_obs = np.where(empty, np.nan, np.bincount(b, weights=obs, minlength=nb) / denom)
        rows.extend(
            {
                MODEL: model,
                SPLIT: split,
                "bin": i,
                "bin_lo": float(edges[i]),
                "bin_hi": float(edges[i + 1]),
                "bin_center": float((edges[i] + edges[i + 1]) / 2),
                "n": int(n[i]),
                "mse": float(mse[i]),
                "mean_abs_error": float(mae[i]),
                "bias": float(bias[i]),
                "mean_observed": float(mean_obs[i]),
                "mean_predicted": float(mean_obs[i] + bias[i]),
            }
            for i in range(nb)
        )
    return pd.DataFrame(rows, columns=EXPRESSION_BIN_COLUMNS)
