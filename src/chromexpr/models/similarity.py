"""Cross-sample similarity: how alike two samples' accessibility is, and weights made from it.

Used by the ``neighbors`` baseline and by the ``hybrid`` model. A sample's **profile** is its
transformed openness (the model's openness transform, fitted on training samples) in the bins around
every modelled gene's TSS, concatenated over genes: ``n_genes x n_profile_bins`` values. The
similarity of two samples is the Pearson correlation of their profiles' deviations from the
training samples' mean profile (``docs/models.md``: promoter-proximal bins measured best on real
blood populations; wider windows repeat the same distal bins in many genes' windows).

Everything here works on small dense arrays (``n_samples x n_features`` profiles, ``n x n`` Gram
matrices); reading the profiles from a dataset is :func:`sample_profiles`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chromexpr.models.design import BlockSource

__all__ = [
    "centred_gram",
    "check_profile_arrays",
    "correlation_from_gram",
    "power_weights",
    "sample_profiles",
]


def sample_profiles(
    source: BlockSource,
    samples: np.ndarray | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Profiles of ``samples`` (local indices; default all): ``float32 (n_samples, n_genes *
    n_features)``, gene-major (gene ``g``'s bins at ``g * n_features ...``).

    ``source`` carries the bins that make a profile (its ``bins``) and the fitted openness
    transform.
    """
    cols = (
        np.arange(source.sample_position.size)
        if samples is None
        else np.asarray(samples, dtype=np.int64)
    )
    p = source.n_features
    out = np.zeros((cols.size, source.gene_index.size * p), dtype=np.float32)
    index = {int(c): i for i, c in enumerate(cols)}
    for local, part, x in source.iter_blocks(cols, whole_chunk_samples=False):
        rows = np.asarray([index[int(c)] for c in part], dtype=np.int64)
        lo, hi = int(local[0]) * p, (int(local[-1]) + 1) * p
        # local genes of one block are consecutive: their bins are one contiguous slice
        out[rows, lo:hi] = x.transpose(1, 0, 2).reshape(part.size, -1)
        if progress is not None:
            progress(int(local.size * part.size))
    return out


def centred_gram(gram: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Inner products of profiles centred by the mean profile of the ``reference`` samples.

    Parameters
    ----------
    gram
        ``(n, n)`` uncentred inner products ``<p_i, p_j>`` (or ``(..., n, n)`` stacked).
    reference
        Indices of the samples whose mean centres every profile.

    Returns
    -------
    numpy.ndarray
        ``<p_i - m, p_j - m>`` with ``m`` the mean of ``p_r`` over ``reference``; same shape.

    Examples
    --------
    >>> p = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> c = centred_gram(p @ p.T, np.array([0, 1]))
    >>> m = p[:2].mean(axis=0)
    >>> bool(np.allclose(c, (p - m) @ (p - m).T))
    True
    """
    n = gram.shape[-1]
    a = np.eye(n)
    a[:, np.asarray(reference, dtype=np.int64)] -= 1.0 / len(reference)
    return np.matmul(np.matmul(a, gram), a.T)


def correlation_from_gram(centred: np.ndarray) -> np.ndarray:
    """Cosine of centred profiles (their Pearson-type correlation); 0 where a profile is constant.

    Examples
    --------
    >>> correlation_from_gram(np.array([[4.0, -2.0], [-2.0, 1.0]])).tolist()
    [[1.0, -1.0], [-1.0, 1.0]]
    """
    d = np.sqrt(np.maximum(np.diagonal(centred, axis1=-2, axis2=-1), 0.0))
    denom = d[..., :, None] * d[..., None, :]
    ok = denom > 1e-300
    return np.where(ok, centred / np.where(ok, denom, 1.0), 0.0)


def power_weights(similarity: np.ndarray, exponent: float) -> np.ndarray:
    """``max(r, 0) ** exponent`` normalised to sum 1 per row; rows without a positive ``r`` get 0.

    Parameters
    ----------
    similarity
        ``(n_new, n_train)`` correlations.
    exponent
        Sharpness: 0 gives every positively correlated sample the same weight; large values
        approach the single nearest neighbour.

    Examples
    --------
    >>> power_weights(np.array([[0.5, 0.25, -0.1], [-0.2, 0.0, -1.0]]), 1.0).round(3).tolist()
    [[0.667, 0.333, 0.0], [0.0, 0.0, 0.0]]
    """
    positive = np.maximum(np.asarray(similarity, dtype=np.float64), 0.0)
    w = np.where(positive > 0, positive**exponent, 0.0)
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total > 0)


def check_profile_arrays(
    arrays: dict[str, np.ndarray], per_sample: str, n_values: int, owner: str
) -> None:
    """Raise ValueError unless the saved profiles agree with the training samples and the bins."""
    profiles, mean = arrays["centred_profiles"], arrays["mean_profile"]
    n_train = arrays[per_sample].shape[1]
    if profiles.shape != (n_train, n_values) or mean.shape != (n_values,):
        raise ValueError(
            f"arrays 'centred_profiles' {tuple(profiles.shape)} and 'mean_profile' "
            f"{tuple(mean.shape)} of model {owner} do not match {n_train} training samples x "
            f"{n_values} profile values"
        )
