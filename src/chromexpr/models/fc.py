"""``fc``: a fully connected network (PyTorch) on a gene's bins, trained on streamed (gene, sample)
rows.

Formulations: ``deviation`` (default) feeds each bin's deviation from the gene's training-sample
mean and predicts the gene's deviation from its training mean (the per-gene means are stored with
the model, an ``(n_genes, n_bins)`` array); ``raw`` feeds transformed openness and predicts the
expression itself. Targets are divided by their training standard deviation (and, for ``raw``,
centred) for the optimiser.

Backbone (default, deviation formulation): a ``lasso-gene`` model is fitted first and the network
learns what it leaves, from the residuals of the backbone's out-of-fold predictions (stacking). The
network's last layer starts at zero, and if no epoch beats the backbone alone on the dev pairs the
network is switched off. A pooled network only knows what all genes share; the backbone brings each
gene's own links (``docs/models.md``).

Rows come from :mod:`chromexpr.models.loader`: held on the training device when they fit
(:class:`~chromexpr.models.resident.ResidentRows`, ``data_on_device``), else streamed from the store
(:class:`~chromexpr.models.loader.RowLoader`: chunk-aligned reads decoded and transformed by a
thread pool into a bounded shuffle buffer); the training loop, checkpoints and exact resume are
:func:`chromexpr.models.fc_net.train_mlp`'s. The sample's group can be an extra input (an
embedding); code 0 means "group not seen in training", and 10% of training rows are shown with code
0 so that this embedding is trained too.

Under ``torchrun`` (:mod:`chromexpr.models.distributed`) the network is trained once, in
DistributedDataParallel over all the processes: each rank reads only its share of the read units
and, after an exchange of rows at each shuffle buffer, trains on its contiguous part of every
single-process batch (:class:`~chromexpr.models.loader.RowLoader`, ``shard_by="batch"``); dev
rows are split by read unit and their error summed over the ranks. The backbone is fitted on every
rank, each getting the same fit (it is deterministic; nothing large is broadcast). Only rank 0
writes (``chromexpr.models.train``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import numpy as np

from chromexpr.errors import InputError
from chromexpr.log import logger
from chromexpr.models import distributed
from chromexpr.models.base import Model, TrainingData, register
from chromexpr.models.design import window_bins
from chromexpr.models.loader import RowLoader
from chromexpr.models.resident import (
    DataOnDevice,
    ResidentDtype,
    ResidentRows,
    plan_residence,
)
from chromexpr.models.splits import DEV, TRAIN

__all__ = ["FcModel", "FcParams", "loader_throughput"]

Backbone = Literal["lasso-gene", "none"]

WEIGHTS = "weights.pt"
#: Fraction of training rows whose group input is replaced by "unknown" (code 0).
GROUP_DROPOUT = 0.1
#: Reference batch size, and the fewest optimiser steps per epoch the automatic batch size allows.
REFERENCE_BATCH = 10_000
MIN_STEPS = 50
MIN_BATCH = 64


@dataclass(frozen=True)
class FcParams:
    """Parameters of ``fc``.

    Attributes
    ----------
    hidden
        Hidden layer widths.
    dropout, l1, l2
        Regularisation (dropout probability; L1 and L2 penalties on the weights).
    lr, betas
        Adam settings.
    batch_size
        Rows per optimiser step; ``None``: 10,000 (the reference), or fewer so that an epoch takes
        at least :data:`MIN_STEPS` steps (small data sets).
    epochs, patience
        Maximum epochs; stop after ``patience`` epochs without a better dev loss.
    device
        ``auto``, ``cpu`` or ``cuda`` (AMP on CUDA).
    window
        Read only bins within this distance of the TSS (bp; ``None``: all).
    group_input
        Feed the sample's group as an embedding.
    group_dim
        Embedding size.
    buffer_rows
        Shuffle buffer (rows) when streaming: the loader holds three buffers of about
        ``buffer_rows x n_bins`` float32.
    data_on_device
        ``auto``: hold the training and dev rows in the device's memory when they fit
        (:func:`chromexpr.models.resident.plan_residence`: float32, else float16), else stream them
        from the store; ``yes``: hold them or fail; ``no``: stream.
    resident_dtype
        Precision of held rows: ``auto`` (float32 when it fits, else float16), ``float32`` or
        ``float16``.
    compile
        ``torch.compile`` the training step: ``auto`` on CUDA only, ``yes``, ``no``.
    backbone
        ``lasso-gene`` (default, deviation formulation only): the network learns what a
        ``lasso-gene`` model (the backbone, fitted first on the same training samples) leaves; its
        training targets are the residuals of the backbone's out-of-fold predictions (stacking, so
        the network never learns from residuals the backbone overfitted). ``none``: the network
        alone, as in the original recipe.
    """

    hidden: tuple[int, ...] = (1000, 1000, 1000)
    dropout: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int | None = None
    epochs: int = 30
    patience: int = 5
    device: str = "auto"
    window: int | None = None
    group_input: bool = False
    group_dim: int = 8
    buffer_rows: int = 65_536
    backbone: Backbone = "lasso-gene"
    data_on_device: str = "auto"
    resident_dtype: str = "auto"
    compile: str = "auto"


def _compile_choice(choice: str, device_type: str) -> bool:
    """``--compile``: ``auto`` compiles on CUDA only (on 2 CPU cores compiling made steady epochs
    8-20 % faster but costs 15-20 s up front and needs a C++ compiler; docs/benchmarks.md)."""
    if choice not in ("auto", "yes", "no"):
        raise InputError(f"--compile must be auto, yes or no, got {choice!r}")
    return choice == "yes" or (choice == "auto" and device_type == "cuda")


def loader_throughput(batches: Any, max_batches: int = 20) -> tuple[float, int]:
    """Rows per second of iterating ``batches`` alone (at most ``max_batches``), and the rows
    seen."""
    start = time.perf_counter()
    rows = 0
    for i, (x, _, _) in enumerate(batches):
        rows += int(x.shape[0])
        if i + 1 >= max_batches:
            break
    seconds = time.perf_counter() - start
    return (rows / seconds if seconds > 0 else float("inf")), rows


class _GroupDropout:
    """Wrap an epoch's batches: replace a seeded 10% of group codes by 0."""

    def __init__(self, loader: Any, seed: int) -> None:
        self.loader = loader
        self.seed = seed

    def __call__(self, epoch: int) -> Any:
        rng = np.random.default_rng([self.seed, epoch, 3])
        for x, y, g in self.loader(epoch):
            if g is not None:
                drop = rng.random(g.shape[0]) < GROUP_DROPOUT
                if isinstance(g, np.ndarray):
                    g = np.where(drop, 0, g)
                else:  # a tensor on the device (rows held there)
                    import torch

                    g = torch.where(torch.from_numpy(drop).to(g.device), 0, g)
            yield x, y, g


