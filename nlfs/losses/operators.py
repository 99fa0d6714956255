"""The operator vocabulary: the paper's 27 unary and 7 binary operators.

Each operator has a torch implementation that is finite, with finite gradients, on any finite
input: protected ops use ``EPS`` (1e-7, as in the paper), every result is clamped to
``[-BIG, BIG]`` and every gradient flowing back into an operand is cleaned of inf/NaN. The same
vocabulary is exposed as a DEAP ``PrimitiveSet`` (terminals ``y``, ``p``, ``1``, ``-1``) so DEAP's
tree machinery (generation, crossover, mutation, printing) works on our expressions.

Reference: Morgan & Hougen, "Neural Loss Function Evolution for Large-Scale Image Classifier
Convolutional Neural Networks", arXiv 2403.08793 (2024), section 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
from deap import gp

EPS = 1e-7
"""Epsilon of the protected operators (log, division, sqrt, reciprocal)."""
BIG = 1e30
"""Magnitude every operator result and every back-propagated gradient is clamped to."""
EXP_MAX = 80.0
"""Largest argument of exp/sinh/Bessel before clamping (exp(80) ~ 5.5e34 is finite in fp32)."""

TERMINALS = ("y", "p")
CONSTANTS = (1, -1)


class _CleanGrad(torch.autograd.Function):
    """Identity forward; replaces inf/NaN in the incoming gradient so operands stay finite."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.nan_to_num(grad, nan=0.0, posinf=BIG, neginf=-BIG).clamp(-BIG, BIG)


