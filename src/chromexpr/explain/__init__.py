"""Explain trained models: attribution of predictions (or errors) to bins, as genome-browser tracks.

Modules: :mod:`~chromexpr.explain.attribution` (methods, the model adapter protocol),
:mod:`~chromexpr.explain.coordinates` (bin -> genome interval), :mod:`~chromexpr.explain.tracks`
(combine overlapping gene windows), :mod:`~chromexpr.explain.links` (BEDPE / interact),
:mod:`~chromexpr.explain.summaries` (profile and per-gene tables) and :mod:`~chromexpr.explain.run`
(:func:`attribute`, the whole step). Importing this package does not import torch.
"""

from __future__ import annotations

from chromexpr.explain.attribution import Attributable, AttributionOptions
from chromexpr.explain.run import AttributionPaths, attribute

__all__ = ["Attributable", "AttributionOptions", "AttributionPaths", "attribute"]
