"""The genome of the ``cell`` space: operator nodes wired into a graph, and graph checks.

Ids 0..3 are the operands ``y``, ``p``, ``1`` and ``-1``; the hidden nodes follow (4..7 in the
paper's layout, 4..3+H with H hidden nodes) and the root comes last (8, or 4+H) (Morgan &
Hougen 2024, section 3). These are plain data and pure functions; :mod:`nlfs.spaces.cell`
samples, mutates and compiles them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

OPERANDS = ("y", "p", "1", "-1")
"""Terminal texts of the operand ids 0..3."""
VARIABLES = (0, 1)
"""The operand ids of ``y`` and ``p``: every layout offers them, constants are optional."""
FIRST_HIDDEN = len(OPERANDS)
"""Id of the first hidden node; operand ids stay 0..3 whatever the layout."""
MAX_HIDDEN = 8
"""Most hidden nodes a layout may have (the paper uses 4)."""


@dataclass(frozen=True)
class CellLayout:
    """Which ids a cell has and which ids each node may read.

    A hidden node may read any offered operand or any other hidden node; the root reads any
    offered operand or hidden node (random init starts it on hidden nodes only). A hidden node
    never reads the root: that is a cycle whenever the node is active and dead weight otherwise.

    Attributes:
        hidden_count: number of hidden nodes (the paper's 4).
        constants: whether the operands ``1`` and ``-1`` (ids 2 and 3) may be read.
        hidden: the hidden node ids, ``4..3+hidden_count``.
        root: the root's id, ``4+hidden_count``.
        node_ids: the operator node ids (hidden, then root): the order of a genome's nodes.
        operands: the operand ids nodes may read.
        allowed_inputs: per node id, the ids it may read, in increasing order.
    """

    hidden_count: int = 4
    constants: bool = True
    # Derived from the two fields above, so left out of comparison and hashing.
    hidden: tuple[int, ...] = field(init=False, compare=False)
    root: int = field(init=False, compare=False)
    node_ids: tuple[int, ...] = field(init=False, compare=False, repr=False)
    operands: tuple[int, ...] = field(init=False, compare=False, repr=False)
    allowed_inputs: Mapping[int, tuple[int, ...]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        hidden = tuple(range(FIRST_HIDDEN, FIRST_HIDDEN + self.hidden_count))
        root = FIRST_HIDDEN + self.hidden_count
        operands = tuple(range(FIRST_HIDDEN)) if self.constants else VARIABLES
        readable = (*operands, *hidden)
        allowed = {i: tuple(j for j in readable if j != i) for i in (*hidden, root)}
        # Derived fields of a frozen dataclass are set once, here, and never again.
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "node_ids", (*hidden, root))
        object.__setattr__(self, "operands", operands)
        object.__setattr__(self, "allowed_inputs", allowed)


PAPER_LAYOUT = CellLayout()
"""The paper's layout: operands 0..3 with constants, hidden nodes 4..7, root 8."""
HIDDEN = PAPER_LAYOUT.hidden
ROOT = PAPER_LAYOUT.root
NODE_IDS = PAPER_LAYOUT.node_ids
ALLOWED_INPUTS = PAPER_LAYOUT.allowed_inputs


@dataclass(frozen=True, slots=True)
class CellNode:
    """One operator node: its arity, both op names, and two input ids."""

    arity: int
    unary: str
    binary: str
    in0: int
    in1: int

    @property
    def op(self) -> str:
        """The op name in use at the current arity."""
        return self.unary if self.arity == 1 else self.binary

    @property
    def inputs(self) -> tuple[int, ...]:
        """The input ids in use at the current arity."""
        return (self.in0,) if self.arity == 1 else (self.in0, self.in1)


FIELDS = ("arity", "unary", "binary", "in0", "in1")
"""A node's fields, in order: the keys of its JSON object and of its encoding coordinates."""


@dataclass(frozen=True, slots=True)
class CellGenome:
    """A cell: its hidden nodes then its root, in id order (hashable, immutable)."""

    nodes: tuple[CellNode, ...]

    def node(self, node_id: int) -> CellNode:
        """The node with id ``node_id`` (4 up to the root's id)."""
        return self.nodes[node_id - FIRST_HIDDEN]


Wiring = tuple[tuple[int, ...], ...]
"""The input ids in use by each node, hidden nodes then root (a cell's graph without its ops)."""


def wiring(genome: CellGenome) -> Wiring:
    """The graph of ``genome``: the input ids each node reads at its current arity."""
    return tuple(node.inputs for node in genome.nodes)


def analyse(graph: Wiring) -> tuple[set[int], bool]:
    """Ids reachable from the root (operands included) and whether that subgraph has a cycle.

    The root is the last node of ``graph``. One depth-first search does both, so reachability
    is complete even on cyclic graphs.
    """
    # Iterative, not recursive: this runs ~10 times per sampled genome and recursion through a
    # closure costs about twice as much. Each stack entry is a node and its unvisited inputs.
    first = FIRST_HIDDEN
    root = first + len(graph) - 1
    state = [0] * len(graph)  # 0 unseen, 1 on the current path, 2 finished
    seen = {root}
    cyclic = False
    state[root - first] = 1
    stack = [(root, iter(graph[root - first]))]
    while stack:
        node, inputs = stack[-1]
        for j in inputs:
            if j < first:
                seen.add(j)
            elif state[j - first] == 0:
                seen.add(j)
                state[j - first] = 1
                stack.append((j, iter(graph[j - first])))
                break
            elif state[j - first] == 1:
                cyclic = True
        else:
            state[node - first] = 2
            stack.pop()
    return seen, cyclic


def graph_problem(graph: Wiring) -> tuple[str, str] | None:
    """``(reason, message)`` for a graph missing ``y`` or ``p`` or with a cycle, else None."""
    seen, cyclic = analyse(graph)
    if 0 not in seen:
        return "missing_y", "the active graph does not read y"
    if 1 not in seen:
        return "missing_p", "the active graph does not read p"
    if cyclic:
        return "cyclic", "the active graph has a cycle"
    return None
