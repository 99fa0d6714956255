"""Search: the Strategy contract and registry, the study runner and its local workers.

A :class:`Strategy` proposes candidates (ask) and learns from finished trials (tell); it never
calls the evaluator. :class:`~nlfs.search.runner.SearchWorker` (the study runner) asks, screens,
records each evaluation as an Optuna trial and calls the evaluator; :mod:`~nlfs.search.trials`
caches and classifies stored trials; :mod:`~nlfs.search.workers` runs K local worker processes
on one study; :mod:`~nlfs.search.config` reads search configurations and
:mod:`~nlfs.search.progress` shows and summarizes a study. See docs/architecture.md.
"""

from nlfs.search.config import SearchConfig, load_search_config
from nlfs.search.strategy import (
    Candidate,
    Proposal,
    Strategy,
    TrialRecord,
    available_strategies,
    get_strategy,
)

__all__ = [
    "Candidate",
    "Proposal",
    "SearchConfig",
    "Strategy",
    "TrialRecord",
    "available_strategies",
    "get_strategy",
    "load_search_config",
]
