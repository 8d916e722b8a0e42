"""Binning accessibility into TSS-centred windows: numba kernels, signal tracks, the dataset pipeline."""
