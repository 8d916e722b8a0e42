"""Connect trained models (``chromexpr.models``) to attribution.

STUB, to be completed by the models integration. :func:`attributable_from_model_dir` must return an
object satisfying :class:`chromexpr.explain.attribution.Attributable` for every model kind
``chromexpr train`` writes:

``n_inputs``
    inputs per row; the first ``dataset.n_bins`` are the bins in bin order (bin 0 = farthest
    upstream).
``input_rows(dataset, gene_idx, sample_pos)``
    ``(n, n_inputs)`` float32 model inputs of (gene, sample) rows, in the given order: the openness
    transforms fitted on the training samples (log1p, depth scaling, quantiles, centring...) applied
    exactly as at predict time, plus any extra inputs (group embedding index, gene mean).
``baseline_rows(gene_idx)``
    ``(n, n_inputs)`` per-bin mean over the training samples in input space (per gene for per-gene
    inputs), for ``--baseline mean``.
``torch_module()``
    ``f(x (B, n_inputs)) -> (B,)`` (eval mode; no in-place ops; each ReLU its own module so Captum's
    DeepLift can hook it) for neural models; ``None`` for linear models.
``linear_weights(gene_idx)`` / ``linear_intercepts(gene_idx)``
    ``(n, n_inputs)`` coefficients and ``(n,)`` intercepts of linear models (pooled ``lasso``: the
    same row repeated; ``lasso-gene``: each gene's), in input space; ``None`` for torch models.
``targets(gene_idx, sample_pos)``
    ``(n,)`` observed expression in the model's output space (transformed, and as deviations if the
    model predicts deviations), for ``--target error``; ``None`` when the model directory holds no
    expression.
``name`` (optional)
    model name recorded in ``attribution.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from chromexpr.errors import InputError

if TYPE_CHECKING:
    from chromexpr.dataset.store import Dataset
    from chromexpr.explain.attribution import Attributable

__all__ = ["attributable_from_model_dir"]


def attributable_from_model_dir(model_dir: str | Path, dataset: Dataset) -> Attributable:
    """Load the model in ``model_dir`` and wrap it for attribution over ``dataset``.

    Raises
    ------
    InputError
        Model support is not available in this installation, or the model kind has no adapter yet.
    """
    try:
        from chromexpr.models import base
    except ImportError as exc:
        raise InputError(
            "attribution of trained models is not available: chromexpr.models.base cannot be "
            "imported",
            path=model_dir,
        ) from exc
    from chromexpr.explain.attribution import Attributable

    model = base.load_model(model_dir)
    if isinstance(model, Attributable):
        return model
    raise InputError(
        f"no attribution adapter is available for models of type {type(model).__name__}",
        path=model_dir,
    )
