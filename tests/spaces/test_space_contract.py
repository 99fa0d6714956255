"""The SearchSpace contract, checked for every registered space (a new space is tested free)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.losses.expressions import canonical, expression_key, parse
from nlfs.spaces import InvalidGenome, get_space, space_names

SPACES = space_names()
CASES = [pytest.param(name, {}, id=name) for name in SPACES] + [
    # An ablation variant of the cell space, so the contract holds for options too.
    pytest.param(
        "cell",
        {"hidden": 2, "constants": False, "exclude": ["trigonometric", "minmax"]},
        id="cell-hidden2-yp-notrig-nominmax",
    )
]
seeds = st.integers(min_value=0, max_value=2**32 - 1)
fast = settings(max_examples=25, deadline=None)


def _walk(space, rng: random.Random, steps: int = 4) -> list:
    """A sample and a short line of its mutants (and crossover children where offered)."""
    genomes = [space.sample(rng)]
    for _ in range(steps):
        genomes.append(space.mutate(genomes[-1], rng)[0])
    if space.supports_crossover:
        genomes.append(space.crossover(genomes[0], space.sample(rng), rng))
    return genomes


def test_registry_has_cell_and_tree():
    """Both built-in spaces are registered and build with no options."""
    assert {"cell", "tree"} <= set(SPACES)
    for name in SPACES:
        assert get_space(name).name == name


@pytest.mark.parametrize("name, options", CASES)
@fast
@given(seed=seeds)
def test_sampled_genomes_validate(name, options, seed):
    """Every sampled genome passes validate."""
    space = get_space(name, **options)
    rng = random.Random(seed)
    for _ in range(5):
        space.validate(space.sample(rng))


@pytest.mark.parametrize("name, options", CASES)
@fast
@given(seed=seeds)
def test_mutants_validate_differ_and_leave_parent_unchanged(name, options, seed):
    """A mutant validates, has a new canonical expression, and its parent is not modified."""
    space = get_space(name, **options)
    rng = random.Random(seed)
    parent = space.sample(rng)
    before = json.dumps(space.to_json(parent), sort_keys=True)
    child, kind = space.mutate(parent, rng)
    space.validate(child)
    assert isinstance(kind, str) and kind
    assert space.canonical(child) != space.canonical(parent)
    assert json.dumps(space.to_json(parent), sort_keys=True) == before


@pytest.mark.parametrize(
    "name, options", [c for c in CASES if get_space(c.values[0], **c.values[1]).supports_crossover]
)
@fast
@given(seed=seeds)
def test_crossover_children_validate_and_leave_parents_unchanged(name, options, seed):
    """A crossover child validates; neither parent is modified."""
    space = get_space(name, **options)
    rng = random.Random(seed)
    a, b = space.sample(rng), space.sample(rng)
    before = [json.dumps(space.to_json(g), sort_keys=True) for g in (a, b)]
    child = space.crossover(a, b, rng)
    space.validate(child)
    assert [json.dumps(space.to_json(g), sort_keys=True) for g in (a, b)] == before


@pytest.mark.parametrize("name, options", CASES)
def test_crossover_works_exactly_where_supports_crossover_says_so(name, options):
    """crossover gives a valid child where supports_crossover is True and raises
    NotImplementedError where it is False."""
    space = get_space(name, **options)
    rng = random.Random(0)
    a, b = space.sample(rng), space.sample(rng)
    if space.supports_crossover:
        space.validate(space.crossover(a, b, rng))
    else:
        with pytest.raises(NotImplementedError):
            space.crossover(a, b, rng)


@pytest.mark.parametrize("name, options", CASES)
@fast
@given(seed=seeds)
def test_same_seed_gives_same_genomes(name, options, seed):
    """Two RNGs with the same seed drive a space through the same genomes and mutations."""
    space = get_space(name, **options)
    first = _walk(space, random.Random(seed))
    second = _walk(space, random.Random(seed))
    assert first == second


@pytest.mark.parametrize("name, options", CASES)
def test_global_rng_states_untouched(name, options):
    """Sampling, mutation and crossover leave the global random, numpy and torch RNGs alone."""
    space = get_space(name, **options)
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    _walk(space, random.Random(7), steps=20)
    after = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    assert after[0] == states[0]
    assert all(np.array_equal(x, y) for x, y in zip(after[1], states[1], strict=True))
    assert torch.equal(after[2], states[2])


@pytest.mark.parametrize("name, options", CASES)
@fast
@given(seed=seeds)
def test_canonical_text_parses_back_to_itself(name, options, seed):
    """parse(canonical(g)) prints as canonical(g), and the key is the key of that text."""
    space = get_space(name, **options)
    for genome in _walk(space, random.Random(seed), steps=2):
        text = space.canonical(genome)
        assert canonical(parse(text)) == text
        assert space.key(genome) == expression_key(text)


@pytest.mark.parametrize("name, options", CASES)
@fast
@given(seed=seeds)
def test_json_round_trip(name, options, seed):
    """from_json(to_json(g)) == g, also through a JSON text."""
    space = get_space(name, **options)
    for genome in _walk(space, random.Random(seed), steps=2):
        data = json.loads(json.dumps(space.to_json(genome)))
        assert space.from_json(data) == genome
        assert hash(space.from_json(data)) == hash(genome)


@pytest.mark.parametrize("name, options", CASES)
@fast
@given(seed=seeds)
def test_from_expression_of_canonical_text_keeps_it(name, options, seed):
    """A genome rebuilt from a genome's canonical text has that same canonical text."""
    space = get_space(name, **options)
    genome = space.sample(random.Random(seed))
    text = space.canonical(genome)
    assert space.canonical(space.from_expression(text)) == text


@pytest.mark.parametrize("name, options", CASES)
@pytest.mark.parametrize("bad", [None, 3, [], {"nodes": "x"}, "add(y, nope(p))"])
def test_from_json_rejects_bad_data(name, options, bad):
    """Malformed stored data raises InvalidGenome, not a deep TypeError."""
    with pytest.raises(InvalidGenome):
        get_space(name, **options).from_json(bad)


@pytest.mark.parametrize("name, options", CASES)
def test_compiled_losses_are_finite_on_random_logits(name, options):
    """space.compile(g) gives finite mean and per-sample losses on random logits."""
    space = get_space(name, **options)
    rng = random.Random(3)
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(16, 10, generator=gen) * 5
    target = torch.randint(0, 10, (16,), generator=gen)
    for genome in _walk(space, rng, steps=3) + [space.sample(rng) for _ in range(10)]:
        loss = space.compile(genome)
        assert torch.isfinite(loss(logits, target)).item(), space.canonical(genome)
        per_sample = loss(logits, target, reduction="none")
        assert per_sample.shape == (16,) and torch.isfinite(per_sample).all()
