"""Connect trained models (``chromexpr.models``) to attribution.

:func:`attributable_from_model_dir` loads MODEL_DIR and returns an object satisfying
:class:`chromexpr.explain.attribution.Attributable` over a dataset.

Inputs are always the dataset's ``n_bins`` bins (bin 0 = farthest upstream), transformed exactly as
at predict time (the openness transforms fitted on training samples, applied with each sample's own
statistics). Bins a model does not read carry zero weight.

* Linear models (``mean``, ``activity``, ``lasso``, ``lasso-gene``): every prediction is affine in
  the input row, ``f_g(x) = w_g . x + c_g`` on the transformed expression scale (per-gene
  standardisation included). ``w_g`` and ``c_g`` are read off the fitted model by evaluating it on
  the unit vectors and on zero — exact for affine models, whatever their internal parametrisation
  (distance kernels, per-gene centring) — so attributions are exact closed forms.
* ``fc``: the network is attributed with Captum through a torch module over the inputs centred by
  each gene's training means (the network's own input). Per-gene output constants do not change
  gradients; for ``--target error`` the targets are shifted by them so that the error is the
  model's true error. The optional linear backbone of an ``fc`` model is a per-gene affine term: its
  share is not part of the network's attributions (documented in docs/explain.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from chromexpr.errors import InputError

if TYPE_CHECKING:
    import torch

    from chromexpr.dataset.store import Dataset
    from chromexpr.explain.attribution import Attributable
    from chromexpr.models.base import FittedModel
    from chromexpr.models.fc import FcModel

__all__ = ["ModelAdapter", "attributable_from_model_dir"]

#: ``hybrid``: its per-gene LASSO part (the cross-sample similarity term is a per-sample constant of
#: each gene, read from no bin of the gene's own window, so it carries no attribution).
_LINEAR_MODELS = frozenset({"mean", "lasso", "lasso-gene", "hybrid"})
#: Models attributed through a torch module (``activity``: slope * log1p(relu(w . x)) + c_g).
_MODULE_MODELS = frozenset({"fc", "activity"})
_GENE_BATCH = 8


class ModelAdapter:
    """A fitted chromexpr model seen as an :class:`~chromexpr.explain.attribution.Attributable`.

    Gene indices are dataset gene indices; sample positions are dataset sample positions.
    """

    def __init__(
        self, fitted: FittedModel, dataset: Dataset, expression: str | Path | None = None
    ) -> None:
        from chromexpr.models.predict import check_compatible

        check_compatible(fitted, dataset)
        self.fitted = fitted
        self.dataset = dataset
        self.name = fitted.name
        self.n_inputs = dataset.n_bins
        self._local = {int(d): i for i, d in enumerate(fitted.genes["dataset_index"].to_numpy())}
        self._stats: Any = None
        self._expression = expression
        self._observed: Any = None
        self._affine: dict[int, tuple[np.ndarray, float]] = {}
        if fitted.name == "neighbors":
            raise InputError(
                "neighbors reads no gene's regulatory bins (it copies similar samples' "
                "expression): there is nothing to attribute",
                fix="attribute a hybrid, lasso-gene or fc model",
            )
        if fitted.name not in _LINEAR_MODELS | _MODULE_MODELS:
            raise InputError(f"no attribution adapter for models of type {fitted.name!r}")
        if fitted.name == "fc" and getattr(fitted.model.params, "group_input", False):
            raise InputError(
                "attribution of fc models with a group input is not supported",
                fix="train fc without --group-input to attribute it",
            )

    # -- helpers -----------------------------------------------------------------------------
    def _local_genes(self, gene_idx: np.ndarray) -> np.ndarray:
        try:
            return np.asarray([self._local[int(g)] for g in gene_idx], dtype=np.int64)
        except KeyError as exc:
            gene = self.dataset.genes["gene_id"].iloc[int(exc.args[0])]
            raise InputError(
                f"gene {gene} is not modelled by {self.name} (no expression in training)",
                fix="restrict --genes to modelled genes",
            ) from None

    def _statistics(self) -> Any:
        if self._stats is None:
            from chromexpr.models.design import sample_statistics

            positions = np.arange(self.dataset.n_samples, dtype=np.int64)
            self._stats = sample_statistics(self.dataset, positions, self.fitted.openness.config)
        return self._stats

    def _feature_bins(self) -> np.ndarray:
        bins = self.fitted.bins
        return np.arange(self.dataset.n_bins) if bins is None else np.asarray(bins, dtype=np.int64)

    # -- Attributable ---------------------------------------------------------------------------
    def input_rows(
        self, dataset: Dataset, gene_idx: np.ndarray, sample_pos: np.ndarray
    ) -> np.ndarray:
        """Transformed openness of each (gene, sample) row over all bins.

        float32 ``(n, n_bins)``.
        """
        gene_idx = np.asarray(gene_idx, dtype=np.int64)
        sample_pos = np.asarray(sample_pos, dtype=np.int64)
        raw = dataset.read_rows(gene_idx, sample_pos)
        out = np.empty_like(raw)
        stats = self._statistics()
        for s in np.unique(sample_pos):
            rows = np.flatnonzero(sample_pos == s)
            one = stats.subset([dataset.samples[int(s)]])
            out[rows] = self.fitted.openness.apply(raw[rows][:, None, :], one)[:, 0, :]
        if self.name == "fc":
            out = out - self._centre_full(gene_idx)
        return out

    def baseline_rows(self, gene_idx: np.ndarray) -> np.ndarray:
        """Per-bin mean over the training samples, in input space: float32 ``(n, n_bins)``."""
        gene_idx = np.asarray(gene_idx, dtype=np.int64)
        train = [s for s in self.fitted.split.train_samples if s in self.dataset.samples]
        if not train:
            raise InputError(
                "none of the model's training samples is in this dataset",
                fix="use --baseline zeros",
            )
        positions = self.dataset.sample_position(train)
        out = np.zeros((gene_idx.size, self.n_inputs), dtype=np.float64)
        for p in positions:
            out += self.input_rows(self.dataset, gene_idx, np.full(gene_idx.size, p))
        return (out / len(positions)).astype(np.float32)

    def torch_module(self) -> torch.nn.Module | None:
        """The fc network over centred inputs (``None`` for linear models)."""
        if self.name in _LINEAR_MODELS:
            return None
        if self.name == "activity":
            return _activity_module(self.fitted, self._feature_bins())
        return _CentredNetwork(self.fitted, self._feature_bins())

    def _affine_of(self, local: int) -> tuple[np.ndarray, float]:
        if local not in self._affine:
            self._fill_affine(np.asarray([local]))
        return self._affine[local]

    def _fill_affine(self, locals_: np.ndarray) -> None:
        todo = [int(g) for g in locals_ if int(g) not in self._affine]
        bins = self._feature_bins()
        p = bins.size
        probe = np.zeros((1, p + 1, p), dtype=np.float32)
        probe[0, 1:, :] = np.eye(p, dtype=np.float32)
        for lo in range(0, len(todo), _GENE_BATCH):
            genes = np.asarray(todo[lo : lo + _GENE_BATCH], dtype=np.int64)
            x = np.broadcast_to(probe, (genes.size, p + 1, p))
            codes = np.zeros(p + 1, dtype=np.int64)
            z = self.fitted.model.predict(np.ascontiguousarray(x), genes, codes)
            f = self.fitted.scaler.invert(z, genes)
            for i, g in enumerate(genes):
                w = np.zeros(self.n_inputs, dtype=np.float64)
                w[bins] = f[i, 1:] - f[i, 0]
                self._affine[int(g)] = (w, float(f[i, 0]))

    def linear_weights(self, gene_idx: np.ndarray) -> np.ndarray | None:
        """Exact per-row coefficients ``(n, n_bins)`` of linear models (``None`` for fc)."""
        if self.name not in _LINEAR_MODELS:
            return None
        local = self._local_genes(np.asarray(gene_idx, dtype=np.int64))
        self._fill_affine(np.unique(local))
        return np.stack([self._affine[int(g)][0] for g in local]).astype(np.float32)

    def linear_intercepts(self, gene_idx: np.ndarray) -> np.ndarray | None:
        """Per-row intercepts ``(n,)`` of linear models (``None`` for fc)."""
        if self.name not in _LINEAR_MODELS:
            return None
        local = self._local_genes(np.asarray(gene_idx, dtype=np.int64))
        self._fill_affine(np.unique(local))
        return np.asarray([self._affine[int(g)][1] for g in local], dtype=np.float64)

    def targets(self, gene_idx: np.ndarray, sample_pos: np.ndarray) -> np.ndarray | None:
        """Observed transformed expression of each row.

        Shifted for fc; see the module docstring.
        """
        if self._expression is None:
            raise InputError(
                "--target error needs the observed expression", fix="pass --expression EXPR"
            )
        observed = self._observed_matrix()
        gene_idx = np.asarray(gene_idx, dtype=np.int64)
        local = self._local_genes(gene_idx)
        names = [self.dataset.samples[int(s)] for s in sample_pos]
        values, columns = observed
        lookup = {name: i for i, name in enumerate(columns)}
        cols = np.asarray([lookup.get(n, -1) for n in names], dtype=np.int64)
        if (cols < 0).any():
            missing = names[int(np.flatnonzero(cols < 0)[0])]
            raise InputError(
                f"no expression for sample {missing}",
                fix="restrict --samples to samples with expression",
            )
        y = values[local, cols]
        if np.isnan(y).any():
            raise InputError(
                "some attributed genes have no expression", fix="use --target prediction"
            )
        if self.name in _MODULE_MODELS:
            y = y - self._module_constant(gene_idx, sample_pos)
        return y

    # -- fc details ------------------------------------------------------------------------------
    def _centre_full(self, gene_idx: np.ndarray) -> np.ndarray:
        model = self.fitted.model
        out = np.zeros((gene_idx.size, self.n_inputs), dtype=np.float32)
        centre = getattr(model, "x_centre", None)
        if centre is not None:
            out[:, self._feature_bins()] = centre[self._local_genes(gene_idx)]
        return out

    def _module_constant(self, gene_idx: np.ndarray, sample_pos: np.ndarray) -> np.ndarray:
        """Full prediction minus the network module's output, per row (per-gene terms)."""
        import torch

        x = self.input_rows(self.dataset, gene_idx, sample_pos)
        module = self.torch_module()
        assert module is not None
        with torch.no_grad():
            part = module(torch.from_numpy(x)).double().numpy()
        local = self._local_genes(gene_idx)
        full = np.empty(gene_idx.size)
        raw = x + self._centre_full(gene_idx)
        bins = self._feature_bins()
        for i in range(gene_idx.size):
            z = self.fitted.model.predict(
                raw[i : i + 1, None, bins], local[i : i + 1], np.zeros(1, np.int64)
            )
            full[i] = self.fitted.scaler.invert(z, local[i : i + 1])[0, 0]
        return full - part

    def _observed_matrix(self) -> Any:
        if self._observed is None:
            from chromexpr.evaluate.run import observed_expression

            expression = self._expression
            assert expression is not None  # only called by targets(), which checks it
            values, samples, _ = observed_expression(self.fitted, self.dataset, expression)
            self._observed = (values, list(samples))
        return self._observed


