"""An incremental view of a study's trials, so the runner's cost per ask does not grow with n.

``study.get_trials()`` reads every trial, O(n) per call; with thousands of stored trials that
would dominate a fast evaluation. :class:`TrialCache` loads the study once, then on each
:meth:`TrialCache.sync` fetches only trials numbered after the last one seen plus the few that
were still open (running, or without their candidate yet), by trial id, which both Optuna
journal and RDB storages answer without a scan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nlfs.evaluation.results import State
from nlfs.search.strategy import Candidate, TrialRecord
from nlfs.storage import NOT_COUNTED, SURPLUS, study_id_of, study_storage


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Finished (ok, failed or pruned) or running trials use budget; interrupted/surplus ones
    do not. A pruned trial trained until it was stopped, so it used budget."""
    if trial.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED):
        return True
    if trial.state == TrialState.FAIL:
        return trial.user_attrs.get("failure_kind") not in NOT_COUNTED
    return False


def classify(trial: FrozenTrial) -> str:
    """``running``, ``ok``, ``failed``, ``pruned``, ``interrupted``, ``surplus`` or Optuna's
    state name (``pruned`` is Optuna's PRUNED: stopped early by a pruning rule)."""
    if trial.state == TrialState.RUNNING:
        return "running"
    if trial.state == TrialState.COMPLETE:
        return "ok"
    if trial.state == TrialState.FAIL:
        kind = trial.user_attrs.get("failure_kind")
        return kind if kind in NOT_COUNTED else "failed"
    return trial.state.name.lower()


def is_finished_work(trial: FrozenTrial) -> bool:
    """A finished evaluation a strategy should hear about (not interrupted, not surplus)."""
    return (
        trial.state.is_finished() and counts_toward_budget(trial) and "genome" in trial.user_attrs
    )


def candidate_of(space, attrs: Mapping[str, Any]) -> Candidate:
    """Rebuild the candidate a trial evaluated from its user attributes."""
    return Candidate(
        genome=space.from_json(attrs["genome"]),
        expression=attrs["expression"],
        key=attrs["key"],
        sign=float(attrs["sign"]),
        parent=attrs.get("parent"),
        mutation=attrs.get("mutation"),
        phase=attrs.get("phase") or "search",
        params=dict(attrs.get("params") or {}),
    )


def record_of(space, trial: FrozenTrial) -> TrialRecord:
    """A finished trial as strategies see it; only a completed trial has a fitness.

    A PRUNED trial becomes state ``pruned`` without a fitness (Optuna gives it its last
    intermediate value as ``value``; that is never read here); its curve is on the record.
    """
    attrs = trial.user_attrs
    curve = tuple(sorted(trial.intermediate_values.items()))
    if trial.state == TrialState.COMPLETE:
        state, fitness = State.OK, trial.value
    elif trial.state == TrialState.PRUNED:
        state, fitness = State.PRUNED, None
    else:
        state, fitness = State(attrs.get("state") or State.ERROR.value), None
        if state is State.OK:  # finished as FAIL though the evaluator said ok: not a fitness
            state = State.ERROR
    return TrialRecord(
        number=trial.number,
        candidate=candidate_of(space, attrs),
        state=state,
        fitness=fitness,
        curve=curve,
    )


def _seconds(trial: FrozenTrial) -> float:
    """Training seconds a finished budget-using trial spent (0 for any other trial)."""
    if not (trial.state.is_finished() and counts_toward_budget(trial)):
        return 0.0
    return float(trial.user_attrs.get("seconds") or 0.0)


