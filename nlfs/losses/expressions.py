"""Loss expressions: DEAP prefix trees, their canonical text, and a bounded parser.

The canonical form of an expression is DEAP's tree string, e.g. ``add(mul(y, log(p)), -1)``.
:func:`parse` reads it back with a small recursive-descent parser bounded in length, node count
and depth; nothing here calls ``eval``, ``gp.compile`` or ``sympify``.
"""

from __future__ import annotations

import hashlib
import math
import re

from deap import gp

from nlfs.errors import NLFSError
from nlfs.losses.operators import CONSTANTS, OPERATORS, primitive_set

MAX_CHARS = 20_000
"""Longest expression text the parser reads."""
MAX_NODES = 1_000
"""Most operators plus terminals in one expression."""
MAX_DEPTH = 64
"""Deepest nesting of operators the parser follows."""

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[(),]))"
)


class ParseError(NLFSError, ValueError):
    """An expression text that is not a valid loss expression; the message names the problem."""


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            bad = text[pos:].lstrip()[:20]
            raise ParseError(f"unexpected text {bad!r} at position {pos}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


def parse(text: str, pset: gp.PrimitiveSet | None = None) -> gp.PrimitiveTree:
    """Parse a prefix expression such as ``sub(log(p), div(y, p))`` into a DEAP tree.

    Args:
        text: the expression in DEAP's prefix form. Terminals are ``y``, ``p``, ``1``, ``-1``
            and real literals such as ``0.25`` or ``1e-05`` (coefficients of parametric losses).
        pset: the primitive set the operators must come from (default: all operators).

    Returns:
        The expression as a ``gp.PrimitiveTree``; ``str()`` of it is the canonical form.

    Raises:
        ParseError: on an unknown token or operator, a wrong number of arguments, unbalanced
            parentheses, trailing text, or an expression beyond the parser's bounds.
    """
    pset = pset or primitive_set()
    if not isinstance(text, str) or not text.strip():
        raise ParseError("empty expression")
    if len(text) > MAX_CHARS:
        raise ParseError(f"expression longer than {MAX_CHARS} characters")
    tokens = _tokens(text)
    nodes: list[gp.Primitive | gp.Terminal] = []
    terminals = {t.format(): t for t in pset.terminals[pset.ret]}
    pos = 0

    def peek() -> tuple[str, str, int] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(expected: str) -> None:
        nonlocal pos
        tok = peek()
        if tok is None or tok[1] != expected:
            found = "end of expression" if tok is None else repr(tok[1])
            raise ParseError(f"expected {expected!r} but found {found}")
        pos += 1

    def node(depth: int) -> None:
        nonlocal pos
        if depth > MAX_DEPTH:
            raise ParseError(f"expression nested deeper than {MAX_DEPTH}")
        if len(nodes) >= MAX_NODES:
            raise ParseError(f"expression has more than {MAX_NODES} nodes")
        tok = peek()
        if tok is None:
            raise ParseError("expression ended where an operand was expected")
        kind, value, at = tok
        pos += 1
        if kind == "num":
            number = float(value)
            if not math.isfinite(number):
                raise ParseError(f"constant {value} at position {at} is not a finite number")
            nodes.append(constant(number, pset))
            return
        if kind != "name":
            raise ParseError(f"unexpected {value!r} at position {at}")
        if value in terminals:
            nodes.append(terminals[value])
            return
        prim = pset.mapping.get(value)
        if not isinstance(prim, gp.Primitive):
            known = "known: " + ", ".join(p.name for p in pset.primitives[pset.ret])
            reason = "not in this search space" if value in OPERATORS else "unknown operator"
            raise ParseError(f"{reason} {value!r} at position {at} ({known})")
        nodes.append(prim)
        take("(")
        for i in range(prim.arity):
            if i:
                nxt = peek()
                if nxt is not None and nxt[1] == ")":
                    raise ParseError(f"{value} takes {prim.arity} arguments, got {i}")
                take(",")
            node(depth + 1)
        nxt = peek()
        if nxt is not None and nxt[1] == ",":
            raise ParseError(f"{value} takes {prim.arity} argument(s), got more")
        take(")")

    node(0)
    if pos != len(tokens):
        raise ParseError(f"unexpected trailing text starting with {tokens[pos][1]!r}")
    return gp.PrimitiveTree(nodes)


def constant(value: float, pset: gp.PrimitiveSet | None = None) -> gp.Terminal:
    """The terminal of a numeric constant: the set's own ``1``/``-1``, else a real literal.

    Real literals (the coefficients of parametric losses) print as Python's shortest round-trip
    ``repr`` of the float, so the canonical text parses back to the same number.
    """
    pset = pset or primitive_set()
    if value in CONSTANTS:
        own = {t.format(): t for t in pset.terminals[pset.ret]}
        if str(int(value)) in own:
            return own[str(int(value))]
    return gp.Terminal(float(value), False, pset.ret)


def canonical(tree: gp.PrimitiveTree) -> str:
    """The canonical text of an expression (DEAP's tree string)."""
    return str(tree)


def expression_key(text: str) -> str:
    """A stable 16-hex-digit key of a canonical expression text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def terminals_used(tree: gp.PrimitiveTree) -> set[str]:
    """Names of the terminals an expression reads (a subset of y, p, 1, -1)."""
    return {node.format() for node in tree if isinstance(node, gp.Terminal)}


def _render(tree: gp.PrimitiveTree, field: str) -> str:
    stack: list[str] = []
    for node in reversed(tree):
        if isinstance(node, gp.Primitive):
            args = [stack.pop() for _ in range(node.arity)]
            stack.append(getattr(OPERATORS[node.name], field).format(*args))
        else:
            stack.append(node.format())
    return stack[0]


def to_text(tree: gp.PrimitiveTree) -> str:
    """The elementwise formula ``f(y, p)`` in plain mathematical text."""
    return _render(tree, "text")


def to_latex(tree: gp.PrimitiveTree) -> str:
    """The elementwise formula ``f(y, p)`` in LaTeX."""
    return _render(tree, "latex")
