"""The genome of the ``cell`` space: operator nodes wired into a graph, and graph checks.

Ids 0..3 are the operands ``y``, ``p``, ``1`` and ``-1``; ids 4..7 are hidden nodes and 8 is
the root (Morgan & Hougen 2024, section 3). These are plain data and pure functions;
:mod:`nlfs.spaces.cell` samples, mutates and compiles them.
"""

from __future__ import annotations

from dataclasses import dataclass

OPERANDS = ("y", "p", "1", "-1")
"""Terminal texts of the operand ids 0..3."""
HIDDEN = (4, 5, 6, 7)
ROOT = 8
NODE_IDS = (*HIDDEN, ROOT)


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
    """A cell: the nodes with ids 4..8, in that order (hashable, immutable)."""

    nodes: tuple[CellNode, ...]

    def node(self, node_id: int) -> CellNode:
        """The node with id ``node_id`` (4..8)."""
        return self.nodes[node_id - HIDDEN[0]]


# Inputs a node may read: any operand or other hidden node; the root reads any of 0..7 (it
# starts on hidden nodes only, but rewiring may point it at an operand). A hidden node never
# reads the root: that is a cycle whenever the node is active and dead weight otherwise.
ALLOWED_INPUTS = {i: tuple(j for j in range(ROOT) if j != i) for i in NODE_IDS}


Wiring = tuple[tuple[int, ...], ...]
"""The input ids in use by nodes 4..8, in that order (a cell's graph without its ops)."""


def wiring(genome: CellGenome) -> Wiring:
    """The graph of ``genome``: the input ids each node reads at its current arity."""
    return tuple(node.inputs for node in genome.nodes)


def analyse(graph: Wiring) -> tuple[set[int], bool]:
    """Ids reachable from the root (operands included) and whether that subgraph has a cycle.

    One depth-first search does both, so reachability is complete even on cyclic graphs.
    """
    # Iterative, not recursive: this runs ~10 times per sampled genome and recursion through a
    # closure costs about twice as much. Each stack entry is a node and its unvisited inputs.
    first = HIDDEN[0]
    state = [0] * len(NODE_IDS)  # 0 unseen, 1 on the current path, 2 finished
    seen = {ROOT}
    cyclic = False
    state[ROOT - first] = 1
    stack = [(ROOT, iter(graph[ROOT - first]))]
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
