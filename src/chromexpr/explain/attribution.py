"""Attribution of a model's predictions (or errors) to its input bins.

A model is seen through the :class:`Attributable` adapter: model inputs per (gene, sample) row, a
baseline input, and either a torch module (attributed with Captum) or per-row linear coefficients
(attributed in closed form, exactly).

Definitions (``x`` the input row, ``b`` the baseline row, ``f`` the model, ``y`` the observed
transformed expression; the objective ``F`` is ``f`` for ``target="prediction"`` and ``(f - y)^2``
for ``target="error"``, the squared error whose gradient the original study plotted as dMSE/dX):

``saliency``
    ``|dF/dx|`` at ``x`` (Simonyan et al.; Captum's ``Saliency`` with ``abs=True``); ignores ``b``.
``input_x_gradient``
    ``dF/dx (x) * (x - b)``; with ``baseline="zeros"`` this is Captum's ``InputXGradient``.
``integrated_gradients``
    Captum's ``IntegratedGradients`` from ``b`` to ``x`` (``n_steps`` Gauss-Legendre points); the
    attributions of a row sum to ``F(x) - F(b)`` (completeness).
``deeplift``
    Captum's ``DeepLift`` (rescale rule) from ``b`` to ``x``; sums to ``f(x) - f(b)``. For
    ``target="error"`` the square is treated as one more rescaled nonlinearity (DeepLIFT's chain
    rule): the prediction attributions are multiplied by ``(F(x) - F(b)) / (f(x) - f(b)) = f(x) +
    f(b) - 2y``, so the row again sums to ``F(x) - F(b)``.

For a linear model ``f(x) = w.x + c`` the same definitions give, exactly:

====================  ==================  ===================================
method                prediction          error
====================  ==================  ===================================
saliency              ``|w|``             ``|2 (f(x) - y) w|``
input_x_gradient      ``w (x - b)``       ``2 (f(x) - y) w (x - b)``
integrated_gradients  ``w (x - b)``       ``(f(x) + f(b) - 2y) w (x - b)``
deeplift              ``w (x - b)``       ``(f(x) + f(b) - 2y) w (x - b)``
====================  ==================  ===================================
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np

from chromexpr.errors import InputError

if TYPE_CHECKING:
    import torch

    from chromexpr.dataset.store import Dataset

__all__ = [
    "Attributable",
    "AttributionOptions",
    "Attributor",
    "BaselineKind",
    "Method",
    "Target",
    "attribute_pairs",
    "resolve_device",
]

Method = Literal["saliency", "input_x_gradient", "integrated_gradients", "deeplift"]
Target = Literal["prediction", "error"]
BaselineKind = Literal["zeros", "mean"]
Device = Literal["auto", "cpu", "cuda"]

#: Captum warns each time DeepLift hooks a nonlinearity; the hooks are removed after each call.
_DEEPLIFT_HOOK_WARNING = r"Setting forward, backward hooks and attributes on non-linear"


@runtime_checkable
class Attributable(Protocol):
    """What attribution needs from a trained model (an adapter over the real model class).

    Attributes
    ----------
    n_inputs
        Inputs per row; the first ``dataset.n_bins`` are the bins, in bin order (bin 0 = farthest
        upstream), any further ones (group embedding, gene mean...) follow.
    """

    n_inputs: int

    def input_rows(
        self, dataset: Dataset, gene_idx: np.ndarray, sample_pos: np.ndarray
    ) -> np.ndarray:
        """``(n, n_inputs)`` float32 inputs (transformed openness) of the rows, in order."""
        ...

    def baseline_rows(self, gene_idx: np.ndarray) -> np.ndarray:
        """``(n, n_inputs)`` "mean" baseline: per-bin mean over training samples, in input space."""
        ...

    def torch_module(self) -> torch.nn.Module | None:
        """``f(x (B, n_inputs)) -> (B,)`` prediction, or ``None`` for linear models."""
        ...

    def linear_weights(self, gene_idx: np.ndarray) -> np.ndarray | None:
        """``(n, n_inputs)`` coefficients of each row's linear model (pooled: repeated) or None."""
        ...

    def linear_intercepts(self, gene_idx: np.ndarray) -> np.ndarray | None:
        """``(n,)`` intercepts of linear models (needed for ``target="error"``), else None."""
        ...

    def targets(self, gene_idx: np.ndarray, sample_pos: np.ndarray) -> np.ndarray | None:
        """``(n,)`` observed expression in the output space (``target="error"``), or None."""
        ...


