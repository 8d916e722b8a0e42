"""``--peak-value``: column 7 is a signal only in narrowPeak/broadPeak files.

The real TOBIAS annotated peaks (15 columns, column 7 = the nearest gene's start) are the trap: read
as a signal they gave peak "signals" of up to 1.9e8.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from chromexpr.errors import InputError
from chromexpr.io.peaks import read_peaks, resolve_peak_value

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
TOBIAS = FIXTURES / "TOBIAS_Bcell_Tcell_ATAC_chr4_first400_annotated_peaks.bed"
NARROW = FIXTURES / "signal_narrow.narrowPeak"


def test_auto_reads_a_plain_bed_as_presence_and_narrowpeak_as_signal(tmp_path: Path) -> None:
    assert resolve_peak_value(TOBIAS, "auto") == "presence"
    assert resolve_peak_value(NARROW, "auto") == "signal"
    assert resolve_peak_value(FIXTURES / "signal_broad.broadPeak.gz", "auto") == "signal"
    piped = tmp_path / "stdin"  # no telling name: recognised from its columns
    piped.write_bytes(NARROW.read_bytes())
    assert resolve_peak_value(piped, "auto") == "signal"
    bed9 = tmp_path / "stdin9"
    bed9.write_text("chr1\t10\t50\tp\t0\t+\t10\t50\t255,0,0\n")
    assert resolve_peak_value(bed9, "auto") == "presence"
    assert resolve_peak_value(TOBIAS, "score") == "score"


def test_tobias_peaks_default_is_presence_not_gene_coordinates() -> None:
    track = read_peaks(TOBIAS)
    explicit = read_peaks(TOBIAS, value="presence")
    assert track.chroms == explicit.chroms == ["chr4"]
    np.testing.assert_array_equal(track.starts, explicit.starts)
    np.testing.assert_array_equal(track.values, explicit.values)
    values = track.values
    # peaks overlap at most a few deep here: presence counts, never a coordinate
    assert values.max() <= 5 and values.min() >= 1


def test_explicit_signal_on_bed_warns_and_na_suggests_presence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The real file's line 84 has ``NA`` in column 7 (a peak without a nearest gene)."""
    with (
        caplog.at_level(logging.WARNING, logger="chromexpr"),
        pytest.raises(
            InputError,
            match=r"first400_annotated_peaks.bed:84: .*'NA'.*use --peak-value presence",
        ),
    ):
        read_peaks(TOBIAS, value="signal")
    assert "thickStart" in caplog.text


def test_explicit_signal_reads_column_7(tmp_path: Path) -> None:
    bed = tmp_path / "peaks.bed"
    bed.write_text("chr1\t10\t50\tp1\t0\t.\t5.5\nchr1\t60\t90\tp2\t0\t.\t2.0\n")
    assert read_peaks(bed, value="signal").values.tolist() == [5.5, 2.0]
    assert read_peaks(bed).values.tolist() == [1.0, 1.0]


def test_bin_cli_default_on_tobias_is_presence(cli, helpers, tmp_path: Path) -> None:
    out = tmp_path / "ds.zarr"
    genes = FIXTURES / "TOBIAS_genes_chr4_first200.hg38.gtf"
    cli("bin", genes, TOBIAS, "-o", out, "--flank", 20_000, "--bin-size", 1000, "-q")
    _, _, values = helpers.dataset_rows(out)
    assert values.max() <= 5 and values.max() > 0
