"""Screening coefficient settings of a lifted loss (:mod:`nlfs.losses.lift`, ``nlfs refine``).

Every coefficient setting a refinement tries goes through the search's screen (shape of the
probe curve, finite values) without duplicate detection, since nearby settings are the point, and
must have finite loss and gradients on fixed logits. :func:`movable` drops, before tuning, the
coefficients that cannot matter.
"""

from __future__ import annotations

import torch

from nlfs.errors import ConfigError
from nlfs.losses.compile import ExpressionLoss
from nlfs.losses.lift import Lifted
from nlfs.screening.screen import Screen

MOVE = 0.05
"""Step by which :func:`movable` tries each coefficient on its own."""
GRAD_PROBE_SEED = 20261130
"""Seed of the fixed logits on which a setting's gradients must be finite."""


def screen_setting(expression: str, screen: Screen | None = None) -> tuple[bool, str, float]:
    """Screen one coefficient setting: shape and finite values on the probe (the search's
    screen, without duplicate detection: nearby settings are the point), then finite loss and
    gradients on fixed logits.

    Returns:
        ``(accepted, reason, sign)``.
    """
    verdict = (screen or Screen(dedupe=False)).check_tree(expression, record=False)
    if not verdict.accepted:
        return False, verdict.reason, verdict.sign
    value, grad = _gradient(expression, verdict.sign)
    if not (torch.isfinite(value) and torch.isfinite(grad).all()):
        return False, "non_finite_gradient", verdict.sign
    return True, verdict.reason, verdict.sign


def _gradient(expression: str, sign: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and its gradient with respect to fixed logits (scales up to 10)."""
    generator = torch.Generator().manual_seed(GRAD_PROBE_SEED)
    logits = (torch.randn(64, 10, generator=generator) * 10.0).requires_grad_(True)
    target = torch.randint(0, 10, (64,), generator=generator)
    value = ExpressionLoss(expression, sign=sign)(logits, target)
    value.backward()
    return value.detach(), logits.grad


def movable(lifted: Lifted, screen: Screen | None = None) -> tuple[Lifted, list[str]]:
    """Keep the coefficients that can move by :data:`MOVE` (alone, either way), pass the screen
    and change the loss's gradient; return the lifting of those and the names of the others.

    Some coefficients cannot matter: in ``log10(div(y, p))`` every weight only adds a constant
    to the loss (same gradient, same training), and an offset on ``y`` makes every probe curve
    turn exactly at q = 0.5, which the shape test refuses. Tuning them would only spend budget
    on identical trainings or feed the sampler rejections.

    Raises:
        ConfigError: no coefficient can matter.
    """
    screen = screen or Screen(dedupe=False)
    _, sign = screen_setting(lifted.expression, screen)[1:]
    _, base = _gradient(lifted.expression, sign)
    keep, frozen = [], []
    for i, slot in enumerate(lifted.slots):
        matters = False
        for step in (-MOVE, MOVE):
            values = list(lifted.initial)
            values[i] += step
            text = lifted.instantiate(values)
            accepted, _, moved_sign = screen_setting(text, screen)
            if accepted and not torch.allclose(_gradient(text, moved_sign)[1], base):
                matters = True
                break
        (keep if matters else frozen).append(slot)
    if not keep:
        raise ConfigError(
            f"no coefficient of {lifted.expression} changes its gradient and passes the "
            "screen, so there is nothing to refine; choose other --nodes or another trial"
        )
    return Lifted(lifted.expression, tuple(keep)), [slot.name for slot in frozen]
