"""The GP tree space and the RNG-injected DEAP operators under it."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from deap import gp
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.errors import ConfigError
from nlfs.losses.expressions import ParseError, parse
from nlfs.losses.operators import primitive_set
from nlfs.spaces import InvalidGenome, gp_ops
from nlfs.spaces.tree import MUTATIONS, TreeSpace

PSET = primitive_set()
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def reason_of(space: TreeSpace, genome: str) -> str:
    with pytest.raises(InvalidGenome) as info:
        space.validate(genome)
    return info.value.reason


@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_offspring_respect_depth_and_size_limits(seed):
    """Every sample, mutant and crossover child stays within tight depth and size limits."""
    space = TreeSpace(max_depth=4, max_size=15, init_max_depth=3)
    rng = random.Random(seed)
    population = [space.sample(rng) for _ in range(4)]
    for _ in range(20):
        a, b = rng.sample(population, 2)
        child = space.crossover(a, b, rng)
        mutant, _ = space.mutate(child, rng)
        for genome in (child, mutant):
            tree = space.expression(genome)
            assert tree.height <= 4 and len(tree) <= 15, genome
        population[rng.randrange(4)] = mutant


def test_default_limits_hold_along_a_long_mutation_chain():
    """With the default limits (depth 8, 40 nodes) a long line of mutants never exceeds them."""
    space = TreeSpace()
    rng = random.Random(1)
    genome = space.sample(rng)
    for _ in range(300):
        genome, _ = space.mutate(genome, rng)
        tree = space.expression(genome)
        assert tree.height <= space.max_depth and len(tree) <= space.max_size


def test_sampled_heights_span_the_init_range():
    """Ramped half-and-half draws heights across init_min_depth..init_max_depth."""
    space = TreeSpace(init_min_depth=1, init_max_depth=4)
    rng = random.Random(2)
    heights = Counter(space.expression(space.sample(rng)).height for _ in range(300))
    assert set(heights) == {1, 2, 3, 4}


def test_all_three_mutations_are_used():
    """uniform, node_replacement and shrink are each applied a fair share of the time."""
    space = TreeSpace()
    rng = random.Random(3)
    counts = Counter(space.mutate(space.sample(rng), rng)[1] for _ in range(600))
    assert set(counts) == set(MUTATIONS)
    assert min(counts.values()) > 600 * 0.15


@pytest.mark.parametrize(
    "text, reason",
    [
        ("add(y, neg(neg(neg(neg(p)))))", "too_deep"),
        ("add(add(add(y, p), add(y, p)), add(add(y, p), add(y, p)))", "too_large"),
        ("add(p, log(p))", "missing_y"),
        ("add(y, -1)", "missing_p"),
        ("add(y,p)", "invalid"),  # not in canonical form
        ("add(y, nope(p))", "invalid"),  # does not parse
    ],
)
def test_validity_reasons(text, reason):
    """Each broken rule is reported with its reason (limits before missing terminals)."""
    space = TreeSpace(max_depth=4, max_size=12, init_max_depth=2)
    assert reason_of(space, text) == reason


def test_from_expression_canonicalises_and_validates():
    """from_expression returns the canonical text; bad text raises ParseError/InvalidGenome."""
    space = TreeSpace()
    assert space.from_expression(" add( y ,log(p) ) ") == "add(y, log(p))"
    with pytest.raises(ParseError):
        space.from_expression("add(y)")
    with pytest.raises(InvalidGenome):
        space.from_expression("log(p)")


def test_bad_settings_are_config_errors():
    """Inconsistent depth settings and unknown operators are refused at construction."""
    with pytest.raises(ConfigError):
        TreeSpace(init_max_depth=9, max_depth=8)
    with pytest.raises(ConfigError):
        TreeSpace(operators=["add", "cosh"])


def test_operator_subset_restricts_trees():
    """TreeSpace(operators=...) only builds trees from those operators."""
    space = TreeSpace(operators=("add", "mul", "log"))
    rng = random.Random(4)
    genome = space.sample(rng)
    for _ in range(30):
        genome = space.crossover(genome, space.mutate(genome, rng)[0], rng)
        assert {n.name for n in space.expression(genome) if n.arity} <= {"add", "mul", "log"}


# -- gp_ops: DEAP's algorithms with an injected RNG ------------------------------------------


def _tree(text: str) -> gp.PrimitiveTree:
    return parse(text)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, grow=st.booleans())
def test_generate_height_in_range_and_full_trees_are_full(seed, grow):
    """Generated trees have height within bounds; full trees have every leaf at that height."""
    rng = random.Random(seed)
    tree = gp.PrimitiveTree(gp_ops.generate(PSET, 1, 3, rng, grow=grow))
    assert 1 <= tree.height <= 3
    if not grow:
        depths, stack = [], [0]
        for node in tree:
            depth = stack.pop()
            if node.arity == 0:
                depths.append(depth)
            stack.extend([depth + 1] * node.arity)
        assert set(depths) == {tree.height}


@settings(max_examples=50, deadline=None)
@given(seed=seeds)
def test_one_point_crossover_swaps_subtrees_without_touching_parents(seed):
    """Children hold all parent nodes between them and the parents are unchanged."""
    rng = random.Random(seed)
    a = gp.PrimitiveTree(gp_ops.gen_full(PSET, 2, 3, rng))
    b = gp.PrimitiveTree(gp_ops.gen_grow(PSET, 2, 3, rng))
    copies = (list(a), list(b))
    c, d = gp_ops.cx_one_point(a, b, rng)
    assert (list(a), list(b)) == copies
    assert len(c) + len(d) == len(a) + len(b)
    assert sorted(map(str, (*c, *d))) == sorted(map(str, (*a, *b)))
    assert c[0] is a[0] and d[0] is b[0]  # the roots are never crossover points


@settings(max_examples=50, deadline=None)
@given(seed=seeds)
def test_mutations_keep_trees_well_formed_and_parents_unchanged(seed):
    """Uniform, node replacement and shrink return complete trees; shrink never grows."""
    rng = random.Random(seed)
    tree = gp.PrimitiveTree(gp_ops.gen_full(PSET, 2, 3, rng))
    before = list(tree)
    grown = gp_ops.mut_uniform(tree, rng, lambda r: gp_ops.gen_grow(PSET, 0, 2, r))
    replaced = gp_ops.mut_node_replacement(tree, PSET, rng)
    shrunk = gp_ops.mut_shrink(tree, rng)
    assert list(tree) == before
    for child in (grown, replaced, shrunk):
        assert str(parse(str(child))) == str(child)  # complete, parsable prefix tree
    assert [n.arity for n in replaced] == [n.arity for n in tree]
    assert sum(x is not y for x, y in zip(replaced, tree, strict=True)) <= 1
    assert len(shrunk) < len(tree) and shrunk[0] is tree[0]


def test_shrink_and_crossover_leave_tiny_trees_alone():
    """Single-node trees come back unchanged from crossover; shrink keeps height-1 trees."""
    rng = random.Random(0)
    leaf, small = _tree("y"), _tree("add(y, p)")
    assert [list(t) for t in gp_ops.cx_one_point(leaf, small, rng)] == [list(leaf), list(small)]
    assert list(gp_ops.mut_shrink(small, rng)) == list(small)
