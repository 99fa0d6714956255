"""Refinement: tune the coefficients of a found loss (``nlfs refine``).

A search picks a structure; its numbers were never tuned. Refinement lifts the expression of one
trial (:mod:`nlfs.losses.lift`: a weight, and where it keeps the loss well-defined an offset, at
chosen nodes) and tunes the coefficient vector with Optuna's CMA-ES sampler (or TPE) as one more
Optuna study (``kind`` "refine", ``<search>-refine-t<trial>`` by default), resumable and shared by
workers like every other:

1. **Trial 0 is the original loss** (the coefficients at which the lifted loss equals it, enqueued
   when the study is created, and again if its worker died), trained with the search's
   evaluation seed like every trial, so the in-study gain is measured on the same seed.
2. **Each trial** asks the sampler for a coefficient vector, fills it in, screens it (shape,
   finite values on the probe, finite gradients: :mod:`nlfs.screening.coefficients`; a rejected
   setting is a FAIL with failure kind ``rejected`` that uses no budget), then trains it once
   with the real evaluator. The budget rule is the search runner's: a trial uses budget while
   running or once finished ok or failed; a worker whose reservation exceeds the budget marks
   it ``surplus``. Coefficients that cannot matter are left out before tuning
   (:func:`~nlfs.screening.coefficients.movable`) and stored as the attribute ``frozen``.
3. **Re-evaluation** (:mod:`nlfs.experiments.refine_reevaluate`): the original and the best
   trial, each with ``seeds`` fresh training seeds, in a grid study ``<refine>-reevaluate``.

Every trial carries ``expression`` (the canonical expression with its coefficients filled in) and
``sign``, so ``nlfs transfer --losses REFINE:best``, ``nlfs export --study REFINE --trial N`` and
``nlfs report`` take a refined loss like any searched one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from nlfs.config import config_hash
from nlfs.errors import ConfigError, NLFSError
from nlfs.evaluation.results import EvalRequest
from nlfs.losses.compile import ExpressionLoss
from nlfs.losses.expressions import expression_key
from nlfs.losses.lift import WEIGHT, Lifted, lift
from nlfs.screening.coefficients import movable, screen_setting
from nlfs.screening.screen import Screen
from nlfs.search.trials import counts_toward_budget
from nlfs.storage import (
    SURPLUS,
    Heartbeat,
    load_existing_study,
    mark_interrupted,
    open_study,
    recover_interrupted,
    resolve_storage,
    set_trial_user_attrs,
    study_storage,
    trial_id_of,
    worker_identity,
)

KIND = "refine"
SAMPLERS = ("cmaes", "tpe")
REJECTED = "rejected"
"""``failure_kind`` of a coefficient setting the screen refused (it trained nothing)."""
WEIGHT_RANGE = (0.0, 2.0)
"""Search interval of a weight, centred on its initial 1 (refinement is local: a weight may
vanish or double; a sign flip mostly mirrors a setting the screen's sign already covers)."""
OFFSET_RANGE = (-0.5, 0.5)
"""Search interval of an offset, centred on its initial 0 (half the range of y and p)."""
DECIMALS = 4
"""Coefficients are rounded to this many decimal places before use, so a refined formula stays
readable; a change of 5e-5 in a coefficient is far below what one training run can tell."""
MAX_REJECTIONS = 200
"""Consecutive screen rejections after which a worker gives up (the sampler is stuck)."""

EvaluatorFactory = Callable[[str, str, "str | None"], Any]
"""``factory(profile, device, data_dir)`` -> an evaluator with ``evaluate(list[EvalRequest])``."""


@dataclass(frozen=True)
class RefineConfig:
    """One refinement.

    Attributes:
        search: the study holding the loss (a search, or any study whose trials carry
            ``expression`` and ``sign``).
        trial: the trial number of the loss.
        budget: evaluations of the tuning study (trial 0, the original, included).
        sampler: ``cmaes`` or ``tpe``.
        profile: evaluator profile (None: the search's).
        seeds: fresh training seeds of the re-evaluation.
        seed: seed of the sampler.
        nodes: prefix positions to lift (None: every node but the root).
        name: the tuning study (empty: ``<search>-refine-t<trial>``).
    """

    search: str
    trial: int
    budget: int = 50
    sampler: str = "cmaes"
    profile: str | None = None
    seeds: int = 5
    seed: int = 0
    nodes: tuple[int, ...] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.budget < 1:
            raise ConfigError(f"--budget must be at least 1 (the original), got {self.budget}")
        if self.seeds < 2:
            raise ConfigError(f"--seeds must be at least 2 for a paired interval, got {self.seeds}")

    @property
    def study_name(self) -> str:
        return self.name or f"{self.search}-refine-t{self.trial}"


# ------------------------------------------------------------------------- set-up


def _source(config: RefineConfig, storage: str | None) -> tuple[FrozenTrial, str, int]:
    """The trial to refine, the profile to train with and the evaluation seed."""
    search = load_existing_study(config.search, storage)
    trial = next((t for t in search.get_trials(deepcopy=False) if t.number == config.trial), None)
    if trial is None:
        raise ConfigError(f"study {config.search!r} has no trial {config.trial}")
    if not trial.user_attrs.get("expression") or trial.user_attrs.get("sign") is None:
        raise ConfigError(f"trial {config.trial} of {config.search!r} has no loss to refine")
    stored = search.user_attrs.get("config") or {}
    profile = config.profile or stored.get("profile")
    if not profile:
        raise ConfigError(f"study {config.search!r} names no profile; pass --profile")
    return trial, str(profile), int(stored.get("eval_seed", 0))


def prepare(config: RefineConfig, storage: str | None) -> tuple[optuna.Study, Lifted]:
    """Open (or resume) the tuning study and make sure the original is trial 0 or pending.

    Raises:
        ConfigError: no such study or trial, a bad node, or a resume with another recipe.
    """
    from nlfs.evaluation.profiles import load_profile, profile_data

    trial, profile, eval_seed = _source(config, storage)
    lifted, frozen = movable(lift(trial.user_attrs["expression"], config.nodes))
    recipe = {
        "search": config.search,
        "trial": config.trial,
        "expression": lifted.expression,
        "sign": float(trial.user_attrs["sign"]),
        "lifted": lifted.to_attr(),
        "sampler": config.sampler,
        "seed": config.seed,
        "profile": profile,
        "profile_data": profile_data(load_profile(profile)),
        "eval_seed": eval_seed,
    }
    name = config.study_name
    study = open_study(
        name,
        resolve_storage(storage, name),
        attrs={
            "kind": KIND,
            "config": recipe,
            "config_hash": config_hash(recipe),
            "budget": config.budget,
            "lifted_nodes": lifted.describe(),
            "frozen": frozen,
        },
    )
    recover_interrupted(study)
    _enqueue_original(study, lifted)
    return study, lifted


def _enqueue_original(study: optuna.Study, lifted: Lifted) -> None:
    """Enqueue the original unless a trial of it settled it or is pending."""
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("original") and (
            t.state in (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
            or (t.state == TrialState.FAIL and counts_toward_budget(t))
        ):
            return
    study.enqueue_trial(dict(zip(lifted.names, lifted.initial, strict=True)), {"original": True})


def distributions(lifted: Lifted) -> dict[str, FloatDistribution]:
    """The search interval of each coefficient."""
    return {
        slot.name: FloatDistribution(*(WEIGHT_RANGE if slot.kind == WEIGHT else OFFSET_RANGE))
        for slot in lifted.slots
    }


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """CMA-ES or TPE. CMA-ES starts at the centre of the intervals, which are centred on the
    original's coefficients (weight 1, offset 0), with Optuna's default step size."""
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def coefficients_of(params: dict[str, float], lifted: Lifted) -> list[float]:
    """The coefficient vector of a trial's parameters, rounded to :data:`DECIMALS` places."""
    return [round(float(params[name]), DECIMALS) for name in lifted.names]


# ------------------------------------------------------------------------- the worker


def uses_budget(trial: FrozenTrial) -> bool:
    """The search runner's budget rule, with screen rejections (nothing trained) left out."""
    return counts_toward_budget(trial) and trial.user_attrs.get("failure_kind") != REJECTED


def default_evaluator(profile: str, device: str, data_dir: str | None):
    """The real evaluator, scoring on the validation split like the search."""
    from nlfs.evaluation.evaluator import Evaluator

    return Evaluator(profile, device=device, data_dir=data_dir, split="val")


def run_worker(
    study_name: str,
    storage: str | None,
    *,
    device: str = "auto",
    data_dir: str | None = None,
    evaluator_factory: EvaluatorFactory | None = None,
    on_trial: Callable[[int, str, float | None], None] | None = None,
) -> int:
    """Tune until the study's budget is used; returns the trials this worker trained.

    ``on_trial(number, expression, fitness)`` is called after each training.

    Raises:
        NLFSError: the sampler proposed :data:`MAX_REJECTIONS` rejected settings in a row.
    """
    study = load_existing_study(study_name, storage)
    recipe = study.user_attrs["config"]
    lifted = Lifted.from_attr(recipe["lifted"])
    dists = distributions(lifted)
    store = study_storage(study)
    evaluator = (evaluator_factory or default_evaluator)(recipe["profile"], device, data_dir)

    screen = Screen(dedupe=False)  # one per worker: its probe cache spans the settings
    ran = rejections = 0
    while True:
        budget = int(study.user_attrs["budget"])
        trials = study.get_trials(deepcopy=False)
        if sum(map(uses_budget, trials)) >= budget:
            return ran
        # A fresh sampler per ask, seeded by (seed, trials so far): a resume asks as a run
        # that never stopped would; CMA-ES rebuilds its state from the stored trials.
        seed = int(np.random.SeedSequence([recipe["seed"], len(trials)]).generate_state(1)[0])
        study.sampler = make_sampler(recipe["sampler"], seed)
        trial = study.ask(dists)
        trial_id, number = trial_id_of(trial), trial.number
        store.set_trial_user_attr(trial_id, "worker", worker_identity())
        values = coefficients_of(trial.params, lifted)
        original = bool(trial.user_attrs.get("original"))
        expression = recipe["expression"] if original else lifted.instantiate(values)
        described = {"expression": expression, "coefficients": values, "original": original}
        accepted, reason, sign = screen_setting(expression, screen)
        if not accepted:
            set_trial_user_attrs(
                store,
                trial_id,
                {**described, "failure_kind": REJECTED, "state": REJECTED, "reason": reason},
            )
            study.tell(number, state=TrialState.FAIL)
            rejections += 1
            if rejections >= MAX_REJECTIONS:
                raise NLFSError(
                    f"refine {study_name}: the last {MAX_REJECTIONS} coefficient settings all "
                    "failed screening; lift fewer nodes (--nodes) or try --sampler tpe"
                )
            continue
        rejections = 0
        counted = [t for t in study.get_trials(deepcopy=False) if t.number <= number]
        if sum(map(uses_budget, counted)) > budget:
            set_trial_user_attrs(store, trial_id, {"failure_kind": SURPLUS, "state": SURPLUS})
            study.tell(number, state=TrialState.FAIL)
            continue
        sign = float(recipe["sign"]) if original else sign
        set_trial_user_attrs(
            store,
            trial_id,
            {
                **described,
                "key": expression_key(expression),
                "sign": sign,
                "eval_seed": recipe["eval_seed"],
            },
        )
        try:
            with Heartbeat(study, trial_id):
                loss = ExpressionLoss(expression, sign=sign)
                request = EvalRequest(loss, int(recipe["eval_seed"]), f"{study_name}:{number}")
                result = evaluator.evaluate([request])[0]
        except BaseException:
            mark_interrupted(study, number, trial_id)
            raise
        fitness = result.fitness
        set_trial_user_attrs(
            store,
            trial_id,
            {
                "state": result.state.value,
                "failure_kind": None if fitness is not None else result.state.value,
                "best_acc": result.best_acc,
                "final_acc": result.final_acc,
                "steps": result.steps,
                "seconds": result.seconds,
                "device": result.device,
            },
        )
        if fitness is None:
            study.tell(number, state=TrialState.FAIL)
        else:
            study.tell(number, fitness)
        ran += 1
        if on_trial is not None:
            on_trial(number, expression, fitness)


def _worker_main(study_name, storage, device, data_dir, factory) -> None:
    """One tuning worker process (a :func:`nlfs.search.workers.run_processes` target)."""
    run_worker(study_name, storage, device=device, data_dir=data_dir, evaluator_factory=factory)


def run_local(
    study_name: str,
    storage: str | None,
    *,
    workers: int = 1,
    device: str = "auto",
    data_dir: str | None = None,
    evaluator_factory: EvaluatorFactory | None = None,
    on_trial: Callable[[int, str, float | None], None] | None = None,
) -> None:
    """Tune with ``workers`` local processes (1: in this process, reporting ``on_trial``)."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        run_worker(
            study_name,
            storage,
            device=device,
            data_dir=data_dir,
            evaluator_factory=evaluator_factory,
            on_trial=on_trial,
        )
        return
    from nlfs.search.workers import run_processes

    run_processes(_worker_main, (study_name, storage, device, data_dir, evaluator_factory), workers)
