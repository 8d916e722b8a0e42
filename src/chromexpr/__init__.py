"""chromexpr: predict gene expression from chromatin accessibility.

The package is organised along the data flow::

    annotation/  GTF/GFF3 -> one TSS per gene
    io/          readers and writers (bigWig, bedGraph, peaks, counts, sample sheets, TSS BED)
    binning/     numba kernels + the pipeline that fills the dataset
    dataset/     the on-disk Zarr store (gene x sample x bin)
    cli/         thin Typer commands over the library

Heavy dependencies (numba, torch, pyranges, zarr) are imported lazily by the modules that need them,
so ``import chromexpr`` and ``chromexpr --help`` stay fast.
"""

from chromexpr._version import __version__

__all__ = ["__version__"]
