"""Measured contact frequencies (Hi-C, Micro-C) between each gene's TSS and its window's bins.

Reads ``.cool`` and ``.mcool`` files with ``cooler`` (``pip install cooler``): a ``.mcool`` path may
name its resolution (``file.mcool::resolutions/5000``); without one, the finest resolution at least
the dataset's bin size is used (else the coarsest). Contacts are balanced (the ``weight`` column)
when the file has weights, raw counts otherwise.

For each gene the row of the contact map at the TSS's map bin is read over the gene's window;
each of the gene's bins takes the value of the map bin holding its middle base. As ABC does, the
TSS's own map bin (the diagonal, dominated by self-ligation) is replaced by the larger of its two
neighbours. Each gene's row is then scaled so that its sum over the bins with a value equals the
power-law contact's sum over the same bins: the link score is normalised per gene, so only the
shape within a gene matters, and bins without a value (NaN: unbalanced, outside the map) can be
filled by the power law on the same scale. Coordinates are 0-based, half-open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from chromexpr.errors import InputError

__all__ = ["open_contact_map", "read_contacts"]


def open_contact_map(path: str | Path, *, bin_size: int) -> Any:
    """Open a ``.cool`` / ``.mcool`` (``::resolutions/N`` optional) as a ``cooler.Cooler``."""
    try:
        import cooler
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError(
            "reading contact maps needs the 'cooler' package", fix="pip install cooler"
        ) from exc
    text = str(path)
    file_part = text.split("::", 1)[0]
    if not Path(file_part).is_file():
        raise InputError("contact map not found", path=file_part)
    uri = text
    try:
        if "::" not in text and cooler.fileops.is_multires_file(file_part):
            groups = cooler.fileops.list_coolers(file_part)
            resolutions = sorted(int(g.rstrip("/").rsplit("/", 1)[-1]) for g in groups)
            at_least = [r for r in resolutions if r >= bin_size]
            chosen = at_least[0] if at_least else resolutions[-1]
            uri = f"{file_part}::resolutions/{chosen}"
        return cooler.Cooler(uri)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"not a readable .cool/.mcool ({exc})", path=text) from exc


def _chrom_name(clr: Any, chrom: str) -> str | None:
    names = set(clr.chromnames)
    for candidate in (chrom, chrom.removeprefix("chr"), "chr" + chrom):
        if candidate in names:
            return candidate
    return None


def read_contacts(
    contact_map: Any,
    chrom: str,
    tss: np.ndarray,
    midpoints: np.ndarray,
    *,
    power_law: np.ndarray,
) -> np.ndarray:
    """Contacts between each gene's TSS and each of its bins, on the power law's per-gene scale.

    Parameters
    ----------
    contact_map
        A ``cooler.Cooler`` (:func:`open_contact_map`).
    chrom
        The genes' chromosome (``chr`` prefix added or dropped to match the map).
    tss
        ``(n_genes,)`` 0-based TSS positions.
    midpoints
        ``(n_genes, n_bins)`` middle base of each bin.
    power_law
        ``(n_genes, n_bins)`` the power-law contact of the same bins (sets each gene's scale).

    Returns
    -------
    numpy.ndarray
        float64 ``(n_genes, n_bins)``; NaN where the map has no value (chromosome absent, bin
        outside it, unbalanced map bin).
    """
    tss = np.asarray(tss, dtype=np.int64)
    mids = np.asarray(midpoints, dtype=np.int64)
    out = np.full(mids.shape, np.nan)
    name = _chrom_name(contact_map, chrom)
    if name is None or tss.size == 0:
        return out
    size = int(contact_map.chromsizes[name])
    res = int(contact_map.binsize)
    balance = "weight" in contact_map.bins().columns
    matrix = contact_map.matrix(balance=balance, sparse=False)
    offset = int(contact_map.offset(name))
    n_map = -(-size // res)
    for g in range(tss.size):
        if not 0 <= tss[g] < size:
            continue
        inside = (mids[g] >= 0) & (mids[g] < size)
        if not inside.any():
            continue
        lo = int(mids[g][inside].min()) // res
        hi = int(mids[g][inside].max()) // res + 1
        t = int(tss[g]) // res
        lo, hi = min(lo, t), max(hi, t + 1)
        row = np.asarray(
            matrix[offset + t : offset + t + 1, offset + lo : offset + hi], dtype=np.float64
        )[0]
        # the diagonal (self-ligation) -> the larger neighbour
        neighbours = [row[k - lo] for k in (t - 1, t + 1) if lo <= k < hi and k < n_map]
        finite = [v for v in neighbours if np.isfinite(v)]
        row[t - lo] = max(finite) if finite else np.nan
        idx = mids[g] // res - lo
        values = np.full(mids.shape[1], np.nan)
        values[inside] = row[idx[inside]]
        known = np.isfinite(values)
        total = values[known].sum()
        if known.any() and total > 0:
            values[known] *= power_law[g][known].sum() / total
        out[g] = values
    return out
