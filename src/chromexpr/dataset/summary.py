"""Human and machine summaries of a dataset (``chromexpr info``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from chromexpr.dataset.store import incomplete_samples, open_dataset


def describe(path: str | Path) -> dict[str, Any]:
    """Shape, geometry, provenance and per-sample statistics (streamed sample by sample)."""
    data = open_dataset(path)
    per_sample = []
    for i, name in enumerate(data.samples):
        values = data.read_sample(i)
        per_sample.append(
            {
                "sample": name,
                "group": data.groups[i],
                "mean": float(values.mean(dtype=np.float64)),
                "max": float(values.max()) if values.size else 0.0,
                "nonzero_fraction": float(np.count_nonzero(values) / values.size)
                if values.size
                else 0.0,
                "zero_genes": int((~values.any(axis=1)).sum()),
            }
        )
    provenance = data.attrs.get("provenance", {})
    return {
        "path": str(path),
        "shape": {"gene": data.n_genes, "sample": data.n_samples, "bin": data.n_bins},
        "flank": data.spec.flank,
        "bin_size": data.spec.bin_size,
        "aggregate": data.spec.aggregate,
        "chromosomes": int(data.genes["chrom"].nunique()),
        "incomplete_samples": incomplete_samples(path),
        "provenance": provenance,
        "samples": per_sample,
    }


def format_description(description: dict[str, Any]) -> str:
    """Plain-text rendering of :func:`describe`."""
    shape = description["shape"]
    provenance = description.get("provenance", {})
    lines = [
        f"dataset     {description['path']}",
        f"shape       {shape['gene']} genes x {shape['sample']} samples x {shape['bin']} bins"
        " (float32)",
        f"geometry    TSS +/- {description['flank']:,} bp, {description['bin_size']:,} bp bins, "
        f"{description['aggregate']} per bin",
        f"chromosomes {description['chromosomes']}",
        f"created by  chromexpr {provenance.get('version', '?')}"
        f" on {provenance.get('created', '?')}",
        f"command     {provenance.get('command', '?')}",
    ]
    if description["incomplete_samples"]:
        lines.append(
            f"INCOMPLETE  {', '.join(description['incomplete_samples'])}"
            " (re-run 'chromexpr bin --append')"
        )
    lines.append("")
    lines.append(
        f"{'sample':<24}{'group':<12}{'mean':>12}{'max':>12}{'nonzero':>10}{'zero genes':>12}"
    )
    for row in description["samples"]:
        lines.append(
            f"{row['sample']:<24}{row['group']:<12}{row['mean']:>12.4g}{row['max']:>12.4g}"
            f"{row['nonzero_fraction']:>10.3f}{row['zero_genes']:>12d}"
        )
    return "\n".join(lines)
