"""``chromexpr evaluate-links``: links scored against CRISPRi pairs (scikit-learn as the oracle)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from chromexpr.errors import InputError
from chromexpr.evaluate.crispr import (
    bootstrap_difference,
    evaluate_links,
    precision_at_recall,
    score_pairs,
)
from chromexpr.evaluate.links import average_precision
from chromexpr.io.crispr_files import read_crispr_table, read_links_bedpe

CRISPR = "EPCrisprBenchmark_K562.GRCh38.chr22.tsv.gz"


def _links(pairs: pd.DataFrame, score: np.ndarray, *, width: int = 1000) -> pd.DataFrame:
    """One bin per pair covering the element's centre (the frame read_links_bedpe returns)."""
    centre = ((pairs["start"] + pairs["end"]) // 2).to_numpy(np.int64)
    start = (centre // width) * width
    return pd.DataFrame(
        {
            "gene_id": pairs["gene_id"].to_numpy(),
            "gene_name": pairs["gene_name"].to_numpy(),
            "chrom": pairs["chrom"].to_numpy(),
            "tss": pairs["tss"].to_numpy(np.int64),
            "bin_start": start,
            "bin_end": start + width,
            "score": score,
        }
    ).drop_duplicates(["gene_id", "chrom", "bin_start"])


def _write_bedpe(links: pd.DataFrame, path: Path, *, raw_column: str | None = None) -> None:
    """A links.bedpe in chromexpr's layout (TSS anchor and bin anchor, lower coordinate first)."""
    tss_first = links["tss"].to_numpy() < links["bin_start"].to_numpy()
    tss = links["tss"].to_numpy(np.int64)
    frame = pd.DataFrame(
        {
            "chrom1": links["chrom"],
            "start1": np.where(tss_first, tss, links["bin_start"]),
            "end1": np.where(tss_first, tss + 1, links["bin_end"]),
            "chrom2": links["chrom"],
            "start2": np.where(tss_first, links["bin_start"], tss),
            "end2": np.where(tss_first, links["bin_end"], tss + 1),
            "name": links["gene_name"],
            "score": np.round(links["score"] * 1000).astype(int) if raw_column else links["score"],
            "strand1": ".",
            "strand2": ".",
            "gene_id": links["gene_id"],
            "gene_name": links["gene_name"],
            "tss": tss,
        }
    )
    if raw_column:
        frame[raw_column] = links["score"].to_numpy()
    with path.open("w") as handle:
        handle.write("#" + "\t".join(frame.columns) + "\n")
        frame.to_csv(handle, sep="\t", index=False, header=False, float_format="%.10g")


@pytest.fixture
def pairs(fixtures: Path) -> pd.DataFrame:
    return read_crispr_table(fixtures / CRISPR)[0]


def test_reads_the_grch38_file_as_shipped(fixtures: Path) -> None:
    table, layout = read_crispr_table(fixtures / CRISPR)
    assert layout == "EPCrisprBenchmark (GRCh38)"
    assert len(table) == 99
    assert int(table["regulated"].sum()) == 7
    assert table["valid"].all()
    assert (table["chrom"] == "chr22").all()
    first = table.iloc[0]
    assert first["gene_id"].startswith("ENSG")
    assert first["end"] > first["start"]


def test_reads_the_hg19_lift_columns(tmp_path: Path) -> None:
    path = tmp_path / "hg19.tsv"
    path.write_text(
        "dataset\treference\tcell_type\tgene\tgene_ensembl\tchrom\tchromStart\tchromEnd\ttss\t"
        "regulated\tsignificant\teffect_size\tpadj\tvalid\tpower_es25\n"
        "D\tR\tK562\tGATA1\tENSG00000102145\tchrX\t48780000\t48780500\t48786589.0\tTrue\tTrue\t"
        "-0.5\t0.001\tTrue\t0.9\n"
        "D\tR\tK562\tGATA1\tENSG00000102145\tchrX\t48700000\t48700500\t48786589.0\tFalse\tFalse\t"
        "0.01\t0.9\tFalse\t0.9\n"
    )
    table, layout = read_crispr_table(path)
    assert layout == "EPCrisprBenchmark (hg19 lift)"
    assert table["tss"].tolist() == [48786589, 48786589]
    assert table["regulated"].tolist() == [True, False]
    assert table["valid"].tolist() == [True, False]


def test_bad_crispr_tables_name_file_and_line(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("chrom\tstart\tend\nchr1\t1\t2\n")
    with pytest.raises(InputError, match=r"wrong\.tsv:1: not an EPCrisprBenchmark table"):
        read_crispr_table(wrong)
    bad = tmp_path / "bad.tsv"
    bad.write_text(
        "gene\tgene_ensembl\tchrom\tchromStart\tchromEnd\ttss\tregulated\tvalid\tdataset\n"
        "A\tENSG1\tchr1\t100\t200\t50\tTrue\tTrue\tD\n"
        "A\tENSG1\tchr1\t100\t200\t50\tmaybe\tTrue\tD\n"
    )
    with pytest.raises(InputError, match=r"bad\.tsv:3: regulated is 'maybe'"):
        read_crispr_table(bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_and_precision_at_recall_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(500) < 0.1
    score = np.round(rng.random(500) + y * 0.3, 1)  # rounding makes ties
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score), 1e-12)
    precision, recall, _ = precision_recall_curve(y, score)
    # scikit-learn lists thresholds ascending; the highest threshold reaching 70 % recall is the
    # last point whose recall is still >= 0.7
    expected = precision[np.flatnonzero(recall >= 0.7)[-1]]
    assert precision_at_recall(y, score, 0.7) == pytest.approx(expected, 1e-12)


def test_pair_score_is_the_max_over_overlapping_bins_and_zero_elsewhere() -> None:
    pairs = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr1", "chr1"],
            "start": [1500, 5000, 1500, 9000],
            "end": [2500, 5400, 2500, 9100],
            "gene_name": ["A", "A", "B", "A"],
            "gene_id": ["ENSG00000000001.3", "ENSG00000000001", "", "ENSG00000000001"],
            "tss": [0, 0, 0, 2_000_000],
            "regulated": [True, False, False, True],
            "valid": [True, True, True, True],
            "dataset": "d",
        }
    )
    links = pd.DataFrame(
        {
            "gene_id": ["ENSG00000000001"] * 3 + ["ENSG00000000002"],
            "gene_name": ["A", "A", "A", "B"],
            "chrom": ["1", "1", "1", "1"],  # no "chr": still the same chromosome
            "bin_start": [1000, 2000, 2500, 1000],
            "bin_end": [2000, 3000, 3500, 2000],
            "score": [0.2, 0.7, 0.9, 0.4],
        }
    )
    table, counts = score_pairs(pairs, {"m": links}, max_distance=1_000_000)
    # pair 1: bins [1000,2000) and [2000,3000) overlap [1500,2500); [2500,3500) does not
    # pair 2: no bin; pair 3: gene B by name (no id); pair 4: beyond 1 Mb, dropped
    assert table["m"].tolist() == [0.7, 0.0, 0.4]
    assert table["distance"].tolist() == [1999.5, 5199.5, 1999.5]
    assert counts == {
        "n_rows": 4,
        "n_valid": 4,
        "n_in_range": 3,
        "n_gene_scored": 3,
        "n_matched_by_id": 2,
    }