@dataclass(frozen=True)
class AttributionOptions:
    """How to attribute (recorded with the outputs).

    Attributes
    ----------
    method
        ``saliency``, ``input_x_gradient``, ``integrated_gradients`` or ``deeplift`` (module docs).
    target
        ``prediction`` (attribute f) or ``error`` (attribute the squared error (f - y)^2).
    baseline
        ``zeros`` or ``mean`` (the per-bin training mean, from the model).
    n_steps
        Integration points of integrated gradients.
    batch_size
        Rows per forward/backward pass (integrated gradients also evaluates ``batch_size`` path
        points at a time), which bounds memory.
    device
        ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    """

    method: Method = "integrated_gradients"
    target: Target = "prediction"
    baseline: BaselineKind = "zeros"
    n_steps: int = 50
    batch_size: int = 256
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, kind in (("method", Method), ("target", Target), ("baseline", BaselineKind)):
            value = getattr(self, name)
            if value not in get_args(kind):
                raise InputError(
                    f"unknown {name} {value!r}; use one of {', '.join(get_args(kind))}"
                )
        if self.n_steps < 2:
            raise InputError(f"n_steps must be at least 2, got {self.n_steps}")
        if self.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {self.batch_size}")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` if available else ``cpu``; an absent CUDA device is an InputError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} requested but CUDA is not available", fix="use --device cpu"
        )
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


