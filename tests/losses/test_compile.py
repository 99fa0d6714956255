"""Compiled losses against the NumPy reference evaluation, and the loss contract."""

from __future__ import annotations

import random

import numpy as np
import pytest
import reference_ops as ref
import torch
import torch.nn.functional as F

from nlfs.losses.compile import ExpressionLoss, compile_elementwise
from nlfs.losses.expressions import parse
from nlfs.losses.operators import EPS, OPERATORS, primitive_set

# sin of huge arguments is argument-reduction noise that differs between libraries (see
# test_operators); the comparison of whole expressions leaves it out.
NO_SIN = primitive_set(tuple(n for n in OPERATORS if n != "sin"))
TREE_SEEDS = range(300)


def _probabilities(seed: int, batch: int = 16, classes: int = 10, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, (batch, classes))
    target = rng.integers(0, classes, batch)
    p = ref.softmax(logits)
    y = np.eye(classes)[target]
    return logits, target, y, p


def test_compiled_expressions_match_the_reference_on_random_logits():
    """For 300 random trees, the compiled f(y, p) equals the NumPy reference in float64."""
    _, _, y, p = _probabilities(1, scale=10.0)  # scale 10: some probabilities underflow to ~0
    for seed in TREE_SEEDS:
        tree = ref.random_tree(random.Random(seed), max_depth=5, pset=NO_SIN)
        got = compile_elementwise(tree)(torch.from_numpy(y), torch.from_numpy(p)).numpy()
        want = ref.evaluate(tree, y, p)
        scale = 1.0 + np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * scale, err_msg=str(tree))


@pytest.mark.parametrize(
    "text",
    [
        "neg(mul(y, log(p)))",
        "square(sub(p, y))",
        "neg(sub(log(p), div(y, p)))",
        "mul(y, divsqrt(sqrt(p), softplus(sub(y, p))))",
        "add(exp(neg(p)), mul(y, atan(inv(p))))",
    ],
)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_expression_loss_matches_reference_with_every_reduction(text, reduction):
    """ExpressionLoss (float32) equals sign * reduce(sum_c f(y, p)) computed in float64."""
    logits, target, y, p = _probabilities(2)
    loss = ExpressionLoss(text, sign=-1.0, reduction=reduction)
    got = loss(torch.from_numpy(logits), torch.from_numpy(target)).double().numpy()
    per_sample = -ref.evaluate(parse(text), y, p).sum(axis=1)
    want = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cross_entropy_expression_equals_f_cross_entropy():
    """neg(mul(y, log(p))) compiled equals F.cross_entropy: the batch mean to 1e-6, each sample
    within the protected log's own bound ln(p + 1e-7) - ln(p) <= 1e-7 / p (plus 1e-6)."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 10, generator=gen)
    target = torch.randint(0, 10, (256,), generator=gen)
    loss = ExpressionLoss("neg(mul(y, log(p)))")
    torch.testing.assert_close(
        loss(logits, target), F.cross_entropy(logits, target), rtol=1e-6, atol=1e-6
    )
    p_true = torch.softmax(logits, -1).gather(1, target[:, None]).squeeze(1)
    diff = (loss(logits, target, "none") - F.cross_entropy(logits, target, reduction="none")).abs()
    assert (diff <= 1e-6 + EPS / p_true).all()
    total = F.cross_entropy(logits, target, reduction="sum")
    torch.testing.assert_close(loss(logits, target, "sum"), total, rtol=1e-6, atol=1e-6)


def test_expression_loss_gradients_are_finite_on_extreme_logits():
    """Training never sees a NaN gradient from the loss itself, even at logits of +-1e4."""
    logits = torch.tensor([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0], [-1e4, 1e4, 1e4]], requires_grad=True)
    target = torch.tensor([1, 0, 2])
    for text in ("neg(sub(log(p), div(y, p)))", "exp(inv(mul(y, p)))", "div(log(p), sub(p, y))"):
        logits.grad = None
        ExpressionLoss(text)(logits, target).backward()
        assert torch.isfinite(logits.grad).all(), text


def test_constant_subexpressions_broadcast_per_class():
    """A constant expression yields one value per class, so it sums to the class count."""
    loss = ExpressionLoss("1", reduction="none")
    out = loss(torch.zeros(4, 7), torch.zeros(4, dtype=torch.long))
    assert torch.equal(out, torch.full((4,), 7.0))


def test_bad_sign_and_reduction_are_refused():
    """Only +-1 signs and the three reductions of F.cross_entropy are accepted."""
    with pytest.raises(ValueError, match="sign"):
        ExpressionLoss("mul(y, p)", sign=2.0)
    with pytest.raises(ValueError, match="reduction"):
        ExpressionLoss("mul(y, p)", reduction="max")
