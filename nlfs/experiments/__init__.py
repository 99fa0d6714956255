"""Experiments: grid studies and everything built on them.

A grid study is an Optuna study whose trials are jobs enqueued up front ("train this loss with
this setting and seed"); :mod:`~nlfs.experiments.jobs` says what a job is and which trial settles
it, :mod:`~nlfs.experiments.grid` is the worker that runs them. Elimination
(:mod:`~nlfs.experiments.eliminate`) and transfer (:mod:`~nlfs.experiments.transfer`) are grid
studies; :mod:`~nlfs.experiments.records` reads a transfer study as tidy run records for the
statistics and :mod:`~nlfs.experiments.funnel` summarizes an elimination study. Comparisons of
strategies and space variants (:mod:`~nlfs.experiments.arms`, :mod:`~nlfs.experiments.compare`)
are sets of search studies plus a re-evaluation grid. See docs/architecture.md.
"""

from nlfs.experiments.arms import Arm, strategy_arms, variant_arms
from nlfs.experiments.compare import Comparison, collect
from nlfs.experiments.eliminate import EliminationConfig, load_elimination_config
from nlfs.experiments.grid import run_local, run_worker
from nlfs.experiments.jobs import Job, JobSetting, settling_trial
from nlfs.experiments.transfer import TransferConfig, load_transfer_config

__all__ = [
    "Arm",
    "Comparison",
    "EliminationConfig",
    "Job",
    "JobSetting",
    "TransferConfig",
    "collect",
    "load_elimination_config",
    "load_transfer_config",
    "run_local",
    "run_worker",
    "settling_trial",
    "strategy_arms",
    "variant_arms",
]
