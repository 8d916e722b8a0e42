"""Tiny datasets and toy models with known attributions, shared by the explain tests.

The dataset has two small chromosomes whose genes sit at the chromosome ends on both strands, so
that coordinate clipping is exercised; the models implement
``chromexpr.explain.attribution.Attributable``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chromexpr.binning.binner import BinSpec
from chromexpr.dataset import store
from chromexpr.dataset.store import Dataset, open_dataset

SPEC = BinSpec(flank=5000, bin_size=1000)  # 10 bins; bin 5 holds the TSS
CHROM_SIZES = {"chrA": 30_000, "chrB": 12_000}
GENES = pd.DataFrame(
    {
        "name": ["G1", "G2", "G3", "G4", "G5"],
        "gene_name": ["ALPHA", "BETA", "GAMMA", "DELTA", "EPS"],
        "gene_type": "protein_coding",
        "chrom": ["chrA", "chrA", "chrA", "chrB", "chrB"],
        # G1 + near chrA start, G2 + mid, G3 - near chrA end, G4 - at chrB start, G5 + near chrB end
        "start": [2_500, 14_200, 28_700, 500, 11_800],
        "strand": ["+", "+", "-", "-", "+"],
    }
)
SAMPLES = ["s1", "s2", "s3", "s4"]
GROUPS = ["B", "B", "T", "T"]


def make_dataset(path: Path, *, seed: int = 0) -> Dataset:
    """A 5 genes x 4 samples x 10 bins dataset with random non-negative openness."""
    rng = np.random.default_rng(seed)
    store.create_store(path, GENES, SPEC, attrs={"chrom_sizes": CHROM_SIZES})
    indices = store.add_samples(path, SAMPLES, GROUPS)
    for i in indices:
        store.write_sample(
            path, i, rng.gamma(2.0, 1.0, size=(len(GENES), SPEC.n_bins)).astype(np.float32)
        )
        store.mark_complete(path, i)
    return open_dataset(path)


class LinearToy:
    """Per-gene linear model ``f(x) = w_g . x + c_g`` on ``log1p`` openness."""

    name = "linear-toy"

    def __init__(self, dataset: Dataset, *, seed: int = 1, pooled: bool = False) -> None:
        rng = np.random.default_rng(seed)
        self.n_inputs = dataset.n_bins
        n = 1 if pooled else dataset.n_genes
        self.w = rng.normal(size=(n, self.n_inputs)).astype(np.float32)
        self.c = rng.normal(size=n).astype(np.float32)
        self.pooled = pooled
        x = np.log1p(np.stack([dataset.read_sample(i) for i in range(dataset.n_samples)], axis=1))
        self.mean = x.mean(axis=1).astype(np.float32)  # (genes, bins)
        self.y = rng.normal(size=(dataset.n_genes, dataset.n_samples)).astype(np.float32)

    def _rows(self, gene_idx: np.ndarray) -> np.ndarray:
        return np.zeros_like(gene_idx) if self.pooled else gene_idx

    def input_rows(
        self, dataset: Dataset, gene_idx: np.ndarray, sample_pos: np.ndarray
    ) -> np.ndarray:
        return np.log1p(dataset.read_rows(gene_idx, sample_pos))

    def baseline_rows(self, gene_idx: np.ndarray) -> np.ndarray:
        return self.mean[gene_idx]

    def torch_module(self) -> torch.nn.Module | None:
        return None

    def linear_weights(self, gene_idx: np.ndarray) -> np.ndarray | None:
        return self.w[self._rows(gene_idx)]

    def linear_intercepts(self, gene_idx: np.ndarray) -> np.ndarray | None:
        return self.c[self._rows(gene_idx)]

    def targets(self, gene_idx: np.ndarray, sample_pos: np.ndarray) -> np.ndarray | None:
        return self.y[gene_idx, sample_pos]

    def predict(self, x: np.ndarray, gene_idx: np.ndarray) -> np.ndarray:
        return (self.w[self._rows(gene_idx)] * x).sum(axis=1) + self.c[self._rows(gene_idx)]


class PooledLinearModule(torch.nn.Module):
    """The pooled :class:`LinearToy` as a torch module (to compare Captum with the closed form)."""

    def __init__(self, w: np.ndarray, c: float) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(w.shape[0], 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(w[None, :]))
            self.linear.bias.fill_(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)[:, 0]


class TorchToy(LinearToy):
    """A model seen only through a torch module (no linear weights)."""

    name = "torch-toy"

    def __init__(self, dataset: Dataset, module: torch.nn.Module, *, seed: int = 1) -> None:
        super().__init__(dataset, seed=seed, pooled=True)
        self.module = module

    def torch_module(self) -> torch.nn.Module | None:
        return self.module

    def linear_weights(self, gene_idx: np.ndarray) -> np.ndarray | None:
        return None

    def linear_intercepts(self, gene_idx: np.ndarray) -> np.ndarray | None:
        return None


def small_mlp(n_inputs: int, *, seed: int = 0) -> torch.nn.Module:
    """A smooth two-layer MLP (tanh) with one output per row."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(n_inputs, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1), torch.nn.Flatten(0)
    )


