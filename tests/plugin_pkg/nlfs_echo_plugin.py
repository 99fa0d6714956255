"""A third-party strategy: mutates the best trial told so far ("echoes" it), else samples.

It uses only the public contract in ``nlfs.search.strategy``, as any external package would.
"""

from __future__ import annotations

import random

from nlfs.search.strategy import Proposal, Strategy, TrialRecord


class EchoStrategy(Strategy):
    """Greedy hill climbing on the best told trial; options: ``explore`` probability (0.2)."""

    name = "echo_test"
    defaults = {"explore": 0.2}

    def __init__(self, space, **kwargs) -> None:
        super().__init__(space, **kwargs)
        self._best: TrialRecord | None = None

    def _propose(self, rng: random.Random, k: int) -> Proposal:
        if self._best is None or rng.random() < self.options["explore"]:
            return Proposal(self.space.sample(rng), mutation="random")
        genome, mutation = self.space.mutate(self._best.candidate.genome, rng)
        return Proposal(genome, parent=self._best.number, mutation=mutation)

    def _observe(self, trial: TrialRecord) -> None:
        if trial.ok and (self._best is None or trial.fitness > self._best.fitness):
            self._best = trial