def test_perfect_links_give_one_and_beat_distance(pairs: pd.DataFrame) -> None:
    links = _links(pairs, np.where(pairs["regulated"], 1.0, 0.5))
    result = evaluate_links(pairs, {"perfect": links}, n_boot=200, seed=3)
    m = result.metrics.set_index("predictor")
    assert m.loc["perfect", "auprc"] == 1.0
    assert m.loc["perfect", "precision_at_recall"] == 1.0
    y = result.pairs["regulated"].to_numpy()
    assert m.loc["distance", "auprc"] == pytest.approx(
        average_precision_score(y, -result.pairs["distance"].to_numpy()), 1e-12
    )
    assert m.loc["perfect", "ci_low"] > 0
    assert m.loc["perfect", "ci_low"] <= m.loc["perfect", "auprc_minus_distance"]


def test_random_links_give_the_positive_rate() -> None:
    n, rate = 20_000, 0.05
    rng = np.random.default_rng(11)
    pairs = pd.DataFrame(
        {
            "chrom": "chr1",
            "start": np.arange(n, dtype=np.int64) * 2000 + 10_000,
            "end": np.arange(n, dtype=np.int64) * 2000 + 10_500,
            "gene_name": [f"G{i // 10}" for i in range(n)],
            "gene_id": [f"ENSG{i // 10:011d}" for i in range(n)],
            "tss": np.arange(n, dtype=np.int64) * 2000,
            "regulated": rng.random(n) < rate,
            "valid": True,
            "dataset": "synthetic",
        }
    )
    links = _links(pairs, rng.random(n))
    result = evaluate_links(pairs, {"random": links}, n_boot=0)
    got = float(result.metrics.set_index("predictor").loc["random", "auprc"])
    p = float(pairs["regulated"].mean())
    n_pos = int(pairs["regulated"].sum())
    # a random ranking's AP averages the precision at each positive's rank; its standard error is
    # about sqrt(p (1 - p) / n_pos) times a small factor: 5 of those is a loose but failing bound
    assert abs(got - p) < 5 * math.sqrt(p * (1 - p) / n_pos)


