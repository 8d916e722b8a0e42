"""The real erythroid set (../shared/data/erythroid) made into chromexpr inputs, for benchmarks.

From the files as shipped (hg19; 12 blood populations; see that folder's README):

* ``tss.bed``: the TSS BED, unzipped;
* ``accessibility.counts.tsv``: the ATAC count matrix without its ``region_id`` column (``chrom
  start end`` then one column per population: the layout ``chromexpr bin`` reads);
* ``expression.tsv``: RNA read counts as counts per million of each population (``gene_id,
  gene_name``, then populations), which ``chromexpr train`` log2(x + 1)-transforms;
* ``dataset.zarr``: ``chromexpr bin tss.bed accessibility.counts.tsv`` (TSS +/- 1 Mb, 1-kb bins).

Everything is written once under ``benchmarks/work/erythroid`` (ignored by git) and reused.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "erythroid"
WORK = ROOT / "benchmarks" / "work" / "erythroid"

__all__ = ["SHARED", "WORK", "prepare"]


def prepare(work: Path = WORK, shared: Path = SHARED) -> Path | None:
    """Write the inputs and the binned dataset into ``work`` (once); ``None`` without the data."""
    if not (shared / "accessibility.tsv.gz").is_file():
        print(f"no erythroid data at {shared}: skipped", file=sys.stderr)
        return None
    work.mkdir(parents=True, exist_ok=True)
    tss = work / "tss.bed"
    if not tss.is_file():
        with gzip.open(shared / "tss.bed.gz", "rt") as handle:
            tss.write_text(handle.read())
    counts = work / "accessibility.counts.tsv"
    if not counts.is_file():
        table = pd.read_csv(shared / "accessibility.tsv.gz", sep="\t")
        table.drop(columns=["region_id"]).to_csv(counts, sep="\t", index=False)
    expression = work / "expression.tsv"
    if not expression.is_file():
        raw = pd.read_csv(shared / "expression.tsv.gz", sep="\t")
        samples = [c for c in raw.columns if c not in ("gene_id", "gene_name")]
        cpm = raw[samples] * 1e6 / raw[samples].sum(axis=0)
        out = pd.concat([raw[["gene_id", "gene_name"]], cpm], axis=1)
        out.to_csv(expression, sep="\t", index=False, float_format="%.4g")
    dataset = work / "dataset.zarr"
    if not dataset.exists():
        subprocess.run(
            [sys.executable, "-m", "chromexpr", "bin", str(tss), str(counts), "-o", str(dataset)],
            check=True,
        )
    return work
