"""Ground-truth checks on simulated data: planted enhancer-gene links and the noise ceiling.

* **Link recovery**: each modelled gene's per-bin evidence — ``|coefficient|`` for linear
  models (the exact affine weights, see :mod:`chromexpr.explain.adapters`), mean ``|gradient|``
  over the given samples for torch-module models — ranked against the planted links of
  ``truth/links.bedpe`` (AUPRC, beside a distance-only ranking and the random expectation).
* **Noise ceiling**: the metrics of the noise-free expression
  (``truth/expression_noise_free.tsv``) used as a prediction of the observed expression on the
  held-out samples: how far from perfect every model is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chromexpr.dataset.store import Dataset
from chromexpr.errors import InputError

_GENE_BATCH = 64


def bin_evidence(
    model_dir: str | Path, dataset: Dataset, samples: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin evidence ``(n_model_genes, n_bins)`` and the genes' dataset indices.

    Linear models: ``|w|``; torch-module models: mean ``|d prediction / d input|`` over ``samples``.
    """
    from chromexpr.explain.adapters import attributable_from_model_dir
    from chromexpr.models.base import load_model

    fitted = load_model(model_dir)
    if fitted.name == "mean":
        raise InputError("the mean model reads no bins: it has no links to score")
    adapter = attributable_from_model_dir(model_dir, dataset)
    gene_idx = fitted.genes["dataset_index"].to_numpy(np.int64)
    evidence = np.zeros((gene_idx.size, dataset.n_bins), dtype=np.float64)
    module = adapter.torch_module()
    positions = dataset.sample_position(list(samples)) if samples else np.arange(dataset.n_samples)
    for lo in range(0, gene_idx.size, _GENE_BATCH):
        genes = gene_idx[lo : lo + _GENE_BATCH]
        if module is None:
            w = adapter.linear_weights(genes)
            assert w is not None
            evidence[lo : lo + genes.size] = np.abs(w)
            continue
        import torch

        for p in positions:
            x = torch.from_numpy(adapter.input_rows(dataset, genes, np.full(genes.size, p)))
            x.requires_grad_(True)
            module(x).sum().backward()
            assert x.grad is not None
            evidence[lo : lo + genes.size] += np.abs(x.grad.double().numpy()) / len(positions)
    return evidence, gene_idx


def link_recovery_table(
    model_dir: str | Path, dataset: Dataset, truth_links: str | Path, samples: Sequence[str]
) -> dict[str, float]:
    """AUPRC of the planted links from a model's per-bin evidence (see the module docstring)."""
    from chromexpr.evaluate.links import link_recovery
    from chromexpr.explain.coordinates import gene_bin_intervals
    from chromexpr.io.evaluation_files import read_truth_links

    evidence, gene_idx = bin_evidence(model_dir, dataset, samples)
    genes = dataset.genes.iloc[gene_idx].reset_index(drop=True)
    starts, ends = gene_bin_intervals(genes, dataset.spec, dataset.attrs.get("chrom_sizes"))
    keep = ends > starts
    rows = np.nonzero(keep)
    scores = pd.DataFrame(
        {
            "gene_id": genes["gene_id"].to_numpy()[rows[0]],
            "bin_start": starts[keep],
            "bin_end": ends[keep],
            "score": evidence[keep],
        }
    )
    truth = read_truth_links(truth_links, genes=genes[["gene_id", "chrom", "tss"]])
    truth = truth[truth["gene_id"].isin(set(genes["gene_id"]))]
    if truth.empty:
        raise InputError("no planted link belongs to a modelled gene", path=truth_links)
    return link_recovery(
        scores,
        truth,
        bin_size=dataset.spec.bin_size,
        genes=genes[["gene_id", "chrom", "tss", "strand"]],
    )


def noise_ceiling_table(
    noise_free: str | Path,
    expression: str | Path,
    dataset: Dataset,
    samples: Sequence[str],
    expr_transform: Any,
) -> dict[str, float]:
    """Metrics of the noise-free expression against the observed one on ``samples``."""
    from chromexpr.evaluate.metrics import noise_ceiling
    from chromexpr.io.expression import read_expression
    from chromexpr.models.transforms import forward_expression

    def wide(path: str | Path) -> pd.DataFrame:
        table = read_expression(path)
        values = forward_expression(
            table.values, expr_transform, gene_ids=list(table.gene_ids), samples=list(table.samples)
        )
        return pd.DataFrame(values, index=list(table.gene_ids), columns=list(table.samples))

    observed = wide(expression)
    truth = wide(noise_free)
    return noise_ceiling(observed, truth, [s for s in samples if s in observed.columns])


TRUTH_TSV = "truth.tsv"
#: Models that read no gene's regulatory bins: no links to recover (``truth.tsv`` has none).
MODELS_WITHOUT_BIN_EVIDENCE = frozenset({"mean", "neighbors"})


