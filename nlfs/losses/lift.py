"""Lifting: a found expression made parametric, with a weight (and an offset) at chosen nodes.

A search over structure finds ``asinh(add(div(y, p), 1))``; its numbers (the implicit weight 1 of
``div(y, p)``, the constant 1) were never tuned. Lifting wraps chosen nodes ``x`` of the
expression as ``add(mul(w, x), b)`` (or ``mul(w, x)``, weight only), so ``asinh(0.7 * y/p + 0.3)``
is one coefficient vector away, and an offset on ``y`` turns the one-hot target into a smoothed
one. The coefficients are real literals of the ordinary expression language, so a lifted
expression with its coefficients filled in is a canonical expression like any other: it compiles
(:class:`~nlfs.losses.compile.ExpressionLoss`), screens, exports and transfers unchanged.

At the initial coefficients (weights 1, offsets 0) the lifted loss is the original: identity
coefficients are left out of the text, so it is the same expression. Written out, ``mul(1, x)``
and ``add(x, 0)`` return ``x`` bit for bit (every operand is already clean, so the operators'
clamping changes nothing); gradients then agree up to float rounding, since the extra nodes can
change the order in which autograd sums the contributions of an input used in several places.

The default choice of nodes (:func:`default_slots`): a weight on every node but the root (the
loss's overall scale is the learning rate's business), an offset where it adds a degree of
freedom and keeps the loss well-defined: not on constants (``w * c`` already moves them), not on
an operand of ``add``/``sub`` (the sum's own offset covers it), not on the operand of an operator
singular at a finite point (``log``, ``log10``, ``inv``, ``sqrt`` and the divisor of ``div``),
where an offset would move the singularity into the range of the data.

References: TaylorGLO (Gonzalez & Miikkulainen 2021) and EvoMAL (Raymond et al. 2023) tune the
numbers of a loss's structure the same way, after or alongside the search over structure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deap import gp

from nlfs.errors import ConfigError
from nlfs.losses.compile import ExpressionLoss
from nlfs.losses.expressions import canonical, parse

WEIGHT = "weight"
OFFSET = "offset"
KINDS = (WEIGHT, OFFSET)
INITIAL = {WEIGHT: 1.0, OFFSET: 0.0}
"""Coefficients at which the lifted loss equals the original."""
SINGULAR_OPERANDS: dict[str, tuple[int, ...]] = {
    "log": (0,),
    "log10": (0,),
    "inv": (0,),
    "sqrt": (0,),
    "div": (1,),
}
"""Operand positions where an operator is singular at a finite point: no offset there."""
ADDITIVE = ("add", "sub")
"""Operators whose operands need no offset of their own (the result's offset covers them)."""


@dataclass(frozen=True)
class Slot:
    """One coefficient: a weight or an offset at the node at prefix position ``node``."""

    node: int
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"coefficient kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def name(self) -> str:
        """``w3`` or ``b3``: the Optuna parameter name of this coefficient."""
        return ("w" if self.kind == WEIGHT else "b") + str(self.node)

    @property
    def order(self) -> tuple[int, int]:
        """Sort key: by node, the weight before the offset."""
        return self.node, KINDS.index(self.kind)


def parents(tree: gp.PrimitiveTree) -> list[tuple[int, int] | None]:
    """For each prefix position, ``(parent position, operand index)``; None for the root."""
    result: list[tuple[int, int] | None] = [None] * len(tree)
    open_nodes: list[list[int]] = []  # [position, operands still to come, next operand index]
    for i, node in enumerate(tree):
        if open_nodes:
            top = open_nodes[-1]
            result[i] = (top[0], top[2])
            top[1] -= 1
            top[2] += 1
            if top[1] == 0:
                open_nodes.pop()
        if isinstance(node, gp.Primitive) and node.arity:
            open_nodes.append([i, node.arity, 0])
    return result


def _offset_allowed(tree: gp.PrimitiveTree, node: int, parent: tuple[int, int] | None) -> bool:
    if parent is None or not _is_operand(tree[node]):
        return False
    op, position = tree[parent[0]].name, parent[1]
    return op not in ADDITIVE and position not in SINGULAR_OPERANDS.get(op, ())


def _is_operand(node: gp.Primitive | gp.Terminal) -> bool:
    """Operators and the inputs y, p (not constants) can take an offset."""
    return isinstance(node, gp.Primitive) or node.value in ("y", "p")


def default_slots(tree: gp.PrimitiveTree, nodes: Iterable[int] | None = None) -> tuple[Slot, ...]:
    """The coefficients of the default lifting (module docstring), optionally at ``nodes`` only.

    Raises:
        ConfigError: a node outside the tree, or the root (its scale is not a coefficient).
    """
    links = parents(tree)
    chosen = range(1, len(tree)) if nodes is None else sorted(set(nodes))
    slots = []
    for node in chosen:
        if not 0 < node < len(tree):
            raise ConfigError(
                f"cannot lift node {node}: the expression has nodes 1..{len(tree) - 1} "
                "besides its root (prefix positions)"
            )
        slots.append(Slot(node, WEIGHT))
        if _offset_allowed(tree, node, links[node]):
            slots.append(Slot(node, OFFSET))
    return tuple(slots)


@dataclass(frozen=True)
class Lifted:
    """A canonical expression with coefficients at chosen nodes.

    Attributes:
        expression: the original canonical expression.
        slots: its coefficients, ordered by node (weight before offset); the coefficient vector
            of :meth:`instantiate` follows this order.
    """

    expression: str
    slots: tuple[Slot, ...]

    def __post_init__(self) -> None:
        size = len(parse(self.expression))
        if list(self.slots) != sorted(set(self.slots), key=lambda s: s.order):
            raise ConfigError("lifted coefficients must be distinct and ordered by node")
        if any(not 0 < s.node < size for s in self.slots):
            raise ConfigError(f"lifted coefficients must sit at nodes 1..{size - 1}")

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names of the coefficients (``w3``, ``b3``, ...), in vector order."""
        return tuple(slot.name for slot in self.slots)

    @property
    def initial(self) -> tuple[float, ...]:
        """The coefficients at which the lifted loss equals the original."""
        return tuple(INITIAL[slot.kind] for slot in self.slots)

    def instantiate(self, coefficients: Sequence[float], *, keep_identity: bool = False) -> str:
        """The canonical expression with ``coefficients`` filled in.

        A weight of exactly 1 or an offset of exactly 0 is left out (it changes no value, see the
        module docstring), so the initial coefficients give back the original text and a refined
        formula shows only what moved; ``keep_identity`` writes every coefficient.

        Raises:
            ConfigError: a vector of the wrong length or with a non-finite value.
        """
        values = _checked(coefficients, len(self.slots))
        at: dict[int, dict[str, float]] = {}
        for slot, value in zip(self.slots, values, strict=True):
            at.setdefault(slot.node, {})[slot.kind] = value
        tree = parse(self.expression)
        stack: list[str] = []
        last = len(tree) - 1
        for k, node in enumerate(reversed(tree)):
            if isinstance(node, gp.Primitive):
                args = [stack.pop() for _ in range(node.arity)]
                text = f"{node.name}({', '.join(args)})"
            else:
                text = node.format()
            here = at.get(last - k, {})
            if WEIGHT in here and not _is_operand(node):
                text = repr(here[WEIGHT] * float(node.value))  # exact: the constant is +-1
            elif WEIGHT in here and (keep_identity or here[WEIGHT] != INITIAL[WEIGHT]):
                text = f"mul({here[WEIGHT]!r}, {text})"
            if OFFSET in here and (keep_identity or here[OFFSET] != INITIAL[OFFSET]):
                text = f"add({text}, {here[OFFSET]!r})"
            stack.append(text)
        return canonical(parse(stack[0]))

    def loss(
        self, coefficients: Sequence[float], sign: float, reduction: str = "mean"
    ) -> ExpressionLoss:
        """The loss with ``coefficients``, callable like ``F.cross_entropy(logits, target)``."""
        return ExpressionLoss(self.instantiate(coefficients), sign=sign, reduction=reduction)

    def describe(self) -> list[str]:
        """One line per lifted node: its position, coefficients and subexpression."""
        tree = parse(self.expression)
        lines = []
        for node in sorted({s.node for s in self.slots}):
            names = ", ".join(s.name for s in self.slots if s.node == node)
            sub = canonical(gp.PrimitiveTree(tree[tree.searchSubtree(node)]))
            lines.append(f"node {node} ({names}): {sub}")
        return lines

    def to_attr(self) -> dict[str, Any]:
        """Plain data for a study attribute (:meth:`from_attr` reads it back)."""
        return {
            "expression": self.expression,
            "slots": [[s.node, s.kind] for s in self.slots],
            "names": list(self.names),
        }

    @classmethod
    def from_attr(cls, data: Mapping[str, Any]) -> Lifted:
        """The lifting stored by :meth:`to_attr` (validated like a new one)."""
        try:
            slots = tuple(Slot(int(node), str(kind)) for node, kind in data["slots"])
            return cls(str(data["expression"]), slots)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"stored lifting is malformed: {err}") from None


def lift(expression: str, nodes: Iterable[int] | None = None) -> Lifted:
    """Lift ``expression`` at ``nodes`` (prefix positions; None: every node but the root).

    Raises:
        ParseError: an expression that does not parse.
        ConfigError: a node outside the expression, or an expression with nothing to lift.
    """
    tree = parse(expression)
    slots = default_slots(tree, nodes)
    if not slots:
        raise ConfigError(f"expression {canonical(tree)} has no node to lift (it is one node)")
    return Lifted(canonical(tree), slots)


def _checked(coefficients: Sequence[float], size: int) -> list[float]:
    values = [float(c) for c in coefficients]
    if len(values) != size:
        raise ConfigError(f"expected {size} coefficients, got {len(values)}")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ConfigError(f"coefficients must be finite, got {bad[0]}")
    return values
