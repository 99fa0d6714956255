"""Slow NumPy/SciPy reference of every operator, float64, used only by the tests.

Written from the paper's operator list (Morgan & Hougen 2024) and the protection rules documented in
:mod:`~nlfs.losses.operators` (EPS 1e-7 in log, division, sqrt; exp/sinh/Bessel arguments clamped to
+-80; every result cleaned of NaN/inf and clamped to +-1e30), independently of the torch code.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
from deap import gp
from scipy import special

from nlfs.losses.operators import primitive_set

EPS = 1e-7
BIG = 1e30
EXP_MAX = 80.0


def _den(x: np.ndarray) -> np.ndarray:
    """x pushed away from zero by EPS with its sign kept (zero counts as positive)."""
    return np.where(np.abs(x) < EPS, np.where(x < 0, -EPS, EPS), x)


def _cx(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -EXP_MAX, EXP_MAX)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return special.expit(x)


UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neg": lambda x: -x,
    "log": lambda x: np.log(np.abs(x) + EPS),
    "log10": lambda x: np.log10(np.abs(x) + EPS),
    "exp": lambda x: np.exp(_cx(x)),
    "abs": np.abs,
    "sigmoid": _sigmoid,
    "inv1pabs": lambda x: 1.0 / (1.0 + np.abs(x)),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "erf": special.erf,
    "erfc": special.erfc,
    "sin": np.sin,
    "sinh": lambda x: np.sinh(_cx(x)),
    "asinh": np.arcsinh,
    "tanh": np.tanh,
    "atan": np.arctan,
    "inv": lambda x: 1.0 / _den(x),
    "i0": lambda x: special.i0(_cx(x)),
    "i0e": special.i0e,
    "i1": lambda x: special.i1(_cx(x)),
    "i1e": special.i1e,
    "max0": lambda x: np.maximum(x, 0.0),
    "min0": lambda x: np.minimum(x, 0.0),
    "square": np.square,
    "sqrt": lambda x: np.sqrt(np.abs(x) + EPS),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "dtanh": lambda x: 1.0 - np.tanh(x) ** 2,
    "dsigmoid": lambda x: _sigmoid(x) * (1.0 - _sigmoid(x)),
}

BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "max": np.maximum,
    "min": np.minimum,
    "div": lambda a, b: a / _den(b),
    "divsqrt": lambda a, b: a / np.sqrt(1.0 + b * b),
}

OPERATORS = {**UNARY, **BINARY}


def clean(x: np.ndarray) -> np.ndarray:
    """NaN to 0, +-inf to +-BIG, everything clamped to [-BIG, BIG]."""
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=BIG, neginf=-BIG), -BIG, BIG)


def apply(name: str, *args: np.ndarray) -> np.ndarray:
    """The operator ``name`` on float64 arrays, protected and clamped like the torch version."""
    with np.errstate(all="ignore"):
        return clean(OPERATORS[name](*(np.asarray(a, dtype=np.float64) for a in args)))


def evaluate(tree: gp.PrimitiveTree, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``f(y, p)`` of a prefix tree, by recursion over the node list (independent of nlfs)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)

    def at(i: int) -> tuple[np.ndarray, int]:
        node = tree[i]
        if isinstance(node, gp.Terminal):
            name = node.format()
            value = {"y": y, "p": p}.get(name)
            return (np.full_like(p, float(name)) if value is None else value), i + 1
        args, j = [], i + 1
        for _ in range(node.arity):
            arg, j = at(j)
            args.append(arg)
        return apply(node.name, *args), j

    value, _ = at(0)
    return np.broadcast_to(value, p.shape)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def random_tree(
    rng: random.Random, max_depth: int = 6, pset: gp.PrimitiveSet | None = None
) -> gp.PrimitiveTree:
    """A random expression drawn with ``rng`` only (no global state), at most ``max_depth`` deep."""
    pset = pset or primitive_set()
    prims = pset.primitives[pset.ret]
    terms = pset.terminals[pset.ret]
    nodes: list = []

    def grow(depth: int) -> None:
        if depth >= max_depth or (depth > 0 and rng.random() < 0.3):
            nodes.append(rng.choice(terms))
            return
        prim = rng.choice(prims)
        nodes.append(prim)
        for _ in range(prim.arity):
            grow(depth + 1)

    grow(0)
    return gp.PrimitiveTree(nodes)