def truth_checks(
    model_dir: str | Path,
    dataset: str | Path | Dataset,
    expression: str | Path,
    *,
    truth: str | Path | None = None,
    noise_free: str | Path | None = None,
) -> pd.DataFrame:
    """The ground-truth checks on the model's held-out samples, as the rows of ``truth.tsv``.

    Held-out samples are the split's test samples (all samples with expression for K-fold models).
    Rows: ``check, metric, value`` with checks ``links`` (link recovery) and ``noise_ceiling``.
    """
    from chromexpr.dataset import open_dataset
    from chromexpr.models.base import load_model

    data = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    fitted = load_model(model_dir)
    held_out = fitted.split.samples_with_role("test") or list(fitted.split.sample_roles)
    rows: list[tuple[str, str, float]] = []
    if truth is not None and fitted.name not in MODELS_WITHOUT_BIN_EVIDENCE:
        for key, value in link_recovery_table(model_dir, data, truth, held_out).items():
            rows.append(("links", key, float(value)))
    if noise_free is not None:
        ceiling = noise_ceiling_table(
            noise_free, expression, data, held_out, fitted.expression_kind
        )
        for key, value in ceiling.items():
            rows.append(("noise_ceiling", key, float(value)))
    return pd.DataFrame(rows, columns=["check", "metric", "value"])


def truth_summary(frame: pd.DataFrame) -> dict[str, float]:
    """The headline values of :func:`truth_checks` (``check:metric`` to value)."""
    keep = ("auprc", "distance_auprc", "baseline_auprc", "gene_pearson_median")
    return {
        f"{c}:{m}": float(v)
        for c, m, v in frame[["check", "metric", "value"]].itertuples(index=False)
        if m in keep
    }


def write_truth_checks(
    model_dir: str | Path,
    dataset: str | Path,
    expression: str | Path,
    eval_dir: str | Path,
    *,
    truth: str | Path | None = None,
    noise_free: str | Path | None = None,
) -> dict[str, float]:
    """Run :func:`truth_checks` and write ``EVAL_DIR/truth.tsv`` (replacing it); the headline
    values. ``chromexpr evaluate --truth/--noise-free`` writes it with the rest of EVAL_DIR."""
    from chromexpr.atomic import atomic_path

    frame = truth_checks(model_dir, dataset, expression, truth=truth, noise_free=noise_free)
    with atomic_path(Path(eval_dir) / TRUTH_TSV, force=True) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
    return truth_summary(frame)


def links_file_recovery(
    links_bedpe: str | Path, truth_links: str | Path, dataset: Dataset
) -> dict[str, float]:
    """AUPRC of the planted links from a ``links.bedpe`` of ``chromexpr attribute``.

    Every in-genome bin of every linked gene is a candidate; a bin's evidence is its link's raw
    score (``raw_score``, else ``score``) and 0 for bins without a link (write the links with
    ``--all-links`` to rank them all). The result is :func:`chromexpr.evaluate.links.link_recovery`
    (``auprc`` beside ``distance_auprc`` and ``baseline_auprc``, on the same candidates).
    """
    from chromexpr.evaluate.links import link_recovery
    from chromexpr.explain.coordinates import gene_bin_intervals
    from chromexpr.io.crispr_files import read_links_bedpe
    from chromexpr.io.evaluation_files import read_truth_links

    links = read_links_bedpe(links_bedpe)
    linked = set(links["gene_id"].astype(str))
    table = dataset.genes.reset_index(drop=True)
    genes = table[table["gene_id"].astype(str).isin(linked)].reset_index(drop=True)
    if genes.empty:
        raise InputError("no gene of the links is in the dataset", path=links_bedpe)
    starts, ends = gene_bin_intervals(genes, dataset.spec, dataset.attrs.get("chrom_sizes"))
    keep = ends > starts
    rows = np.nonzero(keep)[0]
    grid = pd.DataFrame(
        {
            "gene_id": genes["gene_id"].astype(str).to_numpy()[rows],
            "bin_start": starts[keep],
            "bin_end": ends[keep],
        }
    )
    score = links.assign(gene_id=links["gene_id"].astype(str))[["gene_id", "bin_start", "score"]]
    scores = grid.merge(score, on=["gene_id", "bin_start"], how="left")
    scores["score"] = scores["score"].fillna(0.0)
    truth = read_truth_links(truth_links, genes=genes[["gene_id", "chrom", "tss"]])
    truth = truth[truth["gene_id"].isin(linked)]
    if truth.empty:
        raise InputError("no planted link belongs to a linked gene", path=truth_links)
    return link_recovery(
        scores,
        truth,
        bin_size=dataset.spec.bin_size,
        genes=genes[["gene_id", "chrom", "tss", "strand"]],
    )
