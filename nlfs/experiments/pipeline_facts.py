"""What the report of ``nlfs run`` is built from, read back from the pipeline's stored studies.

:func:`gather` collects :class:`PipelineFacts`: the transfer grid's records, the elimination
funnel, the fidelity facts, the finalists, what each step spent (:func:`spend`: trials by outcome,
screen rejections, training seconds by device) and the learning curves stored on the transfer
jobs (:func:`learning_curves`: Optuna intermediate values, step -> test accuracy). Everything is
plain data; the report (:mod:`nlfs.report.verdict`) analyses and renders it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from nlfs.errors import ConfigError
from nlfs.experiments.pipeline_config import STEPS, PipelineConfig, ReportSettings
from nlfs.search.trials import classify
from nlfs.stats import Setting
from nlfs.stats.records import RunRecord


@dataclass(frozen=True)
class Finalist:
    """A loss that came through the elimination, named by its search trial (``study:trial``)."""

    label: str
    expression: str
    sign: float
    key: str
    trial: int
    search_fitness: float


@dataclass(frozen=True)
class PipelineFacts:
    """What the report of a pipeline run is built from (all read back from the studies).

    Attributes:
        name: the pipeline's name; ``studies``: each step's study; ``storage``: where they are.
        records: the transfer grid's tidy records; ``notes`` say which jobs were left out.
        funnel: the elimination funnel (:func:`nlfs.experiments.funnel.funnel_from_study`).
        fidelity: the facts of the fidelity grid (:func:`nlfs.experiments.fidelity.collect`),
            None when the step is disabled.
        finalists: the elimination's finalists, best first.
        spend: per step, what its study spent (:func:`spend`).
        curves: learning curves stored on the transfer jobs of the finalists and the baseline.
        trained: per step, how many trials this run trained (0 everywhere on a rerun).
        report: the report settings.
    """

    name: str
    studies: Mapping[str, str]
    storage: str
    records: tuple[RunRecord, ...]
    notes: tuple[str, ...]
    funnel: Any
    fidelity: dict[str, Any] | None
    finalists: tuple[Finalist, ...]
    spend: Mapping[str, dict[str, Any]]
    curves: tuple[dict[str, Any], ...]
    trained: Mapping[str, int] = field(default_factory=dict)
    report: ReportSettings = field(default_factory=ReportSettings)


def gather(
    config: PipelineConfig,
    storage: str,
    finalists: Sequence[Finalist],
    fidelity: dict[str, Any] | None,
    trained: Mapping[str, int],
) -> PipelineFacts:
    """Read the report's facts back from the stored studies of ``config``'s steps."""
    from nlfs.experiments.funnel import funnel_from_study
    from nlfs.experiments.records import records_from_study
    from nlfs.experiments.transfer import LABELS
    from nlfs.losses.baselines import ALIASES
    from nlfs.storage import load_existing_study

    names = {step: config.study(step) for step in STEPS[:-1]}
    studies = {
        step: load_existing_study(name, storage)
        for step, name in names.items()
        if step != "fidelity" or fidelity is not None
    }
    loaded = records_from_study(studies["transfer"])
    notes = []
    if loaded.failed or loaded.unfinished:
        notes.append(
            f"{loaded.failed} failed and {loaded.unfinished} unfinished transfer jobs were left out"
        )
    baseline = ALIASES.get(config.report.baseline, config.report.baseline)
    shown = {*(f.label for f in finalists), LABELS.get(baseline, baseline)}
    return PipelineFacts(
        name=config.pipeline.name,
        studies={step: names[step] for step in studies},
        storage=storage,
        records=loaded.records,
        notes=tuple(notes),
        funnel=funnel_from_study(studies["eliminate"]),
        fidelity=fidelity,
        finalists=tuple(finalists),
        spend={step: spend(study) for step, study in studies.items()},
        curves=tuple(learning_curves(studies["transfer"], shown)),
        trained=dict(trained),
        report=config.report,
    )


TRAINED = ("ok", "failed", "pruned")
"""Outcomes of trials that trained (a pruned one until a pruning rule stopped it)."""


def trained_count(study_name: str, storage: str) -> int:
    """Trials of a study that trained (:data:`TRAINED`); 0 for a study not made yet."""
    from nlfs.storage import load_existing_study

    try:
        study = load_existing_study(study_name, storage)
    except ConfigError:
        return 0
    return sum(classify(t) in TRAINED for t in study.get_trials(deepcopy=False))


def device_kind(device: Any) -> str:
    """``cpu`` or ``gpu`` (``cuda``, ``cuda:1``, ``mps``); ``unknown`` when not recorded."""
    if not device:
        return "unknown"
    return "cpu" if str(device).split(":")[0] == "cpu" else "gpu"


def spend(study: optuna.Study) -> dict[str, Any]:
    """What a study spent: trials by outcome, screen rejections (searches) and the training
    seconds of the trials that trained by device kind (summed over trials, so over workers
    too)."""
    from nlfs.search.runner import total_rejections

    trials = study.get_trials(deepcopy=False)
    outcomes = Counter(classify(t) for t in trials)
    seconds: dict[str, float] = {}
    for trial in trials:
        if classify(trial) in TRAINED:
            kind = device_kind(trial.user_attrs.get("device"))
            value = trial.user_attrs.get("seconds")
            if value is not None and math.isfinite(float(value)):
                seconds[kind] = seconds.get(kind, 0.0) + float(value)
    rejections = total_rejections(study.user_attrs)
    return {
        "study": study.study_name,
        "kind": study.user_attrs.get("kind"),
        "budget": study.user_attrs.get("budget"),
        "evaluations": sum(outcomes[k] for k in TRAINED),
        "ok": outcomes["ok"],
        "pruned": outcomes["pruned"],
        "failed": outcomes["failed"],
        "interrupted": outcomes["interrupted"],
        "rejected": sum(rejections.values()),
        "rejections": rejections,
        "seconds": dict(sorted(seconds.items())),
    }


def learning_curves(study: optuna.Study, losses: set[str] | frozenset[str]) -> list[dict]:
    """The stored learning curves (Optuna intermediate values: step -> test accuracy) of the
    completed transfer jobs of ``losses``; jobs without intermediate values give none."""
    from nlfs.experiments.jobs import job_results

    curves = []
    for trial in sorted(job_results(study).values(), key=lambda t: t.number):
        attrs = trial.user_attrs
        points = {
            int(step): float(value)
            for step, value in trial.intermediate_values.items()
            if math.isfinite(value)
        }
        if trial.state is not TrialState.COMPLETE or attrs.get("loss") not in losses or not points:
            continue
        steps = sorted(points)
        curves.append(
            {
                "loss": attrs["loss"],
                "setting": Setting(
                    str(attrs["arch"]), str(attrs["dataset"]), str(attrs["augment"])
                ).label,
                "seed": int(attrs["seed"]),
                "trial": trial.number,
                "steps": steps,
                "values": [points[s] for s in steps],
            }
        )
    return curves
