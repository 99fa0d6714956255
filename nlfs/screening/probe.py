"""The cheap numeric probe behind screening: evaluate an expression once, judge its curve.

One evaluation of the expression (torch, float64, no autograd) covers two probes laid end to end:

* the paper's two-class **probe curve**: the true-class probability ``q`` swept from ~1 to ~0 over
  :data:`CURVE_POINTS` points; the loss at each point is ``f(1, q) + f(0, 1 - q)``, the sum over
  the two classes of ``f(y, p)`` with ``y = (1, 0)`` and ``p = (q, 1 - q)``;
* a **finiteness probe**: softmax outputs of fixed random logits (scales up to 1e4, so some
  probabilities are exactly 0 and 1) for several class counts, with random one-hot targets.

:func:`analyse_curve` then applies the shape rules and fixes the sign, and :func:`fingerprint`
turns the signed curve into the vector duplicates are detected with.

Reference: Morgan & Hougen, arXiv 2403.08793 (2024), section 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from deap import gp

from nlfs.losses.compile import compile_elementwise
from nlfs.losses.expressions import parse
from nlfs.losses.operators import BIG

CURVE_POINTS = 1000
"""Points of the two-class probe curve (the paper's 1000)."""
TURN_MARGIN = 0.01
"""A single turning point closer than this to q = 0.5 is rejected (the paper's +-0.01)."""
MAX_FLAT_STEPS = 10
"""Most flat steps a curve may have (the paper's 10)."""
FLAT_RTOL = 1e-9
"""A step ``L[i] -> L[i+1]`` is flat when ``|dL| <= FLAT_RTOL * max(|L[i]|, |L[i+1]|)``.

Relative to the local value, not to the curve's range, so that the slow start of a smooth loss
near its minimum (focal loss falls like ``(1-q)^3`` near q=1) is not called flat. 1e-9 is far
above float64 rounding (~1e-16) yet far below any real change between probe points 0.001 apart:
flat means "numerically no change", e.g. ``exp(-1/q)`` underflowing to 0 or a clipped ``max``.
"""
SATURATION = BIG
"""Probe values this large in magnitude hit the operators' clamp: the raw value overflowed."""

PROBE_SEED = 20240313
"""Seed of the fixed random logits of the finiteness probe (fixed so verdicts are stable)."""
PROBE_CLASSES = (2, 3, 10, 100)
"""Class counts of the finiteness probe."""
PROBE_SCALES = (1.0, 10.0, 100.0, 1e4)
"""Standard deviations of the probe logits; 1e4 drives softmax outputs to exactly 0 and 1."""
PROBE_ROWS = 4
"""Random logit rows per class count and scale (plus one row of equal logits per class count)."""


@cache
def curve_q() -> np.ndarray:
    """The true-class probabilities of the curve, from 1 - 1/2000 down to 1/2000 (float64).

    Points sit at the centres of 1000 equal bins, so none is exactly 0, 1 or 0.5.
    """
    return 1.0 - (np.arange(CURVE_POINTS) + 0.5) / CURVE_POINTS


@cache
def probe_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """The flat ``(y, p)`` float64 tensors of both probes; the curve comes first.

    Layout of the curve part: ``y = 1, p = q`` for the 1000 sweep points, then ``y = 0,
    p = 1 - q`` for the same points, so ``f[:N] + f[N:2N]`` is the two-class loss at each point.
    """
    q = torch.from_numpy(curve_q())
    ys = [torch.ones_like(q), torch.zeros_like(q)]
    ps = [q, 1.0 - q]
    rng = np.random.default_rng(PROBE_SEED)
    for classes in PROBE_CLASSES:
        rows = [np.zeros((1, classes))]  # equal logits: the uniform prediction
        rows += [rng.normal(0.0, scale, (PROBE_ROWS, classes)) for scale in PROBE_SCALES]
        logits = torch.from_numpy(np.concatenate(rows))
        target = torch.from_numpy(rng.integers(0, classes, len(logits)))
        ps.append(torch.softmax(logits, dim=-1).reshape(-1))
        ys.append(torch.nn.functional.one_hot(target, classes).to(torch.float64).reshape(-1))
    return torch.cat(ys), torch.cat(ps)


def evaluate(tree: gp.PrimitiveTree) -> np.ndarray:
    """The expression on every probe point (float64 NumPy array, layout of :func:`probe_inputs`).

    Uses the compiler's gradient-free form: the same values as the training loss at about a
    third of the cost.
    """
    y, p = probe_inputs()
    with torch.no_grad():
        return compile_elementwise(tree, differentiable=False)(y, p).numpy()


def finite(values: np.ndarray) -> bool:
    """True when every probe value is finite and below the operators' clamp."""
    return bool(np.all(np.abs(values) < SATURATION))  # NaN compares False, so it fails too


def curve(values: np.ndarray) -> np.ndarray:
    """The two-class loss along the sweep (index 0 is q ~ 1, the last index is q ~ 0)."""
    return values[:CURVE_POINTS] + values[CURVE_POINTS : 2 * CURVE_POINTS]


@dataclass(frozen=True)
class CurveShape:
    """The outcome of the shape rules on one probe curve.

    Attributes:
        problem: ``""`` when the curve passes, else ``"constant"``, ``"flat"`` or ``"bad_shape"``.
        sign: +1.0 or -1.0 so that ``sign * curve`` falls as the true-class probability rises
            (meaningful when ``problem`` is empty).
        flat_steps: number of flat steps.
        turning_q: the true-class probability at the turning point, or None when monotone.
    """

    problem: str
    sign: float
    flat_steps: int
    turning_q: float | None


def analyse_curve(loss: np.ndarray) -> CurveShape:
    """Apply the paper's shape rules to a probe curve and choose its sign.

    Rules, in order: a constant curve fails (``constant``); more than :data:`MAX_FLAT_STEPS` flat
    steps fail (``flat``); ignoring flat steps, the curve must be monotone or turn exactly once,
    and not within :data:`TURN_MARGIN` of q = 0.5 (``bad_shape``).

    Sign rule: the sweep runs from q ~ 1 to q ~ 0, so a loss that falls as q rises *increases*
    along the sweep and gets sign +1. A monotone curve is judged by that. A curve with one
    turning point is judged by its larger part: the side of the turning point that covers more of
    the q range (the margin around 0.5 guarantees one side is larger), so the signed loss falls
    with q on most of the range.
    """
    steps = np.diff(loss)
    scale = np.maximum(np.abs(loss[:-1]), np.abs(loss[1:]))
    flat = np.abs(steps) <= FLAT_RTOL * scale
    if np.ptp(loss) <= FLAT_RTOL * max(float(np.max(np.abs(loss))), 1e-300) or flat.all():
        return CurveShape("constant", 1.0, int(flat.sum()), None)
    n_flat = int(flat.sum())
    if n_flat > MAX_FLAT_STEPS:
        return CurveShape("flat", 1.0, n_flat, None)
    moving = np.flatnonzero(~flat)
    rising = steps[moving] > 0  # rising along the sweep = falling as q rises
    turns = np.flatnonzero(rising[1:] != rising[:-1])
    if len(turns) == 0:
        return CurveShape("", 1.0 if rising[0] else -1.0, n_flat, None)
    if len(turns) > 1:
        return CurveShape("bad_shape", 1.0, n_flat, None)
    # The turn lies at the point shared by the last step of one run and the first of the next.
    at = moving[turns[0] + 1]
    turning_q = float(curve_q()[at])
    if abs(turning_q - 0.5) <= TURN_MARGIN:
        return CurveShape("bad_shape", 1.0, n_flat, turning_q)
    # Sweep index grows as q falls: the part before the turn is q > turning_q.
    larger_rises = rising[0] if turning_q < 0.5 else rising[-1]
    return CurveShape("", 1.0 if larger_rises else -1.0, n_flat, turning_q)


def fingerprint(loss: np.ndarray, sign: float) -> np.ndarray:
    """The duplicate-detection vector of a signed curve (float32, length ``2 * CURVE_POINTS``).

    The min-max normalised signed curve followed by its min-max normalised gradient with respect
    to q (zeros when the gradient is constant). Two losses that differ only by scale, offset or
    sign have the same fingerprint. Requires a non-constant curve.
    """
    signed = sign * loss
    low, high = signed.min(), signed.max()
    shape = (signed - low) / (high - low)
    # Central differences (one-sided at the ends) as np.gradient gives, at a fraction of its
    # cost; the q spacing is uniform, so only its sign matters before normalisation and q falls
    # along the sweep.
    grad = np.empty_like(shape)
    grad[1:-1] = (shape[:-2] - shape[2:]) * 0.5
    grad[0] = shape[0] - shape[1]
    grad[-1] = shape[-2] - shape[-1]
    g_low, g_high = grad.min(), grad.max()
    grad = (grad - g_low) / (g_high - g_low) if g_high > g_low else np.zeros_like(grad)
    return np.concatenate([shape, grad]).astype(np.float32)


def expression_fingerprint(expression: str, sign: float) -> np.ndarray | None:
    """The duplicate-detection fingerprint of a canonical expression (None when it has none:
    not finite on the probe, or a constant curve). Used to measure a search's diversity."""
    values = evaluate(parse(expression))
    if not finite(values):
        return None
    loss = curve(values)
    if np.ptp(loss) == 0:
        return None
    return fingerprint(loss, sign)
