"""The elimination funnel: how many candidates each stage ran and kept, and who survived."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nlfs.errors import DataError


@dataclass(frozen=True)
class FunnelStage:
    """One elimination stage.

    Attributes:
        stage: the stage index (0 first).
        name: its name.
        ran: candidates with a finished run in this stage.
        failed: of those, runs that failed (they drop out).
        kept: candidates kept for the next stage (None while the stage is undecided).
    """

    stage: int
    name: str
    ran: int
    failed: int
    kept: int | None


@dataclass(frozen=True)
class Survivor:
    """A candidate kept by the last decided stage, with its fitness there."""

    candidate: str
    fitness: float | None


@dataclass(frozen=True)
class Funnel:
    """An elimination study summarized: its stages and the survivors of the last decided one."""

    study: str
    stages: tuple[FunnelStage, ...]
    survivors: tuple[Survivor, ...]


def _finished(trial: Any, states: Any) -> bool:
    kind = trial.user_attrs.get("failure_kind")
    return trial.state == states.COMPLETE or (trial.state == states.FAIL and
                                              kind not in (None, "interrupted"))


def funnel_from_study(study: Any) -> Funnel:
    """Summarize an elimination study (an ``optuna.Study``).

    Stage runs are trials with user attributes ``stage``, ``candidate`` (the expression),
    ``fitness`` or ``best_acc``, and ``failure_kind``. Whether a candidate was kept is the
    trial's ``kept`` attribute, or else the study attribute ``kept`` (stage index -> kept keys
    or candidates), since a finished trial cannot be updated once its stage is decided.

    Raises:
        DataError: no trial carries a ``stage`` attribute.
    """
    import optuna

    states = optuna.trial.TrialState
    decided = study.user_attrs.get("kept", {}) or {}
    configured = (study.user_attrs.get("config") or {}).get("stages") or []
    runs: dict[tuple[int, str], Any] = {}
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if "stage" not in attrs or not _finished(trial, states):
            continue
        ident = str(attrs.get("key") or attrs.get("candidate"))
        runs[(int(attrs["stage"]), ident)] = trial  # a re-run of a cell replaces the first
    if not runs:
        raise DataError(f"study {study.study_name!r} has no elimination stage runs "
                        "(trials with a 'stage' attribute)")

    def kept(stage: int, ident: str, trial: Any) -> bool | None:
        if "kept" in trial.user_attrs:
            return bool(trial.user_attrs["kept"])
        keys = decided.get(str(stage))
        if keys is None:
            return None
        return ident in keys or trial.user_attrs.get("candidate") in keys

    def fitness(trial: Any) -> float | None:
        for key in ("fitness", "best_acc"):
            value = trial.user_attrs.get(key)
            if value is not None and math.isfinite(float(value)):
                return float(value)
        return None

    stages, last_survivors = [], ()
    for index in sorted({s for s, _ in runs} | set(range(len(configured)))):
        rows = [(ident, t) for (s, ident), t in runs.items() if s == index]
        flags = [kept(index, ident, t) for ident, t in rows]
        undecided = not rows or any(f is None for f in flags)
        named = [t.user_attrs.get("stage_name") for _, t in rows if t.user_attrs.get("stage_name")]
        name = ((configured[index].get("name") if index < len(configured) else None)
                or (named[0] if named else f"stage{index + 1}"))
        failed = sum(t.user_attrs.get("failure_kind") not in (None, "", "ok") for _, t in rows)
        stages.append(FunnelStage(index, name, len(rows), failed,
                                  None if undecided else sum(bool(f) for f in flags)))
        if not undecided:
            survivors = [Survivor(str(t.user_attrs.get("candidate", ident)), fitness(t))
                         for (ident, t), f in zip(rows, flags, strict=True) if f]
            survivors.sort(key=lambda s: -(s.fitness if s.fitness is not None else -math.inf))
            last_survivors = tuple(survivors)
    return Funnel(study.study_name, tuple(stages), last_survivors)
