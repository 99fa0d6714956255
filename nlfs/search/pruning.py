"""Early stopping inside a search: rules that stop a candidate clearly below its peers.

The evaluator calls a request's monitor at each evaluation point with ``(step, accuracy)``
(:data:`nlfs.evaluation.results.Monitor`); the runner stores the point as the trial's Optuna
intermediate value and asks the search's :class:`Pruner` whether to stop. A stopped candidate
ends with state ``pruned`` (Optuna's ``PRUNED``): it used budget, has no fitness, and keeps the
best accuracy it reached (``best_acc``) and its curve (the intermediate values).

Rules (``[pruning]`` table of a search config, :class:`PruningConfig`):

* ``median``: Optuna's ``MedianPruner``. At step s, stop when the candidate's best accuracy so
  far is below the median of the completed trials' accuracies at step s. Warm-up: no decision
  before ``n_startup_trials`` completed trials or before step ``n_warmup_steps``; decisions
  only at the first point of each ``interval_steps`` window; none while fewer than
  ``n_min_trials`` completed trials reported step s.
* ``halving``: Optuna's ``SuccessiveHalvingPruner`` (asynchronous successive halving, Li et
  al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020). Rung r is reached
  at step ``min_resource * reduction_factor ** (min_early_stopping_rate + r)``; a candidate
  continues past a rung only when its accuracy there is in the top ``1 / reduction_factor``
  of every trial that reached that rung (the first ``reduction_factor - 1`` trials: when it is
  the best). Rungs should fall on evaluation points; a trial's value at a rung is its value at
  the first point at or after the rung's step.
* ``none``: never stop (the profile's own "give up" rule, ``min_train_acc`` at
  ``give_up_after``, still applies inside training, as it always does).

Both rules read the stored curves from the runner's :class:`~nlfs.search.trials.TrialCache`
(kept in step incrementally, never a ``get_trials`` per checkpoint) and take as peers only the
trials scored with the same evaluator profile. Decisions equal Optuna's pruners' on the same
trials (``tests/search/test_pruning.py``); Optuna keeps the halving rung values in trial system
attributes, we derive them from the curves, which is the same when rungs fall on evaluation
points. ``n_startup_trials`` also delays ``halving`` (Optuna's has no such warm-up; 0 there).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real

from optuna.trial import FrozenTrial, TrialState

from nlfs.errors import ConfigError
from nlfs.storage import set_trial_intermediate_values

RULES = ("none", "median", "halving")

Curve = Sequence[tuple[int, float]]
"""A learning curve: ``(step, accuracy)`` points in step order."""


@dataclass(frozen=True)
class PruningConfig:
    """The ``[pruning]`` table of a search config (names follow Optuna's pruners).

    Attributes:
        rule: ``none``, ``median`` or ``halving``.
        n_startup_trials: completed trials (of the same profile) before any candidate is
            stopped (both rules).
        n_warmup_steps: median: no decision before this step.
        interval_steps: median: decide at the first point of each window of this many steps.
        n_min_trials: median: completed trials that must have reported the step.
        min_resource: halving: step of the first rung.
        reduction_factor: halving: keep the top 1/reduction_factor at each rung.
        min_early_stopping_rate: halving: rungs start at ``min_resource * rf ** rate``.
        bootstrap_count: halving: stop when a rung has no more than this many values.
    """

    rule: str = "none"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1
    min_resource: int = 50
    reduction_factor: int = 3
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(
                f"[pruning] rule must be one of {', '.join(RULES)}, got {self.rule!r}"
            )
        minimum = {
            "n_startup_trials": 0,
            "n_warmup_steps": 0,
            "interval_steps": 1,
            "n_min_trials": 1,
            "min_resource": 1,
            "reduction_factor": 2,
            "min_early_stopping_rate": 0,
            "bootstrap_count": 0,
        }
        for key, low in minimum.items():
            value = getattr(self, key)
            if value < low:
                raise ConfigError(f"[pruning] {key} must be at least {low}, got {value}")

    def rung_steps(self, up_to: int) -> list[int]:
        """The halving rungs' steps up to ``up_to`` (for display and checks)."""
        steps, r = [], 0
        while (step := self.rung_step(r)) <= up_to:
            steps.append(step)
            r += 1
        return steps

    def rung_step(self, rung: int) -> int:
        """The step at which a candidate reaches halving rung ``rung``."""
        rf = self.reduction_factor
        return self.min_resource * rf ** (self.min_early_stopping_rate + rung)


def curve_of(trial: FrozenTrial) -> list[tuple[int, float]]:
    """A stored trial's learning curve (its intermediate values) in step order."""
    return sorted(trial.intermediate_values.items())


class Population:
    """The peers a rule compares with: finished trials of one profile, read from a cache.

    Args:
        cache: the runner's :class:`~nlfs.search.trials.TrialCache` (anything with a
            ``finished_log`` list of finished trials in the order seen and a ``running()``
            list of trials still running).
        include: which trials are peers (the runner passes "scored with this profile").
    """

    def __init__(self, cache, include: Callable[[FrozenTrial], bool] = lambda t: True) -> None:
        self._cache = cache
        self._include = include
        self._seen = 0
        self.finished: list[tuple[bool, list[tuple[int, float]]]] = []
        """(completed?, curve) of every finished peer with a curve, in the order seen."""
        self.completed = 0
        """Completed peers (with or without a curve): the warm-up count."""

    def refresh(self) -> None:
        """Take the trials the cache saw finish since the last refresh (O(new))."""
        log = self._cache.finished_log
        for trial in log[self._seen :]:
            if not self._include(trial):
                continue
            complete = trial.state == TrialState.COMPLETE
            self.completed += complete
            if trial.intermediate_values:
                self.finished.append((complete, curve_of(trial)))
        self._seen = len(log)

    def running_curves(self, exclude: int | None) -> list[list[tuple[int, float]]]:
        """Curves of running peers as of the cache's last sync (other workers' trials)."""
        return [
            curve_of(t)
            for t in self._cache.running()
            if t.number != exclude and t.intermediate_values and self._include(t)
        ]


class Pruner(ABC):
    """One rule: ``should_prune(curve, population)`` at each evaluation point."""

    def __init__(self, config: PruningConfig) -> None:
        self.config = config

    @abstractmethod
    def should_prune(self, curve: Curve, population: Population, number: int | None = None) -> bool:
        """Whether to stop the candidate whose curve so far is ``curve`` (last point: now).

        Args:
            curve: the candidate's points so far, in step order, the current one last.
            population: its peers (refreshed here).
            number: the candidate's trial number (left out of the running peers).
        """


class NoPruning(Pruner):
    """Never stops a candidate."""

    def should_prune(self, curve: Curve, population: Population, number: int | None = None) -> bool:
        return False


class MedianRule(Pruner):
    """Optuna's ``MedianPruner`` over the stored curves (see the module docstring)."""

    def __init__(self, config: PruningConfig) -> None:
        super().__init__(config)
        self._seen = 0
        self._at_step: dict[int, list[float]] = {}  # step -> completed peers' values there

    def _index(self, population: Population) -> None:
        for complete, curve in population.finished[self._seen :]:
            if complete:
                for step, value in curve:
                    self._at_step.setdefault(step, []).append(value)
        self._seen = len(population.finished)

    def should_prune(self, curve: Curve, population: Population, number: int | None = None) -> bool:
        c = self.config
        population.refresh()
        if population.completed == 0 or population.completed < c.n_startup_trials or not curve:
            return False
        step = curve[-1][0]
        if step < c.n_warmup_steps:
            return False
        window = (step - c.n_warmup_steps) // c.interval_steps * c.interval_steps
        previous = curve[-2][0] if len(curve) > 1 else -1
        if previous >= window + c.n_warmup_steps:
            return False  # not the first point of this interval
        values = [v for _, v in curve if not math.isnan(v)]
        if not values:
            return True
        self._index(population)
        peers = [v for v in self._at_step.get(step, []) if not math.isnan(v)]
        if not peers or len(self._at_step.get(step, [])) < c.n_min_trials:
            return False
        median = _median(peers)
        return max(values) < median


class HalvingRule(Pruner):
    """Optuna's ``SuccessiveHalvingPruner`` over the stored curves (see the module docstring)."""

    def __init__(self, config: PruningConfig) -> None:
        super().__init__(config)
        self._seen = 0
        self._at_rung: dict[int, list[float]] = {}  # rung -> finished peers' values there

    def _rung_value(self, curve: Curve, rung: int) -> float | None:
        step = self.config.rung_step(rung)
        return next((v for s, v in curve if s >= step), None)

    def _add(self, into: dict[int, list[float]], curve: Curve) -> None:
        rung = 0
        while (value := self._rung_value(curve, rung)) is not None:
            into.setdefault(rung, []).append(value)
            rung += 1

    def should_prune(self, curve: Curve, population: Population, number: int | None = None) -> bool:
        c = self.config
        population.refresh()
        if population.completed < c.n_startup_trials or not curve:
            return False
        for _, peer in population.finished[self._seen :]:
            self._add(self._at_rung, peer)
        self._seen = len(population.finished)
        running: dict[int, list[float]] = {}
        for peer in population.running_curves(number):
            self._add(running, peer)
        step, value = curve[-1]
        previous = curve[-2][0] if len(curve) > 1 else -1
        rung = 0
        while c.rung_step(rung) <= previous:
            rung += 1  # rungs passed at earlier points
        while c.rung_step(rung) <= step:
            if math.isnan(value):
                return True
            competing = [*self._at_rung.get(rung, []), *running.get(rung, []), value]
            if len(competing) <= c.bootstrap_count:
                return True
            if not _promotable(value, competing, c.reduction_factor):
                return True
            rung += 1
        return False


def _promotable(value: float, competing: list[float], reduction_factor: int) -> bool:
    """In the top 1/reduction_factor of ``competing`` (which holds ``value``); the best of
    fewer than ``reduction_factor`` values."""
    index = max(len(competing) // reduction_factor - 1, 0)
    return value >= sorted(competing)[-(index + 1)]


def _median(values: list[float]) -> float:
    """The median with linear interpolation (numpy's ``percentile(.., 50)``)."""
    ordered = sorted(values)
    mid = (len(ordered) - 1) / 2
    low, high = ordered[math.floor(mid)], ordered[math.ceil(mid)]
    return low + (high - low) * (mid - math.floor(mid))


def make_pruner(config: PruningConfig) -> Pruner:
    """The rule ``config.rule`` names."""
    return {"none": NoPruning, "median": MedianRule, "halving": HalvingRule}[config.rule](config)


class CurveKeeper:
    """The runner's side of pruning: one monitor per request, and complete stored curves.

    Each monitor asks the config's rule at its evaluation point and stores the point as the
    trial's Optuna intermediate value. Points are buffered and written together, at the end of
    the trial or once :data:`FLUSH_S` seconds passed since the last write: a journal write is a
    locked, fsynced append (about 4 ms each on a loaded 2-core machine), so a 1-second micro
    evaluation pays one write, while a long evaluation's curve still grows live in
    optuna-dashboard. Peers are the trials scored with the same profile (a seed pool's cheaper
    profile draws other curves), read from the runner's cache as of its last sync.

    Args:
        store: the study's storage.
        cache: the runner's :class:`~nlfs.search.trials.TrialCache`.
        config: the search config (its ``pruning``, ``profile`` and ``seed_profile``).
    """

    def __init__(self, store, cache, config) -> None:
        self._store = store
        self._cache = cache
        self._config = config
        self.pruner = make_pruner(config.pruning)
        self._peers: dict[str, Population] = {}
        self._curves: dict[int, _Curve] = {}  # trial id -> its points

    def profile_of(self, trial: FrozenTrial) -> str:
        """The profile a stored trial was scored with (as the runner chooses it)."""
        if trial.user_attrs.get("phase") == "seed" and self._config.seed_profile:
            return self._config.seed_profile
        return self._config.profile

    def monitor(self, trial_id: int, number: int, profile: str) -> Callable[[int, float], bool]:
        """The monitor of trial ``number`` (storage id ``trial_id``) scored with ``profile``."""
        if profile not in self._peers:
            include = lambda t: self.profile_of(t) == profile  # noqa: E731
            self._peers[profile] = Population(self._cache, include)
        peers = self._peers[profile]
        curve = self._curves[trial_id] = _Curve()

        def monitor(step: int, accuracy: float) -> bool:
            curve.add(int(step), float(accuracy))
            if time.monotonic() - curve.flushed >= FLUSH_S:
                self._flush(trial_id, curve)
            return self.pruner.should_prune(curve.points, peers, number)

        return monitor

    def finish(self, trial_id: int, result) -> None:
        """Write the trial's unwritten points, with those of ``result``'s history the monitor
        did not see (a candidate that gives up at a point stops before its monitor is asked),
        so every stored curve is complete. Call before the trial is told."""
        curve = self._curves.pop(trial_id, None) or _Curve()
        seen = {step for step, _ in curve.points}
        for point in result.metadata.get("history") or ():
            step, accuracy = point.get("step"), point.get("eval_acc")
            if isinstance(step, int) and step not in seen and isinstance(accuracy, Real):
                curve.add(step, float(accuracy))
        self._flush(trial_id, curve)

    def _flush(self, trial_id: int, curve: _Curve) -> None:
        points = {s: v for s, v in curve.points[curve.written :] if math.isfinite(v)}
        set_trial_intermediate_values(self._store, trial_id, points)
        curve.written, curve.flushed = len(curve.points), time.monotonic()


FLUSH_S = 10.0
"""Longest time a measured point waits before it is written to storage (seconds)."""


class _Curve:
    """One running trial's points, and how many of them are in storage."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []
        self.written = 0
        self.flushed = time.monotonic()

    def add(self, step: int, value: float) -> None:
        self.points.append((step, value))
