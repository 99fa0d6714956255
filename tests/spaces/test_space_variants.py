"""Options of the spaces for ablations: hidden nodes, constants, operator groups left out."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.errors import ConfigError
from nlfs.losses.expressions import canonical, parse
from nlfs.losses.operators import BINARY, OPERATOR_GROUPS, OPERATORS, UNARY
from nlfs.spaces import InvalidGenome, get_space, space_options
from nlfs.spaces.cell import CellSpace, analyse, wiring
from nlfs.spaces.tree import TreeSpace

seeds = st.integers(min_value=0, max_value=2**32 - 1)
fast = settings(max_examples=20, deadline=None)

VARIANTS = [
    {"hidden": 1},
    {"hidden": 2},
    {"hidden": 8},
    {"constants": False},
    {"exclude": ["trigonometric", "bessel"]},
    {"hidden": 3, "constants": False, "exclude": ["minmax", "hyperbolic"]},
    {"operators": ["log", "exp", "sin", "add", "mul", "max"], "exclude": ["trigonometric"]},
]
"""Option sets of the cell space, the paper's defaults changed one or several at a time."""


def _excluded(options: dict) -> set[str]:
    return {name for group in options.get("exclude", ()) for name in OPERATOR_GROUPS[group]}


def _lineage(space: CellSpace, rng: random.Random, steps: int = 6) -> list:
    """A sample and a line of its mutants."""
    genomes = [space.sample(rng)]
    for _ in range(steps):
        genomes.append(space.mutate(genomes[-1], rng)[0])
    return genomes


@pytest.mark.parametrize("options", VARIANTS, ids=str)
@fast
@given(seed=seeds)
def test_variant_genomes_keep_to_the_options(options, seed):
    """Sampled and mutated genomes validate, have one node per hidden id plus the root, read
    only allowed ids (never a constant when constants are off) and store no excluded op, not
    even in an inactive node."""
    space = get_space("cell", **options)
    hidden = options.get("hidden", 4)
    constants = options.get("constants", True)
    excluded = _excluded(options)
    allowed_ops = set(options.get("operators", OPERATORS)) - excluded
    operands = {0, 1, 2, 3} if constants else {0, 1}
    for genome in _lineage(space, random.Random(seed)):
        space.validate(genome)
        assert len(genome.nodes) == hidden + 1
        root = 4 + hidden
        for node_id, node in zip(range(4, root + 1), genome.nodes, strict=True):
            assert node.unary in UNARY and node.binary in BINARY
            assert {node.unary, node.binary} <= allowed_ops
            assert not {node.unary, node.binary} & excluded
            readable = operands | set(range(4, root)) - {node_id}
            assert {node.in0, node.in1} <= readable
        active = analyse(wiring(genome))[0]
        assert {0, 1} <= active and max(active) == root
        tree = space.expression(genome)
        assert {n.name for n in tree if n.arity} <= allowed_ops
        if not constants:
            assert {n.format() for n in tree if n.arity == 0} <= {"y", "p"}


@pytest.mark.parametrize("options", VARIANTS, ids=str)
@fast
@given(seed=seeds)
def test_variant_round_trips(options, seed):
    """parse(canonical(g)) prints back to itself, from_expression keeps the text, and
    from_json(to_json(g)) == g through JSON text; encode/decode round trip too."""
    space = get_space("cell", **options)
    for genome in _lineage(space, random.Random(seed), steps=3):
        text = space.canonical(genome)
        assert canonical(parse(text, space.pset)) == text
        assert space.canonical(space.from_expression(text)) == text
        assert space.from_json(json.loads(json.dumps(space.to_json(genome)))) == genome
        assert space.decode(space.encode(genome)) == genome


@fast
@given(seed=seeds)
def test_default_options_spelled_out_change_nothing(seed):
    """CellSpace() and CellSpace with the defaults written out draw the same genomes and
    mutations and offer the same encoding, so stored studies and configs stay valid."""
    implicit = CellSpace()
    explicit = get_space("cell", operators=None, hidden=4, constants=True, exclude=[])
    a, b = random.Random(seed), random.Random(seed)
    for _ in range(3):
        parent = implicit.sample(a)
        assert explicit.sample(b) == parent
        assert implicit.mutate(parent, a) == explicit.mutate(parent, b)
        assert implicit.to_json(parent) == explicit.to_json(parent)
    assert implicit.encoding() == explicit.encoding()


def test_default_layout_is_the_papers():
    """Operands 0..3, hidden nodes 4..7, root 8; each node may read 0..7 but itself (paper,
    section 3), and the encoding has five coordinates for each of the five nodes."""
    layout = CellSpace().layout
    assert layout.hidden == (4, 5, 6, 7) and layout.root == 8
    for node_id in (4, 5, 6, 7, 8):
        assert layout.allowed_inputs[node_id] == tuple(j for j in range(8) if j != node_id)
    assert [s.name for s in CellSpace().encoding()][:5] == [
        "n4_arity",
        "n4_unary",
        "n4_binary",
        "n4_in0",
        "n4_in1",
    ]


