"""Tree-structured Parzen estimator over the space's fixed-length encoding (categorical or
continuous coordinates: the cell's wiring, the taylor space's coefficients).

Bergstra, Bardenet, Bengio and Kegl, "Algorithms for Hyper-Parameter Optimization", NeurIPS
2011, through Optuna's ``TPESampler`` (multivariate, constant liar for parallel workers).
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from nlfs.errors import NLFSError
from nlfs.search.strategy import Proposal, Strategy, TrialRecord
from nlfs.spaces.base import InvalidGenome, ParamSpec
from nlfs.storage import ScoredTPESampler, quiet_in_memory_study

_INNER_STUDY = "nlfs-tpe"


def _params_key(params: Any) -> tuple:
    return tuple(sorted(params.items()))


def _distribution(spec: ParamSpec) -> BaseDistribution:
    """Optuna's distribution of one encoding coordinate: floats in a range, or categories."""
    if spec.continuous:
        return FloatDistribution(spec.low, spec.high)
    return CategoricalDistribution(list(spec.choices))


def _only(distribution: BaseDistribution) -> Any:
    """The one value of a single-valued distribution."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    return distribution.low


class _FixedSpaceTPE(ScoredTPESampler):
    """TPE told its fixed search space, scoring encodings the space cannot decode as -inf.

    The encoding never changes, and a fresh sampler per ask would otherwise recompute the
    intersection of all trials' distributions each time (linear in the trials told). Most
    random points of the ``cell`` encoding are invalid graphs (no path to ``y`` or ``p``,
    cycles); ruling them out among TPE's ``n_ei_candidates`` costs microseconds each, where a
    rejected proposal costs a whole new TPE sample. The first hook is Optuna's sampler method;
    the second is :class:`nlfs.storage.ScoredTPESampler`'s, over TPE's internal scoring.
    """

    def __init__(
        self,
        space: dict[str, BaseDistribution],
        valid: Callable[[dict[str, Any]], bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._fixed = {name: d for name, d in sorted(space.items()) if not d.single()}
        self._valid = valid

    def infer_relative_search_space(self, study, trial) -> dict[str, Any]:
        return dict(self._fixed)

    def adjust_scores(self, samples, scores: np.ndarray) -> np.ndarray:
        values = np.array(scores)
        for i in range(values.size):
            point = {
                name: self._fixed[name].to_external_repr(column[i])
                for name, column in samples.items()
                if name in self._fixed
            }
            if not self._valid(point):
                values[i] = -np.inf
        return values


class TPEStrategy(Strategy):
    """TPE over ``space.encoding()``; refuses spaces without one (``tree``).

    The strategy owns an in-memory Optuna study that mirrors the told trials: ok trials are
    COMPLETE with the fitness as value, failed ones FAIL (TPE ignores them, so a failure is never
    a fitness), pruned ones PRUNED with their curve (TPE ranks them below every completed
    trial). Each ask builds a fresh ``TPESampler`` seeded from the ask's ``(seed, k)``
    generator, so replaying the told trials reproduces the next ask. An accepted proposal stays
    RUNNING in the inner study until told, which the constant liar treats as a bad result so
    parallel asks spread out. A proposal the screen (or the space's decoder) rejects stays
    RUNNING while the same ask retries, steering TPE away from it, and is then marked FAIL:
    kept any longer it would make the inner study depend on rejections that are not stored,
    and replay would no longer reproduce the next ask. Encodings the space cannot decode are
    ruled out among TPE's candidates before it picks one, so few proposals fail that way.

    Options:
        n_startup_trials: told ok trials before TPE replaces random sampling (10, Optuna's).
        n_ei_candidates: candidates TPE scores per proposal (24, Optuna's).
    """

    name = "tpe"
    needs_encoding = True
    defaults = {"n_startup_trials": 10, "n_ei_candidates": 24}

    def __init__(self, space, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self._require(self.options["n_startup_trials"] >= 0, "n_startup_trials must be >= 0")
        self._require(self.options["n_ei_candidates"] >= 1, "n_ei_candidates must be >= 1")
        self._distributions = {spec.name: _distribution(spec) for spec in space.encoding()}
        # Coordinates with one value are not sampled by TPE; decode still needs them.
        self._constants = {name: _only(d) for name, d in self._distributions.items() if d.single()}
        self._store, self._study_key = quiet_in_memory_study(_INNER_STUDY, StudyDirection.MAXIMIZE)
        self._study: optuna.Study | None = None
        self._asking: int | None = None  # the k whose proposals are in _trying
        self._trying: list[tuple[int, dict[str, Any]]] = []  # (inner trial id, params)
        self._running: dict[tuple, int] = {}  # params of an accepted candidate -> inner trial id

    def _propose(self, rng: random.Random, k: int) -> Proposal:
        if k != self._asking:
            self._settle()
            self._asking = k
            sampler = _FixedSpaceTPE(
                self._distributions,
                self._decodable,
                seed=rng.getrandbits(32),
                n_startup_trials=self.options["n_startup_trials"],
                n_ei_candidates=self.options["n_ei_candidates"],
                multivariate=True,
                constant_liar=True,
            )
            self._study = optuna.load_study(
                study_name=_INNER_STUDY, storage=self._store, sampler=sampler
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            trial = self._study.ask(self._distributions)
        params = dict(trial.params)
        trial_id = self._store.get_trial_id_from_study_id_trial_number(
            self._study_key, trial.number
        )
        self._trying.append((trial_id, params))
        return Proposal(self.space.decode(params), mutation="tpe", params=params)

    def _decodable(self, point: dict[str, Any]) -> bool:
        """Whether an encoding point decodes to a valid genome."""
        params = {**self._constants, **point}
        try:
            self.space.decode(params)
        except InvalidGenome:
            return False
        return True

    def _settle(self) -> None:
        """Close the last ask: its rejected proposals become FAIL, its accepted one RUNNING."""
        if not self._trying:
            return
        # Only the last proposal can have been accepted; the runner may have moved ``asked``
        # since, so compare with what the ask returned.
        last = self.last_candidate
        accepted = last is not None and _params_key(last.params) == _params_key(self._trying[-1][1])
        rejected = self._trying[:-1] if accepted else self._trying
        for trial_id, _ in rejected:
            self._store.set_trial_state_values(trial_id, TrialState.FAIL)
        if accepted:
            trial_id, params = self._trying[-1]
            self._running[_params_key(params)] = trial_id
        self._trying = []

    def _observe(self, trial: TrialRecord) -> None:
        self._settle()
        params = dict(trial.candidate.params)
        if set(params) != set(self._distributions):
            raise NLFSError(
                f"tpe needs the encoding values of every told trial; trial {trial.number} has "
                f"{sorted(params)}, expected {sorted(self._distributions)} (was it stored by "
                "another strategy?)"
            )
        state, values, curve = _inner_outcome(trial)
        trial_id = self._running.pop(_params_key(params), None)
        if trial_id is not None:
            for step, value in curve.items():
                self._store.set_trial_intermediate_value(trial_id, step, value)
            self._store.set_trial_state_values(trial_id, state, values)
            return
        try:
            frozen = optuna.trial.create_trial(
                state=state,
                params=params,
                distributions=self._distributions,
                values=values,
                intermediate_values=curve,
            )
        except ValueError as exc:
            raise NLFSError(
                f"trial {trial.number}'s encoding values do not fit the space: {exc}"
            ) from exc
        self._store.create_new_trial(self._study_key, template_trial=frozen)


def _inner_outcome(trial: TrialRecord) -> tuple[TrialState, list[float] | None, dict[int, float]]:
    """How a told trial enters the inner study: (state, values, intermediate values).

    Ok: COMPLETE with its fitness. Pruned: Optuna's PRUNED with its curve and its last value,
    as ``study.tell`` stores one, so TPE ranks it below every completed trial, by the step it
    reached and then its value there (Optuna's own treatment of pruned trials). Anything else:
    FAIL, which TPE ignores.
    """
    if trial.ok:
        return TrialState.COMPLETE, [float(trial.fitness)], {}
    curve = {int(step): float(value) for step, value in trial.curve if math.isfinite(value)}
    if trial.pruned and curve:
        return TrialState.PRUNED, [curve[max(curve)]], curve
    return TrialState.FAIL, None, {}
