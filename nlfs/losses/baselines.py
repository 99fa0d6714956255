"""Baseline losses, each a ``torch.nn.Module`` called like ``F.cross_entropy(logits, target)``.

Names are what users type: ``cross_entropy``, ``label_smoothing`` (0.1), ``focal`` (gamma 2),
``poly1`` (epsilon 1), ``baikal`` (GLO) and ``squared_error`` (on probabilities). Those that the
operator set can express also carry their canonical expression; a test proves the compiled
expression matches the module (to within the protected log's ``ln(p + 1e-7) - ln(p)`` where a
module uses the exact log-softmax: cross-entropy, focal and poly1).
:func:`nlfs.screening.loss_from_spec` turns a baseline name or an expression into a loss module,
which is what the evaluator and transfer take.

References: Lin et al. 2017 (focal loss); Leng et al. 2022 (PolyLoss); Szegedy et al. 2016 (label
smoothing); Gonzalez & Miikkulainen 2020 (GLO, the Baikal loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nlfs.errors import ConfigError
from nlfs.losses.compile import REDUCTIONS, reduce_loss
from nlfs.losses.operators import EPS

LABEL_SMOOTHING = 0.1
FOCAL_GAMMA = 2.0
POLY1_EPSILON = 1.0


class BaselineLoss(nn.Module):
    """Shared plumbing: softmax in float32, one-hot targets, per-sample loss, reduction.

    Subclasses implement :meth:`per_sample` from ``(logits, target, p, y)``; one that reads
    only the logits and targets sets ``uses_p_and_y = False`` and gets None for both.
    """

    uses_p_and_y = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def per_sample(
        self, logits: torch.Tensor, target: torch.Tensor, p: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """The loss of each sample, shape ``[batch]``."""
        raise NotImplementedError

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, reduction: str | None = None
    ) -> torch.Tensor:
        logits = logits.float()  # like ExpressionLoss: low-precision logits are upcast
        if self.uses_p_and_y:
            p = torch.softmax(logits, dim=-1)
            y = F.one_hot(target, num_classes=logits.shape[-1]).to(p.dtype)
        else:  # cross-entropy and label smoothing need neither: spare the work
            p = y = None
        per_sample = self.per_sample(logits, target, p, y)
        return reduce_loss(per_sample, reduction or self.reduction)


class CrossEntropy(BaselineLoss):
    """Cross-entropy, ``-sum y ln p`` (computed by ``F.cross_entropy`` from the logits)."""

    uses_p_and_y = False

    def per_sample(self, logits, target, p, y):  # noqa: D102
        return F.cross_entropy(logits, target, reduction="none")


class LabelSmoothing(BaselineLoss):
    """Cross-entropy against targets smoothed to ``(1 - eps) y + eps / K`` (Szegedy et al. 2016)."""

    uses_p_and_y = False

    def __init__(self, reduction: str = "mean", smoothing: float = LABEL_SMOOTHING) -> None:
        super().__init__(reduction)
        self.smoothing = smoothing

    def per_sample(self, logits, target, p, y):  # noqa: D102
        return F.cross_entropy(logits, target, reduction="none", label_smoothing=self.smoothing)


class Focal(BaselineLoss):
    """Focal loss ``-sum y (1 - p)^gamma ln p`` (Lin et al. 2017), ``ln p`` by log-softmax."""

    def __init__(self, reduction: str = "mean", gamma: float = FOCAL_GAMMA) -> None:
        super().__init__(reduction)
        self.gamma = gamma

    def per_sample(self, logits, target, p, y):  # noqa: D102
        ce = F.cross_entropy(logits, target, reduction="none")
        return (1.0 - (p * y).sum(dim=-1)) ** self.gamma * ce


class Poly1(BaselineLoss):
    """Poly-1: cross-entropy plus ``epsilon (1 - p_t)`` (Leng et al. 2022)."""

    def __init__(self, reduction: str = "mean", epsilon: float = POLY1_EPSILON) -> None:
        super().__init__(reduction)
        self.epsilon = epsilon

    def per_sample(self, logits, target, p, y):  # noqa: D102
        ce = F.cross_entropy(logits, target, reduction="none")
        return ce + self.epsilon * (1.0 - (p * y).sum(dim=-1))


class Baikal(BaselineLoss):
    """The Baikal loss of GLO, ``-sum(ln p - y / p)`` over classes (Gonzalez & Miikkulainen 2020).

    Protected like the operators: ``ln(p + 1e-7)`` and ``p`` floored at 1e-7 in the division,
    because softmax outputs reach exactly 0 and the unprotected loss is then infinite.
    """

    def per_sample(self, logits, target, p, y):  # noqa: D102
        return -(torch.log(p + EPS) - y / p.clamp_min(EPS)).sum(dim=-1)


class SquaredError(BaselineLoss):
    """Squared error on probabilities, ``sum (p - y)^2`` over classes (Brier score)."""

    def per_sample(self, logits, target, p, y):  # noqa: D102
        return ((p - y) ** 2).sum(dim=-1)


@dataclass(frozen=True)
class Baseline:
    """A named baseline loss with its formulas.

    Attributes:
        name: what users type.
        factory: builds the module; takes ``reduction``.
        text: the per-sample formula in plain text (sums run over classes).
        latex: the same formula in LaTeX.
        expression: the canonical expression of ``f(y, p)`` when the operator set can express
            it (constants are only 1 and -1), else None.
        summary: one line on what it is.
    """

    name: str
    factory: Callable[..., nn.Module]
    text: str
    latex: str
    expression: str | None
    summary: str


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline(
            "cross_entropy",
            CrossEntropy,
            "-sum(y * ln p)",
            r"-\sum_c y_c \ln p_c",
            "neg(mul(y, log(p)))",
            "cross-entropy, the loss to beat",
        ),
        Baseline(
            "label_smoothing",
            LabelSmoothing,
            "-sum(((1 - 0.1) * y + 0.1 / K) * ln p)",
            r"-\sum_c \left((1-0.1)\,y_c + \frac{0.1}{K}\right) \ln p_c",
            None,  # needs the constants 0.1 and 1/K
            "cross-entropy with label smoothing 0.1 (K classes)",
        ),
        Baseline(
            "focal",
            Focal,
            "-sum(y * (1 - p)^2 * ln p)",
            r"-\sum_c y_c (1-p_c)^2 \ln p_c",
            "mul(neg(mul(y, log(p))), square(sub(1, p)))",
            "focal loss, gamma 2",
        ),
        Baseline(
            "poly1",
            Poly1,
            "-sum(y * ln p) + 1 * (1 - p_t)",
            r"-\sum_c y_c \ln p_c + 1 \cdot (1 - p_t)",
            "add(neg(mul(y, log(p))), sub(y, mul(y, p)))",
            "Poly-1 loss, epsilon 1 (p_t: probability of the true class)",
        ),
        Baseline(
            "baikal",
            Baikal,
            "-sum(ln p - y / p)",
            r"-\sum_c \left(\ln p_c - \frac{y_c}{p_c}\right)",
            "neg(sub(log(p), div(y, p)))",
            "the Baikal loss found by GLO",
        ),
        Baseline(
            "squared_error",
            SquaredError,
            "sum((p - y)^2)",
            r"\sum_c (p_c - y_c)^2",
            "square(sub(p, y))",
            "squared error on probabilities (Brier score)",
        ),
    )
}


ALIASES: dict[str, str] = {"ce": "cross_entropy"}
"""Short names users type for baselines."""


def baseline(name: str) -> Baseline:
    """The registry entry ``name`` (or an alias); an unknown name raises ConfigError."""
    name = ALIASES.get(name, name)
    if name not in BASELINES:
        raise ConfigError(f"unknown loss {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[name]


def get_loss(name: str, reduction: str = "mean") -> nn.Module:
    """The baseline loss module ``name`` with the given default reduction."""
    return baseline(name).factory(reduction=reduction)