def _module_class() -> Any:
    import torch

    class CentredNetwork(torch.nn.Module):
        """``x_centred (B, n_bins) -> (B,)``: the fc network's output on the transformed scale."""

        bins: torch.Tensor

        def __init__(self, fitted: FittedModel, bins: np.ndarray) -> None:
            super().__init__()
            model = cast("FcModel", fitted.model)
            self.net = model.net
            self.register_buffer("bins", torch.as_tensor(bins, dtype=torch.long))
            self.scale = float(model.y_scale)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x.index_select(1, self.bins)) * self.scale

    return CentredNetwork


def _CentredNetwork(fitted: FittedModel, bins: np.ndarray) -> torch.nn.Module:
    module: torch.nn.Module = _module_class()(fitted, bins)
    module.eval()
    return module


def _activity_module(fitted: FittedModel, bins: np.ndarray) -> torch.nn.Module:
    """``x (B, n_bins) -> slope * log1p(relu(w . x[bins]))`` (the gene's offset is a constant)."""
    import torch

    model = cast(Any, fitted.model)
    if fitted.scaler.enabled:
        raise InputError("attribution of activity models with --standardize is not supported")

    class ActivityScore(torch.nn.Module):
        bins: torch.Tensor
        weights: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("bins", torch.as_tensor(bins, dtype=torch.long))
            self.register_buffer("weights", torch.as_tensor(model.weights, dtype=torch.float32))
            self.slope = float(model.slope)
            self.relu = torch.nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            score = self.relu(x.index_select(1, self.bins) @ self.weights)
            return torch.log1p(score) * self.slope

    module = ActivityScore()
    module.eval()
    return module


def attributable_from_model_dir(
    model_dir: str | Path, dataset: Dataset, *, expression: str | Path | None = None
) -> Attributable:
    """Load the model in ``model_dir`` and wrap it for attribution over ``dataset``.

    Parameters
    ----------
    model_dir
        MODEL_DIR written by ``chromexpr train``.
    dataset
        The dataset to attribute (same geometry and gene list as the model's).
    expression
        Expression matrix, needed for ``--target error``.

    Raises
    ------
    InputError
        Unknown model kind, or a dataset that does not match the model.
    """
    from chromexpr.models.base import load_model

    fitted = load_model(model_dir)
    if fitted.name == "fc" and fitted.scaler.enabled:
        raise InputError(
            "attribution of fc models trained with per-gene standardisation is not supported",
            path=model_dir,
            fix="retrain without --standardize, or attribute a linear model",
        )
    return ModelAdapter(fitted, dataset, expression)
