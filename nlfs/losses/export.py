"""Export a found loss as a standalone PyTorch module that imports only torch.

The generated file defines a ``torch.nn.Module`` with the ``F.cross_entropy(logits, target,
reduction="mean")`` signature whose numerics equal :class:`nlfs.losses.compile.ExpressionLoss`:
the same protected operators, the same output clamping and gradient cleaning. The code is
produced from :data:`TORCH_CODE`, one torch template per operator, which mirrors the
implementations in :mod:`nlfs.losses.operators`; a test compares exported and compiled values for
every operator so the two cannot drift apart. Nothing is evaluated here: the module is text.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deap import gp

from nlfs.errors import ConfigError
from nlfs.losses.expressions import canonical, parse, to_latex, to_text
from nlfs.losses.operators import BIG, EPS, EXP_MAX, OPERATORS

TORCH_CODE: dict[str, str] = {
    # unary: {0} is the operand (already passed through the gradient cleaner)
    "neg": "torch.neg({0})",
    "log": "torch.log({0}.abs() + EPS)",
    "log10": "torch.log10({0}.abs() + EPS)",
    "exp": "torch.exp(_clamp_exp({0}))",
    "abs": "torch.abs({0})",
    "sigmoid": "torch.sigmoid({0})",
    "inv1pabs": "1.0 / (1.0 + {0}.abs())",
    "softplus": "F.softplus({0})",
    "erf": "torch.erf({0})",
    "erfc": "torch.erfc({0})",
    "sin": "torch.sin({0})",
    "sinh": "torch.sinh(_clamp_exp({0}))",
    "asinh": "torch.asinh({0})",
    "tanh": "torch.tanh({0})",
    "atan": "torch.atan({0})",
    "inv": "1.0 / _safe_den({0})",
    "i0": "torch.special.i0(_clamp_exp({0}))",
    "i0e": "torch.special.i0e({0})",
    "i1": "torch.special.i1(_clamp_exp({0}))",
    "i1e": "torch.special.i1e({0})",
    "max0": "{0}.clamp(min=0.0)",
    "min0": "{0}.clamp(max=0.0)",
    "square": "torch.square({0})",
    "sqrt": "torch.sqrt({0}.abs() + EPS)",
    "softsign": "{0} / (1.0 + {0}.abs())",
    "dtanh": "1.0 - torch.tanh({0}) ** 2",
    "dsigmoid": "torch.sigmoid({0}) * (1.0 - torch.sigmoid({0}))",
    # binary: {0}, {1} are the operands in order
    "add": "torch.add({0}, {1})",
    "sub": "torch.sub({0}, {1})",
    "mul": "torch.mul({0}, {1})",
    "max": "torch.maximum({0}, {1})",
    "min": "torch.minimum({0}, {1})",
    "div": "{0} / _safe_den({1})",
    "divsqrt": "{0} / torch.sqrt(1.0 + {1} * {1})",
}
"""Torch code of each operator of :mod:`nlfs.losses.operators`, as a format string over operands."""

_PRELUDE = '''import torch
import torch.nn.functional as F

EPS = {eps!r}
BIG = {big!r}
EXP_MAX = {exp_max!r}


class _CleanGrad(torch.autograd.Function):
    """Identity forward; replaces inf/NaN in the incoming gradient so operands stay finite."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.nan_to_num(grad, nan=0.0, posinf=BIG, neginf=-BIG).clamp(-BIG, BIG)


def _g(x):
    return _CleanGrad.apply(x)


def _out(x):
    return torch.nan_to_num(x, nan=0.0, posinf=BIG, neginf=-BIG).clamp(-BIG, BIG)


def _safe_den(x):
    sign = torch.where(x < 0, -1.0, 1.0).to(x.dtype)
    return torch.where(x.abs() < EPS, sign * EPS, x)


def _clamp_exp(x):
    return x.clamp(-EXP_MAX, EXP_MAX)
'''

_CLASS = '''

def elementwise(y, p):
    """The expression on one-hot targets ``y`` and probabilities ``p``, elementwise."""
{body}


class {name}(torch.nn.Module):
    """Drop-in for ``F.cross_entropy(logits, target, reduction="mean")``; see the module doc."""

    SIGN = {sign!r}
    EXPRESSION = {expression!r}

    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be mean, sum or none, got {{reduction!r}}")
        self.reduction = reduction

    def forward(self, logits, target, reduction=None):
        logits = logits.float()
        p = torch.softmax(logits, dim=-1)
        y = F.one_hot(target, num_classes=logits.shape[-1]).to(p.dtype)
        per_sample = (self.SIGN * elementwise(y, p)).sum(dim=-1)
        reduction = reduction or self.reduction
        if reduction == "mean":
            return per_sample.mean()
        if reduction == "sum":
            return per_sample.sum()
        if reduction == "none":
            return per_sample
        raise ValueError(f"reduction must be mean, sum or none, got {{reduction!r}}")
