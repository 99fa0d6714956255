"""Compile a loss expression into a torch loss with the ``F.cross_entropy`` call signature.

Contract (docs/architecture.md): ``p = softmax(logits)``, ``y = one_hot(target)``, the expression
is evaluated elementwise on ``[batch, classes]``, summed over classes, reduced over the batch
(mean by default) and multiplied by the sign fixed at screening.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from deap import gp
from torch import nn

from nlfs.losses.expressions import canonical, parse
from nlfs.losses.operators import OPERATORS

Elementwise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
REDUCTIONS = ("mean", "sum", "none")


def compile_elementwise(tree: gp.PrimitiveTree, *, differentiable: bool = True) -> Elementwise:
    """Turn a prefix tree into ``f(y, p)``, evaluated by a stack machine over its nodes.

    Constants are broadcast to the shape of ``p`` so even a constant expression yields one value
    per class.

    Args:
        tree: the expression.
        differentiable: False for evaluation under ``torch.no_grad`` only (the screening probe):
            same values, without the nodes that keep gradients finite.
    """
    program: list[tuple[str, object]] = []
    for node in reversed(tree):
        if isinstance(node, gp.Primitive):
            op = OPERATORS[node.name]
            program.append(("op", (op.arity, op if differentiable else op.value)))
        elif node.value in ("y", "p"):
            program.append(("arg", node.value))
        else:
            program.append(("const", float(node.value)))

    def elementwise(y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        args = {"y": y, "p": p}
        stack: list[torch.Tensor] = []
        for kind, item in program:
            if kind == "op":
                arity, apply = item
                operands = [stack.pop() for _ in range(arity)]
                stack.append(apply(*operands))
            elif kind == "arg":
                stack.append(args[item])
            else:
                stack.append(torch.full_like(p, item))
        return stack[0].expand_as(p)

    return elementwise


def reduce_loss(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``mean``/``sum``/``none`` over the batch, like ``F.cross_entropy``."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


class ExpressionLoss(nn.Module):
    """A loss built from an expression, callable like ``F.cross_entropy(logits, target)``.

    Args:
        expression: canonical text or a parsed tree.
        sign: +1 or -1, fixed at screening so the loss falls as the true-class probability rises.
        reduction: default batch reduction, ``mean``, ``sum`` or ``none``.
    """

    def __init__(
        self, expression: str | gp.PrimitiveTree, sign: float = 1.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        tree = parse(expression) if isinstance(expression, str) else expression
        if sign not in (1, -1, 1.0, -1.0):
            raise ValueError(f"sign must be +1 or -1, got {sign!r}")
        reduce_loss(torch.zeros(1), reduction)  # validates the name
        self.expression = canonical(tree)
        self.sign = float(sign)
        self.reduction = reduction
        self._fn = compile_elementwise(tree)

    def elementwise(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The signed per-element values ``sign * f(y, p)``."""
        return self.sign * self._fn(y, p)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, reduction: str | None = None
    ) -> torch.Tensor:
        logits = logits.float()
        p = torch.softmax(logits, dim=-1)
        y = F.one_hot(target, num_classes=logits.shape[-1]).to(p.dtype)
        per_sample = self.elementwise(y, p).sum(dim=-1)
        return reduce_loss(per_sample, reduction or self.reduction)

    def extra_repr(self) -> str:
        return f"{self.expression!r}, sign={self.sign:+.0f}"
