"""The paper's cell space: layout, init, mutation kinds, validity reasons, encoding."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.errors import ConfigError
from nlfs.losses.expressions import ParseError, canonical, parse
from nlfs.spaces import InvalidGenome, get_space
from nlfs.spaces.cell import HIDDEN, ROOT, CellGenome, CellNode, CellSpace, analyse, wiring

SPACE = CellSpace()
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def cell(*nodes: tuple) -> CellGenome:
    """A genome from (arity, in0, in1) or (arity, in0, in1, unary, binary) per node 4..8."""
    built = []
    for spec in nodes:
        arity, in0, in1, *ops = spec
        unary, binary = ops or ("log", "add")
        built.append(CellNode(arity, unary, binary, in0, in1))
    return CellGenome(tuple(built))


def reason_of(genome) -> str:
    with pytest.raises(InvalidGenome) as info:
        SPACE.validate(genome)
    return info.value.reason


def test_random_init_probabilities_hold():
    """Hidden nodes are unary ~70% of draws, the root binary ~80%; inputs follow the layout."""
    rng = random.Random(11)
    draws = [SPACE.random_genome(rng) for _ in range(4000)]
    hidden_unary = sum(g.node(i).arity == 1 for g in draws for i in HIDDEN) / (4 * len(draws))
    root_binary = sum(g.node(ROOT).arity == 2 for g in draws) / len(draws)
    assert abs(hidden_unary - 0.7) < 0.02
    assert abs(root_binary - 0.8) < 0.03
    for g in draws:
        assert {g.node(ROOT).in0, g.node(ROOT).in1} <= set(HIDDEN)
        for i in HIDDEN:
            assert {g.node(i).in0, g.node(i).in1} <= set(range(ROOT)) - {i}


def test_mutation_kind_frequencies_follow_70_15_15():
    """Over many mutations, op/rewire(+swap)/arity applied ~70/15/15 and swaps do happen."""
    rng = random.Random(5)
    counts = Counter(SPACE.mutate(SPACE.sample(rng), rng)[1] for _ in range(4000))
    total = sum(counts.values())
    assert set(counts) <= {"op", "rewire", "swap", "arity"}
    assert abs(counts["op"] / total - 0.70) < 0.03
    assert abs((counts["rewire"] + counts["swap"]) / total - 0.15) < 0.025
    assert abs(counts["arity"] / total - 0.15) < 0.025
    # A swap is drawn for 20% of the rewires of binary nodes; it is valid more often than a
    # rewire (it cannot drop y or p), so among applied rewires it is a clear minority, not 20%.
    assert 0.05 < counts["swap"] / (counts["rewire"] + counts["swap"]) < 0.5


@settings(max_examples=60, deadline=None)
@given(seed=seeds)
def test_mutation_changes_exactly_one_active_node_as_named(seed):
    """One active node changes; 'op' keeps arity and inputs, 'arity' keeps both op names and
    inputs, 'swap' exchanges the inputs, 'rewire' changes one input."""
    rng = random.Random(seed)
    parent = SPACE.sample(rng)
    child, kind = SPACE.mutate(parent, rng)
    changed = [i for i in (*HIDDEN, ROOT) if parent.node(i) != child.node(i)]
    assert len(changed) == 1
    node_id = changed[0]
    assert node_id in analyse(wiring(parent))[0]
    old, new = parent.node(node_id), child.node(node_id)
    if kind == "op":
        assert (old.arity, old.in0, old.in1) == (new.arity, new.in0, new.in1)
        assert old.op != new.op
    elif kind == "arity":
        assert new.arity == 3 - old.arity
        assert old.unary == new.unary and old.binary == new.binary
        assert (old.in0, old.in1) == (new.in0, new.in1)
    elif kind == "swap":
        assert old.arity == 2 and (new.in0, new.in1) == (old.in1, old.in0)
    else:
        assert kind == "rewire"
        assert (old.in0 != new.in0) + (old.in1 != new.in1) == 1


def test_cyclic_active_graph_is_rejected():
    """A cycle among active nodes is rejected as 'cyclic' (also by expression())."""
    genome = cell((2, 0, 5), (2, 1, 4), (1, 0, 0), (1, 0, 0), (2, 4, 5))
    assert reason_of(genome) == "cyclic"
    with pytest.raises(InvalidGenome) as info:
        SPACE.expression(genome)
    assert info.value.reason == "cyclic"


def test_cycle_among_inactive_nodes_is_allowed():
    """Only the active subgraph must be acyclic: inactive nodes 6 and 7 may read each other."""
    genome = cell((1, 0, 0), (1, 1, 1), (1, 7, 7), (1, 6, 6), (2, 4, 5, "log", "mul"))
    SPACE.validate(genome)
    assert SPACE.canonical(genome) == "mul(log(y), log(p))"


@pytest.mark.parametrize(
    "nodes, reason",
    [
        (((1, 1, 1), (1, 1, 1), (1, 0, 0), (1, 0, 0), (2, 4, 5)), "missing_y"),
        (((1, 0, 0), (1, 2, 2), (1, 1, 1), (1, 0, 0), (2, 4, 5)), "missing_p"),
        # missing inputs are reported before a cycle, found by reachability through it
        (((2, 1, 5), (2, 4, 3), (1, 0, 0), (1, 0, 0), (2, 4, 5)), "missing_y"),
        (((1, 4, 4), (1, 1, 1), (1, 0, 0), (1, 0, 0), (2, 4, 5)), "invalid"),  # self-loop
        (((1, 8, 8), (1, 1, 1), (1, 0, 0), (1, 0, 0), (2, 4, 5)), "invalid"),  # reads the root
        (((1, 0, 9), (1, 1, 1), (1, 0, 0), (1, 0, 0), (2, 4, 5)), "invalid"),  # no such id
        (((3, 0, 1), (1, 1, 1), (1, 0, 0), (1, 0, 0), (2, 4, 5)), "invalid"),  # arity 3
        (((1, 0, 0, "nope", "add"), (1, 1, 1), (1, 0, 0), (1, 0, 0), (2, 4, 5)), "invalid"),
        (((1, 0, 0), (1, 1, 1), (1, 0, 0), (2, 4, 5)), "invalid"),  # four nodes
    ],
)
def test_validity_reasons(nodes, reason):
    """Each broken rule is reported with its reason."""
    assert reason_of(cell(*nodes)) == reason


def test_non_genome_is_invalid():
    """Something that is not a CellGenome is 'invalid', not a crash."""
    assert reason_of("add(y, p)") == "invalid"


def test_expression_duplicates_shared_nodes():
    """A node read twice appears twice in the expanded expression."""
    genome = cell((1, 1, 1), (2, 0, 4, "log", "mul"), (1, 0, 0), (1, 0, 0), (2, 5, 4))
    assert SPACE.canonical(genome) == "add(mul(y, log(p)), log(p))"


def test_from_expression_round_trips_three_ops_and_shares_subtrees():
    """A 3-op expression becomes a cell with the same canonical text; repeats share a node."""
    text = "add(mul(y, log(p)), -1)"
    genome = SPACE.from_expression(text)
    assert SPACE.canonical(genome) == text
    shared = SPACE.from_expression("mul(log(p), add(y, log(p)))")
    assert SPACE.canonical(shared) == "mul(log(p), add(y, log(p)))"
    assert len(analyse(wiring(shared))[0] - {0, 1, 2, 3}) == 3  # log, add, mul


def test_from_expression_refuses_what_a_cell_cannot_hold():
    """Nine distinct operator nodes (or a bare operand) are 'not_representable'."""
    nine = "add(mul(log(p), exp(y)), sub(sin(p), max(tanh(y), abs(p))))"
    assert len([n for n in parse(nine) if n.arity]) == 9
    for text in (nine, "y"):
        with pytest.raises(InvalidGenome) as info:
            SPACE.from_expression(text)
        assert info.value.reason == "not_representable"
    with pytest.raises(InvalidGenome) as info:
        SPACE.from_expression("log(p)")
    assert info.value.reason == "missing_y"
    with pytest.raises(ParseError):
        SPACE.from_expression("add(y, cosh(p))")


@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_encoding_decode_round_trips(seed):
    """decode(encode(g)) == g, and every encoded value is one of its coordinate's choices."""
    rng = random.Random(seed)
    genome = SPACE.mutate(SPACE.sample(rng), rng)[0]
    params = SPACE.encode(genome)
    specs = SPACE.encoding()
    assert [s.name for s in specs] == list(params)
    for spec in specs:
        assert params[spec.name] in spec.choices
    assert SPACE.decode(params) == genome


