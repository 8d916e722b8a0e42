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
import zipfile
import zlib
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
    #: Arrays :meth:`arrays` writes, name to shape, checked when MODEL_DIR is loaded (see
    #: :meth:`validate_arrays`). A dimension is an int, ``"genes"`` (the modelled genes),
    #: ``"features"`` (the bins the model reads) or ``"*"`` (any); ``()`` is a scalar. A name
    #: ending in ``?`` is optional.
    array_shapes: ClassVar[dict[str, tuple[int | str, ...]]] = {}

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

    def begin_predict(self, source: BlockSource) -> None:
        """Prepare predictions of every sample of ``source`` (called before its blocks).

        Models whose prediction of one gene reads more than that gene's own bins (``neighbors``,
        ``hybrid``: each sample's similarity to the training samples, over all genes) read it here.
        The default reads nothing.
        """
        del source

    def predict_columns(
        self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray, columns: np.ndarray
    ) -> np.ndarray:
        """:meth:`predict` of a block whose samples are ``columns`` (local sample indices) of the
        source given to :meth:`begin_predict`; the default ignores them."""
        del columns
        return self.predict(x, genes, samples)

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as numpy arrays (saved in ``model.npz``)."""

    @abstractmethod
    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the fitted state from :meth:`arrays`."""

    def validate_arrays(
        self, arrays: dict[str, np.ndarray], *, n_genes: int, n_features: int
    ) -> None:
        """Check saved arrays before :meth:`load_arrays` sees them (called by :func:`load_model`).

        The default checks :attr:`array_shapes`; a class with arrays whose shapes depend on each
        other extends it. Raise :class:`ValueError` with a message naming the array: the loader
        turns it into a one-line error naming ``model.npz``.

        Parameters
        ----------
        arrays
            The model's own arrays (``model.npz`` without its ``model__`` prefix).
        n_genes
            Modelled genes.
        n_features
            Bins the model reads.
        """
        check_array_shapes(
            arrays, self.array_shapes, {"genes": n_genes, "features": n_features}, self.name
        )

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


def check_array_shapes(
    arrays: dict[str, np.ndarray],
    shapes: dict[str, tuple[int | str, ...]],
    sizes: dict[str, int],
    owner: str,
) -> None:
    """Raise :class:`ValueError` naming the first array that is missing, not numeric or of the
    wrong shape.

    Parameters
    ----------
    arrays
        Arrays by name.
    shapes
        Expected shape by name (``NAME?``: optional); a dimension is an int, a key of ``sizes`` or
        ``"*"``.
    sizes
        Sizes of the named dimensions.
    owner
        Who needs the arrays (for the message).

    Examples
    --------
    >>> check_array_shapes({"offset": np.zeros(3)}, {"offset": ("genes",)}, {"genes": 3}, "m")
    >>> check_array_shapes({"offset": np.zeros(2)}, {"offset": ("genes",)}, {"genes": 3}, "m")
    Traceback (most recent call last):
    ...
    ValueError: array 'offset' of model m has shape (2,), expected (3,) (genes)
    """
    for key, shape in shapes.items():
        name = key.removesuffix("?")
        if name not in arrays:
            if key.endswith("?"):
                continue
            raise ValueError(f"array {name!r} that model {owner} needs is missing")
        value = arrays[name]
        if value.dtype.kind not in "biuf":
            raise ValueError(f"array {name!r} of model {owner} is not numeric ({value.dtype})")
        want = tuple(d if isinstance(d, int) or d == "*" else sizes[d] for d in shape)
        if len(want) != value.ndim or any(
            w != "*" and w != got for w, got in zip(want, value.shape, strict=True)
        ):
            names = ", ".join(str(d) for d in shape if isinstance(d, str) and d != "*")
            expected = "(" + ", ".join(str(w) for w in want) + ("," if len(want) == 1 else "") + ")"
            raise ValueError(
                f"array {name!r} of model {owner} has shape {tuple(value.shape)}, expected "
                f"{expected}" + (f" ({names})" if names else "")
            )


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make a model available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin_models() -> None:
    from chromexpr.models import (  # noqa: F401  (imports register the classes)
        baselines,
        fc,
        hybrid,
        lasso,
        neighbors,
    )


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
        self.model.begin_predict(source)
        if not self.model.reads_openness:
            local = np.arange(source.gene_index.size)
            empty = np.zeros((local.size, n_samples, 0), dtype=np.float32)
            z = self.model.predict(empty, local, codes)
            return self.scaler.invert(z, local)
        for local, cols, x in source.iter_blocks(whole_chunk_samples=False):
            z = self.model.predict_columns(x, local, codes[cols], cols)
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


