"""The HTML report: model comparison, error analysis, attribution profiles (evaluate, attribute).

:func:`~chromexpr.report.run.make_report` does the whole step; :mod:`~chromexpr.report.figures` has
one function per figure (DataFrames in, matplotlib Figure out) and :mod:`~chromexpr.report.html` the
page.
"""

from __future__ import annotations

from chromexpr.report.run import make_report

__all__ = ["make_report"]
