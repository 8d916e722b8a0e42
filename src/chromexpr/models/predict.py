"""Apply a saved model to a dataset: samples with accessibility only get predicted expression.

The model's fitted transforms are reapplied unchanged; each sample contributes only its own
statistics (depth total, quantiles). The dataset must have the same bin geometry and the same gene
list as the one the model was trained on; otherwise the error says what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from chromexpr.dataset.store import Dataset, open_dataset
from chromexpr.errors import InputError
from chromexpr.log import logger, progress_bar
from chromexpr.models.base import FittedModel, gene_checksum, load_model
from chromexpr.models.design import BlockSource, sample_statistics
from chromexpr.models.transforms import backward_expression

__all__ = ["check_compatible", "predict_matrix", "predict_table", "source_for"]

Scale = Literal["tpm", "transformed"]


def check_compatible(fitted: FittedModel, dataset: Dataset) -> None:
    """Raise :class:`InputError` saying what differs between the model's training dataset and
    ``dataset``.

    Compared: bin geometry (flank, bin size, aggregate, number of bins), the modelled genes'
    presence, and the checksum of the full gene list (ids, TSSs, strands, order).
    """
    geo = fitted.geometry
    spec = dataset.spec
    mine = {
        "flank": spec.flank,
        "bin_size": spec.bin_size,
        "aggregate": spec.aggregate,
        "n_bins": spec.n_bins,
    }
    differ = [f"{k} {geo.get(k)} vs {mine[k]}" for k in mine if geo.get(k) != mine[k]]
    if differ:
        raise InputError(
            "bin geometry differs from the model's training dataset "
            f"(model vs dataset: {'; '.join(differ)})",
            path=dataset.path,
            fix="bin the samples with the same --flank, --bin-size and --aggregate",
        )
    ids = set(dataset.genes["gene_id"])
    missing = [g for g in fitted.genes["gene_id"] if g not in ids]
    n_model = int(fitted.dataset_genes.get("n", -1))
    if missing:
        raise InputError(
            f"gene set differs: {len(missing)} of the model's {len(fitted.genes)} genes are not in "
            "the dataset "
            f"(e.g. {', '.join(missing[:3])}); the model's dataset had {n_model} genes, this one "
            f"{dataset.n_genes}",
            path=dataset.path,
            fix="bin with the TSS file the model was trained with",
        )
    checksum = gene_checksum(
        dataset.genes["gene_id"], dataset.genes["tss"], dataset.genes["strand"]
    )
    if checksum != fitted.dataset_genes.get("checksum"):
        raise InputError(
            "gene list differs from the model's training dataset "
            f"({n_model} genes there, {dataset.n_genes} "
            f"here; same modelled genes but other TSSs, strands, order or extra genes)",
            path=dataset.path,
            fix="bin with the TSS file the model was trained with",
        )


def source_for(fitted: FittedModel, dataset: Dataset, samples: Sequence[str]) -> BlockSource:
    """A block source over the model's genes x ``samples`` with the model's transform and bins."""
    check_compatible(fitted, dataset)
    positions = dataset.sample_position(list(samples))
    with progress_bar("sample statistics", len(positions)) as bar:
        stats = sample_statistics(dataset, positions, fitted.openness.config, progress=bar.advance)  # type: ignore[attr-defined]
    return BlockSource(
        dataset,
        fitted.genes["dataset_index"].to_numpy(np.int64),
        positions,
        stats,
        fitted.openness,
        fitted.bins,
    )


def predict_matrix(fitted: FittedModel, dataset: Dataset, samples: Sequence[str]) -> np.ndarray:
    """Predictions on the transformed expression scale: ``float64 (n_model_genes,
    len(samples))``."""
    source = source_for(fitted, dataset, samples)
    groups = [dataset.groups[int(p)] for p in source.sample_position]
    with progress_bar(f"{fitted.name}: predicting", len(fitted.genes) * len(samples)) as bar:
        return fitted.predict_source(source, groups, progress=bar.advance)  # type: ignore[attr-defined]


def predict_table(
    model_dir: str | Path,
    dataset: str | Path,
    *,
    samples: Sequence[str] | None = None,
    scale: Scale = "tpm",
) -> pd.DataFrame:
    """Wide predictions ``gene_id, gene_name, <samples>`` (the expression input's layout).

    Parameters
    ----------
    model_dir
        MODEL_DIR from ``chromexpr train`` (with ``--folds``, its top-level model, fitted on all
        samples).
    dataset
        Dataset with the same geometry and gene list.
    samples
        Samples to predict (default: every complete sample).
    scale
        ``tpm``: back-transformed (``2^y - 1`` for log2p1, clipped at 0); ``transformed``: the
        model's scale.
    """
    if scale not in ("tpm", "transformed"):
        raise InputError(f"unknown scale {scale!r}", fix="use tpm or transformed")
    if samples is not None:
        twice = sorted({s for s in samples if list(samples).count(s) > 1})
        if twice:
            raise InputError(
                f"sample(s) named more than once: {', '.join(twice[:5])}",
                fix="name each sample once",
            )
    fitted = load_model(model_dir)
    ds = open_dataset(dataset)
    names = list(samples) if samples else list(ds.samples)
    if not names:
        raise InputError("the dataset has no complete sample to predict", path=ds.path)
    values = predict_matrix(fitted, ds, names)
    if scale == "tpm":
        values = backward_expression(values, fitted.expression_kind)
    logger.info(
        "predicted %d genes x %d samples with %s", values.shape[0], values.shape[1], fitted.name
    )
    frame = pd.DataFrame(values, columns=names)
    frame.insert(0, "gene_name", fitted.genes["gene_name"].to_numpy())
    frame.insert(0, "gene_id", fitted.genes["gene_id"].to_numpy())
    return frame