#: What config.json must hold for a model to be loaded: key path to the accepted JSON types.
_CONFIG_SCHEMA: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "params": (dict,),
    "formulation": (str,),
    "openness": (dict,),
    "openness.depth": (bool,),
    "openness.log1p": (bool,),
    "openness.quantile": (bool,),
    "openness.n_quantiles": (int,),
    "expression": (dict,),
    "expression.transform": (str,),
    "expression.standardize": (bool,),
    "genes": (dict,),
    "genes.ids": (list,),
    "genes.names": (list,),
    "genes.chroms": (list,),
    "dataset": (dict,),
    "dataset.geometry": (dict,),
    "dataset.geometry.flank": (int,),
    "dataset.geometry.bin_size": (int,),
    "dataset.geometry.aggregate": (str,),
    "dataset.geometry.n_bins": (int,),
    "dataset.genes": (dict,),
    "dataset.genes.n": (int,),
    "dataset.genes.checksum": (str,),
    "split": (dict,),
    "split.config": (dict,),
    "split.sample_roles": (dict,),
    "group_names": (list,),
}
_JSON_TYPE = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true/false",
    int: "an integer",
}
_EDITED = "config.json was edited or damaged: restore it from the training run, or retrain"


def _check_config(config: Any, path: Path) -> None:
    """Raise :class:`InputError` naming the first key of config.json that is missing or has the
    wrong type (see :data:`_CONFIG_SCHEMA`)."""
    if not isinstance(config, dict):
        raise InputError(
            f"config.json is {_JSON_TYPE.get(type(config), type(config).__name__)}, not a JSON "
            "object",
            path=path,
            fix=_EDITED,
        )
    for key, types in _CONFIG_SCHEMA.items():
        value: Any = config
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise InputError(f"key {key!r} is missing", path=path, fix=_EDITED)
            value = value[part]
        # bool is an int in Python: an integer key must not accept true/false
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise InputError(
                f"key {key!r} must be {' or '.join(_JSON_TYPE[t] for t in types)}",
                path=path,
                fix=_EDITED,
            )
    genes = config["genes"]
    lengths = {k: len(genes[k]) for k in ("ids", "names", "chroms")}
    if len(set(lengths.values())) != 1 or genes.get("n", lengths["ids"]) != lengths["ids"]:
        raise InputError(
            f"genes: n, ids, names and chroms disagree ({genes.get('n')}, "
            f"{', '.join(str(v) for v in lengths.values())})",
            path=path,
            fix=_EDITED,
        )
    if config["formulation"] not in ("deviation", "raw"):
        raise InputError(
            f"formulation {config['formulation']!r} is neither deviation nor raw",
            path=path,
            fix=_EDITED,
        )


def read_config(directory: str | Path) -> dict[str, Any]:
    """The ``config.json`` of MODEL_DIR, checked to be a complete chromexpr model configuration.

    Raises
    ------
    InputError
        No such directory or file, unreadable JSON, another format or a newer version, or a key
        missing or of the wrong type (the message names config.json and the key).
    """
    d = Path(directory)
    path = d / CONFIG_JSON
    if not d.is_dir():
        raise InputError(
            "model directory not found", path=d, fix="train one with 'chromexpr train'"
        )
    if not path.is_file():
        raise InputError("not a chromexpr model directory (no config.json)", path=d)
    try:
        config = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise InputError(
            f"unreadable config.json (line {exc.lineno}: {exc.msg})", path=path, fix=_EDITED
        ) from None
    except UnicodeDecodeError:
        raise InputError("config.json is not text", path=path, fix=_EDITED) from None
    if not isinstance(config, dict):
        _check_config(config, path)  # says what it is instead of an object
    if config.get("format") != MODEL_FORMAT:
        raise InputError("not a chromexpr model (config.json has no model format)", path=path)
    version = config.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise InputError("key 'format_version' must be an integer", path=path, fix=_EDITED)
    if version > MODEL_FORMAT_VERSION:
        raise InputError("model written by a newer chromexpr", path=path, fix="upgrade chromexpr")
    _check_config(config, path)
    return config


