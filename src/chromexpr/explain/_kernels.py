"""numba kernels for attribution tracks: arrays and scalars in, preallocated output filled."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def paint_maxabs_kernel(
    lo: np.ndarray, hi: np.ndarray, values: np.ndarray, best: np.ndarray, found: np.ndarray
) -> None:
    """Write each ``values[i]`` into ``best[lo[i]:hi[i]]`` wherever its |value| is larger.

    ``found[s]`` is set once segment ``s`` has a value, so the first covering value always wins over
    the initial content of ``best``; ties keep the earlier interval. Sequential on purpose:
    intervals overlap, so a parallel loop over them would race on ``best``. Cost: O(sum of hi - lo).
    """
    for i in range(lo.shape[0]):
        v = values[i]
        a = abs(v)
        for s in range(lo[i], hi[i]):
            if not found[s] or a > abs(best[s]):
                best[s] = v
                found[s] = True
