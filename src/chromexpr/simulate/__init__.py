"""Paired accessibility + expression with planted regulatory truth (``chromexpr simulate``).

Modules, one job each:

* :mod:`~chromexpr.simulate.config`: :class:`SimulationConfig`, every parameter (JSON round-trip);
* :mod:`~chromexpr.simulate.streams`: independent random streams derived from the seed;
* :mod:`~chromexpr.simulate.layout`: which genes, their windows and gene models;
* :mod:`~chromexpr.simulate.design`: samples, groups, depth, the outlier;
* :mod:`~chromexpr.simulate.accessibility`: peak universe, per-sample openness, peaks, signal,
counts;
* :mod:`~chromexpr.simulate.expression`: planted links and expression;
* :mod:`~chromexpr.simulate.run`: :func:`simulate`, which streams everything to disk.

The generative model is stated in ``docs/simulation.md``.
"""

from chromexpr.simulate.config import FORMATS, SimulationConfig, parse_formats
from chromexpr.simulate.run import SimulationResult, simulate

__all__ = ["FORMATS", "SimulationConfig", "SimulationResult", "parse_formats", "simulate"]
