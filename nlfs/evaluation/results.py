"""Records that cross layer boundaries: evaluation requests and results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    PRUNED = "pruned"


Monitor = Callable[[int, float], bool]
"""``monitor(step, eval_acc) -> stop``: called at each evaluation point of a candidate (1-based
step, accuracy on the evaluation split); returning True stops it there with state ``pruned``."""


@dataclass(frozen=True)
class EvalRequest:
    """One candidate to train: a loss with the ``F.cross_entropy`` signature and a seed.

    ``monitor`` (optional) sees the candidate's learning curve as it is measured and may stop it
    (pruning); the result's ``metadata["history"]`` holds every point either way.
    """

    loss: nn.Module
    seed: int = 0
    name: str = ""
    monitor: Monitor | None = field(default=None, compare=False)


@dataclass(frozen=True)
class EvalResult:
    """The outcome of training one candidate.

    ``fitness`` is the best validation accuracy when the state is ``ok`` and None otherwise:
    a failed run is never a fitness. A ``pruned`` candidate (its monitor stopped it) has no
    fitness either; its ``best_acc`` is the best accuracy it reached before it was stopped.
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