'''


def _body(tree: gp.PrimitiveTree) -> list[str]:
    """Straight-line code for the tree, in the evaluation order of ``compile_elementwise``."""
    lines: list[str] = []
    stack: list[str] = []
    for node in reversed(tree):
        name = f"t{len(lines)}"
        if isinstance(node, gp.Primitive):
            operands = [stack.pop() for _ in range(node.arity)]
            cleaned = []
            for j, operand in enumerate(operands):
                lines.append(f"a{len(lines)}_{j} = _g({operand})")
                cleaned.append(lines[-1].split(" = ")[0])
            name = f"t{len(lines)}"
            code = TORCH_CODE[node.name].format(*cleaned)
            lines.append(f"{name} = _out({code})")
        elif node.value in ("y", "p"):
            lines.append(f"{name} = {node.value}")
        else:
            lines.append(f"{name} = torch.full_like(p, {float(node.value)!r})")
        stack.append(name)
    lines.append(f"return {stack[0]}.expand_as(p)")
    return ["    " + line for line in lines]


def class_name(text: str) -> str:
    """A valid Python class name from ``text`` (e.g. a file stem): ``found_loss`` -> FoundLoss."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", text) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words) or "FoundLoss"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "Loss" + name
    return name


def export_source(
    expression: str,
    sign: float,
    *,
    name: str = "FoundLoss",
    provenance: Mapping[str, Any] | None = None,
) -> str:
    """The text of a standalone module implementing ``sign * expression`` as a loss.

    Args:
        expression: the canonical expression.
        sign: +1 or -1 (fixed at screening).
        name: the class name.
        provenance: study, trial, fitness and so on, listed in the module docstring.
    """
    if sign not in (1, -1, 1.0, -1.0):
        raise ConfigError(f"sign must be +1 or -1, got {sign!r}")
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(f"{name!r} is not a valid class name")
    tree = parse(expression)
    unknown = sorted({n.name for n in tree if isinstance(n, gp.Primitive)} - set(TORCH_CODE))
    if unknown:
        raise ConfigError(f"no torch code for operator(s) {', '.join(unknown)}")
    sign = float(sign)
    prov = "\n".join(f"    {key}: {value}" for key, value in (provenance or {}).items())
    doc = (
        f"{name}: a loss found by NLFS neural loss function search.\n\n"
        "With p = softmax(logits) and y = one-hot(target), the loss of one sample is\n\n"
        f"    {sign:+.0f} * sum over classes of  {to_text(tree)}\n\n"
        "averaged over the batch (reduction mean, as F.cross_entropy). In LaTeX:\n\n"
        f"    {sign:+.0f} \\cdot \\sum_c {to_latex(tree)}\n\n"
        f"Canonical expression: {canonical(tree)}\n"
        + (f"\nProvenance:\n{prov}\n" if prov else "")
        + "\nOperators are protected (epsilon 1e-7, clamped results, cleaned gradients) exactly\n"
        "as in NLFS, so this module reproduces the searched loss. Needs only torch.\n"
        "Generated by `nlfs export`.\n"
    )
    doc = doc.replace('"""', "'''")
    header = f'r"""{doc}"""\n\n'
    body = "\n".join(_body(tree))
    return (
        header
        + _PRELUDE.format(eps=EPS, big=BIG, exp_max=EXP_MAX)
        + _CLASS.format(body=body, name=name, sign=sign, expression=canonical(tree))
    )


def write_module(path: str | Path, expression: str, sign: float, **kwargs: Any) -> Path:
    """Write :func:`export_source` to ``path`` (a ``.py`` file); returns the path."""
    path = Path(path)
    if path.suffix != ".py":
        raise ConfigError(f"export to a .py file, got {path}")
    if not path.parent.exists():
        raise ConfigError(f"folder {path.parent} does not exist")
    kwargs.setdefault("name", class_name(path.stem))
    path.write_text(export_source(expression, sign, **kwargs))
    return path


def latex_formula(expression: str, sign: float) -> str:
    """The signed per-sample loss in LaTeX (sum over classes)."""
    return f"{float(sign):+.0f} \\cdot \\sum_c {to_latex(parse(expression))}"


assert set(TORCH_CODE) == set(OPERATORS)  # noqa: S101 - a new operator needs its torch code
