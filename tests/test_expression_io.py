"""Expression matrices: both layouts, id/name matching, bad inputs as one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexpr.errors import InputError
from chromexpr.io.expression import (
    match_expression,
    read_expression,
    read_long_table,
    write_expression_table,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_plain_layout(tmp_path: Path) -> None:
    p = _write(tmp_path / "e.tsv", "gene\tA\tB\nENSG00000000001\t1\t2.5\nENSG00000000002\t0\t3\n")
    t = read_expression(p)
    assert t.layout == "plain"
    assert t.samples == ["A", "B"]
    assert t.gene_names.tolist() == t.gene_ids.tolist()
    np.testing.assert_array_equal(t.values, [[1.0, 2.5], [0.0, 3.0]])


def test_nfcore_layout_and_gzip(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"gene_id": ["ENSG00000000001.4"], "gene_name": ["TP53"], "s1": [1.25], "s2": [0.0]}
    )
    p = tmp_path / "salmon.merged.gene_tpm.tsv.gz"
    frame.to_csv(p, sep="\t", index=False, compression="gzip")
    t = read_expression(p)
    assert t.layout == "nf-core"
    assert t.gene_names.tolist() == ["TP53"]
    assert t.samples == ["s1", "s2"]


def test_match_by_id_ignoring_versions_then_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = _write(
        tmp_path / "e.tsv",
        "gene_id\tgene_name\tS1\tS2\tX\n"
        "ENSG00000000001.7\tA\t1\t2\t0\n"
        "OTHER01\tB\t3\t4\t0\n"
        "ENSG00000000009.1\tZ\t5\t6\t0\n",
    )
    t = read_expression(p)
    caplog.set_level(logging.WARNING, logger="chromexpr")
    m = match_expression(
        t,
        ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003"],
        ["A", "B", "C"],
        ["S2", "S1", "Y"],
    )
    assert m.gene_index.tolist() == [0, 1]
    assert m.samples == ["S1", "S2"]
    assert m.sample_position.tolist() == [1, 0]
    np.testing.assert_array_equal(m.values, [[1, 2], [3, 4]])
    assert m.n_by_name == 1
    assert m.unmatched_genes == ["ENSG00000000009.1"]
    assert m.unmatched_samples == ["X"]
    assert m.dataset_only_samples == ["Y"]
    assert "by gene name" in caplog.text
    summary = m.summary()
    assert "2 of 3 dataset genes matched (1 by name)" in summary
    assert "without expression: Y" in summary


def test_ambiguous_names_are_not_matched(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "e.tsv", "gene_id\tgene_name\tS\nX1\tA\t1\nX2\tA\t2\nENSG00000000002\tQ\t3\n"
    )
    m = match_expression(
        read_expression(p), ["ENSG00000000001", "ENSG00000000002"], ["A", "B"], ["S"]
    )
    assert m.gene_index.tolist() == [1]
    assert m.n_by_name == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gene_id\tA\nENSG00000000001\tNaN\n", r"bad\.tsv:2: value 'NaN'"),
        ("gene_id\tA\tB\nENSG00000000001\t1\t\n", "empty value"),
        ("gene_id\tA\nENSG00000000001\tabc\n", "not a finite number"),
        ("gene_id\tA\tA\nENSG00000000001\t1\t2\n", "appears twice"),
        ("gene_id\n", "at least one sample column"),
        ("gene_id\tA\n", "no genes"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    p = _write(tmp_path / "bad.tsv", text)
    with pytest.raises(InputError, match=message) as info:
        read_expression(p)
    assert "\n" not in str(info.value)
    assert str(p) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_expression(tmp_path / "nope.tsv")


def test_no_overlap_is_an_error(tmp_path: Path) -> None:
    p = _write(tmp_path / "e.tsv", "gene_id\tS1\nENSG00000000001\t1\n")
    t = read_expression(p)
    with pytest.raises(InputError, match="no gene of the expression file"):
        match_expression(t, ["ENSG00000000005"], ["B"], ["S1"])
    with pytest.raises(InputError, match="no sample of the expression file"):
        match_expression(t, ["ENSG00000000001"], ["A"], ["S9"])


def test_write_round_trip(tmp_path: Path) -> None:
    values = np.array([[1.5, 0.0], [2.0, 1e-7]])
    out = write_expression_table(tmp_path / "p.tsv", ["g1", "g2"], ["A", "B"], ["s1", "s2"], values)
    t = read_expression(out)
    assert t.layout == "nf-core"
    np.testing.assert_allclose(t.values, values, rtol=1e-5)
    with pytest.raises(Exception, match="exists"):
        write_expression_table(out, ["g1", "g2"], ["A", "B"], ["s1", "s2"], values)
    frame = read_long_table(out)
    assert frame["gene_id"].tolist() == ["g1", "g2"]
