"""Evaluation of expression predictions: metrics, outlier samples, and recovery of planted links.

The metric modules are pure functions over DataFrames (no model code, no files):
:mod:`chromexpr.evaluate.metrics` scores a long predictions frame (one row per gene, sample and
model), :mod:`chromexpr.evaluate.outliers` holds the robust rule that flags badly predicted samples,
and :mod:`chromexpr.evaluate.links` measures how well a model's per-bin scores recover the
simulator's planted enhancer-gene links. Reading and writing evaluation tables is in
:mod:`chromexpr.io.evaluation_files`; :mod:`chromexpr.evaluate.run` connects models, datasets and
these functions for ``chromexpr evaluate``. ``docs/evaluation.md`` defines every metric.
"""
