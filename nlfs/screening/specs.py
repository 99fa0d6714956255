"""A loss module from what a user types: a baseline name or an expression.

An expression's sign is the one screening fixes (the loss must fall as the true-class probability
rises), which is why this lives with the screen rather than with the baselines.
"""

from __future__ import annotations

import re

from torch import nn

from nlfs.errors import ConfigError
from nlfs.losses.baselines import ALIASES, BASELINES, get_loss
from nlfs.losses.compile import ExpressionLoss
from nlfs.screening.screen import Screen

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def loss_from_spec(spec: str, *, sign: float | None = None, reduction: str = "mean") -> nn.Module:
    """A loss module from a baseline name or a canonical expression.

    Args:
        spec: a name from :data:`BASELINES` or an expression such as ``neg(mul(y, log(p)))``.
        sign: the sign of an expression; None to take it from screening (the sign that makes
            the loss fall as the true-class probability rises).
        reduction: default batch reduction.

    Raises:
        ConfigError: an unknown name, or an expression that screening rejects (then pass
            ``sign`` explicitly to use it anyway).
        ParseError: an expression that does not parse.
    """
    spec = spec.strip()
    if spec in BASELINES or spec in ALIASES:
        return get_loss(spec, reduction)
    if _NAME.fullmatch(spec) and spec not in ("y", "p"):
        raise ConfigError(
            f"unknown loss {spec!r}; known: {', '.join(BASELINES)}, "
            "or an expression such as neg(mul(y, log(p)))"
        )
    if sign is None:
        verdict = Screen(dedupe=False).check_tree(spec, record=False)
        if not verdict.accepted:
            raise ConfigError(
                f"expression {verdict.expression} fails screening ({verdict.reason}); "
                "pass an explicit sign to use it anyway"
            )
        sign = verdict.sign
    return ExpressionLoss(spec, sign=sign, reduction=reduction)
