"""Baseline losses: formulas, their expressions, the registry and loss_from_spec."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlfs.errors import ConfigError
from nlfs.losses.baselines import BASELINES, get_loss
from nlfs.losses.compile import ExpressionLoss
from nlfs.losses.expressions import ParseError, canonical, parse
from nlfs.losses.operators import EPS
from nlfs.screening import loss_from_spec
from nlfs.screening.screen import Screen

NAMES = ["cross_entropy", "label_smoothing", "focal", "poly1", "baikal", "squared_error"]


def _batch(seed: int = 0, batch: int = 64, classes: int = 10, scale: float = 2.0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=gen) * scale
    target = torch.randint(0, classes, (batch,), generator=gen)
    return logits, target


def _reference(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample values written from the textbook formulas, in float64."""
    logits = logits.double()
    log_p = torch.log_softmax(logits, -1)
    p = log_p.exp()
    y = F.one_hot(target, logits.shape[-1]).double()
    p_t = (p * y).sum(-1)
    ce = -(y * log_p).sum(-1)
    k = logits.shape[-1]
    return {
        "cross_entropy": ce,
        "label_smoothing": -((0.9 * y + 0.1 / k) * log_p).sum(-1),
        "focal": (1 - p_t) ** 2 * ce,
        "poly1": ce + (1 - p_t),
        "baikal": -(torch.log(p + EPS) - y / p.clamp_min(EPS)).sum(-1),  # protected, as documented
        "squared_error": ((p - y) ** 2).sum(-1),
    }[name]


def test_registry_has_the_names_users_type():
    """The six baselines are registered under the names of the docs, each with formulas."""
    assert list(BASELINES) == NAMES
    for b in BASELINES.values():
        assert b.text and b.latex and b.summary


@pytest.mark.parametrize("name", NAMES)
def test_module_matches_textbook_formula_with_every_reduction(name):
    """Each module equals its formula per sample, summed and averaged like F.cross_entropy."""
    logits, target = _batch()
    want = _reference(name, logits, target).float()
    loss = get_loss(name)
    torch.testing.assert_close(loss(logits, target, reduction="none"), want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss(logits, target), want.mean(), rtol=1e-4, atol=1e-5)
    summed = get_loss(name, reduction="sum")(logits, target)
    torch.testing.assert_close(summed, want.sum(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in NAMES if BASELINES[n].expression])
def test_expression_compiles_to_the_same_loss_as_the_module(name):
    """A baseline's expression, signed by screening, matches its module numerically: to 1e-5,
    plus, where the module takes the exact log-softmax, the protected log's gap EPS / p_true."""
    text = BASELINES[name].expression
    assert canonical(parse(text)) == text
    verdict = Screen(dedupe=False).check_tree(text)
    assert verdict.accepted and verdict.sign == 1.0
    logits, target = _batch(1)
    got = ExpressionLoss(text, sign=verdict.sign, reduction="none")(logits, target)
    want = get_loss(name, "none")(logits, target)
    p_true = torch.softmax(logits, -1).gather(1, target[:, None]).squeeze(1)
    gap = 0.0 if name in ("baikal", "squared_error") else EPS / p_true
    assert ((got - want).abs() <= 1e-5 * (1 + want.abs()) + gap).all()


def test_cross_entropy_expression_equals_f_cross_entropy_on_ordinary_logits():
    """On unit-scale logits the cross-entropy genome equals F.cross_entropy to 1e-6."""
    logits, target = _batch(5, scale=1.0)
    got = ExpressionLoss(BASELINES["cross_entropy"].expression)(logits, target)
    torch.testing.assert_close(got, F.cross_entropy(logits, target), rtol=1e-6, atol=1e-6)


def test_cross_entropy_module_equals_f_cross_entropy():
    """cross_entropy is exactly F.cross_entropy."""
    logits, target = _batch(2)
    for reduction in ("mean", "sum", "none"):
        want = F.cross_entropy(logits, target, reduction=reduction)
        torch.testing.assert_close(get_loss("cross_entropy")(logits, target, reduction), want)


@pytest.mark.parametrize("name", NAMES)
def test_modules_are_finite_with_finite_gradients_on_extreme_logits(name):
    """Softmax outputs of exactly 0 and 1 give finite losses and gradients (protected ops)."""
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, 0.0]], requires_grad=True)
    target = torch.tensor([1, 0, 2])
    out = get_loss(name)(logits, target)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all()


def test_half_precision_logits_are_accepted():
    """bf16 logits (autocast) are upcast, so the loss is a float32 scalar."""
    logits, target = _batch(3)
    assert get_loss("focal")(logits.bfloat16(), target).dtype == torch.float32


def test_unknown_name_lists_the_known_ones():
    """get_loss and loss_from_spec name every baseline when given an unknown name."""
    for call in (lambda: get_loss("focall"), lambda: loss_from_spec("focall")):
        with pytest.raises(ConfigError) as info:
            call()
        assert all(name in str(info.value) for name in NAMES)


def test_bad_reduction_is_refused():
    """Only mean, sum and none are reductions."""
    with pytest.raises(ValueError, match="reduction"):
        get_loss("poly1", reduction="max")


def test_loss_from_spec_accepts_names_and_expressions():
    """A name gives the baseline module; an expression gives an ExpressionLoss with the sign
    screening found (negated cross-entropy comes back as cross-entropy)."""
    logits, target = _batch(4)
    assert isinstance(loss_from_spec("baikal"), type(get_loss("baikal")))
    neg_ce = loss_from_spec("mul(y, log(p))")
    assert isinstance(neg_ce, ExpressionLoss) and neg_ce.sign == -1.0
    want = F.cross_entropy(logits, target, reduction="none")
    p_true = torch.softmax(logits, -1).gather(1, target[:, None]).squeeze(1)
    assert ((neg_ce(logits, target, "none") - want).abs() <= 1e-5 + EPS / p_true).all()
    assert loss_from_spec(" square(sub(p, y)) ", reduction="sum").reduction == "sum"


def test_loss_from_spec_refuses_rejected_expressions_unless_signed():
    """An expression screening rejects is an error naming the reason, unless a sign is given."""
    with pytest.raises(ConfigError, match="missing_y"):
        loss_from_spec("log(p)")
    assert loss_from_spec("log(p)", sign=-1.0).sign == -1.0
    with pytest.raises(ParseError):
        loss_from_spec("mul(y, lg(p))")


def test_ce_is_an_alias_of_cross_entropy_everywhere_a_loss_is_named():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 3, 0])
    expected = F.cross_entropy(logits, target)
    assert torch.allclose(loss_from_spec("ce")(logits, target), expected)
    assert torch.allclose(get_loss("ce")(logits, target), expected)
