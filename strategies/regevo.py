"""Regularized (aging) evolution.

Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019 (arXiv:1802.01548), as used for loss search by Morgan and Hougen (arXiv:2403.08793):
a tournament drawn with replacement picks the fittest of ``tournament`` population members as
the parent; its mutated child joins the population and the oldest member leaves.
"""

from __future__ import annotations

import random
from typing import Any

from nlfs.evaluation.results import State
from nlfs.search.strategy import Proposal, Strategy, TrialRecord

RETRIES_PER_PLAN = 100
"""Proposals drawn from one chosen parent before the ask chooses again (all rejected)."""

PLANS_BEFORE_IMMIGRANT = 3
"""Parents an ask may try (``RETRIES_PER_PLAN`` rejected children each) before it samples the
space at random instead. A population of few members (early on, or when pruning keeps most
children out) can sit where every child is one the screen has seen: without this, the ask ran
out of tries and the search stopped with an error (a multi-fidelity search did, at ask 43)."""

_RETRYABLE = frozenset({State.NAN, State.DIVERGED, State.TIMEOUT, State.ERROR})
"""Training failures that earn a re-mutation. ``interrupted`` trials are re-run by the runner
with the same candidate, ``rejected`` ones never trained and ``pruned`` ones trained fine but
lost to their peers, so none of those counts."""


