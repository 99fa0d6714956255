"""Records that cross layer boundaries: evaluation requests and results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from torch import nn


class State(StrEnum):
    """How an evaluation ended. Only ``OK`` carries a fitness."""

    OK = "ok"
    NAN = "nan"
    DIVERGED = "diverged"
    TIMEOUT = "timeout"
    ERROR = "error"
    REJECTED = "rejected"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class EvalRequest:
    """One candidate to train: a loss with the ``F.cross_entropy`` signature and a seed."""

    loss: nn.Module
    seed: int = 0
    name: str = ""


@dataclass(frozen=True)
class EvalResult:
    """The outcome of training one candidate.

    ``fitness`` is the best validation accuracy when the state is ``ok`` and None otherwise:
    a failed run is never a fitness.
    """

    state: State
    best_acc: float | None
    final_acc: float | None
    steps: int
    seconds: float
    profile: str
    device: str = "cpu"
    message: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fitness(self) -> float | None:
        return self.best_acc if self.state is State.OK else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["fitness"] = self.fitness
        data["metadata"] = dict(self.metadata)
        return data
