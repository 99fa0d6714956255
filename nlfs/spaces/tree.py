"""The ``tree`` search space: free-form GP expression trees over the paper's operators.

A genome is the canonical expression string itself (immutable, hashable, its own JSON), parsed
into a DEAP ``PrimitiveTree`` when an operator needs the tree. Generation, crossover and mutation
are DEAP's algorithms re-implemented with an injected RNG (:mod:`nlfs.spaces.gp_ops`); offspring
beyond the static depth and size limits are redrawn, as with DEAP's ``staticLimit``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from functools import partial
from typing import Any

from deap import gp

from nlfs.errors import ConfigError
from nlfs.losses.expressions import ParseError, canonical, parse, terminals_used
from nlfs.losses.operators import BINARY, primitive_set
from nlfs.spaces import gp_ops
from nlfs.spaces.base import InvalidGenome, SearchSpace

MAX_TRIES = 10_000
"""Draws before sampling, mutation or crossover gives up."""
MUTATIONS = ("uniform", "node_replacement", "shrink")


class TreeSpace(SearchSpace):
    """GP expression trees in the style of GLO (Gonzalez & Miikkulainen, "Improved Training
    Speed, Accuracy, and Data Utilization Through Loss Function Optimization", CEC 2020), built
    with DEAP's tree machinery (Koza, "Genetic Programming", 1992).

    Random genomes come from ramped half-and-half generation; crossover swaps one random subtree
    between the parents; mutation is one of uniform subtree replacement, node replacement or
    shrink, drawn with equal probability. Every genome reads ``y`` and ``p`` and stays within the
    depth and size limits.

    Args:
        max_depth: largest tree height (root at depth 0).
        max_size: most nodes (operators plus terminals).
        init_min_depth: smallest height drawn by random generation.
        init_max_depth: largest height drawn by random generation.
        mutation_max_depth: largest height of the subtree a uniform mutation grows.
        operators: names of the operators to allow (default all 34).
        exclude: names of operator groups (:data:`~nlfs.losses.operators.OPERATOR_GROUPS`) to
            leave out of ``operators``; at least one binary operator must remain, since only a
            binary operator can read both ``y`` and ``p``.
    """

    name = "tree"
    supports_crossover = True

    def __init__(
        self,
        max_depth: int = 8,
        max_size: int = 40,
        init_min_depth: int = 1,
        init_max_depth: int = 4,
        mutation_max_depth: int = 2,
        operators: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> None:
        if not 1 <= init_min_depth <= init_max_depth <= max_depth:
            raise ConfigError(
                "tree depths need 1 <= init_min_depth <= init_max_depth <= max_depth, got "
                f"{init_min_depth}, {init_max_depth}, {max_depth}"
            )
        if max_size < 3 or mutation_max_depth < 0:
            raise ConfigError("tree max_size must be >= 3 and mutation_max_depth >= 0")
        self.max_depth = max_depth
        self.max_size = max_size
        self.init_depth = (init_min_depth, init_max_depth)
        self.mutation_max_depth = mutation_max_depth
        names = gp_ops.resolve_operators(operators, exclude)
        if names is not None and not any(name in BINARY for name in names):
            raise ConfigError(f"the tree space needs a binary operator; left: {', '.join(names)}")
        self._pset = primitive_set(names)

    @property
    def pset(self) -> gp.PrimitiveSet:
        return self._pset

    def _problem(self, tree: gp.PrimitiveTree) -> tuple[str, str] | None:
        """``(reason, message)`` of the first broken rule of a parsed tree, or None."""
        if tree.height > self.max_depth:
            return "too_deep", f"tree height {tree.height} exceeds max_depth {self.max_depth}"
        if len(tree) > self.max_size:
            return "too_large", f"tree has {len(tree)} nodes, more than max_size {self.max_size}"
        used = terminals_used(tree)
        if "y" not in used:
            return "missing_y", "the expression does not read y"
        if "p" not in used:
            return "missing_p", "the expression does not read p"
        return None

    def validate(self, genome: str) -> None:
        """Raise :class:`InvalidGenome` for unparsable or non-canonical text (``invalid``),
        then ``too_deep``, ``too_large``, ``missing_y``, ``missing_p``."""
        tree = self.expression(genome)
        if canonical(tree) != genome:
            raise InvalidGenome(f"{genome!r} is not in canonical form; use from_expression")
        problem = self._problem(tree)
        if problem is not None:
            raise InvalidGenome(problem[1], reason=problem[0])

    def expression(self, genome: str) -> gp.PrimitiveTree:
        """The genome parsed in this space's vocabulary (InvalidGenome if it does not parse)."""
        if not isinstance(genome, str):
            raise InvalidGenome(
                f"a tree genome is an expression string, got {type(genome).__name__}"
            )
        try:
            return parse(genome, self._pset)
        except ParseError as error:
            raise InvalidGenome(str(error)) from error

    def _generate(self, rng: random.Random) -> list:
        return gp_ops.gen_half_and_half(self._pset, *self.init_depth, rng)

    def sample(self, rng: random.Random) -> str:
        """A ramped half-and-half tree, redrawn until it is valid."""
        for _ in range(MAX_TRIES):
            tree = gp.PrimitiveTree(self._generate(rng))
            if self._problem(tree) is None:
                return canonical(tree)
        raise InvalidGenome(f"no valid tree in {MAX_TRIES} draws", reason="no_sample")

    def mutate(self, genome: str, rng: random.Random) -> tuple[str, str]:
        """One of uniform / node_replacement / shrink, redrawn until valid and novel."""
        self.validate(genome)
        tree = self.expression(genome)
        grow = partial(gp_ops.gen_grow, self._pset, 0, self.mutation_max_depth)
        for _ in range(MAX_TRIES):
            kind = rng.choice(MUTATIONS)
            if kind == "uniform":
                child = gp_ops.mut_uniform(tree, rng, grow)
            elif kind == "node_replacement":
                child = gp_ops.mut_node_replacement(tree, self._pset, rng)
            else:
                child = gp_ops.mut_shrink(tree, rng)
            text = canonical(child)
            if text != genome and self._problem(child) is None:
                return text, kind
        raise InvalidGenome(f"no valid novel mutation of {genome}", reason="no_mutation")

    def crossover(self, a: str, b: str, rng: random.Random) -> str:
        """One child of DEAP's one-point subtree crossover, redrawn until valid."""
        self.validate(a)
        self.validate(b)
        tree_a, tree_b = self.expression(a), self.expression(b)
        for _ in range(MAX_TRIES):
            children = gp_ops.cx_one_point(tree_a, tree_b, rng)
            child = children[rng.randrange(2)]
            if self._problem(child) is None:
                return canonical(child)
        raise InvalidGenome(f"no valid child of {a} and {b}", reason="no_offspring")

    def to_json(self, genome: str) -> str:
        return genome

    def from_json(self, data: Any) -> str:
        if not isinstance(data, str):
            raise InvalidGenome(f"tree JSON is an expression string, got {type(data).__name__}")
        self.validate(data)
        return data

    def from_expression(self, text: str) -> str:
        """The canonical genome of ``text``; ParseError if it does not parse, InvalidGenome if
        it breaks a limit or misses ``y``/``p``."""
        genome = canonical(parse(text, self._pset))
        self.validate(genome)
        return genome
