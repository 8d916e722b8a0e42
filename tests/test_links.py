"""Tests of chromexpr.evaluate.links (link recovery) and the truth-links BEDPE reader.

Oracle: scikit-learn's average_precision_score and roc_auc_score. Planted sets: bins around TSSs of
+ and - strand genes with enhancers placed at known positions.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from chromexpr.errors import InputError
from chromexpr.evaluate.links import average_precision, link_recovery, roc_auc
from chromexpr.io.evaluation_files import TRUTH_LINK_COLUMNS, read_truth_links
from chromexpr.io.simulation_files import BEDPE_COLUMNS, write_bedpe

# --------------------------------------------------------------------------- AP and AUROC


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=60).filter(
        lambda rows: 0 < sum(r[0] for r in rows) < len(rows)
    )
)
def test_average_precision_and_auroc_match_sklearn(rows: list[tuple[bool, int]]) -> None:
    y = np.array([r[0] for r in rows])
    score = np.array([r[1] for r in rows], dtype=float) / 3.0  # few distinct values: many ties
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score))
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score))
    assert average_precision(y.astype(int), score) == average_precision(y, score)


def test_average_precision_edge_cases() -> None:
    assert math.isnan(average_precision(np.zeros(4, dtype=bool), np.arange(4.0)))
    assert math.isnan(roc_auc(np.ones(4, dtype=bool), np.arange(4.0)))
    assert average_precision(np.array([1, 1, 0]), np.array([3.0, 2.0, 1.0])) == 1.0
    assert average_precision(np.array([0, 1]), np.array([1.0, 1.0])) == 0.5  # one tied threshold
    with pytest.raises(ValueError, match="0/1"):
        average_precision(np.array([0, 2]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="NaN"):
        roc_auc(np.array([0, 1]), np.array([np.nan, 2.0]))


# ---------------------------------------------------------------------------- planted set


BIN = 1000
HALF = 20  # bins each side of the TSS


def planted(seed: int = 0, n_genes: int = 40) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Genes on two chromosomes and both strands, bins of 1 kb over +-20 kb, 1-3 enhancers each."""
    rng = np.random.default_rng(seed)
    genes = pd.DataFrame(
        {
            "gene_id": [f"g{i}" for i in range(n_genes)],
            "chrom": ["chr1" if i % 2 else "chr2" for i in range(n_genes)],
            "tss": 100_000 + 50_000 * np.arange(n_genes) + rng.integers(0, BIN, n_genes),
            "strand": ["+" if i % 3 else "-" for i in range(n_genes)],
        }
    )
    bins = []
    links = []
    for g in genes.itertuples():
        first = (g.tss // BIN - HALF) * BIN
        starts = first + BIN * np.arange(2 * HALF + 1)
        bins.append(
            pd.DataFrame({"gene_id": g.gene_id, "bin_start": starts, "bin_end": starts + BIN})
        )
        for _ in range(rng.integers(1, 4)):
            centre = g.tss + int(rng.normal(0, 6000))
            width = int(rng.integers(200, 1500))
            start = int(np.clip(centre - width // 2, starts[0], starts[-1]))
            links.append((g.gene_id, g.chrom, start, start + width, float(rng.normal())))
    truth = pd.DataFrame(links, columns=["gene_id", "enh_chrom", "enh_start", "enh_end", "effect"])
    return pd.concat(bins, ignore_index=True), truth, genes


def positive_bins(scores: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """Brute-force reference: every (bin, link) pair of a gene, half-open overlap."""
    pairs = scores.reset_index(drop=True).reset_index().merge(truth, on="gene_id")
    hit = (pairs["enh_start"] < pairs["bin_end"]) & (pairs["enh_end"] > pairs["bin_start"])
    out = np.zeros(len(scores), dtype=bool)
    out[pairs.loc[hit, "index"].to_numpy()] = True
    return out


def test_link_recovery_perfect_random_and_distance() -> None:
    bins, truth, genes = planted()
    positive = positive_bins(bins, truth)
    rng = np.random.default_rng(1)
    # perfect evidence: larger |score| on every true bin, either sign (repressive links)
    perfect = bins.assign(
        score=np.where(positive, 1.0 + rng.random(len(bins)), 0.5 * rng.random(len(bins)))
        * rng.choice([-1.0, 1.0], len(bins))
    )
    result = link_recovery(perfect, truth, bin_size=BIN, genes=genes)
    assert result["auprc"] == pytest.approx(1.0)
    assert result["auroc"] == pytest.approx(1.0)
    assert result["n_positive"] == positive.sum()
    assert result["n_bins"] == len(bins)
    assert result["baseline_auprc"] == pytest.approx(positive.mean())
    assert result["n_genes"] == len(genes)
    assert result["n_links"] == len(truth) == result["n_links_covered"]
    # distance-only: enhancers were planted near the TSS, so it beats a random ranking
    tss = genes.set_index("gene_id").loc[bins["gene_id"], "tss"].to_numpy() + 0.5
    distance = -np.abs((bins["bin_start"] + bins["bin_end"]).to_numpy() / 2 - tss)
    assert result["distance_auprc"] == pytest.approx(average_precision_score(positive, distance))
    assert result["distance_auprc"] > 2 * result["baseline_auprc"]
    # random evidence: AUPRC close to the prevalence on average
    random_ap = [
        link_recovery(bins.assign(score=r.normal(size=len(bins))), truth, bin_size=BIN, genes=genes)
        for r in (np.random.default_rng(s) for s in range(20))
    ]
    mean_ap = np.mean([r["auprc"] for r in random_ap])
    assert mean_ap == pytest.approx(positive.mean(), abs=0.03)
    assert np.mean([r["auroc"] for r in random_ap]) == pytest.approx(0.5, abs=0.03)


def test_link_recovery_overlap_rules() -> None:
    genes = pd.DataFrame(
        {
            "gene_id": ["a", "b"],
            "chrom": ["chr1", "chr1"],
            "tss": [5000, 5050],
            "strand": ["+", "-"],
        }
    )
    truth = pd.DataFrame(
        {
            "gene_id": ["a", "a", "b", "a"],
            "enh_chrom": ["chr1", "chr2", "chr1", "chr1"],
            "enh_start": [2000, 3000, 7000, 90_000],
            "enh_end": [2100, 3100, 7100, 90_500],
            "effect": [1.0, 1.0, -1.0, 0.5],
        }
    )
    starts = np.arange(0, 10_000, 1000)
    scores = pd.DataFrame(
        {
            "gene_id": ["a"] * 10 + ["b"] * 10,
            "bin_start": np.r_[starts, starts],
            "score": np.r_[np.arange(10.0), np.arange(10.0)],
        }
    )
    result = link_recovery(scores, truth, bin_size=1000, genes=genes)  # bin_end from bin_size
    # positives: gene a, bin [2000, 3000) only ([3000, 4000) overlaps a chr2 enhancer: no);
    # gene b, bin [7000, 8000); an enhancer ending at 2100 does not reach bin [2100...) of b
    assert result["n_positive"] == 2
    assert result["n_links"] == 4 and result["n_links_covered"] == 2
    assert result["baseline_auprc"] == pytest.approx(0.1)
    y = np.zeros(20, dtype=bool)
    y[[2, 17]] = True
    assert result["auprc"] == pytest.approx(average_precision_score(y, np.r_[starts, starts] / 1e3))
    # touching is not overlapping (half-open): an enhancer [1000, 2000) misses bin [2000, 3000)
    touching = truth.iloc[:1].assign(enh_start=1000, enh_end=2000)
    hit = link_recovery(scores[scores["gene_id"] == "a"], touching, bin_size=1000, genes=genes)
    assert hit["n_positive"] == 1  # bin [1000, 2000) only
    # an explicit chrom column of the scores overrides the gene's chromosome
    on_chr2 = link_recovery(scores.assign(chrom="chr2"), truth, bin_size=1000, genes=genes)
    assert on_chr2["n_positive"] == 1


def test_link_recovery_bad_input() -> None:
    bins, truth, genes = planted(n_genes=3)
    scored = bins.assign(score=1.0)
    with pytest.raises(InputError, match="not in genes"):
        link_recovery(scored, truth, bin_size=BIN, genes=genes.iloc[1:])
    with pytest.raises(InputError, match="bin_size"):
        link_recovery(scored, truth, bin_size=BIN // 2, genes=genes)
    with pytest.raises(InputError, match="more than once"):
        link_recovery(pd.concat([scored, scored.iloc[:1]]), truth, bin_size=BIN, genes=genes)
    with pytest.raises(InputError, match="lacks column"):
        link_recovery(scored.drop(columns="score"), truth, bin_size=BIN, genes=genes)
    nan = scored.assign(score=np.where(np.arange(len(scored)) == 0, np.nan, 1.0))
    with pytest.raises(InputError, match="NaN score"):
        link_recovery(nan, truth, bin_size=BIN, genes=genes)
    zero = link_recovery(nan, truth, bin_size=BIN, genes=genes, nan_score="zero")
    assert zero["n_bins"] == len(scored)


# ------------------------------------------------------------------------------ BEDPE reader


def bedpe_rows() -> pd.DataFrame:
    """Two links as chromexpr simulate writes them: enhancer upstream (first) and downstream."""
    return pd.DataFrame(
        {
            "chrom1": ["chr1", "chr2"],
            "start1": [1000, 5000],
            "end1": [1400, 5001],
            "chrom2": ["chr1", "chr2"],
            "start2": [3000, 8000],
            "end2": [3001, 8600],
            "name": ["A|chr1:1000-1400", "B|chr2:8000-8600"],
            "score": [0.3, 0.1],
            "strand1": [".", "-"],
            "strand2": ["+", "."],
            "gene_id": ["ENSG1", "ENSG2"],
            "gene_name": ["A", "B"],
            "effect": [0.8, -0.4],
            "distance": [-1800, -3200],
        }
    )


def test_read_truth_links(tmp_path: Path) -> None:
    path = tmp_path / "links.bedpe"
    write_bedpe(path, bedpe_rows())
    links = read_truth_links(path)
    assert list(links.columns) == TRUTH_LINK_COLUMNS
    assert links["enh_chrom"].tolist() == ["chr1", "chr2"]
    assert links["enh_start"].tolist() == [1000, 8000]
    assert links["enh_end"].tolist() == [1400, 8600]
    assert links["tss"].tolist() == [3000, 5000]
    assert links["strand"].tolist() == ["+", "-"]
    assert links["effect"].tolist() == [0.8, -0.4]
    assert links["distance"].tolist() == [-1800, -3200]
    gz = tmp_path / "links.bedpe.gz"
    write_bedpe(gz, bedpe_rows())
    pd.testing.assert_frame_equal(read_truth_links(gz), links)


def test_read_truth_links_ambiguous_ends(tmp_path: Path) -> None:
    rows = bedpe_rows()
    rows.loc[0, "end1"] = 1001  # a 1-bp enhancer, both ends unstranded: cannot tell
    rows.loc[0, "strand2"] = "."
    path = tmp_path / "links.bedpe"
    write_bedpe(path, rows)
    with pytest.raises(InputError, match=r"links.bedpe:2: cannot tell which end"):
        read_truth_links(path)
    genes = pd.DataFrame(
        {"gene_id": ["ENSG1", "ENSG2"], "chrom": ["chr1", "chr2"], "tss": [3000, 5000]}
    )
    links = read_truth_links(path, genes=genes)
    assert links["enh_start"].tolist() == [1000, 8000] and links["tss"].tolist() == [3000, 5000]
    rows.loc[0, "strand2"] = "+"  # the strand decides
    write_bedpe(path, rows)
    assert read_truth_links(path)["enh_end"].tolist() == [1001, 8600]


def test_read_truth_links_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "plain.bedpe"
    path.write_text("chr1\t0\t10\tchr1\t20\t21\n")
    with pytest.raises(InputError, match="header"):
        read_truth_links(path)
    path.write_text("#" + "\t".join(BEDPE_COLUMNS[:6]) + "\n")
    with pytest.raises(InputError, match="missing column"):
        read_truth_links(path)
    rows = bedpe_rows()
    rows["start1"] = rows["start1"].astype(object)
    rows.loc[1, "start1"] = "x"
    write_bedpe(path, rows)
    with pytest.raises(InputError, match=r"plain.bedpe:3: start1"):
        read_truth_links(path)
    with pytest.raises(InputError, match="cannot read"):
        read_truth_links(tmp_path / "absent.bedpe")
    with gzip.open(tmp_path / "empty.bedpe.gz", "wt") as handle:
        handle.write("#" + "\t".join(BEDPE_COLUMNS) + "\n")
    assert len(read_truth_links(tmp_path / "empty.bedpe.gz")) == 0
