"""The paper's ``cell`` search space: a NASNet-derived DAG of unary and binary operator nodes.

Ids 0..3 are the operands ``y``, ``p``, ``1`` and ``-1``; ids 4..7 are hidden nodes and 8 is
the root (with ``hidden=H``: hidden nodes 4..3+H, root 4+H). Every node stores an arity, an
unary op and a binary op (so an arity flip keeps both) and two input ids (the second unused
while the node is unary). Only the subgraph reachable from the root is *active*; it must be
acyclic and read both ``y`` and ``p``. Inactive nodes are free to be anything structurally
valid, which is what lets mutation wake them up later. Options shrink the space for ablations:
fewer hidden nodes, no constants, operator groups left out.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from deap import gp

from nlfs.errors import ConfigError
from nlfs.losses.expressions import parse
from nlfs.losses.operators import BINARY, UNARY, primitive_set
from nlfs.spaces.base import InvalidGenome, ParamSpec, SearchSpace
from nlfs.spaces.cell_genome import (
    FIELDS,
    FIRST_HIDDEN,
    HIDDEN,
    MAX_HIDDEN,
    OPERANDS,
    ROOT,
    CellGenome,
    CellLayout,
    CellNode,
    analyse,
    graph_problem,
    wiring,
)
from nlfs.spaces.gp_ops import resolve_operators

__all__ = [
    "HIDDEN",
    "ROOT",
    "CellGenome",
    "CellLayout",
    "CellNode",
    "CellSpace",
    "analyse",
    "wiring",
]

P_HIDDEN_UNARY = 0.7
"""Probability that a randomly initialised hidden node is unary."""
P_ROOT_BINARY = 0.8
"""Probability that a randomly initialised root is binary."""
P_MUTATE_OP = 0.70
P_MUTATE_REWIRE = 0.15
"""The remaining 0.15 of mutations flip a node's arity."""
P_SWAP = 0.2
"""Probability that a rewire of a binary node swaps its argument order instead."""
MAX_TRIES = 10_000
"""Draws before sampling or mutation gives up (only reachable with a crippled vocabulary)."""
TRIES_PER_KIND = 100
"""Mutation draws of one kind before the kind is redrawn."""


