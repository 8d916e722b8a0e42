"""Sample design: names, groups, depth, peak counts, samples without expression, the outlier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from chromexpr.simulate.config import SimulationConfig


@dataclass(frozen=True, eq=False)
class SampleDesign:
    """The samples of one simulation, in output order (grouped, groups in order).

    Attributes
    ----------
    names, groups : list of str
        Sample names (``ct01_rep1``...) and their group (cell-type family, ``ct01``...).
    group_index : numpy.ndarray
        ``int64 (n_samples,)``.
    depth : numpy.ndarray
        ``float64 (n_samples,)``: depth factors (log-normal, median 1).
    n_called : numpy.ndarray
        ``int64 (n_samples,)``: peaks called in each sample, ``round(K * depth ** exponent)``.
    has_expression : numpy.ndarray
        ``bool (n_samples,)``: false for the ``--no-expression`` samples.
    outlier : int or None
        Index of the outlier sample (its expression follows ``donor``'s accessibility).
    donor : int or None
        Index of the sample whose accessibility drives the outlier's expression (another group when
        there are several).
    """

    names: list[str]
    groups: list[str]
    group_index: np.ndarray
    depth: np.ndarray
    n_called: np.ndarray
    has_expression: np.ndarray
    outlier: int | None
    donor: int | None

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return len(self.names)

    def frame(self) -> pd.DataFrame:
        """``truth/samples.tsv``: sample, group, depth_factor, is_outlier, has_expression,
        driver."""
        is_outlier = np.zeros(self.n_samples, dtype=bool)
        driver = list(self.names)
        if self.outlier is not None and self.donor is not None:
            is_outlier[self.outlier] = True
            driver[self.outlier] = self.names[self.donor]
        return pd.DataFrame(
            {
                "sample": self.names,
                "group": self.groups,
                "depth_factor": self.depth,
                "is_outlier": is_outlier,
                "has_expression": self.has_expression,
                "expression_driven_by": driver,
                "peaks_called": self.n_called,
            }
        )


def design_samples(
    config: SimulationConfig, *, peaks_per_sample: int, rng: np.random.Generator
) -> SampleDesign:
    """Draw the sample design.

    Groups have sizes differing by at most one. The ``n_no_expression`` samples are drawn one group
    at a time (groups in random order), so they spread over groups. The outlier is a random sample
    with expression; its donor a random sample of another group (any other sample with a single
    group). No outlier is planted with fewer than 3 samples with expression or ``outlier=False``.
    """
    n, g = config.n_samples, config.n_groups
    sizes = np.full(g, n // g, dtype=np.int64)
    sizes[: n % g] += 1
    group_index = np.repeat(np.arange(g), sizes)
    width = max(2, len(str(g)))
    group_names = [f"ct{i + 1:0{width}d}" for i in range(g)]
    rep = np.concatenate([np.arange(1, s + 1) for s in sizes])
    names = [f"{group_names[gi]}_rep{r}" for gi, r in zip(group_index, rep, strict=True)]
    depth = np.exp(rng.normal(0.0, config.depth_sd, n))
    n_called = np.maximum(
        np.round(peaks_per_sample * depth**config.peak_count_depth_exponent).astype(np.int64), 1
    )

    has_expression = np.ones(n, dtype=bool)
    members = [list(rng.permutation(np.flatnonzero(group_index == gi))) for gi in range(g)]
    group_cycle = list(rng.permutation(g))
    left = config.n_no_expression
    while left > 0:
        for gi in group_cycle:
            if left == 0:
                break
            if members[gi]:
                has_expression[members[gi].pop()] = False
                left -= 1

    outlier = donor = None
    with_expr = np.flatnonzero(has_expression)
    if config.outlier and with_expr.size >= 3:
        outlier = int(rng.choice(with_expr))
        others = np.flatnonzero(group_index != group_index[outlier])
        if others.size == 0:
            others = np.flatnonzero(np.arange(n) != outlier)
        donor = int(rng.choice(others))
    return SampleDesign(
        names=names,
        groups=[group_names[gi] for gi in group_index],
        group_index=group_index,
        depth=depth,
        n_called=n_called,
        has_expression=has_expression,
        outlier=outlier,
        donor=donor,
    )