def test_bootstrap_interval_is_reproducible_and_brackets_the_difference() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(400) < 0.2
    a = y + rng.normal(0, 0.8, 400)
    b = rng.random(400)
    first = bootstrap_difference(y, a, b, n_boot=300, seed=9)
    assert first == bootstrap_difference(y, a, b, n_boot=300, seed=9)
    diff, lo, hi = first
    assert diff == pytest.approx(average_precision_score(y, a) - average_precision_score(y, b))
    assert lo < diff < hi
    assert lo > 0  # a carries the signal, b none


def test_links_with_negative_scores_are_refused(pairs: pd.DataFrame) -> None:
    links = _links(pairs, np.linspace(-1, 1, len(pairs)))
    with pytest.raises(InputError, match="below the fill value"):
        evaluate_links(pairs, {"signed": links}, n_boot=0)


def test_cli_writes_metrics_pairs_figure_and_provenance(
    cli, fixtures: Path, pairs: pd.DataFrame, tmp_path: Path
) -> None:
    rng = np.random.default_rng(2)
    good = _links(pairs, np.where(pairs["regulated"], 0.9, 0.1) + rng.random(len(pairs)) * 0.5)
    noise = _links(pairs, rng.random(len(pairs)))
    _write_bedpe(good, tmp_path / "good.bedpe", raw_column="link_score")
    _write_bedpe(noise, tmp_path / "noise.bedpe")
    out = tmp_path / "eval"
    cli(
        "evaluate-links",
        tmp_path / "good.bedpe",
        fixtures / CRISPR,
        "-o",
        out,
        "--name",
        "good",
        "--compare",
        f"noise={tmp_path / 'noise.bedpe'}",
        "--bootstrap",
        "100",
        "--quiet",
    )
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t").set_index("predictor")
    assert list(metrics.index) == ["good", "noise", "distance"]
    table = pd.read_csv(out / "pairs.tsv", sep="\t")
    assert len(table) == 99 and int(table["regulated"].sum()) == 7
    y = table["regulated"].to_numpy()
    for name in ("good", "noise"):
        assert metrics.loc[name, "auprc"] == pytest.approx(
            average_precision_score(y, table[name]), abs=1e-6
        )
    assert (out / "pr_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((out / "evaluate_links.json").read_text())
    assert meta["score_columns"] == {"good": "link_score", "noise": "score"}
    assert meta["counts"]["n_gene_scored"] == 99
    assert meta["provenance"]["step"] == "evaluate-links"
    assert len(meta["provenance"]["inputs"]) == 3
    again = cli("evaluate-links", tmp_path / "good.bedpe", fixtures / CRISPR, "-o", out, expect=2)
    assert "exists" in again.stderr


def test_cli_bad_links_is_one_line(cli, fixtures: Path, tmp_path: Path) -> None:
    links = tmp_path / "links.bedpe"
    links.write_text("chr1\t1\t2\tchr1\t5\t6\n")
    result = cli("evaluate-links", links, fixtures / CRISPR, "-o", tmp_path / "o", expect=2)
    assert "no '#' header line" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_read_links_bedpe_finds_the_bin_end(tmp_path: Path, pairs: pd.DataFrame) -> None:
    links = _links(pairs.iloc[:5], np.arange(5) / 10.0)
    _write_bedpe(links, tmp_path / "l.bedpe")
    back = read_links_bedpe(tmp_path / "l.bedpe")
    assert back["bin_start"].tolist() == links["bin_start"].tolist()
    assert back["score"].tolist() == pytest.approx(links["score"].tolist())
    assert back.attrs["score_column"] == "score"