class TrialCache:
    """The runner's synced copy of a study's trials.

    Attributes:
        trials: trial number -> latest known FrozenTrial.
        counted: how many trials use budget (running, ok, failed, pruned).
        seconds_used: training seconds of the finished budget-using trials (their ``seconds``
            attribute), what a time budget counts.
        key_holders: canonical key -> numbers of budget-using trials that carry it (more than
            one means two workers raced to the same candidate).
        finished_log: every finished trial in the order the cache saw it finish (pruning
            rules read the stored curves from here, O(new) per checkpoint).
    """

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self._store = study_storage(study)
        self._study_key = study_id_of(study)
        self.trials: dict[int, FrozenTrial] = {}
        self.counted = 0
        self.seconds_used = 0.0
        self.key_holders: dict[str, set[int]] = {}
        self.kinds: Counter[str] = Counter()  # classify() of every trial
        self.best: FrozenTrial | None = None  # the completed trial of highest value
        self.finished_log: list[FrozenTrial] = []
        self._claims: dict[int, set[int]] = {}  # interrupted number -> trials re-running it
        self._interrupted: set[int] = set()  # interrupted trials that carry a candidate
        self._open: set[int] = set()  # not finished, or without a candidate yet
        self._next = 0
        self._loaded = False

    def _apply(self, trial: FrozenTrial) -> tuple[bool, bool]:
        """Store ``trial``; returns (newly finished, newly has a candidate)."""
        old = self.trials.get(trial.number)
        if old is not None:
            self.kinds[classify(old)] -= 1
            self.counted -= counts_toward_budget(old)
            self.seconds_used -= _seconds(old)
        self.kinds[classify(trial)] += 1
        self.counted += counts_toward_budget(trial)
        self.seconds_used += _seconds(trial)
        if trial.state == TrialState.COMPLETE:
            if self.best is None or trial.value > self.best.value:
                self.best = trial
        self.trials[trial.number] = trial
        attrs = trial.user_attrs
        had_candidate = old is not None and "key" in old.user_attrs
        has_candidate = "key" in attrs
        if had_candidate:
            self.key_holders.get(old.user_attrs["key"], set()).discard(trial.number)
        if has_candidate and counts_toward_budget(trial):
            self.key_holders.setdefault(attrs["key"], set()).add(trial.number)
        if old is not None and old.user_attrs.get("retry_of") is not None:
            self._claims.get(old.user_attrs["retry_of"], set()).discard(trial.number)
        # A surplus reservation gives its claim back, so the candidate is still re-run later;
        # so does a retry interrupted before it wrote the candidate (it cannot be retried
        # itself, and its claim would lose the candidate: found by benchmarks/reliability.py).
        gave_back = classify(trial) == SURPLUS or (
            attrs.get("failure_kind") == "interrupted" and "genome" not in attrs
        )
        if attrs.get("retry_of") is not None and not gave_back:
            self._claims.setdefault(attrs["retry_of"], set()).add(trial.number)
        if attrs.get("failure_kind") == "interrupted" and "genome" in attrs:
            self._interrupted.add(trial.number)
        if trial.state.is_finished() and has_candidate:
            self._open.discard(trial.number)
        elif trial.state.is_finished() and not has_candidate:
            self._open.discard(trial.number)  # a surplus or early-crashed reservation
        else:
            self._open.add(trial.number)
        was_finished = old is not None and old.state.is_finished()
        if trial.state.is_finished() and not was_finished:
            self.finished_log.append(trial)
        return trial.state.is_finished() and not was_finished, has_candidate and not had_candidate

    def sync(self) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """Fetch what changed since the last sync.

        Returns:
            (trials that finished since the last sync, trials whose candidate appeared since the
            last sync), each in trial-number order.
        """
        finished: list[FrozenTrial] = []
        described: list[FrozenTrial] = []

        def take(trial: FrozenTrial) -> None:
            done, new_candidate = self._apply(trial)
            if done:
                finished.append(trial)
            if new_candidate:
                described.append(trial)

        if not self._loaded:
            # One bulk read at start; afterwards only new and open trials are fetched.
            for trial in self.study.get_trials(deepcopy=False):
                take(trial)
            self._next = len(self.trials)
            self._loaded = True
        else:
            for number in sorted(self._open):
                take(self._fetch(number))
            while True:
                try:
                    trial = self._fetch(self._next)
                except KeyError:
                    break
                take(trial)
                self._next += 1
        finished.sort(key=lambda t: t.number)
        described.sort(key=lambda t: t.number)
        return finished, described

    @property
    def next_number(self) -> int:
        """One more than the highest trial number seen (the number of trials in the study)."""
        return self._next

    def _fetch(self, number: int) -> FrozenTrial:
        trial_id = self._store.get_trial_id_from_study_id_trial_number(self._study_key, number)
        return self._store.get_trial(trial_id)

    def refresh(self, number: int) -> FrozenTrial:
        """Re-read one trial (for example one this worker just reserved)."""
        trial = self._fetch(number)
        self._apply(trial)
        if number >= self._next:
            self._next = number + 1
        return trial

    def pending_retries(self) -> list[int]:
        """Interrupted trials with a candidate that no other trial has re-evaluated yet."""
        return sorted(n for n in self._interrupted if not self._claims.get(n))

    def retry_owner(self, interrupted: int) -> int | None:
        """The lowest-numbered trial that claims to re-run trial ``interrupted``."""
        claims = self._claims.get(interrupted)
        return min(claims) if claims else None

    def counted_up_to(self, number: int) -> int:
        """How many budget-using trials have a number up to and including ``number``.

        Counted from the top down: only the few trials reserved after ``number`` are visited.
        """
        later = (self.trials.get(n) for n in range(number + 1, self._next))
        return self.counted - sum(1 for t in later if t is not None and counts_toward_budget(t))

    def finished_count(self) -> int:
        """Trials that finished and used budget (ok, failed or pruned)."""
        return self.kinds["ok"] + self.kinds["failed"] + self.kinds["pruned"]

    def running(self) -> list[FrozenTrial]:
        """Trials still running as of the last sync (any worker's)."""
        return [
            self.trials[n] for n in sorted(self._open) if self.trials[n].state == TrialState.RUNNING
        ]

    def steps_used(self) -> int:
        """Training steps of the finished budget-using trials (their ``steps`` attribute)."""
        return sum(
            int(t.user_attrs.get("steps") or 0)
            for t in self.trials.values()
            if t.state.is_finished() and counts_toward_budget(t)
        )