class Attributor:
    """Attributes batches of input rows for one model with fixed options.

    Parameters
    ----------
    model
        The adapter.
    options
        Method, target, baseline, batch size, device.

    Examples
    --------
    A linear model's input x gradient against a zero baseline is coefficient x input:

    >>> class Toy:
    ...     n_inputs = 3
    ...     def input_rows(self, dataset, g, s): return np.ones((len(g), 3), np.float32)
    ...     def baseline_rows(self, g): return np.zeros((len(g), 3), np.float32)
    ...     def torch_module(self): return None
    ...     def linear_weights(self, g): return np.tile(np.float32([1, -2, 3]), (len(g), 1))
    ...     def linear_intercepts(self, g): return np.zeros(len(g), np.float32)
    ...     def targets(self, g, s): return None
    >>> a = Attributor(Toy(), AttributionOptions(method="input_x_gradient", device="cpu"))
    >>> a.rows(np.float32([[2, 2, 2]]), np.array([0])).tolist()
    [[2.0, -4.0, 6.0]]
    """

    def __init__(self, model: Attributable, options: AttributionOptions) -> None:
        self.model = model
        self.options = options
        self._module: Any = None
        self._device = "cpu"
        probe = np.zeros(1, dtype=np.int64)
        self.linear = model.linear_weights(probe) is not None
        if not self.linear:
            module = model.torch_module()
            if module is None:
                raise InputError(
                    "the model has neither linear weights nor a torch module to attribute"
                )
            self._device = resolve_device(options.device)
            self._module = _objective(module).to(self._device).eval()

    @property
    def device(self) -> str:
        """Where the torch computations run (``cpu`` for linear models)."""
        return self._device

    def baseline(self, gene_idx: np.ndarray, n_inputs: int) -> np.ndarray:
        """``(n, n_inputs)`` float32 baseline rows for the configured baseline kind."""
        if self.options.baseline == "zeros":
            return np.zeros((len(gene_idx), n_inputs), dtype=np.float32)
        base = np.asarray(self.model.baseline_rows(gene_idx), dtype=np.float32)
        if base.shape != (len(gene_idx), n_inputs):
            raise InputError(
                f"model baseline rows have shape {base.shape}, expected {(len(gene_idx), n_inputs)}"
            )
        return base

    def rows(self, x: np.ndarray, gene_idx: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """Attributions of input rows.

        Parameters
        ----------
        x
            ``(n, n_inputs)`` float32 model inputs.
        gene_idx
            ``(n,)`` gene of each row (for per-gene baselines and coefficients).
        y
            ``(n,)`` observed targets; required for ``target="error"``.

        Returns
        -------
        numpy.ndarray
            ``(n, n_inputs)`` float32 attributions (computed ``batch_size`` rows at a time).
        """
        x = np.asarray(x, dtype=np.float32)
        gene_idx = np.asarray(gene_idx, dtype=np.int64)
        if x.ndim != 2 or x.shape[0] != gene_idx.shape[0]:
            raise ValueError(f"x has shape {x.shape} for {gene_idx.shape[0]} rows")
        if self.options.target == "error":
            if y is None:
                raise InputError(
                    "--target error needs the observed expression of every attributed (gene, "
                    "sample)",
                    fix="give a model whose adapter knows the targets, or use --target prediction",
                )
            y = np.asarray(y, dtype=np.float32).reshape(-1)
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"{y.shape[0]} targets for {x.shape[0]} rows")
            if not np.all(np.isfinite(y)):
                raise InputError(
                    "observed expression is missing (NaN) for some attributed rows",
                    fix="restrict --samples/--genes to rows with observed expression",
                )
        out = np.empty_like(x)
        step = self.options.batch_size
        for lo in range(0, x.shape[0], step):
            sl = slice(lo, min(lo + step, x.shape[0]))
            b = self.baseline(gene_idx[sl], x.shape[1])
            yy = None if y is None or self.options.target == "prediction" else y[sl]
            if self.linear:
                out[sl] = self._linear(x[sl], b, gene_idx[sl], yy)
            else:
                out[sl] = self._captum(x[sl], b, yy)
        return out

    # -- closed form for linear models --------------------------------------------------------

    def _linear(
        self, x: np.ndarray, b: np.ndarray, gene_idx: np.ndarray, y: np.ndarray | None
    ) -> np.ndarray:
        w = self.model.linear_weights(gene_idx)
        if w is None:
            raise InputError("the model stopped returning linear weights")
        w = np.asarray(w, dtype=np.float64)
        if w.shape != x.shape:
            raise InputError(f"linear weights have shape {w.shape}, expected {x.shape}")
        xd, bd = x.astype(np.float64), b.astype(np.float64)
        method = self.options.method
        if y is None:
            res = np.abs(w) if method == "saliency" else w * (xd - bd)
            return res.astype(np.float32)
        intercept = self.model.linear_intercepts(gene_idx)
        c = (
            np.zeros(len(gene_idx))
            if intercept is None
            else np.asarray(intercept, dtype=np.float64)
        )
        fx = np.einsum("ij,ij->i", w, xd) + c
        yd = y.astype(np.float64)
        if method == "saliency":
            res = np.abs(2.0 * (fx - yd)[:, None] * w)
        elif method == "input_x_gradient":
            res = 2.0 * (fx - yd)[:, None] * w * (xd - bd)
        else:  # integrated gradients and deeplift: exact path integral / rescale rule
            fb = np.einsum("ij,ij->i", w, bd) + c
            res = (fx + fb - 2.0 * yd)[:, None] * w * (xd - bd)
        return res.astype(np.float32)

    # -- Captum for torch modules -------------------------------------------------------------

    def _captum(self, x: np.ndarray, b: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        import torch
        from captum.attr import DeepLift, IntegratedGradients, Saliency

        dev = self._device
        xt = torch.as_tensor(x, device=dev).requires_grad_(True)
        bt = torch.as_tensor(b, device=dev)
        yt = None if y is None else torch.as_tensor(y, device=dev)
        extra = None if yt is None else (yt,)
        method = self.options.method
        module = self._module
        if method in ("saliency", "input_x_gradient"):
            grad = Saliency(module).attribute(
                xt, abs=method == "saliency", additional_forward_args=extra
            )
            res = grad if method == "saliency" else grad * (xt.detach() - bt)
        elif method == "integrated_gradients":
            res = IntegratedGradients(module).attribute(
                xt,
                baselines=bt,
                additional_forward_args=extra,
                n_steps=self.options.n_steps,
                internal_batch_size=self.options.batch_size,
            )
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=_DEEPLIFT_HOOK_WARNING, category=UserWarning
                )
                res = DeepLift(module).attribute(xt, baselines=bt)
            if yt is not None:
                with torch.no_grad():
                    scale = module(xt.detach()) + module(bt) - 2.0 * yt
                res = res * scale[:, None]
        return np.asarray(res.detach().to("cpu", torch.float32).numpy())


