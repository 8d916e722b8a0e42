"""Binning accessibility into TSS-centred windows.

Numba kernels, signal tracks, the dataset pipeline.
"""
