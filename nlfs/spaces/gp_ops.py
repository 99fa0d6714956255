"""DEAP's tree generation, crossover and mutation, re-implemented with an injected RNG.

DEAP's own ``gp.genFull``, ``gp.cxOnePoint``, ``gp.mutUniform`` and friends draw from the global
``random`` module and modify their arguments in place. These versions follow the same algorithms
(deap/gp.py, DEAP 1.4) for an untyped primitive set such as :func:`~nlfs.losses.primitive_set`,
but take a ``random.Random`` and return new ``gp.PrimitiveTree`` objects, leaving their inputs
alone. They keep DEAP's data structures (``PrimitiveTree``, ``searchSubtree``, ``height``).

Reference: Fortin et al., "DEAP: Evolutionary Algorithms Made Easy", JMLR 13 (2012).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from deap import gp

from nlfs.errors import ConfigError
from nlfs.losses.operators import OPERATOR_GROUPS, OPERATORS

Node = gp.Primitive | gp.Terminal
Generator = Callable[[random.Random], list[Node]]
"""Draws a fresh expression (a prefix list of nodes) from an RNG."""


def _names(value: Iterable[str] | str, what: str) -> list[str]:
    """A list of names from a list or a comma-separated string (as a command line gives)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    names = list(value) if isinstance(value, Iterable) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{what} must be a list of names, got {value!r}")
    return names


def resolve_operators(
    operators: Iterable[str] | None, exclude: Iterable[str] = ()
) -> tuple[str, ...] | None:
    """Normalise a user's operator subset to the vocabulary's order (None = all operators).

    Args:
        operators: names of the operators to keep; None for all of them.
        exclude: names of :data:`~nlfs.losses.operators.OPERATOR_GROUPS` to leave out of that.

    Raises:
        ConfigError: on an unknown operator or group name, or when nothing is left.
    """
    groups = _names(exclude, "exclude")
    unknown_groups = sorted(set(groups) - set(OPERATOR_GROUPS))
    if unknown_groups:
        raise ConfigError(
            f"unknown operator groups {unknown_groups}; known: {', '.join(OPERATOR_GROUPS)}"
        )
    if operators is None and not groups:
        return None
    wanted = set(OPERATORS) if operators is None else set(_names(operators, "operators"))
    unknown = sorted(wanted - set(OPERATORS))
    if unknown:
        raise ConfigError(f"unknown operators {unknown}; known: {', '.join(OPERATORS)}")
    if not wanted:
        raise ConfigError("the operator subset is empty; name at least one operator")
    wanted -= {name for group in groups for name in OPERATOR_GROUPS[group]}
    if not wanted:
        raise ConfigError(f"excluding {', '.join(groups)} leaves no operator")
    return tuple(name for name in OPERATORS if name in wanted)


def generate(
    pset: gp.PrimitiveSet, min_depth: int, max_depth: int, rng: random.Random, grow: bool
) -> list[Node]:
    """A random prefix expression of height drawn uniformly in ``[min_depth, max_depth]``.

    ``grow=False`` is DEAP's ``genFull`` (every leaf at the drawn height); ``grow=True`` is
    ``genGrow`` (a branch may also stop early, past ``min_depth``, with probability
    ``pset.terminalRatio``).
    """
    terminals = pset.terminals[pset.ret]
    primitives = pset.primitives[pset.ret]
    height = rng.randint(min_depth, max_depth)
    expr: list[Node] = []
    stack = [0]
    while stack:
        depth = stack.pop()
        stop = depth == height or (
            grow and depth >= min_depth and rng.random() < pset.terminalRatio
        )
        if stop:
            expr.append(rng.choice(terminals))
        else:
            prim = rng.choice(primitives)
            expr.append(prim)
            stack.extend([depth + 1] * prim.arity)
    return expr


def gen_full(
    pset: gp.PrimitiveSet, min_depth: int, max_depth: int, rng: random.Random
) -> list[Node]:
    """DEAP's ``genFull`` with an injected RNG."""
    return generate(pset, min_depth, max_depth, rng, grow=False)


def gen_grow(
    pset: gp.PrimitiveSet, min_depth: int, max_depth: int, rng: random.Random
) -> list[Node]:
    """DEAP's ``genGrow`` with an injected RNG."""
    return generate(pset, min_depth, max_depth, rng, grow=True)


def gen_half_and_half(
    pset: gp.PrimitiveSet, min_depth: int, max_depth: int, rng: random.Random
) -> list[Node]:
    """DEAP's ``genHalfAndHalf``: grow or full with equal probability.

    Drawing the height per call makes a population of these "ramped" half-and-half (Koza 1992).
    """
    return generate(pset, min_depth, max_depth, rng, grow=rng.random() < 0.5)


def _replace(tree: gp.PrimitiveTree, index: int, subtree: list[Node]) -> gp.PrimitiveTree:
    """A new tree with the subtree rooted at ``index`` replaced by ``subtree``."""
    span = tree.searchSubtree(index)
    return gp.PrimitiveTree([*tree[: span.start], *subtree, *tree[span.stop :]])


def cx_one_point(
    a: gp.PrimitiveTree, b: gp.PrimitiveTree, rng: random.Random
) -> tuple[gp.PrimitiveTree, gp.PrimitiveTree]:
    """DEAP's ``cxOnePoint``: swap a random non-root subtree of ``a`` with one of ``b``.

    Returns two new trees; single-node parents come back as copies, as in DEAP.
    """
    if len(a) < 2 or len(b) < 2:
        return gp.PrimitiveTree(a), gp.PrimitiveTree(b)
    i = rng.randrange(1, len(a))
    j = rng.randrange(1, len(b))
    sub_a, sub_b = a[a.searchSubtree(i)], b[b.searchSubtree(j)]
    return _replace(a, i, sub_b), _replace(b, j, sub_a)


def mut_uniform(tree: gp.PrimitiveTree, rng: random.Random, expr: Generator) -> gp.PrimitiveTree:
    """DEAP's ``mutUniform``: replace the subtree at a random node by ``expr(rng)``."""
    index = rng.randrange(len(tree))
    return _replace(tree, index, expr(rng))


def mut_node_replacement(
    tree: gp.PrimitiveTree, pset: gp.PrimitiveSet, rng: random.Random
) -> gp.PrimitiveTree:
    """DEAP's ``mutNodeReplacement``: swap one non-root node for another of the same arity."""
    if len(tree) < 2:
        return gp.PrimitiveTree(tree)
    index = rng.randrange(1, len(tree))
    node = tree[index]
    if node.arity == 0:
        new = rng.choice(pset.terminals[pset.ret])
    else:
        new = rng.choice([p for p in pset.primitives[pset.ret] if p.arity == node.arity])
    return gp.PrimitiveTree([*tree[:index], new, *tree[index + 1 :]])


def mut_shrink(tree: gp.PrimitiveTree, rng: random.Random) -> gp.PrimitiveTree:
    """DEAP's ``mutShrink``: replace a random non-root operator by one of its arguments."""
    if len(tree) < 3 or tree.height <= 1:
        return gp.PrimitiveTree(tree)
    candidates = [i for i in range(1, len(tree)) if isinstance(tree[i], gp.Primitive)]
    if not candidates:
        return gp.PrimitiveTree(tree)
    index = rng.choice(candidates)
    arg = rng.randrange(tree[index].arity)
    start = index + 1
    for _ in range(arg):
        start = tree.searchSubtree(start).stop
    kept = tree[tree.searchSubtree(start)]
    return _replace(tree, index, kept)