@register
class FcModel(Model):
    """Multilayer perceptron on the bins of a (gene, sample) pair."""

    name: ClassVar[str] = "fc"
    Params: ClassVar[type] = FcParams
    uses_dev: ClassVar[bool] = True
    array_shapes: ClassVar[dict[str, tuple[int | str, ...]]] = {
        "offset": ("genes",),
        "y_scale": (),
        "y_shift": (),
        "shape": (2,),
        "x_centre?": ("genes", "features"),
        "backbone_pos?": ("*",),
    }

    def __init__(self, params: FcParams | None = None) -> None:
        super().__init__(params)
        self.net: Any = None
        self.x_centre: np.ndarray | None = None
        self.offset = np.zeros(0)
        self.y_scale = 1.0
        self.y_shift = 0.0
        self.n_inputs = 0
        self.n_groups = 0
        self.throughput: dict[str, float] = {}
        self.batch_size = 0
        self.backbone: Any = None
        self.backbone_pos: np.ndarray | None = None
        self.network_used = True
        self.residence: dict[str, Any] = {}

    def feature_bins(self, offsets: np.ndarray, bin_size: int) -> np.ndarray | None:
        return (
            None
            if self.params.window is None
            else window_bins(offsets, bin_size, self.params.window)
        )

    def _build(self, seed: int | None = None) -> Any:
        from chromexpr.models.fc_net import build_mlp

        prm: FcParams = self.params
        return build_mlp(
            self.n_inputs,
            tuple(int(h) for h in prm.hidden),
            dropout=float(prm.dropout),
            n_groups=self.n_groups if prm.group_input else 0,
            group_dim=int(prm.group_dim),
            seed=seed,
        )

    def fit(self, data: TrainingData) -> list[dict[str, float]]:
        import torch

        from chromexpr.models.fc_net import TrainConfig, train_mlp

        prm: FcParams = self.params
        if prm.group_input and data.groups is None:
            raise InputError("fc: --group-input needs sample groups", fix="use --groups sheet")
        torch.manual_seed(int(data.seed))
        deviation = data.formulation == "deviation"
        train_cols = data.cols_with(TRAIN)
        dev_cols = data.cols_with(DEV)
        self.n_inputs = data.source.n_features
        self.n_groups = int(data.n_groups) if prm.group_input else 0
        train_mask = data.roles == TRAIN
        if not train_mask.any():
            raise InputError("fc: no training pairs")
        y_train = data.y[train_mask]
        if prm.backbone not in ("lasso-gene", "none"):
            raise InputError(f"fc: unknown backbone {prm.backbone!r}", fix="use lasso-gene or none")
        target = data.y
        y_mean = data.y_mean
        if deviation and prm.backbone == "lasso-gene":
            target = data.y - self._fit_backbone(data, train_cols, dev_cols)
            y_mean = target[:, train_cols].mean(axis=1)
        elif prm.backbone != "none":
            logger.info("fc: no backbone in the raw formulation (lasso-gene needs --split sample)")
        centre_seconds = 0.0
        if deviation:
            logger.info("fc: per-gene means of %d training samples", train_cols.size)
            started = time.perf_counter()
            self.x_centre = RowLoader(
                source=data.source,
                y=np.zeros(data.y.shape, dtype=np.float32),
                roles=np.full(data.roles.shape, TRAIN, dtype=np.int8),
                role=TRAIN,
                samples=train_cols,
                buffer_rows=int(prm.buffer_rows),
            ).gene_means()
            centre_seconds = time.perf_counter() - started
            # with a backbone the level is the backbone's (its full fit has the training means);
            # the residuals' means only centre the network's targets
            self.offset = np.zeros_like(y_mean) if self.backbone is not None else np.array(y_mean)
            resid = (target - y_mean[:, None])[train_mask]
            self.y_shift = 0.0
            self.y_scale = float(resid.std()) or 1.0
            y_model = target / self.y_scale
            y_centre = y_mean / self.y_scale
        else:
            self.x_centre = None
            self.y_shift = float(y_train.mean())
            self.y_scale = float(y_train.std()) or 1.0
            self.offset = np.zeros(data.y.shape[0])
            y_model = (data.y - self.y_shift) / self.y_scale
            y_centre = None
        groups = data.groups if prm.group_input else None
        n_train_rows = int(train_mask.sum())
        batch = (
            int(prm.batch_size)
            if prm.batch_size
            else int(np.clip(n_train_rows // MIN_STEPS, MIN_BATCH, REFERENCE_BATCH))
        )
        self.batch_size = batch
        procs = distributed.env_info()

        def loader(role: int, cols: np.ndarray, shuffle: bool) -> RowLoader:
            return RowLoader(
                source=data.source,
                y=y_model,
                roles=data.roles,
                role=role,
                samples=cols,
                x_centre=self.x_centre,
                y_centre=y_centre,
                groups=groups,
                batch_size=batch,
                buffer_rows=max(int(prm.buffer_rows), batch),
                seed=int(data.seed),
                shuffle=shuffle,
                rank=procs.rank,
                world_size=procs.world_size,
                # training: every rank its part of the single-process batches; dev: only sums
                shard_by="batch" if role == TRAIN else "unit",
                recycle=True,
                pin_memory=device.type == "cuda",
            )

        from chromexpr.models.fc_net import evaluate_mse, resolve_device

        device = resolve_device(str(prm.device))
        train_loader = loader(TRAIN, train_cols, True)
        dev_loader = loader(DEV, dev_cols, False)
        self.net = self._build(seed=int(data.seed))
        if self.backbone is not None:
            # start exactly at the backbone: the network's output is 0 until training moves it
            last = [m for m in self.net.modules() if isinstance(m, torch.nn.Linear)][-1]
            with torch.no_grad():
                last.weight.zero_()
                last.bias.zero_()
        config = TrainConfig(
            epochs=int(prm.epochs),
            lr=float(prm.lr),
            betas=(float(prm.betas[0]), float(prm.betas[1])),
            batch_size=batch,
            l1=float(prm.l1),
            l2=float(prm.l2),
            patience=int(prm.patience),
            seed=int(data.seed),
            device=str(prm.device),
            amp=True,
            compile=_compile_choice(str(prm.compile), device.type),
        )
        n_dev_rows = dev_loader.n_rows() if dev_cols.size else 0
        residence = plan_residence(
            cast(DataOnDevice, str(prm.data_on_device)),
            train_loader.n_rows() + n_dev_rows,
            self.n_inputs,
            device,
            dtype=cast(ResidentDtype, str(prm.resident_dtype)),
            distributed=procs.distributed,
        )
        logger.info("fc: training rows %s", residence.reason)
        rows_train: Any = train_loader
        rows_dev: Any = dev_loader
        load_seconds = 0.0
        if residence.resident:
            started = time.perf_counter()
            rows_train = ResidentRows.load(train_loader, device, residence.dtype)
            rows_dev = (
                ResidentRows.load(dev_loader, device, residence.dtype) if n_dev_rows else None
            )
            load_seconds = time.perf_counter() - started
            logger.info(
                "fc: %d rows loaded onto %s in %.1f s",
                rows_train.n_rows + n_dev_rows,
                device,
                load_seconds,
            )

        def dev_batches() -> Any:
            if dev_cols.size == 0 or rows_dev is None:
                return iter(())
            return rows_dev(0)

        train_batches = (
            _GroupDropout(rows_train, int(data.seed)) if groups is not None else rows_train
        )
        dev_before = float("nan")
        # under torchrun the training loader exchanges rows between the ranks: open the group first
        with distributed.process_group(device):
            rate, _ = loader_throughput(rows_train(0))
            self.throughput = {"loader_rows_per_s": rate}
            self.residence = {
                "resident": residence.resident,
                "dtype": residence.dtype if residence.resident else "float32",
                "compile": config.compile,
                "load_seconds": round(load_seconds, 3),
                "centre_seconds": round(centre_seconds, 3),
                "reason": residence.reason,
            }
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            logger.info(
                "fc: %d training rows, %d dev rows; batches alone %.0f rows/s%s",
                train_loader.n_rows(),
                n_dev_rows,
                rate,
                f" (rank 0 of {procs.world_size})" if procs.distributed else "",
            )
            if self.backbone is not None and dev_cols.size:
                dev_before, _ = evaluate_mse(self.net.to(device), dev_batches(), device=device)
            history = train_mlp(
                self.net,
                train_batches,
                dev_batches,
                config,
                checkpoint_dir=data.options.get("checkpoint_dir"),
                resume=bool(data.options.get("resume")),
                on_epoch=self._epoch_logger(data.options.get("on_epoch")),
            )
        self.network_used = True
        best_dev = min((float(h["dev_mse"]) for h in history), default=float("nan"))
        if np.isfinite(dev_before) and not best_dev < dev_before:
            # the network never beat the backbone on the dev pairs: keep the backbone alone
            last = [m for m in self.net.modules() if isinstance(m, torch.nn.Linear)][-1]
            with torch.no_grad():
                last.weight.zero_()
                last.bias.zero_()
            self.network_used = False
            logger.info(
                "fc: the network did not improve on the backbone's dev error (%.4g >= %.4g); "
                "predicting with the backbone alone",
                best_dev * self.y_scale**2,
                dev_before * self.y_scale**2,
            )
        rows: list[dict[str, float]] = []
        scale2 = self.y_scale**2
        for h in history:
            rows.append(
                {
                    "epoch": int(h["epoch"]) + 1,
                    "train_mse": float(h["train_mse"]) * scale2,
                    "dev_mse": float(h.get("dev_mse", float("nan"))) * scale2,
                    "seconds": float(h["seconds"]),
                    "examples_per_s": float(h.get("examples_per_s", float("nan"))),
                }
            )
        if device.type == "cuda":
            self.throughput["peak_gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
        if rows:
            # the first epoch carries warm-up (and compilation): the median of the others
            steady = [r["examples_per_s"] for r in rows[1:]] or [rows[0]["examples_per_s"]]
            self.throughput["train_rows_per_s"] = float(np.nanmedian(steady))
            logger.info(
                "fc: training %.0f rows/s vs loader %.0f rows/s",
                self.throughput["train_rows_per_s"],
                rate,
            )
        return rows

    def _epoch_logger(self, callback: Any) -> Any:
        """Log each epoch (in expression units), then call ``callback`` (if any) with the row."""

        def log_epoch(row: dict[str, Any]) -> None:
            scale2 = self.y_scale**2
            logger.info(
                "fc: epoch %d: train MSE %.4g, dev MSE %.4g, %.1f s (%.0f rows/s)",
                int(row["epoch"]) + 1,
                float(row["train_mse"]) * scale2,
                float(row["dev_mse"]) * scale2,
                float(row["seconds"]),
                float(row.get("examples_per_s", float("nan"))),
            )
            if callback is not None:
                callback(row)

        return log_epoch

    def _fit_backbone(
        self, data: TrainingData, train_cols: np.ndarray, dev_cols: np.ndarray
    ) -> np.ndarray:
        """Fit the lasso-gene backbone; return its predictions for every pair the network sees.

        Training samples get the backbone's out-of-fold predictions, dev samples its predictions
        from the model fitted on all training samples (it never saw them). Model scale, ``(genes,
        samples)``; zero for pairs the network does not see.
        """
        from chromexpr.models.lasso import GeneLasso, GeneLassoParams

        backbone = GeneLasso(GeneLassoParams())
        pos = np.flatnonzero(data.bin_distance <= backbone.params.window)
        bins = pos if data.source.bins is None else data.source.bins[pos]
        source = replace(data.source, bins=bins)
        logger.info("fc: fitting the lasso-gene backbone on %d bins", pos.size)
        backbone.fit(
            replace(
                data, source=source, bin_distance=data.bin_distance[pos], options={"keep_oof": True}
            )
        )
        assert backbone.oof_prediction is not None
        base = np.zeros_like(data.y)
        base[:, train_cols] = backbone.oof_prediction
        codes = np.zeros(data.y.shape[1], dtype=np.int64)
        for local, cols, x in source.iter_blocks(dev_cols, whole_chunk_samples=False):
            base[np.ix_(local, cols)] = backbone.predict(x, local, codes[cols])
        backbone.oof_prediction = None
        self.backbone, self.backbone_pos = backbone, pos
        return base

    def predict(self, x: np.ndarray, genes: np.ndarray, samples: np.ndarray) -> np.ndarray:
        import torch

        from chromexpr.models.fc_net import resolve_device

        if self.net is None:
            raise RuntimeError("fc model is not fitted")
        n_g, n_s, p = x.shape
        x_raw = x
        if self.x_centre is not None:
            x = x - self.x_centre[genes][:, None, :]
        rows = torch.from_numpy(np.ascontiguousarray(x.reshape(n_g * n_s, p), dtype=np.float32))
        group = None
        if self.params.group_input:
            codes = np.broadcast_to(
                np.asarray(samples, dtype=np.int64)[None, :], (n_g, n_s)
            ).ravel()
            group = torch.from_numpy(np.ascontiguousarray(codes))
        device = resolve_device(str(self.params.device))
        net = self.net.to(device)
        net.eval()
        out = np.empty(n_g * n_s, dtype=np.float64)
        step = 65_536
        with torch.no_grad():
            for lo in range(0, rows.shape[0], step):
                xb = rows[lo : lo + step].to(device)
                gb = None if group is None else group[lo : lo + step].to(device)
                out[lo : lo + step] = net(xb, gb).float().cpu().numpy()
        pred = out.reshape(n_g, n_s) * self.y_scale + self.y_shift + self.offset[genes][:, None]
        if self.backbone is not None and self.backbone_pos is not None:
            pred += self.backbone.predict(x_raw[:, :, self.backbone_pos], genes, samples)
        return pred

    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "offset": self.offset,
            "y_scale": np.asarray(self.y_scale),
            "y_shift": np.asarray(self.y_shift),
            "shape": np.asarray([self.n_inputs, self.n_groups], dtype=np.int64),
        }
        if self.x_centre is not None:
            out["x_centre"] = self.x_centre
        if self.backbone is not None and self.backbone_pos is not None:
            out["backbone_pos"] = self.backbone_pos
            out.update({f"backbone__{k}": v for k, v in self.backbone.arrays().items()})
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.offset = np.asarray(arrays["offset"], dtype=np.float64)
        self.y_scale = float(arrays["y_scale"])
        self.y_shift = float(arrays["y_shift"])
        self.n_inputs, self.n_groups = (int(v) for v in arrays["shape"])
        centre = arrays.get("x_centre")
        self.x_centre = None if centre is None else np.asarray(centre, dtype=np.float32)
        if "backbone_pos" in arrays:
            from chromexpr.models.lasso import GeneLasso

            self.backbone = GeneLasso()
            self.backbone.load_arrays(
                {k[len("backbone__") :]: v for k, v in arrays.items() if k.startswith("backbone__")}
            )
            self.backbone_pos = np.asarray(arrays["backbone_pos"], dtype=np.int64)

    def save_extra(self, directory: Path) -> list[str]:
        from chromexpr.models.fc_net import save_weights

        save_weights(self.net, directory / WEIGHTS)
        return [WEIGHTS]

    def load_extra(self, directory: Path) -> None:
        from chromexpr.models.fc_net import load_weights

        path = directory / WEIGHTS
        if not path.is_file():
            raise InputError("fc model without weights", path=path)
        self.net = self._build()
        load_weights(self.net, path)

    def info(self) -> dict[str, Any]:
        return {
            "network_used": self.network_used,
            "backbone": self.backbone is not None,
            "throughput": self.throughput,
            "data": self.residence,
            "n_inputs": self.n_inputs,
            "batch_size": self.batch_size,
        }
