"""Gene identifiers and chromosome names: version suffixes, primary assembly, natural order."""

from __future__ import annotations

import re
from collections.abc import Iterable

_VERSION = re.compile(r"^(ENS[A-Z]*[GTP]\d{6,})\.\d+(_PAR_Y)?$")
_PRIMARY = re.compile(r"^(chr)?([1-9]|1\d|2[0-2]|X|Y)$")
_NATURAL = re.compile(r"(\d+)")


def strip_version(gene_id: str) -> str:
    """Drop an Ensembl version suffix (``ENSG00000141510.17`` -> ``ENSG00000141510``).

    GENCODE's pseudo-autosomal copies keep a suffix (``ENSG00000182378.14_PAR_Y`` ->
    ``ENSG00000182378_PAR_Y``) so they stay distinct from the chrX gene. Other ids are returned
    unchanged.

    Examples
    --------
    >>> strip_version("ENSG00000141510.17")
    'ENSG00000141510'
    >>> strip_version("ENSG00000182378.14_PAR_Y")
    'ENSG00000182378_PAR_Y'
    >>> strip_version("TP53")
    'TP53'
    """
    match = _VERSION.match(gene_id)
    if match is None:
        return gene_id
    return match.group(1) + (match.group(2) or "")


def is_primary_chrom(chrom: str) -> bool:
    """Whether ``chrom`` is one of chr1-22, X, Y (with or without the ``chr`` prefix).

    Examples
    --------
    >>> [is_primary_chrom(c) for c in ["chr1", "22", "chrX", "chrM", "chr1_KI270706v1_random"]]
    [True, True, True, False, False]
    """
    return _PRIMARY.match(chrom) is not None


def natural_key(chrom: str) -> tuple[object, ...]:
    """Sort key that orders chr2 before chr10 and X, Y after the autosomes.

    Examples
    --------
    >>> sorted(["chr10", "chrX", "chr2", "chr1"], key=natural_key)
    ['chr1', 'chr2', 'chr10', 'chrX']
    """
    body = chrom[3:] if chrom.lower().startswith("chr") else chrom
    parts = _NATURAL.split(body)
    key: list[object] = [0 if body[:1].isdigit() else 1]
    for part in parts:
        if part.isdigit():
            key.append((0, int(part), ""))
        elif part:
            key.append((1, 0, part))
    return tuple(key)


def natural_sorted(chroms: Iterable[str]) -> list[str]:
    """Chromosome names in natural order (see :func:`natural_key`)."""
    return sorted(set(chroms), key=natural_key)