#: Errors numpy and zipfile raise on an archive that is damaged (never shown to the user as they
#: are: numpy's message about pickled data suggests an unsafe way of loading).
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of ``model.npz``, read without pickle; an InputError naming the file when it
    is missing, empty, truncated, not an archive or holds Python objects."""
    fix = "the file is damaged: restore MODEL_DIR from the training run, or retrain"
    if not path.is_file():
        raise InputError("missing (the model arrays)", path=path, fix=fix)
    if path.stat().st_size == 0:
        raise InputError("empty file (the model arrays)", path=path, fix=fix)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a lone .npy array
            raise InputError("one numpy array, not the .npz archive of a model", path=path, fix=fix)
        with loaded as npz:
            return {k: npz[k] for k in npz.files}
    except _NPZ_ERRORS as exc:
        if isinstance(exc, ValueError) and "bject arrays" in str(exc):
            what = "holds Python objects, which chromexpr never writes and refuses to load"
        elif isinstance(exc, ValueError | zipfile.BadZipFile | EOFError):
            what = "not a complete numpy .npz archive (truncated or damaged)"
        else:
            what = f"unreadable ({type(exc).__name__})"
        raise InputError(what, path=path, fix=fix) from None


def _check_common_arrays(arrays: dict[str, np.ndarray], config: dict[str, Any]) -> None:
    """The arrays every model has, against config.json (raises ValueError naming the array)."""
    n_genes = len(config["genes"]["ids"])
    n_bins = int(config["dataset"]["geometry"]["n_bins"])
    n_dataset = int(config["dataset"]["genes"]["n"])
    shapes: dict[str, tuple[int | str, ...]] = {
        "train_mean": ("genes",),
        "dataset_gene_index": ("genes",),
        "expr_mean": ("genes",),
        "expr_scale": ("genes",),
        "openness_depth_target": (),
        "bins?": ("*",),
        "openness_reference?": ("*",),
    }
    check_array_shapes(arrays, shapes, {"genes": n_genes}, str(config["model"]))
    index = arrays["dataset_gene_index"]
    if index.dtype.kind not in "iu" or (
        index.size and (index.min() < 0 or index.max() >= n_dataset)
    ):
        raise ValueError(
            f"array 'dataset_gene_index' is not a list of gene rows of the {n_dataset}-gene "
            "dataset recorded in config.json"
        )
    bins = arrays.get("bins")
    if bins is not None and (
        bins.dtype.kind not in "iu" or (bins.size and (bins.min() < 0 or bins.max() >= n_bins))
    ):
        raise ValueError(f"array 'bins' is not a list of bins of the {n_bins}-bin geometry")


def _damaged(path: Path, problem: str) -> InputError:
    return InputError(
        problem, path=path, fix="restore MODEL_DIR from the training run, or retrain the model"
    )


#: Errors a model's own loading code raises on arrays or files it cannot use.
_LOAD_ERRORS = (KeyError, ValueError, IndexError, TypeError, RuntimeError, AttributeError)


def _load_extra(model: Model, directory: Path, config: dict[str, Any]) -> None:
    """``model.load_extra`` with its failures (e.g. torch on a damaged or malicious
    ``weights.pt``) turned into one line naming the file; never a message that suggests an
    unsafe way of loading."""
    import pickle

    extra = [f for f in config.get("files", []) if isinstance(f, str) and f != ARRAYS_NPZ]
    where = directory / extra[0] if len(extra) == 1 else directory
    try:
        model.load_extra(directory)
    except InputError:
        raise
    except pickle.UnpicklingError:
        raise _damaged(
            where,
            "holds something other than plain tensors (damaged bytes or a pickled Python "
            "object): refused, nothing in it ran",
        ) from None
    except EOFError:
        raise _damaged(where, "empty file") from None
    except (OSError, *_LOAD_ERRORS) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = lines[0] if lines else type(exc).__name__
        fit = [
            line
            for line in lines
            if line.startswith(("size mismatch", "Missing key", "Unexpected key"))
        ]
        if "PytorchStreamReader" in text or "zip archive" in text:
            problem = "truncated or damaged (not a complete torch archive)"
        elif fit:
            problem = f"does not fit the network config.json describes ({fit[0][:200]})"
        else:
            problem = f"cannot be loaded ({type(exc).__name__}: {text[:200]})"
        raise _damaged(where, problem) from None


def load_model(directory: str | Path) -> FittedModel:
    """Load and check a fitted model saved by :func:`save_model`.

    MODEL_DIR is checked as a whole before it is used: config.json's keys and types, the arrays
    every model has (``train_mean``... of one value per modelled gene), the model's own arrays
    (:meth:`Model.validate_arrays`), its extra files (read without running code: numpy arrays
    without pickle, torch weights only), and a prediction on an all-zero input of the recorded
    shape. Whatever is wrong is one :class:`InputError` naming the file.
    """
    d = Path(directory)
    config = read_config(d)
    config_path = d / CONFIG_JSON
    npz_path = d / ARRAYS_NPZ
    try:
        cls = get_model_class(config["model"])
    except InputError as exc:
        raise InputError(str(exc), path=config_path, fix=_EDITED) from None
    try:
        model = cls(make_params(cls, config["params"]))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"params of model {cls.name} are invalid ({exc})", path=config_path, fix=_EDITED
        ) from None
    arrays = _read_arrays(npz_path)
    own = {k[len("model__") :]: v for k, v in arrays.items() if k.startswith("model__")}
    geometry = config["dataset"]["geometry"]
    n_genes = len(config["genes"]["ids"])
    n_features = int(arrays["bins"].size) if "bins" in arrays else int(geometry["n_bins"])
    mismatch = (
        f"(config.json names model {cls.name}; were the files of two models mixed, or "
        "config.json edited?)"
    )
    try:
        _check_common_arrays(arrays, config)
    except ValueError as exc:
        raise _damaged(npz_path, str(exc)) from None
    try:
        model.validate_arrays(own, n_genes=n_genes, n_features=n_features)
        model.load_arrays(own)
    except _LOAD_ERRORS as exc:
        problem = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        if isinstance(exc, KeyError):
            problem = f"array {problem!r} that model {cls.name} needs is missing"
        raise _damaged(npz_path, f"{problem} {mismatch}") from None
    _load_extra(model, d, config)
    op = config["openness"]
    try:
        oconf = OpennessConfig(**{k: op[k] for k in ("depth", "log1p", "quantile", "n_quantiles")})
        split = Split.from_dict(config["split"])
        genes = pd.DataFrame(
            {
                "gene_id": config["genes"]["ids"],
                "gene_name": config["genes"]["names"],
                "chrom": config["genes"]["chroms"],
                "dataset_index": arrays["dataset_gene_index"].astype(np.int64),
            }
        )
        fitted = FittedModel(
            model=model,
            formulation=config["formulation"],
            openness=FittedOpenness.from_arrays(oconf, arrays),
            expression_kind=config["expression"]["transform"],
            scaler=ExpressionScaler.from_arrays(bool(config["expression"]["standardize"]), arrays),
            genes=genes,
            train_mean=np.asarray(arrays["train_mean"], dtype=np.float64),
            split=split,
            geometry=dict(geometry),
            dataset_genes=dict(config["dataset"]["genes"]),
            bins=arrays.get("bins"),
            group_names=list(config.get("group_names", [])),
            record={k: config[k] for k in ("provenance", "fold") if k in config},
        )
    except (*_LOAD_ERRORS, InputError) as exc:
        raise InputError(f"cannot be used ({exc})", path=config_path, fix=_EDITED) from None
    _probe(fitted, n_features, d)
    return fitted


def _probe(fitted: FittedModel, n_features: int, directory: Path) -> None:
    """Predict an all-zero input for the first and last modelled gene: arrays or weights that do
    not fit the recorded shapes fail here, at load, not halfway through a run."""
    n_genes = len(fitted.genes)
    if n_genes == 0:
        raise InputError("the model has no genes", path=directory / CONFIG_JSON, fix=_EDITED)
    genes = np.unique(np.asarray([0, n_genes - 1], dtype=np.int64))
    x = np.zeros((genes.size, 1, n_features if fitted.model.reads_openness else 0), np.float32)
    try:
        out = np.asarray(fitted.model.predict(x, genes, np.zeros(1, dtype=np.int64)))
    except _LOAD_ERRORS as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _damaged(
            directory,
            f"the model's files do not fit together: a test prediction failed ({text[:200]})",
        ) from None
    if out.shape != (genes.size, 1):
        raise _damaged(
            directory,
            f"the model's files do not fit together: a test prediction has shape {out.shape}, "
            f"expected {(genes.size, 1)}",
        )


def fold_directories(directory: str | Path) -> list[Path]:
    """The fold models of a MODEL_DIR trained with ``--folds`` (empty otherwise), in fold order."""
    root = Path(directory) / FOLDS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / CONFIG_JSON).is_file())
