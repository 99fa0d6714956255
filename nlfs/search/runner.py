"""The study runner: asks the strategy, records trials in Optuna storage, calls the evaluator.

Only the runner calls the evaluator (docs/architecture.md: search, scheduling and execution kept
apart). One worker's loop:

1. Recover interrupted trials (:func:`nlfs.storage.recover_interrupted`), then replay storage:
   rebuild the screen from the stored expressions and build the strategy with the study's seed,
   telling it every finished trial in number order.
2. Before each ask, sync: tell the strategy the trials other workers finished since the last
   sync and add their expressions to the screen (only new or open trials are read).
3. Reserve: when fewer than ``budget`` trials use budget, create a RUNNING trial (recording this
   worker's host and pid) *before* asking, so a crash leaves evidence. Then re-count: if the
   trials numbered up to ours already exceed the budget, another worker won the race and ours is
   failed as ``surplus`` (it never used budget). This is the budget rule: a trial uses budget
   when it is running or finished ok/failed; interrupted and surplus trials do not. With K
   workers the study therefore ends at exactly ``budget`` finished trials, never more.
4. The candidate: first any interrupted trial's candidate not yet re-evaluated (claimed through
   the ``retry_of`` attribute of the new trial), else ``strategy.ask`` with ``asked`` set to
   the trial number, so the k-th ask's randomness is that of trial k on every worker and on
   resume. A key another running or finished trial took meanwhile (a race between workers) is
   asked again; the screen now knows it.
5. Write the candidate's attributes, evaluate with ``EvalRequest(loss, eval_seed, monitor)``
   (phase ``seed`` candidates use ``seed_profile`` when the config names one), write the
   outcome and tell Optuna: a value only for state ok, PRUNED for a candidate the pruning rule
   stopped, FAIL otherwise. The monitor stores each evaluation point as the trial's Optuna
   intermediate value (optuna-dashboard draws the learning curves) and asks the config's
   pruning rule (:mod:`nlfs.search.pruning`) whether to stop the candidate.

With ``group`` K > 1 a worker reserves up to K trials (steps 3-4 for each, so the budget rule
and the ``(seed, k)`` asks are unchanged), evaluates their requests in one call (the evaluator
trains same-seed candidates together) and records each as in step 5.

Ctrl-C (or any exception) during a trial fails it as ``interrupted``; the next run evaluates its
candidate again and resumes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from nlfs.errors import NLFSError
from nlfs.evaluation.results import EvalRequest, EvalResult, State
from nlfs.search.config import SearchConfig
from nlfs.search.pruning import CurveKeeper
from nlfs.search.trials import TrialCache, candidate_of, is_finished_work, record_of
from nlfs.storage import (
    SURPLUS,
    Heartbeat,
    await_stragglers,
    create_running_trial,
    mark_interrupted,
    recover_interrupted,
    set_study_user_attrs,
    set_trial_user_attrs,
    study_storage,
    worker_identity,
    worker_label,
)

EvaluatorFactory = Callable[[str, SearchConfig], Any]
"""``factory(profile, config) -> evaluator`` with ``evaluate(list[EvalRequest])``."""

MAX_RACE_RETRIES = 20
"""Re-asks of one trial whose candidate a concurrent worker took first (then give up)."""


def default_evaluator(profile: str, config: SearchConfig):
    """The real evaluator for ``profile`` on the config's device and data folder."""
    from nlfs.evaluation.evaluator import Evaluator

    return Evaluator(profile, device=config.device, data_dir=config.data_dir, split="val")


def check_config(config: SearchConfig) -> None:
    """Build the space and strategy once so a bad name, option or pairing (tpe on ``tree``)
    fails before any storage is created.

    Raises:
        ConfigError: with what was wrong and the valid choices.
    """
    from nlfs.search.strategy import get_strategy
    from nlfs.spaces import get_space

    space = get_space(config.space, **config.space_options)
    get_strategy(config.strategy)(space, seed=config.seed, **config.strategy_options)