@functools.cache
def _objective_class() -> type:
    import torch

    class Objective(torch.nn.Module):
        """``f(x)``, or ``(f(x) - y)^2`` when targets ``y`` are given; output always ``(B,)``."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            out = self.model(x)
            out = out.reshape(out.shape[0], -1)
            if out.shape[1] != 1:
                raise InputError(
                    f"the model returns {out.shape[1]} outputs per row; attribution needs one"
                )
            out = out[:, 0]
            return out if y is None else (out - y) ** 2

    return Objective


def _objective(model: Any) -> Any:
    """Wrap ``model`` in the objective module (built lazily: importing this skips torch)."""
    return _objective_class()(model)


def attribute_pairs(
    model: Attributable,
    dataset: Dataset,
    gene_idx: np.ndarray,
    sample_pos: np.ndarray,
    options: AttributionOptions,
    *,
    attributor: Attributor | None = None,
    bins_only: bool = True,
) -> np.ndarray:
    """Attributions of (gene, sample) rows of a dataset.

    Parameters
    ----------
    model
        The adapter.
    dataset
        The binned dataset the model reads.
    gene_idx, sample_pos
        ``(n,)`` gene indices and sample positions of the rows.
    options
        How to attribute.
    attributor
        A prepared :class:`Attributor` to reuse (keeps the module on its device between calls).
    bins_only
        Keep only the first ``dataset.n_bins`` inputs (the bins).

    Returns
    -------
    numpy.ndarray
        float32 ``(n, n_bins)`` (or ``(n, n_inputs)``), rows in the given order. Peak memory is that
        output plus one input block of ``n`` rows (callers chunk ``n`` to bound it).
    """
    gene_idx = np.asarray(gene_idx, dtype=np.int64)
    sample_pos = np.asarray(sample_pos, dtype=np.int64)
    worker = attributor if attributor is not None else Attributor(model, options)
    x = np.asarray(model.input_rows(dataset, gene_idx, sample_pos), dtype=np.float32)
    if x.shape != (gene_idx.shape[0], model.n_inputs):
        raise InputError(
            f"model input rows have shape {x.shape}, expected {(gene_idx.shape[0], model.n_inputs)}"
        )
    if model.n_inputs < dataset.n_bins:
        raise InputError(
            f"the model has {model.n_inputs} inputs, fewer than the dataset's {dataset.n_bins} bins"
        )
    y = model.targets(gene_idx, sample_pos) if options.target == "error" else None
    attr = worker.rows(x, gene_idx, y)
    if not np.all(np.isfinite(attr)):
        bad = int(np.flatnonzero(~np.isfinite(attr).all(axis=1))[0])
        raise InputError(
            f"non-finite attribution for gene {dataset.genes['gene_id'].iat[int(gene_idx[bad])]} "
            f"in sample {dataset.samples[int(sample_pos[bad])]}",
            fix="check the model's inputs for NaN, or try another --method",
        )
    return attr[:, : dataset.n_bins] if bins_only else attr
