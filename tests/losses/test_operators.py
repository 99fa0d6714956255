"""The torch operators against a NumPy/SciPy reference, and finite on extreme finite inputs."""

from __future__ import annotations

import numpy as np
import pytest
import reference_ops as ref
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.losses.operators import BIG, BINARY, OPERATORS, UNARY, primitive_set

EXTREMES = [0.0, 1e-30, 1e-8, 1e-7, 1e-3, 0.5, 1.0, 2.0, 79.0, 81.0, 1e3, 1e15, 1e29, 1e30]
"""Magnitudes from 1e-30 to 1e30, around the protection thresholds (EPS 1e-7, exp clamp 80)."""


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    extremes = np.array(EXTREMES + [-x for x in EXTREMES[1:]])
    return np.concatenate([extremes, rng.normal(0, 3, 64), rng.normal(0, 100, 16)])


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    x = _inputs()
    a, b = np.meshgrid(x, x[::3])
    return a.ravel(), b.ravel()


def test_vocabulary_is_the_papers_and_fully_referenced():
    """27 unary and 7 binary operators, each with a reference and a DEAP primitive."""
    assert len(UNARY) == 27 and len(BINARY) == 7
    assert set(OPERATORS) == set(ref.OPERATORS)
    pset = primitive_set()
    assert {p.name for p in pset.primitives[pset.ret]} == set(OPERATORS)
    assert sorted(t.format() for t in pset.terminals[pset.ret]) == ["-1", "1", "p", "y"]


def _close(name: str, got: np.ndarray, want: np.ndarray) -> None:
    if name == "sin":
        # sin of arguments beyond ~1e15 is argument-reduction noise in any library; compare
        # only where it means something.
        keep = np.abs(_inputs()) < 1e15
        got, want = got[keep], want[keep]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_operator_matches_reference(name):
    """Each unary op equals the float64 reference on random and extreme inputs."""
    x = _inputs()
    got = UNARY[name](torch.from_numpy(x)).numpy()
    _close(name, got, ref.apply(name, x))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_operator_matches_reference(name):
    """Each binary op equals the float64 reference on all pairs of random and extreme inputs."""
    a, b = _pairs()
    got = BINARY[name](torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, ref.apply(name, a, b), rtol=1e-9, atol=1e-12, err_msg=name)


finite_floats = st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False)
extreme_floats = st.one_of(finite_floats, st.sampled_from(EXTREMES + [-x for x in EXTREMES]))


@settings(max_examples=25, deadline=None)
@given(
    xs=st.lists(extreme_floats, min_size=1, max_size=8),
    ys=st.lists(extreme_floats, min_size=8, max_size=8),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_every_operator_finite_with_finite_gradients(xs, ys, dtype):
    """On any finite input in [-1e30, 1e30], every op's value and gradient are finite."""
    for name, op in OPERATORS.items():
        a = torch.tensor(xs, dtype=dtype, requires_grad=True)
        args = [a]
        if op.arity == 2:
            b = torch.tensor(ys[: len(xs)], dtype=dtype, requires_grad=True)
            args.append(b)
        out = op(*args)
        assert torch.isfinite(out).all(), name
        assert out.abs().max() <= BIG, name
        out.sum().backward()
        for arg in args:
            assert torch.isfinite(arg.grad).all(), name


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_operator_gradient_finite_through_a_chain(name):
    """Gradients stay finite when an op sits inside a chain that amplifies them (exp of op)."""
    x = torch.tensor(_inputs(), dtype=torch.float32, requires_grad=True)
    op = OPERATORS[name]
    inner = op(x) if op.arity == 1 else op(x, x.flip(0))
    OPERATORS["exp"](OPERATORS["square"](inner)).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_value_equals_the_differentiable_call_and_leaves_inputs_alone(name):
    """``Operator.value`` (the probe's no-grad path) gives the training values exactly."""
    op = OPERATORS[name]
    gen = torch.Generator().manual_seed(1)
    args = [torch.randn(64, dtype=torch.float64, generator=gen) * 1e3 for _ in range(op.arity)]
    args[0][:3] = torch.tensor([0.0, 1e30, -1e30], dtype=torch.float64)
    before = [a.clone() for a in args]
    with torch.no_grad():
        got = op.value(*args)
    torch.testing.assert_close(got, op(*args), rtol=0, atol=0)
    for a, b in zip(args, before, strict=True):
        assert torch.equal(a, b)
