"""CMA-ES over a space's continuous encoding (the ``taylor`` space's coefficients).

Hansen and Ostermeier, "Completely Derandomized Self-Adaptation in Evolution Strategies",
Evolutionary Computation 9(2), 2001, through the ``CMA`` class of the ``cmaes`` package (the
library under Optuna's ``CmaEsSampler``). TaylorGLO (Gonzalez and Miikkulainen, "Optimizing Loss
Functions Through Multivariate Taylor Polynomial Parameterization", GECCO 2021) tunes its Taylor
coefficients this way.

Optuna's ``CmaEsSampler`` keeps the optimizer's state in system attributes of the trials it
sampled, which replaying the stored trials cannot recreate; driving ``CMA`` directly keeps the
state a function of the told trials, as the Strategy contract asks.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from cmaes import CMA

from nlfs.search.strategy import Proposal, Strategy, TrialRecord
from nlfs.spaces.base import SearchSpace


class CMAESStrategy(Strategy):
    """CMA-ES on the unit cube that ``space.encoding()``'s float ranges map onto.

    Each candidate records its coordinates and the generation it was drawn in
    (``params["generation"]``). Once ``population`` ok trials of the current generation are
    told, in the order told, the optimizer is updated and the next generation begins; failed,
    NaN and pruned trials never count (more candidates of the same generation are asked
    instead), and results of an older generation arrive too late to count. When CMA-ES
    stops (its step size or spread has collapsed) it restarts from the initial distribution.
    The k-th ask reseeds the optimizer's generator from ``(seed, k)``, so replaying the told
    trials reproduces the next ask.

    Options:
        population: candidates per generation; 0 for CMA-ES's default ``4 + floor(3 ln n)``
            (10 for the taylor space's 8 numbers).
        sigma0: initial step size as a share of each coordinate's range (1/6, Optuna's).
    """

    name = "cmaes"
    needs_encoding = True
    defaults = {"population": 0, "sigma0": 1 / 6}

    @classmethod
    def refusal(cls, space: SearchSpace) -> str | None:
        encoding = space.encoding()
        if encoding is None:
            return (
                f"cmaes needs a space with a continuous encoding; space {space.name!r} has no "
                "encoding; use --space taylor"
            )
        categorical = [spec.name for spec in encoding if not spec.continuous]
        if categorical:
            return (
                f"cmaes needs a space with a continuous encoding; space {space.name!r} has "
                f"{len(categorical)} categorical coordinates; use --space taylor (or tpe, "
                "which takes both)"
            )
        return None

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        population, sigma0 = self.options["population"], self.options["sigma0"]
        # Below 4 the rank-mu update of the covariance has no weight (cmaes divides by it).
        self._require(population == 0 or population >= 4, "population must be 0 or at least 4")
        self._require(0.0 < sigma0 <= 1.0, "sigma0 must be within (0, 1]")
        self._specs = space.encoding()
        self._low = np.array([spec.low for spec in self._specs], dtype=float)
        self._width = np.array([spec.high - spec.low for spec in self._specs], dtype=float)
        self._require(bool((self._width > 0).all()), "every coordinate needs a range, low < high")
        self._cma = self._fresh()
        self.generation = 0
        """Generations completed, over all restarts: the ``generation`` of the next asks."""
        self.restarts = 0
        self._solutions: list[tuple[np.ndarray, float]] = []  # (unit point, -fitness)
        self._asking: int | None = None

    def _fresh(self) -> CMA:
        """The initial distribution: the centre of the cube with step ``sigma0``."""
        dim = len(self._specs)
        return CMA(
            mean=np.full(dim, 0.5),
            sigma=self.options["sigma0"],
            bounds=np.tile([0.0, 1.0], (dim, 1)),
            seed=self.seed,  # reseeded before every ask; see _propose
            population_size=self.options["population"] or None,
        )

    def _propose(self, rng: random.Random, k: int) -> Proposal:
        if k != self._asking:
            self._asking = k
            self._cma.reseed_rng(rng.getrandbits(32))
        point = self._cma.ask()
        values = self._low + point * self._width
        coords = {spec.name: float(v) for spec, v in zip(self._specs, values, strict=True)}
        genome = self.space.decode(coords)
        return Proposal(genome, mutation="cmaes", params={**coords, "generation": self.generation})

    def _observe(self, trial: TrialRecord) -> None:
        params = trial.candidate.params
        if not trial.ok or params.get("generation") != self.generation:
            return
        # The point comes from the stored values, never from a cache, so replay tells the same.
        values = np.array([float(params[spec.name]) for spec in self._specs])
        self._solutions.append(((values - self._low) / self._width, -float(trial.fitness)))
        if len(self._solutions) < self._cma.population_size:
            return
        self._cma.tell(self._solutions)  # CMA minimises: the values are -fitness
        self._solutions = []
        self.generation += 1
        if self._cma.should_stop():
            self.restarts += 1
            self._cma = self._fresh()
