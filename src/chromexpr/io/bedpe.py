"""The BEDPE layout shared by chromexpr's link files (simulated truth, attribution links)."""

from __future__ import annotations

__all__ = ["BEDPE_STANDARD_COLUMNS"]

#: The 10 standard BEDPE columns (bedtools' ``pairToBed`` / ``pairToPair`` layout), 0-based
#: half-open; a chromexpr link file adds its own named columns after them.
BEDPE_STANDARD_COLUMNS = [
    "chrom1",
    "start1",
    "end1",
    "chrom2",
    "start2",
    "end2",
    "name",
    "score",
    "strand1",
    "strand2",
]