def relu_mlp(n_inputs: int, *, seed: int = 0) -> torch.nn.Module:
    """A ReLU MLP (DeepLift's rescale rule applies to its nonlinearity)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(n_inputs, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1), torch.nn.Flatten(0)
    )


# --------------------------------------------------------------------------------------------
# Fake but realistic EVAL_DIRs (the tables `chromexpr evaluate` writes), for the report
# --------------------------------------------------------------------------------------------

BASELINE = "mean (baseline)"
REPORT_GROUPS = ("B", "T", "Mono")


def _corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b`` (NaN for constant rows)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    num = (a * b).sum(axis=1)
    return np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 1e-12)


def _rank_rows(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a, axis=1)


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def _metrics_of(y: np.ndarray, p: np.ndarray, m: np.ndarray) -> dict[str, float]:
    """evaluate's metrics of one (model, split, group): arrays genes x samples."""
    sse = float(((p - y) ** 2).sum())
    flat = np.stack([y.ravel(), p.ravel()])
    return {
        "mse": sse / y.size,
        "r2": 1 - sse / float(((y - y.mean()) ** 2).sum()),
        "pearson": float(_corr_rows(flat[:1], flat[1:])[0]),
        "spearman": float(_corr_rows(_rank_rows(flat[:1]), _rank_rows(flat[1:]))[0]),
        "gene_pearson_median": _median(_corr_rows(y, p)),
        "gene_pearson_deviation_median": _median(_corr_rows(y - m, p - m)),
        "gene_spearman_median": _median(_corr_rows(_rank_rows(y), _rank_rows(p))),
        "sample_pearson_median": _median(_corr_rows(y.T, p.T)),
    }


