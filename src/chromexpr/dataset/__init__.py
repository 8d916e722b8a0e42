"""The binned dataset on disk.

A Zarr store of openness (gene x sample x bin) with labelled coordinates.
"""

from chromexpr.dataset.store import Dataset, open_dataset

__all__ = ["Dataset", "open_dataset"]
