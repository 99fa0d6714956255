"""Experiments: grid studies and everything built on them.

A grid study is an Optuna study whose trials are jobs enqueued up front ("train this loss with
this setting and seed"); :mod:`~nlfs.experiments.jobs` says what a job is and which trial settles
it, :mod:`~nlfs.experiments.grid` is the worker that runs them. Elimination
(:mod:`~nlfs.experiments.eliminate`) and transfer (:mod:`~nlfs.experiments.transfer`) are grid
studies; :mod:`~nlfs.experiments.records` reads a transfer study as tidy run records for the
statistics and :mod:`~nlfs.experiments.funnel` summarizes an elimination study. See
docs/architecture.md.
"""
