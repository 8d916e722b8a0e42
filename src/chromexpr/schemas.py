"""Column names and coordinate conventions, defined once.

All intervals in chromexpr are **0-based, half-open** ``[start, end)`` as in BED. Strands are
``"+"`` or ``"-"``. A TSS is a 1-bp interval ``[tss, tss + 1)``.
"""

from __future__ import annotations

CHROM = "chrom"
START = "start"
END = "end"
NAME = "name"
SCORE = "score"
STRAND = "strand"
GENE_ID = "gene_id"
GENE_NAME = "gene_name"
GENE_TYPE = "gene_type"
TRANSCRIPT_ID = "transcript_id"

#: Columns of a TSS table (BED6 + gene_name + gene_type), in file order.
TSS_COLUMNS = [CHROM, START, END, NAME, SCORE, STRAND, GENE_NAME, GENE_TYPE]

#: Columns of a sample sheet.
SAMPLE = "sample"
PATH = "path"
GROUP = "group"