def test_encoding_covers_every_valid_genome():
    """The root's input choices include every id 0..7; hidden nodes never offer themselves."""
    choices = {s.name: s.choices for s in SPACE.encoding()}
    assert len(choices) == 25
    assert choices["n8_in0"] == tuple(range(8))
    assert 5 not in choices["n5_in1"] and 8 not in choices["n5_in1"]
    assert len(choices["n4_unary"]) == 27 and len(choices["n4_binary"]) == 7


def test_decode_rejects_invalid_parameters():
    """Missing coordinates and invalid genomes raise InvalidGenome with a reason."""
    params = SPACE.encode(SPACE.sample(random.Random(1)))
    with pytest.raises(InvalidGenome):
        SPACE.decode({k: v for k, v in params.items() if k != "n6_unary"})
    with pytest.raises(InvalidGenome) as info:
        SPACE.decode(params | {"n8_in0": 1, "n8_in1": 1, "n8_arity": 2})
    assert info.value.reason == "missing_y"


def test_from_json_rejects_wrong_shapes():
    """Stored data with a wrong id, a missing field or a bad value is refused."""
    data = SPACE.to_json(SPACE.sample(random.Random(2)))
    wrong_id = {"nodes": [dict(n, id=n["id"] + 1) for n in data["nodes"]]}
    missing = {"nodes": [{k: v for k, v in n.items() if k != "in1"} for n in data["nodes"]]}
    float_arity = {"nodes": [dict(n, arity=float(n["arity"])) for n in data["nodes"]]}
    list_op = {"nodes": [dict(n, unary=["log"]) for n in data["nodes"]]}
    for bad in (wrong_id, missing, float_arity, list_op, {"nodes": data["nodes"][:4]}):
        with pytest.raises(InvalidGenome):
            SPACE.from_json(bad)


def test_operator_subset_restricts_the_vocabulary():
    """CellSpace(operators=...) only draws the named ops; bad subsets are config errors."""
    space = get_space("cell", operators=["log", "neg", "add", "mul"])
    rng = random.Random(4)
    for _ in range(50):
        genome = space.mutate(space.sample(rng), rng)[0]
        used = {n.name for n in space.expression(genome) if n.arity}
        assert used <= {"log", "neg", "add", "mul"}
    with pytest.raises(InvalidGenome):
        space.validate(SPACE.from_expression("sub(y, exp(p))"))
    with pytest.raises(ConfigError):
        CellSpace(operators=["log", "cosh"])
    with pytest.raises(ConfigError):
        CellSpace(operators=["log", "exp"])


def test_sample_expression_is_a_primitive_tree_of_the_pset():
    """expression() returns nodes of the space's own primitive set (looked up, not rebuilt)."""
    genome = SPACE.sample(random.Random(9))
    tree = SPACE.expression(genome)
    pset = SPACE.pset
    known = {id(n) for n in (*pset.primitives[pset.ret], *pset.terminals[pset.ret])}
    assert all(id(node) in known for node in tree)
    assert canonical(tree) == SPACE.canonical(genome)
