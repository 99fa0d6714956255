"""The elimination funnel: how many candidates each stage ran and kept, and who survived.

Read from an elimination study (:mod:`nlfs.experiments.eliminate`) through its
:func:`~nlfs.experiments.eliminate.records`, so the funnel counts exactly the stage runs that
``nlfs eliminate`` reports. The records here import nothing heavy; the study is read on demand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nlfs.errors import DataError


@dataclass(frozen=True)
class FunnelStage:
    """One elimination stage.

    Attributes:
        stage: the stage index (0 first).
        name: its name.
        ran: candidates with a settled run in this stage.
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


def _fitness(row: Mapping[str, Any]) -> float | None:
    for key in ("fitness", "best_acc"):
        value = row.get(key)
        if value is not None and math.isfinite(float(value)):
            return float(value)
    return None


def funnel_from_study(study: Any) -> Funnel:
    """Summarize an elimination study (an ``optuna.Study`` written by ``nlfs eliminate``).

    A stage's name comes from the stored protocol, else from its runs' ``stage_name``; a stage
    is decided once the study attribute ``kept`` holds its survivors. Stages of the protocol
    that have not run yet are listed with nothing ran and ``kept`` None.

    Raises:
        DataError: the study has no settled stage run.
    """
    from nlfs.experiments.eliminate import records  # deferred: it imports optuna

    rows = [r for r in records(study) if r["stage"] is not None]
    if not rows:
        raise DataError(
            f"study {study.study_name!r} has no elimination stage runs "
            "(trials with a 'stage' attribute)"
        )
    configured = (study.user_attrs.get("config") or {}).get("stages") or []
    stages, survivors = [], ()
    for index in sorted({int(r["stage"]) for r in rows} | set(range(len(configured)))):
        ran = [r for r in rows if r["stage"] == index]
        named = [r["stage_name"] for r in ran if r["stage_name"]]
        name = (configured[index].get("name") if index < len(configured) else None) or (
            named[0] if named else f"stage{index + 1}"
        )
        decided = bool(ran) and all(r["kept"] is not None for r in ran)
        stages.append(
            FunnelStage(
                index,
                name,
                len(ran),
                sum(r["failure_kind"] is not None for r in ran),
                sum(bool(r["kept"]) for r in ran) if decided else None,
            )
        )
        if decided:
            kept = [
                Survivor(str(r["candidate"] or r["key"]), _fitness(r)) for r in ran if r["kept"]
            ]
            kept.sort(key=lambda s: -(s.fitness if s.fitness is not None else -math.inf))
            survivors = tuple(kept)
    return Funnel(study.study_name, tuple(stages), survivors)
