"""A small binned dataset with a planted signal, shared by the model, training and scale-out tests:
accessibility drives expression through a few bins per gene."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.binning.binner import BinSpec
from chromexpr.dataset.store import add_samples, create_store, mark_complete, write_sample
from chromexpr.models.train import TrainOptions, load_context


@dataclass
class Planted:
    """A planted dataset: accessibility drives expression through a few bins per gene."""

    dataset: Path
    expression: Path
    samples: list[str]
    links: np.ndarray  # (n_genes, n_links) bin indices


def make_planted(
    root: Path, *, n_genes: int = 40, n_samples: int = 16, n_groups: int = 0, seed: int = 0
) -> Planted:
    """Write a dataset (flank 10 kb, 1-kb bins) and a TPM table whose log2 follows 2-3 bins per
    gene.

    ``y = b_g + sum_k w_gk log1p(latent[g, s, link_k]) + N(0, 0.25)``, with the second and third
    links repressive at random (so a gene's own links matter, not only a shared profile); the
    observed openness is the latent one times a per-sample depth factor, so depth scaling matters.
    """
    rng = np.random.default_rng(seed)
    spec = BinSpec(flank=10_000, bin_size=1000)
    n_bins = spec.n_bins
    genes = pd.DataFrame(
        {
            "name": [f"ENSG{i:011d}" for i in range(n_genes)],
            "gene_name": [f"GENE{i}" for i in range(n_genes)],
            "gene_type": "protein_coding",
            "chrom": [f"chr{1 + i % 3}" for i in range(n_genes)],
            "start": 1_000_000 + 100_000 * np.arange(n_genes),
            "strand": ["+" if i % 2 else "-" for i in range(n_genes)],
        }
    )
    latent = rng.gamma(0.3, 0.3, size=(n_genes, n_samples, n_bins))
    links = np.stack([rng.choice(np.arange(6, 14), size=3, replace=False) for _ in range(n_genes)])
    for g in range(n_genes):
        for b in links[g]:
            latent[g, :, b] = rng.lognormal(1.0, 0.8, size=n_samples)
    weights = rng.uniform(0.8, 1.6, size=links.shape)
    weights[:, 1:] *= rng.choice(
        [-1.0, 1.0], size=(n_genes, links.shape[1] - 1)
    )  # repressive links
    y = rng.normal(8.0, 1.0, size=(n_genes, 1)) + rng.normal(scale=0.25, size=(n_genes, n_samples))
    for k in range(links.shape[1]):
        y += weights[:, [k]] * np.log1p(latent[np.arange(n_genes), :, links[:, k]])
    depth = rng.lognormal(0.0, 0.3, size=n_samples)
    observed = (latent * depth[None, :, None]).astype(np.float32)
    samples = [f"S{i:02d}" for i in range(n_samples)]
    groups = [f"grp{i % n_groups}" if n_groups else "" for i in range(n_samples)]
    path = root / "planted.zarr"
    create_store(path, genes, spec, chunk_genes=16)
    idx = add_samples(path, samples, groups)
    for j, i in enumerate(idx):
        write_sample(path, i, observed[:, j, :])
        mark_complete(path, i)
    frame = pd.DataFrame(np.exp2(y) - 1.0, columns=samples)
    frame.insert(0, "gene_name", genes["gene_name"])
    frame.insert(0, "gene_id", [f"{g}.3" for g in genes["name"]])
    expr = root / "tpm.tsv"
    frame.to_csv(expr, sep="\t", index=False, float_format="%.6f")
    return Planted(path, expr, samples, links)


def materialise(planted: Planted, options: TrainOptions) -> tuple[np.ndarray, np.ndarray]:
    """Training rows (genes x samples, bins) and targets built by hand from the fitted transform."""
    from chromexpr.dataset.store import open_dataset

    ctx = load_context(planted.dataset, planted.expression, options)
    ds = open_dataset(planted.dataset)
    from chromexpr.models.transforms import fit_openness

    openness = fit_openness(options.openness, ctx.stats)
    x = np.stack([ds.read_sample(s) for s in ctx.samples], axis=1)
    x = openness.apply(x, ctx.stats)
    return x.astype(np.float64), ctx.y
