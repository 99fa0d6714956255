"""Random search: screened random samples from the space, the baseline every search must beat."""

from __future__ import annotations

import random

from nlfs.search.strategy import Proposal, Strategy


class RandomSearch(Strategy):
    """Independent random samples of the space (``mutation="random"``); no options."""

    name = "random"

    def _propose(self, rng: random.Random, k: int) -> Proposal:
        return Proposal(self.space.sample(rng), mutation="random")