def write_fake_eval_dir(
    path: Path,
    model: str,
    *,
    skill: float,
    noise: float,
    n_genes: int = 200,
    n_samples: int = 24,
    seed: int = 0,
    history: bool = True,
    baseline_per_gene: bool = True,
    outlier: str | None = "s07",
) -> Path:
    """Write an EVAL_DIR for a model that recovers ``skill`` of each gene's group effect.

    Out-of-fold design (5 folds over samples, split ``test``) plus in-fold fits (split ``train``);
    the mean baseline is each gene's training-fold mean, so it moves against the held-out value
    (EVALUATION.md 2). ``outlier`` gets extra prediction noise on ``test``.
    """
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(12345)  # the same data for every model
    samples = np.array([f"s{i:02d}" for i in range(n_samples)])
    groups = np.array([REPORT_GROUPS[i % len(REPORT_GROUPS)] for i in range(n_samples)])
    genes = np.array([f"ENSG{i:011d}" for i in range(n_genes)])
    names = np.array([f"GENE{i}" for i in range(n_genes)])
    mu = truth.normal(4, 2, size=n_genes)
    effect = truth.normal(0, 0.9, size=(n_genes, len(REPORT_GROUPS)))
    group_idx = np.array([REPORT_GROUPS.index(g) for g in groups])
    y = mu[:, None] + effect[:, group_idx] + truth.normal(0, 0.35, size=(n_genes, n_samples))
    fold = np.arange(n_samples) % 5
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, extra in (("test", 1.0), ("train", 0.4)):
        m = np.empty_like(y)
        p = np.empty_like(y)
        for s in range(n_samples):
            train = fold != fold[s] if split == "test" else np.ones(n_samples, bool)
            m[:, s] = y[:, train].mean(axis=1)
            sigma = noise * extra * (2.5 if samples[s] == outlier and split == "test" else 1.0)
            p[:, s] = (
                m[:, s]
                + skill * (effect[:, group_idx[s]] - effect[:, group_idx[train]].mean(axis=1))
                + rng.normal(0, sigma, size=n_genes)
            )
        arrays[split] = (p, m)

    def long(split: str, p: np.ndarray, m: np.ndarray, name: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "gene_id": np.repeat(genes, n_samples),
                "gene_name": np.repeat(names, n_samples),
                "sample": np.tile(samples, n_genes),
                "group": np.tile(groups, n_genes),
                "split": split,
                "observed": y.ravel(),
                "predicted": p.ravel(),
                "train_mean": m.ravel(),
                "model": name,
            }
        )

    metrics, per_gene, per_sample = [], [], []
    for name, use_baseline in ((model, False), (BASELINE, True)):
        for split, (p_model, m) in arrays.items():
            p = m if use_baseline else p_model
            for group in ("all", *REPORT_GROUPS):
                cols = np.ones(n_samples, bool) if group == "all" else groups == group
                values = _metrics_of(y[:, cols], p[:, cols], m[:, cols])
                metrics += [
                    {"model": name, "split": split, "group": group, "metric": k, "value": v}
                    for k, v in values.items()
                ]
            if split == "test" and (baseline_per_gene or not use_baseline):
                per_gene.append(
                    pd.DataFrame(
                        {
                            "model": name,
                            "split": split,
                            "gene_id": genes,
                            "gene_name": names,
                            "n_samples": n_samples,
                            "pearson": _corr_rows(y, p),
                            "pearson_deviation": _corr_rows(y - m, p - m),
                            "spearman": _corr_rows(_rank_rows(y), _rank_rows(p)),
                            "mse": ((p - y) ** 2).mean(axis=1),
                            "baseline_mse": ((m - y) ** 2).mean(axis=1),
                            "mean_observed": y.mean(axis=1),
                            "sd_observed": y.std(axis=1),
                        }
                    )
                )
            mse = ((p - y) ** 2).mean(axis=0)
            mad = 1.4826 * np.median(np.abs(mse - np.median(mse)))
            z = (mse - np.median(mse)) / mad if mad > 0 else np.zeros(n_samples)
            per_sample.append(
                pd.DataFrame(
                    {
                        "model": name,
                        "split": split,
                        "sample": samples,
                        "group": groups,
                        "n_genes": n_genes,
                        "pearson": _corr_rows(y.T, p.T),
                        "spearman": _corr_rows(_rank_rows(y.T), _rank_rows(p.T)),
                        "mse": mse,
                        "r2": 1 - mse / y.var(axis=0),
                        "baseline_mse": ((m - y) ** 2).mean(axis=0),
                        "baseline_pearson": _corr_rows(y.T, m.T),
                        "robust_z": z,
                        "is_outlier": z > 3.5,
                    }
                )
            )
    path.mkdir(parents=True)
    pd.DataFrame(metrics).to_csv(path / "metrics.tsv", sep="\t", index=False)
    pd.concat(per_gene).to_csv(path / "per_gene.tsv", sep="\t", index=False)
    pd.concat(per_sample).to_csv(path / "per_sample.tsv", sep="\t", index=False)
    pd.concat([long(split, p, m, model) for split, (p, m) in arrays.items()]).to_csv(
        path / "predictions.tsv", sep="\t", index=False
    )
    if history:
        epochs = np.arange(1, 41)
        train_loss = 0.25 + 1.5 * np.exp(-epochs / 6)
        dev_loss = 0.45 + 1.4 * np.exp(-epochs / 7) + 0.004 * np.maximum(epochs - 22, 0) ** 1.3
        pd.DataFrame(
            {"epoch": epochs, "train_mse": train_loss, "dev_mse": dev_loss, "seconds": 1.5}
        ).to_csv(path / "history.tsv", sep="\t", index=False)
    (path / "model.json").write_text(f'{{"model": "{model}"}}\n')
    return path