class RegularizedEvolution(Strategy):
    """Regularized evolution with an aging population.

    Options (defaults are the paper's; ``configs/*.toml`` may override them):
        population: members kept (100).
        tournament: members drawn, with replacement, per parent selection (20).
        seed_pool: 0 makes the first ``population`` asks random samples that join as told;
            N > 0 makes the first N asks random samples with ``phase="seed"`` (the runner may
            score them with a cheaper profile) and the population starts as the best
            ``population`` of them.
        remutations: how often the parent of a child whose training failed (state nan,
            diverged, timeout or error) is mutated again in place of a tournament (7).
        crossover: probability that a child is the crossover of two tournament winners
            instead of a mutant (0; only for spaces that support crossover).

    A pruned child (stopped early by the search's pruning rule: below its peers at a
    checkpoint) neither joins the population nor earns a re-mutation: it trained correctly and
    lost, like a tournament loser, and its partial accuracy, taken at a shorter horizon than
    every member's fitness, would not compare with them. So the tournament only ever compares
    fitness measured at the full horizon (with a multi-fidelity profile: its highest rung).

    An ask whose first ``PLANS_BEFORE_IMMIGRANT`` parents yield only rejected children takes a
    random sample of the space (an immigrant, ``mutation="random"``) rather than giving up.

    Asynchronous use: an ask draws its tournament from the population as told so far; an ask
    before any result is told samples randomly. The population is a function of the told
    trials in order, so replaying the stored trials rebuilds it exactly.
    """

    name = "regevo"
    defaults = {
        "population": 100,
        "tournament": 20,
        "seed_pool": 0,
        "remutations": 7,
        "crossover": 0.0,
    }

    def __init__(self, space, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        opts = self.options
        self._require(opts["population"] >= 1, "population must be at least 1")
        self._require(opts["tournament"] >= 1, "tournament must be at least 1")
        self._require(opts["seed_pool"] >= 0, "seed_pool must be 0 or more")
        self._require(opts["remutations"] >= 0, "remutations must be 0 or more")
        self._require(0.0 <= opts["crossover"] <= 1.0, "crossover must be within [0, 1]")
        self._require(
            opts["crossover"] == 0.0 or space.supports_crossover,
            f"crossover needs a space with crossover; space {space.name!r} has none",
        )
        self.population: list[TrialRecord] = []
        """Members, oldest first (seed-phase members form the oldest block)."""
        self._ok: dict[int, TrialRecord] = {}  # every ok trial: a retry's parent may have aged out
        self._retries: dict[int, tuple[int, int]] = {}  # failed trial -> (parent, attempt)
        self._plan_k: int | None = None
        self._plan: tuple[str, Any] = ("random", None)
        self._plans = 0  # plans chosen for ask ``_plan_k``
        self._plan_tries = 0

    @property
    def initial(self) -> int:
        """How many asks are random samples before evolution starts."""
        return self.options["seed_pool"] or self.options["population"]

    # --- tell -------------------------------------------------------------------------------

    def _observe(self, trial: TrialRecord) -> None:
        params = trial.candidate.params
        # The retry this trial answers has been used, whether or not the trial succeeded.
        self._retries.pop(params.get("remutation_of"), None)
        if trial.ok:
            self._ok[trial.number] = trial
            self._join(trial)
            return
        parent = trial.candidate.parent
        attempt = int(params.get("remutation", 0)) + 1
        if (
            trial.state in _RETRYABLE
            and parent in self._ok
            and attempt <= self.options["remutations"]
        ):
            self._retries[trial.number] = (parent, attempt)

    def _join(self, trial: TrialRecord) -> None:
        size = self.options["population"]
        pop = self.population
        if trial.candidate.phase == "seed":
            seeds = sum(1 for member in pop if member.candidate.phase == "seed")
            pop.insert(seeds, trial)
            if len(pop) > size:
                # The seed pool is cut to its best members; among equals the later one leaves.
                worst = min(
                    (m for m in pop if m.candidate.phase == "seed"),
                    key=lambda m: (m.fitness, -m.number),
                )
                pop.remove(worst)
        else:
            pop.append(trial)
            if len(pop) > size:
                pop.pop(0)  # aging: the oldest member leaves, however fit

    # --- ask --------------------------------------------------------------------------------

    def _propose(self, rng: random.Random, k: int) -> Proposal:
        if k != self._plan_k:
            self._plan_k, self._plans = k, 0
        if self._plans == 0 or self._plan_tries >= RETRIES_PER_PLAN:
            # (a random plan, e.g. a seed-pool sample, keeps its own phase when it runs dry)
            exhausted = self._plans >= PLANS_BEFORE_IMMIGRANT and self._plan[0] != "random"
            self._plan = ("random", "search") if exhausted else self._choose(rng, k)
            self._plans, self._plan_tries = self._plans + 1, 0
        self._plan_tries += 1
        kind, detail = self._plan
        if kind == "random":
            return Proposal(self.space.sample(rng), mutation="random", phase=detail)
        if kind == "retry":
            failed, parent, attempt = detail
            genome, mutation = self.space.mutate(self._ok[parent].candidate.genome, rng)
            params = {"remutation": attempt, "remutation_of": failed}
            return Proposal(genome, parent=parent, mutation=mutation, params=params)
        parent, other = detail
        if other is not None:
            genome = self.space.crossover(parent.candidate.genome, other.candidate.genome, rng)
            params = {"other_parent": other.number}
            return Proposal(genome, parent=parent.number, mutation="crossover", params=params)
        genome, mutation = self.space.mutate(parent.candidate.genome, rng)
        return Proposal(genome, parent=parent.number, mutation=mutation)

    def _choose(self, rng: random.Random, k: int) -> tuple[str, Any]:
        """What the k-th ask does: random sample, re-mutation of a failed child, or tournament."""
        if k < self.initial:
            return ("random", "seed" if self.options["seed_pool"] else "search")
        if self._retries:
            failed = next(iter(self._retries))
            parent, attempt = self._retries.pop(failed)
            return ("retry", (failed, parent, attempt))
        if not self.population:
            return ("random", "search")
        parent = self._tournament(rng)
        other = self._tournament(rng) if rng.random() < self.options["crossover"] else None
        return ("child", (parent, other))

    def _tournament(self, rng: random.Random) -> TrialRecord:
        """The fittest of ``tournament`` members drawn with replacement (first drawn on ties)."""
        drawn = [rng.choice(self.population) for _ in range(self.options["tournament"])]
        return max(drawn, key=lambda member: member.fitness)
