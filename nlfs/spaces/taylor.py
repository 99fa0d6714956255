"""The ``taylor`` search space: TaylorGLO's third-order Taylor polynomials in ``y`` and ``p``.

Gonzalez and Miikkulainen, "Optimizing Loss Functions Through Multivariate Taylor Polynomial
Parameterization", GECCO 2021 (arXiv:2002.00059). A loss is a third-order bivariate Taylor
polynomial in the target ``y`` and the prediction ``p`` around a centre ``(theta0, theta1)``,
keeping only the terms whose gradient with respect to ``p`` can be non-zero (a term in ``y``
alone does not change training), so eight numbers ``theta0..theta7`` define it::

    u = y - theta0,  v = p - theta1
    f(y, p) = theta2 v + theta3 v^2 / 2 + theta4 v^3 / 6
              + theta5 u v + theta6 u v^2 / 2 + theta7 u^2 v / 2

The paper's loss is ``-1/n sum_classes f``; here, as for every space, the screen fixes the sign
and the class sum is not scaled (a constant factor the coefficients absorb). The structure never
changes, so the genome is continuous: the tuple of the eight numbers, each rounded to
:data:`DECIMALS` places (the canonical text carries them exactly, and nearer settings would only
be duplicates) and kept within ``[-bound, bound]``.

The expression is built from ``add``, ``sub``, ``mul``, ``div`` and ``square`` of the operator
vocabulary, with the coefficients as real literals, so screening, storage, export and transfer
read a taylor loss like any other expression.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from deap import gp

from nlfs.errors import ConfigError
from nlfs.losses.expressions import canonical, constant, parse
from nlfs.losses.operators import primitive_set
from nlfs.spaces.base import InvalidGenome, ParamSpec, SearchSpace

DECIMALS = 4
"""Decimal places every coefficient is rounded to."""
SIZE = 8
"""Numbers in a genome: the centre (theta0, theta1) and six coefficients (theta2..theta7)."""
NAMES = tuple(f"theta{i}" for i in range(SIZE))
"""Coordinate names of the encoding, in the paper's numbering."""
MAX_TRIES = 1000
"""Draws a mutation makes before it gives up (each redraw is a fresh Gaussian step)."""
_OPERATORS = ("add", "sub", "mul", "div", "square")

Taylor = tuple[float, ...]
"""A taylor genome: ``(theta0, ..., theta7)``."""


def _normal(value: float) -> float:
    """``value`` on the genome's grid; ``+ 0.0`` turns a rounded -0.0 into 0.0."""
    return round(float(value), DECIMALS) + 0.0


