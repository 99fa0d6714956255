"""The SearchSpace contract: what every genome family offers the strategies and the runner.

A space samples, mutates (and where it makes sense crosses over) genomes with an injected
``random.Random``, never the global one; validates them; turns a genome into an expression tree
whose DEAP string is the canonical form; and compiles it to a torch loss. Genomes are immutable
and JSON-serialisable through :meth:`SearchSpace.to_json` / :meth:`SearchSpace.from_json`, so a
strategy can rebuild its population from stored trials.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from deap import gp

from nlfs.errors import NLFSError
from nlfs.losses.compile import ExpressionLoss
from nlfs.losses.expressions import canonical, expression_key

Genome = Any
"""A space's own immutable genome type (hashable, JSON-serialisable through the space)."""


class InvalidGenome(NLFSError, ValueError):
    """A genome that breaks its space's rules; the message names the rule.

    ``reason`` is a short screening reason such as ``missing_y``, ``missing_p``, ``cyclic``,
    ``too_deep`` or ``invalid`` so rejections can be counted by kind.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ParamSpec:
    """One coordinate of a fixed-length encoding (for model-based strategies such as TPE).

    A categorical coordinate lists the values it can take in ``choices``, in a fixed order; a
    continuous one has no choices and takes any float in ``[low, high]``.
    """

    name: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def continuous(self) -> bool:
        """True for a float coordinate in ``[low, high]``, False for a categorical one."""
        return not self.choices


class SearchSpace(ABC):
    """A family of loss genomes.

    Methods that draw randomness take ``rng``; they never touch global random state and never
    mutate their inputs.
    """

    name: ClassVar[str]
    supports_crossover: ClassVar[bool] = False

    @property
    @abstractmethod
    def pset(self) -> gp.PrimitiveSet:
        """The DEAP primitive set expressions of this space are drawn from."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Genome:
        """A random valid genome (it may still fail screening)."""

    @abstractmethod
    def mutate(self, genome: Genome, rng: random.Random) -> tuple[Genome, str]:
        """A valid mutated copy of ``genome`` and a short name of the mutation applied."""

    def crossover(self, a: Genome, b: Genome, rng: random.Random) -> Genome:
        """A valid child of ``a`` and ``b``; only where :attr:`supports_crossover`."""
        raise NotImplementedError(f"space {self.name!r} has no crossover")

    @abstractmethod
    def validate(self, genome: Genome) -> None:
        """Raise :class:`InvalidGenome` naming the broken rule, else return None."""

    @abstractmethod
    def expression(self, genome: Genome) -> gp.PrimitiveTree:
        """The genome's loss expression as a DEAP tree."""

    @abstractmethod
    def to_json(self, genome: Genome) -> Any:
        """Plain JSON data that :meth:`from_json` turns back into an equal genome."""

    @abstractmethod
    def from_json(self, data: Any) -> Genome:
        """Inverse of :meth:`to_json`; raises :class:`InvalidGenome` on bad data."""

    @abstractmethod
    def from_expression(self, text: str) -> Genome:
        """A genome whose expression is ``text``; ParseError or InvalidGenome if impossible."""

    def canonical(self, genome: Genome) -> str:
        """The canonical expression text (DEAP prefix form)."""
        return canonical(self.expression(genome))

    def key(self, genome: Genome) -> str:
        """A stable key of the genome's canonical expression."""
        return expression_key(self.canonical(genome))

    def compile(self, genome: Genome, sign: float = 1.0) -> ExpressionLoss:
        """The genome as a loss module with the ``F.cross_entropy`` signature."""
        return ExpressionLoss(self.expression(genome), sign=sign)

    def encoding(self) -> list[ParamSpec] | None:
        """A fixed-length encoding of genomes (categorical or continuous coordinates), or None
        when the space has none."""
        return None

    def decode(self, params: Mapping[str, Any]) -> Genome:
        """The genome of an encoding's parameter values (raises InvalidGenome if invalid)."""
        raise NotImplementedError(f"space {self.name!r} has no fixed-length encoding")