class CellSpace(SearchSpace):
    """The reference search space of Morgan & Hougen (2024), section 3.

    Random init draws each hidden node unary with probability 0.7 and the root binary with
    probability 0.8, hidden inputs from any operand or other hidden node and root inputs from
    the hidden nodes, and redraws until the genome is valid. Mutation changes exactly one
    active node: 70% a new op at its arity, 15% a rewired input (a binary node swaps its argument
    order instead with probability 0.2), 15% an arity flip, redrawn until valid and novel.

    Reference: Morgan & Hougen, "Neural Loss Function Evolution for Large-Scale Image Classifier
    Convolutional Neural Networks", arXiv 2403.08793 (2024).

    The options vary the space for ablations; their defaults are the paper's space.

    Args:
        operators: names of the operators to allow (default all 34).
        hidden: number of hidden nodes, 1 to 8 (the paper's 4).
        constants: whether nodes may read the constants 1 and -1 besides ``y`` and ``p``.
        exclude: names of operator groups (:data:`~nlfs.losses.operators.OPERATOR_GROUPS`) to
            leave out of ``operators``. At least one unary and one binary operator must remain.

    Raises:
        ConfigError: for an option value out of range, an unknown operator or group name, or a
            vocabulary without a unary or a binary operator.
    """

    name = "cell"

    def __init__(
        self,
        operators: Iterable[str] | None = None,
        hidden: int = 4,
        constants: bool = True,
        exclude: Iterable[str] = (),
    ) -> None:
        if type(hidden) is not int or not 1 <= hidden <= MAX_HIDDEN:
            raise ConfigError(f"cell hidden must be an integer 1..{MAX_HIDDEN}, got {hidden!r}")
        if not isinstance(constants, bool):
            raise ConfigError(f"cell constants must be true or false, got {constants!r}")
        self.layout = CellLayout(hidden, constants)
        self._operators = resolve_operators(operators, exclude)
        self._pset = primitive_set(self._operators)
        names = self._operators or (*UNARY, *BINARY)
        self.unary_names = tuple(n for n in names if n in UNARY)
        self.binary_names = tuple(n for n in names if n in BINARY)
        if not self.unary_names or not self.binary_names:
            raise ConfigError(
                "the cell space needs at least one unary and one binary operator; "
                f"left: {', '.join(names)}"
            )
        self._unary_set = frozenset(self.unary_names)
        self._binary_set = frozenset(self.binary_names)
        terminals = {t.format(): t for t in self._pset.terminals[self._pset.ret]}
        self._terminals = tuple(terminals[text] for text in OPERANDS)
        self._primitives = {p.name: p for p in self._pset.primitives[self._pset.ret]}

    @property
    def pset(self) -> gp.PrimitiveSet:
        return self._pset

    # -- validity -------------------------------------------------------------------------

    def _structure_problem(self, genome: Any) -> str | None:
        if not isinstance(genome, CellGenome):
            return f"a cell genome must be a CellGenome, got {type(genome).__name__}"
        layout = self.layout
        if not isinstance(genome.nodes, tuple) or len(genome.nodes) != len(layout.node_ids):
            return (
                f"a cell genome has exactly {len(layout.node_ids)} nodes "
                f"(ids {FIRST_HIDDEN}..{layout.root})"
            )
        for node_id, node in zip(layout.node_ids, genome.nodes, strict=True):
            if not isinstance(node, CellNode):
                return f"node {node_id} is not a CellNode"
            if node.arity not in (1, 2) or type(node.arity) is not int:
                return f"node {node_id} has arity {node.arity!r}; it must be 1 or 2"
            if not isinstance(node.unary, str) or node.unary not in self._unary_set:
                return f"node {node_id} has unknown unary op {node.unary!r}"
            if not isinstance(node.binary, str) or node.binary not in self._binary_set:
                return f"node {node_id} has unknown binary op {node.binary!r}"
            for j in (node.in0, node.in1):
                if j == node_id:
                    return f"node {node_id} reads itself"
                allowed = layout.allowed_inputs[node_id]
                if type(j) is not int or j not in allowed:
                    return f"node {node_id} reads id {j!r}; allowed: {allowed}"
        return None

    def _problem(self, genome: Any) -> tuple[str, str] | None:
        """``(reason, message)`` of the first broken rule, or None for a valid genome."""
        message = self._structure_problem(genome)
        if message is not None:
            return "invalid", message
        return graph_problem(wiring(genome))

    def validate(self, genome: CellGenome) -> None:
        """Raise :class:`InvalidGenome` for a broken rule.

        Structural errors (reason ``invalid``: wrong type or length, unknown op, bad or self
        input id) come first because the other rules cannot be judged without a well-formed
        graph; then ``missing_y``, ``missing_p`` (by reachability) and ``cyclic``.
        """
        problem = self._problem(genome)
        if problem is not None:
            raise InvalidGenome(problem[1], reason=problem[0])

    # -- random genomes -------------------------------------------------------------------

    def _draw_graph(self, rng: random.Random) -> list[tuple[int, int, int]]:
        """``(arity, in0, in1)`` of each node, hidden then root, drawn as the paper's random
        init does."""
        # Index by rng.random() rather than rng.choice: about twice as fast, and this loop runs
        # ~10 times per valid sample (the bias of a 53-bit float index is negligible).
        draw = rng.random
        hidden, allowed_inputs = self.layout.hidden, self.layout.allowed_inputs
        raw = []
        for node_id in hidden:
            allowed = allowed_inputs[node_id]
            arity = 1 if draw() < P_HIDDEN_UNARY else 2
            size = len(allowed)
            raw.append((arity, allowed[int(draw() * size)], allowed[int(draw() * size)]))
        arity = 2 if draw() < P_ROOT_BINARY else 1
        size = len(hidden)
        raw.append((arity, hidden[int(draw() * size)], hidden[int(draw() * size)]))
        return raw

    def _with_ops(self, raw: list[tuple[int, int, int]], rng: random.Random) -> CellGenome:
        unary, binary = self.unary_names, self.binary_names
        return CellGenome(
            tuple(CellNode(a, rng.choice(unary), rng.choice(binary), i, j) for a, i, j in raw)
        )

    def random_genome(self, rng: random.Random) -> CellGenome:
        """One draw of the paper's random init, NOT yet validated (see :meth:`sample`)."""
        return self._with_ops(self._draw_graph(rng), rng)

    def sample(self, rng: random.Random) -> CellGenome:
        """A random valid genome: the paper's random init redrawn until it validates.

        Only the graph is redrawn; ops are drawn once it passes, because they cannot make a
        graph valid or invalid (this keeps a sample at a few draws' worth of microseconds).
        """
        for _ in range(MAX_TRIES):
            raw = self._draw_graph(rng)
            if graph_problem(tuple((i,) if a == 1 else (i, j) for a, i, j in raw)) is None:
                return self._with_ops(raw, rng)
        raise InvalidGenome(f"no valid cell genome in {MAX_TRIES} draws", reason="no_sample")

    def mutate(self, genome: CellGenome, rng: random.Random) -> tuple[CellGenome, str]:
        """Exactly one mutation of one active node, named ``op``/``rewire``/``swap``/``arity``.

        The kind is drawn (70/15/15), then the node and details are redrawn until the child is
        valid with a canonical expression different from the parent's. The kind itself is only
        redrawn after :data:`TRIES_PER_KIND` failures (some genomes admit no valid arity flip),
        so the kinds applied keep close to the paper's proportions.
        """
        self.validate(genome)
        parent = self.canonical(genome)
        active = sorted(i for i in analyse(wiring(genome))[0] if i >= FIRST_HIDDEN)
        for _ in range(MAX_TRIES // TRIES_PER_KIND):
            draw = rng.random()
            if draw < P_MUTATE_OP:
                kind = "op"
            else:
                kind = "rewire" if draw < P_MUTATE_OP + P_MUTATE_REWIRE else "arity"
            for _ in range(TRIES_PER_KIND):
                node_id = rng.choice(active)
                new, name = self._mutate_node(node_id, genome.node(node_id), kind, rng)
                if new is None:
                    continue
                nodes = list(genome.nodes)
                nodes[node_id - FIRST_HIDDEN] = new
                child = CellGenome(tuple(nodes))
                if self._problem(child) is None and self.canonical(child) != parent:
                    return child, name
        raise InvalidGenome(f"no valid novel mutation of {parent}", reason="no_mutation")

    def _mutate_node(
        self, node_id: int, node: CellNode, kind: str, rng: random.Random
    ) -> tuple[CellNode | None, str]:
        if kind == "op":
            if node.arity == 1:
                options = [n for n in self.unary_names if n != node.unary]
                return (replace(node, unary=rng.choice(options)) if options else None), "op"
            options = [n for n in self.binary_names if n != node.binary]
            return (replace(node, binary=rng.choice(options)) if options else None), "op"
        if kind == "arity":
            return replace(node, arity=3 - node.arity), "arity"
        if node.arity == 2 and rng.random() < P_SWAP:
            return replace(node, in0=node.in1, in1=node.in0), "swap"
        slot = 0 if node.arity == 1 else rng.randrange(2)
        current = node.in0 if slot == 0 else node.in1
        new = rng.choice([j for j in self.layout.allowed_inputs[node_id] if j != current])
        return (replace(node, in0=new) if slot == 0 else replace(node, in1=new)), "rewire"

    # -- expressions ----------------------------------------------------------------------

    def expression(self, genome: CellGenome) -> gp.PrimitiveTree:
        """The active DAG expanded from the root into a prefix tree (shared nodes repeated).

        Raises:
            InvalidGenome: for a structurally invalid genome or a cyclic active graph.
        """
        message = self._structure_problem(genome)
        if message is not None:
            raise InvalidGenome(message)
        out: list[gp.Primitive | gp.Terminal] = []
        on_path: set[int] = set()

        def expand(i: int) -> None:
            if i < FIRST_HIDDEN:
                out.append(self._terminals[i])
                return
            if i in on_path:
                raise InvalidGenome("the active graph has a cycle", reason="cyclic")
            node = genome.nodes[i - FIRST_HIDDEN]
            out.append(self._primitives[node.op])
            on_path.add(i)
            for j in node.inputs:
                expand(j)
            on_path.discard(i)

        expand(self.layout.root)
        return gp.PrimitiveTree(out)

    def from_expression(self, text: str) -> CellGenome:
        """A cell whose expression is ``text``, sharing identical subtrees between nodes.

        Raises:
            ParseError: for text that does not parse in this space's vocabulary.
            InvalidGenome: reason ``not_representable`` when it needs more operator nodes than
                the hidden nodes and the root (or is a bare operand, or reads a constant where
                constants are off); otherwise a validity reason.
        """
        layout = self.layout
        ids: dict[str, int] = {t: i for i, t in enumerate(OPERANDS)}  # subtree text -> id
        specs: list[tuple[str, str, list[str]]] = []  # new operator subtrees, children first
        stack: list[str] = []
        for node in reversed(parse(text, self._pset)):
            args = [stack.pop() for _ in range(node.arity)]
            key = node.format(*args)
            if node.arity == 0 and ids.get(key) not in layout.operands:
                raise InvalidGenome(
                    f"{text!r} reads the constant {key}, which this cell space does not offer",
                    reason="not_representable",
                )
            if key not in ids:
                ids[key] = -1  # numbered below, once the count is known
                specs.append((key, node.name, args))
            stack.append(key)
        size = len(layout.node_ids)
        if not specs or len(specs) > size:
            raise InvalidGenome(
                f"{text!r} needs {len(specs)} operator nodes; a cell holds 1 to {size}",
                reason="not_representable",
            )
        # The whole expression is the last new subtree, so it becomes the root.
        for k, (key, _, _) in enumerate(specs):
            ids[key] = layout.root if k == len(specs) - 1 else layout.hidden[k]
        u0, b0 = self.unary_names[0], self.binary_names[0]  # placeholders for unused slots
        nodes = {i: CellNode(1, u0, b0, 0, 1) for i in layout.hidden}
        for key, op, args in specs:
            ins = [ids[a] for a in args]
            unary, binary = (op, b0) if len(ins) == 1 else (u0, op)
            nodes[ids[key]] = CellNode(len(ins), unary, binary, ins[0], ins[-1])
        genome = CellGenome(tuple(nodes[i] for i in layout.node_ids))
        self.validate(genome)
        return genome

    # -- serialisation and encoding -------------------------------------------------------

    def to_json(self, genome: CellGenome) -> dict[str, Any]:
        """``{"nodes": [{"id": 4, "arity": .., "unary": .., "binary": .., "in0": .., "in1": ..},
        ...]}`` for nodes 4..8 (4 up to the root's id)."""
        return {
            "nodes": [
                {"id": i, **{f: getattr(n, f) for f in FIELDS}}
                for i, n in zip(self.layout.node_ids, genome.nodes, strict=True)
            ]
        }

    def from_json(self, data: Any) -> CellGenome:
        node_ids = self.layout.node_ids
        nodes_data = data.get("nodes") if isinstance(data, Mapping) else None
        if not isinstance(nodes_data, list) or len(nodes_data) != len(node_ids):
            raise InvalidGenome(f"cell JSON needs 'nodes': a list of {len(node_ids)} objects")
        keys = {"id", *FIELDS}
        for node_id, item in zip(node_ids, nodes_data, strict=True):
            if not isinstance(item, Mapping) or set(item) != keys or item["id"] != node_id:
                raise InvalidGenome(f"cell JSON node {node_id} needs id {node_id} and {FIELDS}")
        genome = CellGenome(tuple(CellNode(*(item[f] for f in FIELDS)) for item in nodes_data))
        self.validate(genome)
        return genome

    def encoding(self) -> list[ParamSpec]:
        """Five categorical coordinates ``n{id}_{field}`` per node (fields: FIELDS).

        Their number and choices follow the options: one group per hidden node and the root,
        input choices from the layout, op choices from the vocabulary.
        """
        specs = []
        for i in self.layout.node_ids:
            allowed = self.layout.allowed_inputs[i]
            choices = ((1, 2), self.unary_names, self.binary_names, allowed, allowed)
            specs += [ParamSpec(f"n{i}_{f}", c) for f, c in zip(FIELDS, choices, strict=True)]
        return specs

    def encode(self, genome: CellGenome) -> dict[str, Any]:
        """The encoding's parameter values of ``genome`` (inverse of :meth:`decode`)."""
        return {
            f"n{i}_{f}": getattr(n, f)
            for i, n in zip(self.layout.node_ids, genome.nodes, strict=True)
            for f in FIELDS
        }

    def decode(self, params: Mapping[str, Any]) -> CellGenome:
        node_ids = self.layout.node_ids
        missing = [f"n{i}_{f}" for i in node_ids for f in FIELDS if f"n{i}_{f}" not in params]
        if missing:
            raise InvalidGenome(f"encoding parameters missing: {', '.join(missing)}")
        nodes = (CellNode(*(params[f"n{i}_{f}"] for f in FIELDS)) for i in node_ids)
        genome = CellGenome(tuple(nodes))
        self.validate(genome)
        return genome
