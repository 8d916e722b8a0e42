"""Match chromosome names between the annotation and a signal.

For example ``chr1`` vs ``1``, ``chrM`` vs ``MT``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from chromexpr.errors import InputError
from chromexpr.naming import natural_sorted


def alternative_name(chrom: str) -> str:
    """The other naming convention's name for ``chrom`` (UCSC <-> Ensembl).

    Examples
    --------
    >>> [alternative_name(c) for c in ["chr1", "1", "chrM", "MT", "chrX"]]
    ['1', 'chr1', 'MT', 'chrM', 'X']
    """
    if chrom.startswith("chr"):
        bare = chrom[3:]
        return "MT" if bare == "M" else bare
    return "chrM" if chrom == "MT" else "chr" + chrom


@dataclass(frozen=True)
class ChromMatch:
    """How a signal's chromosome names map onto the annotation's.

    Attributes
    ----------
    mapping
        Signal name -> annotation name, for every renamed chromosome (identity names are not
        listed).
    renamed
        ``(signal name, annotation name)`` pairs renamed automatically (to report in a warning).
    """

    mapping: dict[str, str]
    renamed: list[tuple[str, str]]


def _preview(names: Collection[str], n: int = 6) -> str:
    ordered = natural_sorted(names)
    head = ", ".join(ordered[:n])
    return head + (f", ... ({len(ordered)} in all)" if len(ordered) > n else "")


def match_chroms(
    gene_chroms: Collection[str],
    signal_chroms: Collection[str],
    *,
    alias: Mapping[str, str] | None = None,
    source: str = "signal",
) -> ChromMatch:
    """Map signal chromosome names onto annotation names.

    With ``alias`` (from ``--chrom-alias``), it is applied as given. Otherwise, a signal chromosome
    absent from the annotation is renamed to its other-convention name when that name is in the
    annotation and not already used by the signal (so the mapping stays one-to-one).

    Raises
    ------
    InputError
        No chromosome in common after matching; the message lists both naming sets.
    """
    genes = set(gene_chroms)
    signal = set(signal_chroms)
    mapping: dict[str, str] = {}
    renamed: list[tuple[str, str]] = []
    if alias:
        mapping = {s: alias[s] for s in signal if s in alias and alias[s] != s}
    else:
        for chrom in signal - genes:
            other = alternative_name(chrom)
            if other in genes and other not in signal:
                mapping[chrom] = other
                renamed.append((chrom, other))
    matched = {mapping.get(c, c) for c in signal}
    if not matched & genes:
        raise InputError(
            f"no chromosome in common between the annotation ({_preview(genes)}) and {source} "
            f"({_preview(signal)})",
            fix=(
                "use the same assembly/naming, or give --chrom-alias FILE"
                " (two columns: signal name, annotation name)"
            ),
        )
    return ChromMatch(mapping=mapping, renamed=sorted(renamed))