class TaylorSpace(SearchSpace):
    """TaylorGLO's loss family as a space with a continuous genome (see the module docstring).

    Every genome is valid: the polynomial always reads ``y`` and ``p``, and whether its curve
    has the shape of a loss is the screen's question. Random genomes are uniform in the box
    ``[-bound, bound]^8``; a mutation adds Gaussian noise to every number (redrawn until the
    rounded result differs). The fixed-length continuous encoding (``theta0..theta7``) serves
    TPE and CMA-ES.

    Args:
        bound: every number lies in ``[-bound, bound]``; a multiple of ``10**-DECIMALS``.
        sigma: standard deviation of a mutation's Gaussian step, per number.
    """

    name = "taylor"

    def __init__(self, bound: float = 10.0, sigma: float = 1.0) -> None:
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise ConfigError(f"taylor bound must be a number, got {bound!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, int | float):
            raise ConfigError(f"taylor sigma must be a number, got {sigma!r}")
        if not (math.isfinite(bound) and bound > 0 and _normal(bound) == bound):
            raise ConfigError(
                f"taylor bound must be a positive multiple of {10.0**-DECIMALS:g}, got {bound!r}"
            )
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"taylor sigma must be positive, got {sigma!r}")
        self.bound = float(bound)
        self.sigma = float(sigma)
        self._pset = primitive_set(_OPERATORS)
        self._template = _template(self._pset)

    @property
    def pset(self) -> gp.PrimitiveSet:
        return self._pset

    # --- genomes ----------------------------------------------------------------------------

    def make(self, theta: Sequence[float]) -> Taylor:
        """The genome of eight numbers: rounded to the grid and clipped to the bound.

        Raises:
            InvalidGenome: for anything but eight finite real numbers.
        """
        if isinstance(theta, str | bytes | Mapping) or not isinstance(theta, Sequence):
            raise InvalidGenome(f"a taylor genome is {SIZE} numbers, got {type(theta).__name__}")
        values = list(theta)
        if len(values) != SIZE or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for x in values
        ):
            raise InvalidGenome(f"a taylor genome is {SIZE} finite numbers, got {theta!r}")
        return tuple(_normal(min(max(x, -self.bound), self.bound)) for x in values)

    def validate(self, genome: Taylor) -> None:
        """Raise :class:`InvalidGenome` (``invalid``) unless ``genome`` is a tuple of eight
        numbers on the grid within the bound."""
        if not isinstance(genome, tuple) or self.make(genome) != genome:
            raise InvalidGenome(
                f"{genome!r} is not a taylor genome: a tuple of {SIZE} numbers rounded to "
                f"{DECIMALS} decimals within [-{self.bound:g}, {self.bound:g}]; use make()"
            )

    def sample(self, rng: random.Random) -> Taylor:
        """Eight numbers drawn uniformly from ``[-bound, bound]``."""
        return self.make([rng.uniform(-self.bound, self.bound) for _ in range(SIZE)])

    def mutate(self, genome: Taylor, rng: random.Random) -> tuple[Taylor, str]:
        """Gaussian noise of deviation ``sigma`` on every number (``"gaussian"``)."""
        self.validate(genome)
        for _ in range(MAX_TRIES):
            child = self.make([x + rng.gauss(0.0, self.sigma) for x in genome])
            if child != genome:
                return child, "gaussian"
        raise InvalidGenome(f"no novel mutation of {genome}", reason="no_mutation")

    def expression(self, genome: Taylor) -> gp.PrimitiveTree:
        """The polynomial as a DEAP tree over add, sub, mul, div, square and real literals."""
        self.validate(genome)
        nodes = [
            constant(genome[item[1]] if item[0] == "theta" else item[1], self._pset)
            if isinstance(item, tuple)
            else item
            for item in self._template
        ]
        return gp.PrimitiveTree(nodes)

    # --- serialisation and encoding ---------------------------------------------------------

    def to_json(self, genome: Taylor) -> list[float]:
        """The eight numbers as a list."""
        return list(genome)

    def from_json(self, data: Any) -> Taylor:
        if not isinstance(data, list):
            raise InvalidGenome(f"taylor JSON is a list of {SIZE} numbers, got {data!r}")
        genome = self.make(data)
        self.validate(tuple(data))  # stored data must already be on the grid
        return genome

    def from_expression(self, text: str) -> Taylor:
        """The genome whose canonical expression is ``text`` (read back from its literals).

        Raises:
            ParseError: text that does not parse in this space's vocabulary.
            InvalidGenome: reason ``not_representable`` for any other expression, including a
                taylor polynomial off the grid or beyond the bound.
        """
        tree = parse(text, self._pset)
        numbers = [
            float(n.value) for n in tree if isinstance(n, gp.Terminal) and n.value not in ("y", "p")
        ]
        slots = [item for item in self._template if isinstance(item, tuple)]
        theta = [0.0] * SIZE
        if len(numbers) == len(slots):
            for (kind, index), number in zip(slots, numbers, strict=True):
                if kind == "theta":
                    theta[index] = number
        genome = self.make(theta)
        if canonical(self.expression(genome)) != canonical(tree):
            raise InvalidGenome(
                f"{text!r} is not a taylor polynomial of this space (the canonical form, with "
                f"coefficients rounded to {DECIMALS} decimals within +-{self.bound:g})",
                reason="not_representable",
            )
        return genome

    def encoding(self) -> list[ParamSpec]:
        """``theta0..theta7``, each a float in ``[-bound, bound]``."""
        return [ParamSpec(name, low=-self.bound, high=self.bound) for name in NAMES]

    def decode(self, params: Mapping[str, Any]) -> Taylor:
        """The genome of encoding values (rounded to the grid); InvalidGenome if one is missing
        or not a finite number."""
        missing = [name for name in NAMES if name not in params]
        if missing:
            raise InvalidGenome(f"taylor encoding lacks {', '.join(missing)}")
        return self.make([params[name] for name in NAMES])


def _template(pset: gp.PrimitiveSet) -> list[Any]:
    """The polynomial's prefix nodes, with ``("theta", i)`` and ``("fixed", value)`` standing
    for the numbers (filled in by :meth:`TaylorSpace.expression`)."""

    def op(name: str, *args: list[Any]) -> list[Any]:
        return [pset.mapping[name], *(node for arg in args for node in arg)]

    y, p = [pset.mapping["y"]], [pset.mapping["p"]]

    def theta(i: int) -> list[Any]:
        return [("theta", i)]

    def fixed(value: float) -> list[Any]:
        return [("fixed", value)]

    u, v = op("sub", y, theta(0)), op("sub", p, theta(1))
    v2 = op("square", v)
    terms = [
        op("mul", theta(2), v),
        op("div", op("mul", theta(3), v2), fixed(2.0)),
        op("div", op("mul", theta(4), op("mul", v, v2)), fixed(6.0)),
        op("mul", theta(5), op("mul", u, v)),
        op("div", op("mul", theta(6), op("mul", u, v2)), fixed(2.0)),
        op("div", op("mul", theta(7), op("mul", op("square", u), v)), fixed(2.0)),
    ]
    tree = terms[0]
    for term in terms[1:]:
        tree = op("add", tree, term)
    return tree
