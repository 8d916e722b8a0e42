"""How learnable simulated data are, with and without the lineage tree (docs/simulation.md).

For each configuration and seed, simulates the default data set (400 genes x 24 samples in 4
groups; consensus-peak counts only) and scores, leave-one-group-out on the files, median within-gene
Pearson r over genes whose observed ``log2(TPM + 1)`` varies (sd > 0.3), outlier excluded:

* ``noise ceiling``: the noise-free expression (``truth/``) against the observed one;
* ``neighbours``: a held-out sample's expression deviation from the training mean is the mean of
  the training samples' deviations, weighted by the positive part of the correlation of their
  accessibility deviations over all consensus peaks (log1p CPM; EVALUATION.md item 7);
* ``per-gene``: per gene, the 5 consensus peaks within 100 kb of the TSS whose accessibility
  correlates best (absolute r) with expression in the training groups, ridge (penalty 1 on
  standardised peaks): predicted deviations;
* ``average``: the mean of the two predicted deviations.

Predicted deviations are pooled over the folds before correlating (each fold holds out one group);
the ``... in one group`` columns correlate within each held-out group's samples only (the mean over
groups of the median over genes), as a test set of a single group would.
Link recovery: average precision of ``|r|`` (accessibility vs expression over every sample with
expression) and of ``-distance`` at finding the planted links among the consensus peaks 2-100 kb
from each varying gene's TSS.

Run::

    python benchmarks/bench_simulation_structure.py [--seeds 0 1 2] [--work DIR]

Prints a markdown table (about 10 s per simulation on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from chromexpr.simulate import SimulationConfig, simulate

#: Configurations compared (folder name: label, overrides of the defaults): the default, and
#: unrelated groups without a trans programme.
CONFIGS: dict[str, tuple[str, dict[str, object]]] = {
    "tree": ("default (tree, strength 0.95, programme 0.5)", {}),
    "independent": (
        "independent groups, no programme",
        {"lineage": "independent", "programme_share": 0.0},
    ),
}


def _read(path: Path, **kwargs: object) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, **kwargs)


def _rows_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of ``scores`` at ranking the true ``labels`` first (no tie handling)."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float((precision * hits).sum() / max(hits.sum(), 1.0))


def score(out: Path) -> dict[str, float]:
    """The metrics above for one simulation directory."""
    samples = _read(out / "truth/samples.tsv").set_index("sample")
    expr = _read(out / "expression/salmon.merged.gene_tpm.tsv").set_index("gene_id")
    expr = expr.drop(columns="gene_name")
    names = list(expr.columns)
    free = _read(out / "truth/expression_noise_free.tsv").set_index("gene_id")[names]
    genes = _read(out / "truth/genes.tsv").set_index("gene_id").loc[expr.index]
    table = _read(out / "counts/consensus_peaks.featureCounts.txt", skiprows=1)
    counts = table.iloc[:, 6:].astype(float)
    counts.columns = [c.removesuffix(".mLb.clN.sorted.bam") for c in counts.columns]
    cpm = counts / counts.sum(axis=0) * 1e6
    x = np.log1p(cpm[names].to_numpy())
    y = np.log2(expr.to_numpy(dtype=float) + 1.0)
    ceiling_free = np.log2(free.to_numpy(dtype=float) + 1.0)
    groups = samples.loc[names, "group"].to_numpy()
    keep = samples.loc[names, "is_outlier"].astype(str).to_numpy() != "True"
    varied = y.std(axis=1) > 0.3
    chrom = table["Chr"].to_numpy()
    middle = (table["Start"].to_numpy() - 1 + table["End"].to_numpy()) / 2
    distance = [
        np.abs(middle - tss) + np.where(chrom == c, 0.0, np.inf)
        for c, tss in zip(genes["chrom"], genes["tss"], strict=True)
    ]
    near = [np.flatnonzero(d < 100_000) for d in distance]

    neighbours, per_gene, observed = (np.zeros_like(y) for _ in range(3))
    for group in np.unique(groups):
        test, train = groups == group, groups != group
        x_dev = x - x[:, train].mean(axis=1, keepdims=True)
        y_dev = y - y[:, train].mean(axis=1, keepdims=True)
        observed[:, test] = y_dev[:, test]
        r = np.corrcoef(x_dev[:, test].T, x_dev[:, train].T)[: test.sum(), test.sum() :]
        w = np.maximum(r, 0.0)
        neighbours[:, test] = y_dev[:, train] @ (w / w.sum(axis=1, keepdims=True)).T
        for g in np.flatnonzero(varied):
            peaks = near[g]
            if peaks.size == 0:
                continue
            a = x[peaks][:, train]
            mean, sd = a.mean(axis=1, keepdims=True), a.std(axis=1, keepdims=True) + 1e-9
            z = (a - mean) / sd
            target = y_dev[g, train]
            top = np.argsort(-np.abs(z @ target))[:5]
            zt = z[top].T
            beta = np.linalg.solve(zt.T @ zt + np.eye(top.size), zt.T @ target)
            per_gene[g, test] = ((x[peaks[top]][:, test] - mean[top]) / sd[top]).T @ beta

    def median_r(pred: np.ndarray, truth: np.ndarray, samples: np.ndarray = keep) -> float:
        return float(np.nanmedian(_rows_r(pred[varied][:, samples], truth[varied][:, samples])))

    def in_one_group(pred: np.ndarray) -> float:
        return float(np.mean([median_r(pred, observed, keep & (groups == g)) for g in set(groups)]))

    links = _read(out / "truth/links.bedpe")
    links.columns = [c.lstrip("#") for c in links.columns]
    universe = _read(out / "truth/peaks.tsv.gz")
    consensus_of = dict(
        zip(
            zip(universe["chrom"], universe["start"], universe["end"], strict=True),
            universe["consensus_name"],
            strict=True,
        )
    )
    enhancer_first = links["strand1"] == "."
    planted = {
        (gene, consensus_of[(c, s, e)])
        for gene, c, s, e in zip(
            links["gene_id"],
            links["chrom1"],
            np.where(enhancer_first, links["start1"], links["start2"]),
            np.where(enhancer_first, links["end1"], links["end2"]),
            strict=True,
        )
    }
    labels, by_r, by_distance = [], [], []
    for g in np.flatnonzero(varied):
        peaks = near[g][distance[g][near[g]] > 2_000]
        if peaks.size == 0:
            continue
        r = _rows_r(x[peaks], np.broadcast_to(y[g], (peaks.size, y.shape[1])))
        labels += [(expr.index[g], table["Geneid"].iloc[p]) in planted for p in peaks]
        by_r += list(np.nan_to_num(np.abs(r)))
        by_distance += list(-distance[g][peaks])
    label = np.asarray(labels)
    return {
        "noise ceiling": median_r(ceiling_free, y),
        "neighbours": median_r(neighbours, observed),
        "per-gene": median_r(per_gene, observed),
        "average": median_r((neighbours + per_gene) / 2, observed),
        "neighbours in one group": in_one_group(neighbours),
        "per-gene in one group": in_one_group(per_gene),
        "links |r|": average_precision(label, np.asarray(by_r)),
        "links distance": average_precision(label, np.asarray(by_distance)),
        "links random": float(label.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=None, help="simulations (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        rows = []
        for name, (label, overrides) in CONFIGS.items():
            results = []
            for seed in args.seeds:
                config = SimulationConfig.from_dict(
                    {"seed": seed, "formats": ["counts"], **overrides}
                )
                out = work / f"{name}-{seed}"
                simulate(config, out, force=True)
                results.append(score(out))
            frame = pd.DataFrame(results)
            rows.append(
                f"| {label} | "
                + " | ".join(f"{frame[c].min():.2f}-{frame[c].max():.2f}" for c in frame.columns)
                + " |"
            )
        print("| configuration | " + " | ".join(results[0]) + " |")
        print("|---" * (len(results[0]) + 1) + "|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