def _clean_out(x: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(x, nan=0.0, posinf=BIG, neginf=-BIG).clamp(-BIG, BIG)


def _safe_den(x: torch.Tensor) -> torch.Tensor:
    """x pushed away from zero by EPS, keeping its sign (0 counts as positive)."""
    sign = torch.where(x < 0, -1.0, 1.0).to(x.dtype)
    return torch.where(x.abs() < EPS, sign * EPS, x)


def _clamp_exp(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-EXP_MAX, EXP_MAX)


@dataclass(frozen=True)
class Operator:
    """One operator: its name in expressions, arity, torch function and formula templates.

    ``text`` and ``latex`` are format strings over ``{0}`` (and ``{1}``) for the operand(s).
    """

    name: str
    arity: int
    fn: Callable[..., torch.Tensor]
    text: str
    latex: str

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        return _clean_out(self.fn(*(_CleanGrad.apply(a) for a in args)))

    def value(self, *args: torch.Tensor) -> torch.Tensor:
        """The same result as calling the operator, for use without gradients (probes).

        Skips the gradient-cleaning node and cleans in place, which costs about a third of
        :meth:`__call__`; the inputs are never modified.
        """
        out = self.fn(*args)
        if any(out is a for a in args):  # an identity-like op returned its input: copy first
            out = out.clone()
        return torch.nan_to_num_(out, nan=0.0, posinf=BIG, neginf=-BIG).clamp_(-BIG, BIG)


def _sig(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x)


_UNARY: tuple[Operator, ...] = (
    Operator("neg", 1, torch.neg, "-({0})", r"-\left({0}\right)"),
    Operator("log", 1, lambda x: torch.log(x.abs() + EPS), "ln|{0}|", r"\ln\left|{0}\right|"),
    Operator(
        "log10",
        1,
        lambda x: torch.log10(x.abs() + EPS),
        "log10|{0}|",
        r"\log_{{10}}\left|{0}\right|",
    ),
    Operator("exp", 1, lambda x: torch.exp(_clamp_exp(x)), "exp({0})", r"e^{{{0}}}"),
    Operator("abs", 1, torch.abs, "|{0}|", r"\left|{0}\right|"),
    Operator("sigmoid", 1, _sig, "sigmoid({0})", r"\sigma\left({0}\right)"),
    Operator(
        "inv1pabs",
        1,
        lambda x: 1.0 / (1.0 + x.abs()),
        "1/(1+|{0}|)",
        r"\frac{{1}}{{1+\left|{0}\right|}}",
    ),
    Operator(
        "softplus", 1, torch.nn.functional.softplus, "softplus({0})", r"\ln\left(1+e^{{{0}}}\right)"
    ),
    Operator("erf", 1, torch.erf, "erf({0})", r"\operatorname{{erf}}\left({0}\right)"),
    Operator("erfc", 1, torch.erfc, "erfc({0})", r"\operatorname{{erfc}}\left({0}\right)"),
    Operator("sin", 1, torch.sin, "sin({0})", r"\sin\left({0}\right)"),
    Operator("sinh", 1, lambda x: torch.sinh(_clamp_exp(x)), "sinh({0})", r"\sinh\left({0}\right)"),
    Operator("asinh", 1, torch.asinh, "asinh({0})", r"\operatorname{{asinh}}\left({0}\right)"),
    Operator("tanh", 1, torch.tanh, "tanh({0})", r"\tanh\left({0}\right)"),
    Operator("atan", 1, torch.atan, "atan({0})", r"\arctan\left({0}\right)"),
    Operator("inv", 1, lambda x: 1.0 / _safe_den(x), "1/({0})", r"\frac{{1}}{{{0}}}"),
    Operator("i0", 1, lambda x: torch.special.i0(_clamp_exp(x)), "I0({0})", r"I_0\left({0}\right)"),
    Operator("i0e", 1, torch.special.i0e, "I0e({0})", r"I_0^e\left({0}\right)"),
    Operator("i1", 1, lambda x: torch.special.i1(_clamp_exp(x)), "I1({0})", r"I_1\left({0}\right)"),
    Operator("i1e", 1, torch.special.i1e, "I1e({0})", r"I_1^e\left({0}\right)"),
    Operator("max0", 1, lambda x: x.clamp(min=0.0), "max({0}, 0)", r"\max\left({0}, 0\right)"),
    Operator("min0", 1, lambda x: x.clamp(max=0.0), "min({0}, 0)", r"\min\left({0}, 0\right)"),
    Operator("square", 1, torch.square, "({0})^2", r"\left({0}\right)^2"),
    Operator(
        "sqrt", 1, lambda x: torch.sqrt(x.abs() + EPS), "sqrt|{0}|", r"\sqrt{{\left|{0}\right|}}"
    ),
    Operator(
        "softsign",
        1,
        lambda x: x / (1.0 + x.abs()),
        "{0}/(1+|{0}|)",
        r"\frac{{{0}}}{{1+\left|{0}\right|}}",
    ),
    Operator(
        "dtanh",
        1,
        lambda x: 1.0 - torch.tanh(x) ** 2,
        "1-tanh^2({0})",
        r"1-\tanh^2\left({0}\right)",
    ),
    Operator(
        "dsigmoid",
        1,
        lambda x: _sig(x) * (1.0 - _sig(x)),
        "sigmoid({0})(1-sigmoid({0}))",
        r"\sigma\left({0}\right)\left(1-\sigma\left({0}\right)\right)",
    ),
)

_BINARY: tuple[Operator, ...] = (
    Operator("add", 2, torch.add, "({0} + {1})", r"\left({0} + {1}\right)"),
    Operator("sub", 2, torch.sub, "({0} - {1})", r"\left({0} - {1}\right)"),
    Operator("mul", 2, torch.mul, "{0} * {1}", r"{0} \cdot {1}"),
    Operator("max", 2, torch.maximum, "max({0}, {1})", r"\max\left({0}, {1}\right)"),
    Operator("min", 2, torch.minimum, "min({0}, {1})", r"\min\left({0}, {1}\right)"),
    Operator("div", 2, lambda a, b: a / _safe_den(b), "({0}) / ({1})", r"\frac{{{0}}}{{{1}}}"),
    Operator(
        "divsqrt",
        2,
        lambda a, b: a / torch.sqrt(1.0 + b * b),
        "({0}) / sqrt(1+({1})^2)",
        r"\frac{{{0}}}{{\sqrt{{1+\left({1}\right)^2}}}}",
    ),
)

UNARY: dict[str, Operator] = {op.name: op for op in _UNARY}
BINARY: dict[str, Operator] = {op.name: op for op in _BINARY}
OPERATORS: dict[str, Operator] = {**UNARY, **BINARY}
UNARY_NAMES: tuple[str, ...] = tuple(UNARY)
BINARY_NAMES: tuple[str, ...] = tuple(BINARY)

assert len(UNARY) == 27 and len(BINARY) == 7  # noqa: S101 - the paper's vocabulary, fixed

OPERATOR_GROUPS: dict[str, tuple[str, ...]] = {
    "trigonometric": ("sin", "atan"),
    "hyperbolic": ("sinh", "asinh", "tanh", "dtanh"),
    "bessel": ("i0", "i0e", "i1", "i1e"),
    "minmax": ("max0", "min0", "max", "min"),
    "exponential": ("exp",),
    "logarithmic": ("log", "log10"),
}
"""Named families of operators, for leaving a family out of a search space (ablations).

Groups may overlap; each names operators of :data:`OPERATORS`.
"""

assert all(set(g) <= set(OPERATORS) for g in OPERATOR_GROUPS.values())  # noqa: S101


def _unused(*_args: object) -> float:  # DEAP wants a callable; we never call it (no gp.compile)
    return math.nan


@cache
def primitive_set(operators: tuple[str, ...] | None = None) -> gp.PrimitiveSet:
    """The DEAP primitive set over ``operators`` (default: all 34), terminals y, p, 1, -1.

    Args:
        operators: names from :data:`OPERATORS` to include; ``None`` for all of them.

    Returns:
        A cached ``PrimitiveSet`` named ``"loss"`` whose two arguments are renamed ``y`` and ``p``.
        Its primitives are never compiled (``gp.compile`` uses ``eval``); :mod:`nlfs.losses.compile`
        evaluates trees directly.
    """
    names = tuple(OPERATORS) if operators is None else operators
    unknown = [n for n in names if n not in OPERATORS]
    if unknown:
        raise ValueError(f"unknown operators {unknown}; known: {', '.join(OPERATORS)}")
    pset = gp.PrimitiveSet("loss", 2)
    pset.renameArguments(ARG0="y", ARG1="p")
    for name in names:
        pset.addPrimitive(_unused, OPERATORS[name].arity, name=name)
    for value in CONSTANTS:
        pset.addTerminal(value)
    return pset