@pytest.mark.parametrize("hidden", [1, 2, 5, 8])
def test_layout_and_encoding_follow_hidden_and_constants(hidden):
    """Hidden ids 4..3+H, root 4+H, five coordinates per node; without constants no node
    may read ids 2 or 3."""
    for constants in (True, False):
        space = CellSpace(hidden=hidden, constants=constants)
        root = 4 + hidden
        assert space.layout.hidden == tuple(range(4, root)) and space.layout.root == root
        choices = {s.name: s.choices for s in space.encoding()}
        assert len(choices) == 5 * (hidden + 1)
        operands = (0, 1, 2, 3) if constants else (0, 1)
        assert choices[f"n{root}_in1"] == (*operands, *range(4, root))
        assert f"n{root + 1}_arity" not in choices


def test_excluded_groups_leave_the_encoding_and_the_pset():
    """Excluded operators are neither encoding choices nor primitives of the space."""
    space = CellSpace(exclude=["bessel", "minmax"])
    gone = {"i0", "i0e", "i1", "i1e", "max0", "min0", "max", "min"}
    choices = {s.name: s.choices for s in space.encoding()}
    assert len(choices["n4_unary"]) == 27 - 6 and len(choices["n4_binary"]) == 7 - 2
    assert not gone & set(choices["n4_unary"] + choices["n4_binary"])
    assert not gone & {p.name for p in space.pset.primitives[space.pset.ret]}


def test_operator_groups_name_real_operators():
    """Every group names operators of the vocabulary; the three the issue asks for hold what
    their names say."""
    for names in OPERATOR_GROUPS.values():
        assert names and set(names) <= set(OPERATORS)
    assert {"sin", "atan"} <= set(OPERATOR_GROUPS["trigonometric"])
    assert set(OPERATOR_GROUPS["bessel"]) == {"i0", "i0e", "i1", "i1e"}
    assert set(OPERATOR_GROUPS["minmax"]) == {"max0", "min0", "max", "min"}


def test_stored_genomes_do_not_cross_layouts():
    """A genome stored by the paper's space is refused by a two-hidden-node space."""
    data = CellSpace().to_json(CellSpace().sample(random.Random(0)))
    with pytest.raises(InvalidGenome):
        CellSpace(hidden=2).from_json(data)


def test_from_expression_respects_the_options():
    """A constant without constants, or more operators than nodes, is not representable."""
    with pytest.raises(InvalidGenome) as info:
        CellSpace(constants=False).from_expression("add(mul(y, log(p)), -1)")
    assert info.value.reason == "not_representable"
    two = CellSpace(hidden=1)
    assert two.canonical(two.from_expression("neg(mul(y, p))")) == "neg(mul(y, p))"
    with pytest.raises(InvalidGenome) as info:
        two.from_expression("neg(mul(y, log(p)))")
    assert info.value.reason == "not_representable"
    with pytest.raises(InvalidGenome):  # sin is not in the space's vocabulary
        CellSpace(exclude=["trigonometric"]).validate(CellSpace().from_expression("sin(mul(y, p))"))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"exclude": ["trig"]}, "unknown operator groups .*trig.*known: trigonometric.*bessel"),
        ({"exclude": 3}, "exclude must be a list"),
        ({"operators": ["log", "max", "min"], "exclude": ["minmax"]}, "one binary operator"),
        ({"operators": ["sin", "atan", "add"], "exclude": ["trigonometric"]}, "one unary"),
        ({"operators": ["max", "min"], "exclude": "minmax"}, "leaves no operator"),
        ({"hidden": 0}, "hidden must be an integer 1..8"),
        ({"hidden": 9}, "hidden must be an integer 1..8"),
        ({"hidden": "2"}, "hidden must be an integer"),
        ({"hidden": True}, "hidden must be an integer"),
        ({"constants": "no"}, "constants must be true or false"),
        ({"hiden": 2}, "unknown option.*hiden.*valid: operators, hidden, constants, exclude"),
    ],
)
def test_bad_options_are_config_errors(options, match):
    """Each bad option is one ConfigError naming what was wrong and the valid choices."""
    with pytest.raises(ConfigError, match=match):
        get_space("cell", **options)


def test_every_space_lists_its_options():
    """Unknown option names of any space list its valid ones (its constructor's arguments)."""
    assert space_options("cell") == ["operators", "hidden", "constants", "exclude"]
    assert "exclude" in space_options("tree")
    with pytest.raises(ConfigError, match="valid: max_depth, .*operators, exclude"):
        get_space("tree", depth=3)


def test_tree_space_excludes_groups_too():
    """The tree space takes the same ``exclude``; a vocabulary without a binary operator (no
    tree could read both y and p) is a ConfigError."""
    space = TreeSpace(exclude=["bessel", "trigonometric"])
    rng = random.Random(6)
    gone = set(OPERATOR_GROUPS["bessel"]) | set(OPERATOR_GROUPS["trigonometric"])
    for _ in range(30):
        genome = space.mutate(space.sample(rng), rng)[0]
        assert not {n.name for n in space.expression(genome) if n.arity} & gone
    with pytest.raises(ConfigError, match="needs a binary operator"):
        TreeSpace(operators=["log", "exp"])
