"""Independent random streams, one per stage (and per sample), all derived from the seed.

Each stage draws from its own :class:`numpy.random.Generator` keyed by ``(seed, stage, index)``, so
adding draws to one stage never shifts another, and a sample's draws do not depend on the order in
which samples are processed.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stage(IntEnum):
    """Spawn keys of the random streams (stable: changing them changes every output)."""

    LAYOUT = 1
    GENE_MODELS = 2
    DESIGN = 3
    UNIVERSE = 4
    LINKS = 5
    SAMPLE = 6
    EXPRESSION = 7
    PROGRAMME = 8


def stream(seed: int, stage: Stage, index: int = 0) -> np.random.Generator:
    """The generator of ``stage`` (and sample ``index``) for ``seed``.

    Examples
    --------
    >>> a = stream(1, Stage.SAMPLE, 3).standard_normal()
    >>> b = stream(1, Stage.SAMPLE, 3).standard_normal()
    >>> a == b
    True
    """
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(entropy=seed, spawn_key=(int(stage), index)))
    )
