"""The model interface, the registry of model classes, and MODEL_DIR save/load.

A fitted model is a :class:`FittedModel`: the model's own arrays plus everything needed to apply it
to a dataset unchanged (the fitted openness and expression transforms, the modelled genes, the
dataset geometry
and gene checksum, the split). MODEL_DIR holds it as::

    config.json     every parameter, the transforms and their scalar statistics, the split
    membership,
                    dataset geometry and gene-list checksum, versions and input checksums
    model.npz       numpy arrays only (coefficients, fitted statistics), loaded with
    allow_pickle=False weights.pt      (fc) a torch state_dict, loaded with
    torch.load(weights_only=True) history.tsv     epoch, train_mse, dev_mse, seconds (one row for
    closed-form models) predictions.tsv long predictions of the held-out (dev/test, or out-of-fold)
    pairs folds/fold_NNN/ (with --folds) one such model per fold, without predictions

No pickled Python objects are written or read anywhere.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from chromexpr.errors import InputError
from chromexpr.models.design import BlockSource, Formulation
from chromexpr.models.splits import Split
from chromexpr.models.transforms import (
    ExpressionScaler,
    ExpressionTransformKind,
    FittedOpenness,
    OpennessConfig,
)

__all__ = [
    "MODEL_FORMAT",
    "FittedModel",
    "Model",
    "TrainingData",
    "gene_checksum",
    "get_model_class",
    "load_model",
    "model_names",
    "register",
    "save_model",
]

MODEL_FORMAT = "chromexpr-model"
MODEL_FORMAT_VERSION = 1
CONFIG_JSON = "config.json"
ARRAYS_NPZ = "model.npz"
HISTORY_TSV = "history.tsv"
PREDICTIONS_TSV = "predictions.tsv"
FOLDS_DIR = "folds"
HISTORY_COLUMNS = ["epoch", "train_mse", "dev_mse", "seconds"]

_REGISTRY: dict[str, type[Model]] = {}


@dataclass
class TrainingData:
    """What a model's ``fit`` sees (all arrays over the modelled genes x samples with expression).

    Attributes
    ----------
    source
        Transformed openness (bins already restricted to the model's :meth:`Model.feature_bins`).
    y
        ``float64 (n_genes, n_samples)`` targets on the model scale.
    roles
        ``int8 (n_genes, n_samples)``: TRAIN, DEV, TEST or UNUSED per pair.
    inner_folds
        ``int64 (n_samples,)``: inner cross-validation fold of each training sample (-1 otherwise).
    y_mean
        ``float64 (n_genes,)``: each gene's mean target over its training pairs (NaN without any).
    formulation
        ``deviation`` or ``raw``.
    bin_distance
        ``float64 (n_features,)``: distance of each kept bin's centre to the TSS (bp).
    groups
        ``int64 (n_samples,)``: group code per sample (0 = unknown) for models that take the group
        as input.
    n_groups
        Number of group codes (including 0).
    seed
        Random seed.
    options
        Run-time options that do not change the result's meaning (checkpoint directory, resume,
        callbacks).
    """

    source: BlockSource
    y: np.ndarray
    roles: np.ndarray
    inner_folds: np.ndarray
    y_mean: np.ndarray
    formulation: Formulation
    bin_distance: np.ndarray
    groups: np.ndarray | None = None
    n_groups: int = 0
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def cols_with(self, role: int) -> np.ndarray:
        """Local samples that have at least one pair with ``role``."""
        return np.flatnonzero((self.roles == role).any(axis=0)).astype(np.int64)


def _json_ready(params: Any) -> dict[str, Any]:
    out = asdict(params)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


class Model(ABC):
    """A model class: parameters in a frozen dataclass ``Params``; fitted state in numpy arrays.

    Subclasses set :attr:`name` and ``Params``, implement :meth:`fit`, :meth:`predict`,
    :meth:`arrays` and :meth:`load_arrays`, and are registered with :func:`register`.
    """

    name: ClassVar[str]
    Params: ClassVar[type]
    #: Uses dev pairs during fitting (early stopping).
    uses_dev: ClassVar[bool] = False
    #: Needs every gene to have the same training samples (per-gene models).
    per_gene: ClassVar[bool] = False
    #: Formulations supported.
    formulations: ClassVar[tuple[str, ...]] = ("deviation", "raw")
    #: Whether predictions read openness at all (``mean`` does not).
    reads_openness: ClassVar[bool] = True

    def __init__(self, params: Any | None = None) -> None:
        self.params = params if params is not None else self.Params()

    def openness_config(self, base: OpennessConfig) -> OpennessConfig:
        """The openness transform this model reads (default: the one asked for)."""
        return base

    def feature_bins(self, offsets: np.ndarray, bin_size: int) -> np.ndarray | None:
        """Bins this model reads (``None``: all)."""
        del offsets, bin_size
        return None

    @abstractmethod
    def fit(self, data: TrainingData) -> list[dict[str, float]]:
        """Fit on the training pairs; return history rows (``epoch, train_mse, dev_mse,
        seconds``)."""

    @abstractmethod
    def predict(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """Predictions on the model scale.

        Parameters
        ----------
        x
            ``float32 (len(genes), len(samples), n_features)`` transformed openness.
        genes
            Local gene indices (rows of the training arrays).
        samples
            Group code of each sample (for models with a group input), ``int64 (len(samples),)``.

        Returns
        -------
        numpy.ndarray
            ``float64 (len(genes), len(samples))``.
        """

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as numpy arrays (saved in ``model.npz``)."""

    @abstractmethod
    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the fitted state from :meth:`arrays`."""

    def save_extra(self, directory: Path) -> list[str]:
        """Write state that is not a numpy array (fc: ``weights.pt``); return the file names."""
        del directory
        return []

    def load_extra(self, directory: Path) -> None:
        """Read what :meth:`save_extra` wrote."""
        del directory

    def info(self) -> dict[str, Any]:
        """Fitted facts worth recording in config.json (chosen alpha, epochs...)."""
        return {}

    def params_dict(self) -> dict[str, Any]:
        """Parameters, JSON-ready."""
        return _json_ready(self.params)


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make a model available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin_models() -> None:
    from chromexpr.models import baselines, fc, lasso  # noqa: F401  (imports register the classes)


def model_names() -> list[str]:
    """Registered model names."""
    _load_builtin_models()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[Model]:
    """The model class registered as ``name``.

    Raises
    ------
    InputError
        Unknown name.
    """
    _load_builtin_models()
    if name not in _REGISTRY:
        raise InputError(
            f"unknown model {name!r}", fix=f"choose from {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def make_params(cls: type[Model], values: dict[str, Any]) -> Any:
    """Build ``cls.Params`` from a dict (unknown keys ignored; lists become tuples)."""
    names = {f.name: f for f in fields(cls.Params)}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}
    return cls.Params(**kwargs)


def gene_checksum(gene_ids: Sequence[str], tss: Sequence[int], strands: Sequence[str]) -> str:
    """sha256 of the dataset's gene list (ids, TSSs and strands, in order).

    Examples
    --------
    >>> gene_checksum(["g1"], [10], ["+"])[:14]
    'sha256:ae4398b'
    """
    digest = hashlib.sha256()
    for gid, pos, strand in zip(gene_ids, tss, strands, strict=True):
        digest.update(f"{gid}\t{int(pos)}\t{strand}\n".encode())
    return f"sha256:{digest.hexdigest()}"


@dataclass
class FittedModel:
    """A fitted model with everything needed to apply it unchanged.

    Attributes
    ----------
    model
        The fitted model object.
    formulation
        ``deviation`` or ``raw``.
    openness
        Fitted openness transform (statistics from training samples).
    expression_kind
        Expression transform (``log2p1``...).
    scaler
        Per-gene expression standardisation (fitted on training samples; identity when disabled).
    genes
        Modelled genes: ``gene_id, gene_name, chrom, dataset_index``.
    train_mean
        ``float64 (n_genes,)``: each gene's mean over training pairs on the transformed expression
        scale.
    split
        The split it was fitted with.
    geometry
        ``flank, bin_size, aggregate, n_bins`` of the dataset.
    dataset_genes
        ``{"n": ..., "checksum": ...}`` of the dataset's full gene list.
    bins
        Bins the model reads (``None``: all).
    group_names
        Group vocabulary for a group input (code ``i + 1`` is ``group_names[i]``; 0 = unknown).
    record
        Free-form facts for config.json (provenance, parameters, fitted info).
    """

    model: Model
    formulation: Formulation
    openness: FittedOpenness
    expression_kind: ExpressionTransformKind
    scaler: ExpressionScaler
    genes: pd.DataFrame
    train_mean: np.ndarray
    split: Split
    geometry: dict[str, Any]
    dataset_genes: dict[str, Any]
    bins: np.ndarray | None = None
    group_names: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Model name."""
        return self.model.name

    def group_codes(self, groups: Sequence[str]) -> np.ndarray:
        """Group codes (0 for groups not seen in training) of some samples' groups."""
        lookup = {g: i + 1 for i, g in enumerate(self.group_names)}
        return np.asarray([lookup.get(str(g), 0) for g in groups], dtype=np.int64)

    def predict_source(
        self,
        source: BlockSource,
        groups: Sequence[str] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Predictions (transformed expression scale) for every gene x sample of ``source``.

        ``source`` must cover this model's genes (in order) with its bins; returns ``float64
        (n_genes, n_samples)``.
        """
        n_samples = source.sample_position.size
        codes = self.group_codes(groups if groups is not None else [""] * n_samples)
        out = np.empty((source.gene_index.size, n_samples), dtype=np.float64)
        if not self.model.reads_openness:
            local = np.arange(source.gene_index.size)
            empty = np.zeros((local.size, n_samples, 0), dtype=np.float32)
            z = self.model.predict(empty, local, codes)
            return self.scaler.invert(z, local)
        for local, cols, x in source.iter_blocks(whole_chunk_samples=False):
            z = self.model.predict(x, local, codes[cols])
            out[np.ix_(local, cols)] = self.scaler.invert(z, local)
            if progress is not None:
                progress(int(local.size * cols.size))
        return out


def _arrays_of(fitted: FittedModel) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for key, value in fitted.model.arrays().items():
        arrays[f"model__{key}"] = np.asarray(value)
    arrays.update(fitted.openness.arrays())
    arrays.update(fitted.scaler.arrays())
    arrays["train_mean"] = fitted.train_mean
    arrays["dataset_gene_index"] = fitted.genes["dataset_index"].to_numpy(np.int64)
    if fitted.bins is not None:
        arrays["bins"] = fitted.bins
    return arrays


def save_model(
    directory: Path, fitted: FittedModel, *, extra: dict[str, Any] | None = None
) -> None:
    """Write ``config.json``, ``model.npz`` (and ``weights.pt``) of a fitted model into
    ``directory``.

    ``directory`` must exist (the caller makes it inside an atomic temporary directory).
    """
    directory.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(directory / ARRAYS_NPZ, **_arrays_of(fitted))  # type: ignore[arg-type]
    files = [ARRAYS_NPZ, *fitted.model.save_extra(directory)]
    config = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "model": fitted.name,
        "params": fitted.model.params_dict(),
        "fitted": fitted.model.info(),
        "formulation": fitted.formulation,
        "openness": {
            **asdict(fitted.openness.config),
            "depth_target": fitted.openness.depth_target,
            "reference_quantiles": "model.npz:openness_reference"
            if fitted.openness.reference is not None
            else None,
        },
        "expression": {
            "transform": fitted.expression_kind,
            "standardize": fitted.scaler.enabled,
            "statistics": "model.npz:expr_mean, expr_scale (training samples)",
        },
        "genes": {
            "n": len(fitted.genes),
            "ids": fitted.genes["gene_id"].tolist(),
            "names": fitted.genes["gene_name"].tolist(),
            "chroms": fitted.genes["chrom"].tolist(),
        },
        "dataset": {"geometry": fitted.geometry, "genes": fitted.dataset_genes},
        "bins": None if fitted.bins is None else "model.npz:bins",
        "group_names": fitted.group_names,
        "split": fitted.split.to_dict(),
        "files": files,
        **fitted.record,
        **(extra or {}),
    }
    (directory / CONFIG_JSON).write_text(json.dumps(config, indent=1, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_config(directory: str | Path) -> dict[str, Any]:
    """The ``config.json`` of MODEL_DIR (validated to be a chromexpr model)."""
    d = Path(directory)
    path = d / CONFIG_JSON
    if not d.is_dir():
        raise InputError(
            "model directory not found", path=d, fix="train one with 'chromexpr train'"
        )
    if not path.is_file():
        raise InputError("not a chromexpr model directory (no config.json)", path=d)
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"unreadable config.json ({exc.msg})", path=path) from None
    if config.get("format") != MODEL_FORMAT:
        raise InputError("not a chromexpr model (config.json has no model format)", path=path)
    if int(config.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise InputError("model written by a newer chromexpr", path=path, fix="upgrade chromexpr")
    return config


def load_model(directory: str | Path) -> FittedModel:
    """Load a fitted model saved by :func:`save_model` (numpy arrays without pickle; torch weights
    only)."""
    d = Path(directory)
    config = read_config(d)
    cls = get_model_class(config["model"])
    model = cls(make_params(cls, config.get("params", {})))
    try:
        with np.load(d / ARRAYS_NPZ, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable model arrays ({exc})", path=d / ARRAYS_NPZ) from None
    model.load_arrays(
        {k[len("model__") :]: v for k, v in arrays.items() if k.startswith("model__")}
    )
    model.load_extra(d)
    op = dict(config["openness"])
    oconf = OpennessConfig(**{k: op[k] for k in ("depth", "log1p", "quantile", "n_quantiles")})
    genes = pd.DataFrame(
        {
            "gene_id": config["genes"]["ids"],
            "gene_name": config["genes"]["names"],
            "chrom": config["genes"]["chroms"],
            "dataset_index": arrays["dataset_gene_index"],
        }
    )
    return FittedModel(
        model=model,
        formulation=config["formulation"],
        openness=FittedOpenness.from_arrays(oconf, arrays),
        expression_kind=config["expression"]["transform"],
        scaler=ExpressionScaler.from_arrays(bool(config["expression"]["standardize"]), arrays),
        genes=genes,
        train_mean=np.asarray(arrays["train_mean"], dtype=np.float64),
        split=Split.from_dict(config["split"]),
        geometry=dict(config["dataset"]["geometry"]),
        dataset_genes=dict(config["dataset"]["genes"]),
        bins=arrays.get("bins"),
        group_names=list(config.get("group_names", [])),
        record={k: config[k] for k in ("provenance", "fold") if k in config},
    )


def fold_directories(directory: str | Path) -> list[Path]:
    """The fold models of a MODEL_DIR trained with ``--folds`` (empty otherwise), in fold order."""
    root = Path(directory) / FOLDS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / CONFIG_JSON).is_file())