def study_attrs(config: SearchConfig) -> dict[str, Any]:
    """The study user attributes of a search with ``config``."""
    return {
        "kind": "search",
        "strategy": config.strategy,
        "space": config.space,
        "profile": config.profile_label(),
        "seed_profile": config.seed_profile,
        "seed": config.seed,
        "budget": config.budget,
        "config_hash": config.hash(),
        "config": config.to_dict(),
    }


class SearchWorker:
    """One worker on one study (several may share a study, in processes or on machines).

    Args:
        study: the open study (see :func:`nlfs.storage.open_study`).
        config: the search config (the study's, for a joining worker).
        evaluator_factory: builds an evaluator per profile; default :func:`default_evaluator`.
        on_update: called with this worker's :class:`TrialCache` after each sync and trial
            (progress display).
        on_result: called with (trial number, candidate, EvalResult) after each evaluation.
    """

    def __init__(
        self,
        study: optuna.Study,
        config: SearchConfig,
        *,
        evaluator_factory: EvaluatorFactory | None = None,
        on_update: Callable[[SearchWorker], None] | None = None,
        on_result: Callable[[int, Any, EvalResult], None] | None = None,
    ) -> None:
        from nlfs.search.strategy import get_strategy
        from nlfs.spaces import get_space

        self.study = study
        self.config = config
        self.space = get_space(config.space, **config.space_options)
        self.strategy_cls = get_strategy(config.strategy)
        self.cache = TrialCache(study)
        self.recovered: list[int] = []
        self._store = study_storage(study)
        self._factory = evaluator_factory or default_evaluator
        self._evaluators: dict[str, Any] = {}
        self._on_update = on_update or (lambda worker: None)
        self._on_result = on_result or (lambda number, cand, result: None)
        self._own: set[int] = set()
        self._label = worker_label()
        self.group = _group(config)  # trials this worker keeps in flight
        self._reported: dict[str, int] = {}
        self.curves = CurveKeeper(self._store, self.cache, config)
        self.screen = None
        self.strategy = None

    # --- replay -----------------------------------------------------------------------------

    def start(self) -> None:
        """Recover dead workers' trials and replay storage into a fresh screen and strategy."""
        from nlfs.screening.screen import Screen

        self.recovered = recover_interrupted(self.study)
        finished, described = self.cache.sync()
        expressions = [t.user_attrs["expression"] for t in described]
        screen = self.config.screen
        self.screen = Screen.rebuild(expressions, tolerance=screen.tolerance, dedupe=screen.dedupe)
        self.strategy = self.strategy_cls(
            self.space, seed=self.config.seed, screen=self.screen, **self.config.strategy_options
        )
        self.strategy.tell([record_of(self.space, t) for t in finished if is_finished_work(t)])
        self.strategy.asked = self.cache.next_number

    def _sync(self) -> None:
        finished, described = self.cache.sync()
        for trial in described:
            if trial.number not in self._own:
                self.screen.add(trial.user_attrs["expression"])
        records = [record_of(self.space, t) for t in finished if is_finished_work(t)]
        if records:
            self.strategy.tell(records)
        self._on_update(self)

    # --- the loop ---------------------------------------------------------------------------

    def run(self, max_trials: int | None = None) -> int:
        """Run trials until the study's budget is used; returns how many this worker ran.

        Args:
            max_trials: stop after this many trials of this worker (tests, benchmarks).
        """
        if self.strategy is None:
            self.start()
        ran = 0
        while max_trials is None or ran < max_trials:
            self._sync()
            if self._out_of_time():
                break
            if self.cache.counted >= self.config.budget:
                # A trial of a worker that died still counts as running: wait for the others
                # and redo the dead ones' candidates, so the study ends at its budget.
                recovered = await_stragglers(self.study, own=self._own)
                if not recovered:
                    break
                self.recovered.extend(recovered)
                continue
            size = self.group if max_trials is None else min(self.group, max_trials - ran)
            batch = self._reserve_group(size)
            if not batch:
                break
            self._run_trials(batch)
            ran += len(batch)
        self._sync()
        return ran

    def _reserve_group(self, size: int) -> list[tuple[int, int, int | None]]:
        """Reserve up to ``size`` trials, fewer when the budget runs out first."""
        batch = []
        for _ in range(size):
            if batch and self.cache.counted >= self.config.budget:
                break
            reserved = self._reserve()
            if reserved is None:
                break
            batch.append(reserved)
        return batch

    def _out_of_time(self) -> bool:
        limit = self.config.time_budget_s
        return limit is not None and self.cache.seconds_used >= limit

    def _reserve(self) -> tuple[int, int, int | None] | None:
        """Create this worker's next RUNNING trial; None when the budget is already used."""
        pending = self.cache.pending_retries()
        retry_of = pending[0] if pending else None
        attrs = {"worker": worker_identity(), "retry_of": retry_of}
        trial_id = create_running_trial(self.study, attrs)
        number = self._store.get_trial_number_from_id(trial_id)
        self._own.add(number)
        self._sync()
        if self.cache.counted_up_to(number) > self.config.budget:
            set_trial_user_attrs(self._store, trial_id, {"failure_kind": SURPLUS, "state": SURPLUS})
            self.study.tell(number, state=TrialState.FAIL)
            return None
        if retry_of is not None and self.cache.retry_owner(retry_of) != number:
            retry_of = None  # a lower-numbered trial claimed the same retry first
            self._store.set_trial_user_attr(trial_id, "retry_of", None)
        return trial_id, number, retry_of

    def _candidate(self, trial_id: int, number: int, retry_of: int | None):
        """The trial's candidate, its attributes already written to storage."""
        if retry_of is not None:
            candidate = candidate_of(self.space, self.cache.trials[retry_of].user_attrs)
            self._write_candidate(trial_id, candidate)
            return candidate
        for _ in range(MAX_RACE_RETRIES):
            self.strategy.asked = number
            candidate = self.strategy.ask(1)[0]
            self._report_rejections()
            self._write_candidate(trial_id, candidate)
            self._sync()  # did a concurrent worker write the same key meanwhile?
            if not self.config.screen.dedupe:
                return candidate  # duplicates allowed: re-evaluating a key is what was asked
            if self.cache.key_holders.get(candidate.key, set()) <= {number}:
                return candidate
            # Both racers may yield here (each sees the other); that costs an ask, never a
            # duplicate evaluation. The re-ask draws from the same (seed, k) stream, but the
            # screen now knows the taken key, so it moves on to the next proposal.
        raise NLFSError(
            f"trial {number}: the strategy kept proposing candidates other workers already took"
        )

    def _write_candidate(self, trial_id: int, candidate) -> None:
        attrs = {
            "expression": candidate.expression,
            "key": candidate.key,
            "sign": candidate.sign,
            "parent": candidate.parent,
            "mutation": candidate.mutation,
            "phase": candidate.phase,
            "eval_seed": self.config.eval_seed,
            "genome": self.space.to_json(candidate.genome),
        }
        if candidate.params:
            attrs["params"] = dict(candidate.params)
        set_trial_user_attrs(self._store, trial_id, attrs)

    def _run_trials(self, batch: list[tuple[int, int, int | None]]) -> None:
        """Ask, evaluate (together) and record the reserved trials of ``batch``."""
        asked = []
        try:
            # The heartbeats cover the whole trials: a worker killed while it picks the
            # candidates leaves trials that go stale like any other.
            with contextlib.ExitStack() as beats:
                for trial_id, _, _ in batch:
                    beats.enter_context(Heartbeat(self.study, trial_id))
                for trial_id, number, retry_of in batch:
                    asked.append(self._candidate(trial_id, number, retry_of))
                results = self._evaluate(batch, asked)
        except BaseException:
            # Ctrl-C, a crash of the evaluator, a data error: the work was not done, so the
            # trials are interrupted (re-evaluated on the next run), never counted as failures.
            for trial_id, number, _ in batch:
                mark_interrupted(self.study, number, trial_id)
            raise
        for (trial_id, number, _), candidate, result in zip(batch, asked, results, strict=True):
            self._record(trial_id, number, result)
            self._on_result(number, candidate, result)

    def _evaluate(self, batch, candidates) -> list[EvalResult]:
        """One evaluator call per profile among the candidates; results in batch order."""
        by_profile: dict[str, list[int]] = {}
        requests = []
        for index, ((trial_id, number, _), candidate) in enumerate(
            zip(batch, candidates, strict=True)
        ):
            profile = self.config.profile
            if candidate.phase == "seed" and self.config.seed_profile:
                profile = self.config.seed_profile
            by_profile.setdefault(profile, []).append(index)
            requests.append(
                EvalRequest(
                    self.space.compile(candidate.genome, candidate.sign),
                    seed=self.config.eval_seed,
                    name=f"trial {number}",
                    monitor=self.curves.monitor(trial_id, number, profile),
                )
            )
        results: dict[int, EvalResult] = {}
        for profile, indices in by_profile.items():
            evaluated = self._evaluator(profile).evaluate([requests[i] for i in indices])
            results.update(zip(indices, evaluated, strict=True))
        return [results[i] for i in range(len(batch))]

    def _record(self, trial_id: int, number: int, result: EvalResult) -> None:
        fitness = result.fitness
        state = result.state
        if state is State.OK and (fitness is None or not math.isfinite(fitness)):
            state, fitness = State.NAN, None  # a non-finite accuracy is never a fitness
        if state is State.PRUNED and not result.metadata.get("history"):
            state = State.ERROR  # stopped without a measured point: not a pruning decision
        outcome = {
            "failure_kind": None if state is State.OK else state.value,
            "state": state.value,
            "device": result.device,
            "seconds": result.seconds,
            "best_acc": _finite_or_none(result.best_acc),
            "final_acc": _finite_or_none(result.final_acc),
            "steps": result.steps,
        }
        set_trial_user_attrs(self._store, trial_id, outcome)
        self.curves.finish(trial_id, result)
        if fitness is not None:
            self.study.tell(number, fitness)
        elif state is State.PRUNED:
            # Optuna's PRUNED, which optuna-dashboard and Optuna's pruners read as such. Tell
            # gives it its last intermediate value as ``value``; NLFS reads a value as a fitness
            # only on COMPLETE trials.
            self.study.tell(number, state=TrialState.PRUNED)
        else:
            self.study.tell(number, state=TrialState.FAIL)

    def _evaluator(self, profile: str):
        if profile not in self._evaluators:
            self._evaluators[profile] = self._factory(profile, self.config)
        return self._evaluators[profile]

    def _report_rejections(self) -> None:
        """Store this worker's screen rejection counts and the study total when they change."""
        counts = dict(self.screen.counts)
        if counts == self._reported:
            return
        self._reported = counts
        mine = f"rejections/{self._label}"
        total = total_rejections({**self.study.user_attrs, mine: counts})
        set_study_user_attrs(self.study, {mine: counts, "rejections": total})


def _group(config: SearchConfig) -> int:
    """The config's group, else the evaluator's default for the config's device."""
    if config.group is not None:
        return config.group
    from nlfs.evaluation.evaluator import DEFAULT_GROUP, resolve_device

    return DEFAULT_GROUP.get(resolve_device(config.device).type, 1)


def total_rejections(user_attrs: Mapping[str, Any]) -> dict[str, int]:
    """Screen rejections of all workers of a study, by reason."""
    total: dict[str, int] = {}
    for key, counts in user_attrs.items():
        if key.startswith("rejections/") and isinstance(counts, Mapping):
            for reason, n in counts.items():
                total[reason] = total.get(reason, 0) + int(n)
    return dict(sorted(total.items()))


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
