"""Lifting a found expression into a parametric one (nlfs.losses.lift)."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.errors import ConfigError
from nlfs.losses.compile import ExpressionLoss, compile_elementwise
from nlfs.losses.export import export_source, latex_formula
from nlfs.losses.expressions import parse
from nlfs.losses.lift import OFFSET, WEIGHT, Lifted, Slot, default_slots, lift
from nlfs.losses.operators import EPS
from nlfs.spaces import get_space

SPACES = {"cell": get_space("cell"), "tree": get_space("tree")}


def _logits(seed: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(32, 10, generator=generator, dtype=torch.float64) * scale
    return logits, torch.randint(0, 10, (32,), generator=generator)


def _value_and_grad(loss: torch.nn.Module, logits: torch.Tensor, target: torch.Tensor):
    x = logits.clone().float().requires_grad_(True)
    value = loss(x, target)
    value.backward()
    return value.detach(), x.grad


@settings(max_examples=60, deadline=None)
@given(
    space=st.sampled_from(sorted(SPACES)),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1.0, 10.0, 100.0]),
)
def test_lifting_at_the_initial_coefficients_equals_the_original_exactly(space, seed, scale):
    """Weights 1 and offsets 0 at every liftable node: the same text; written out, the same
    values bit for bit and the same gradients up to float rounding."""
    genome = SPACES[space].sample(random.Random(seed))
    original = SPACES[space].canonical(genome)
    lifted = lift(original)
    assert lifted.instantiate(lifted.initial) == original  # identities are left out of the text
    wrapped = lifted.instantiate(lifted.initial, keep_identity=True)
    assert wrapped != original  # y and p always sit below the root, so wrappers are there
    logits, target = _logits(seed % 1000, scale)
    y = torch.nn.functional.one_hot(target, 10).double()
    p = torch.softmax(logits, -1)
    plain, lifted_fn = compile_elementwise(parse(original)), compile_elementwise(parse(wrapped))
    assert torch.equal(plain(y, p), lifted_fn(y, p))
    a_value, a_grad = _value_and_grad(ExpressionLoss(original, -1.0), logits, target)
    b_value, b_grad = _value_and_grad(ExpressionLoss(wrapped, -1.0), logits, target)
    assert torch.equal(a_value, b_value)
    # Gradients agree up to float32 rounding: the wrappers change the order in which autograd
    # sums the contributions of an input (p) used in several places.
    torch.testing.assert_close(b_grad, a_grad, rtol=1e-5, atol=1e-6 * float(a_grad.abs().max()))


def test_the_weight_and_offset_of_y_are_label_smoothing_against_a_hand_derived_formula():
    """-(w*y + b) * ln(p + eps): cross-entropy with targets w*y + b, summed over classes."""
    lifted = lift("neg(mul(y, log(p)))")
    assert lifted.names == ("w1", "b1", "w2", "b2", "w3", "b3", "w4")  # p under log: no offset
    values = dict(zip(lifted.names, lifted.initial, strict=True))
    values.update(w2=0.9, b2=0.01)  # smoothing 0.1 over 10 classes
    loss = lifted.loss([values[n] for n in lifted.names], sign=1.0)
    logits, target = _logits(3, 3.0)
    p = torch.softmax(logits.float(), -1)
    y = torch.nn.functional.one_hot(target, 10).float()
    expected = (-(0.9 * y + 0.01) * torch.log(p.abs() + EPS)).sum(-1).mean()
    torch.testing.assert_close(loss(logits, target), expected)


def test_default_slots_skip_the_root_constants_sums_and_singular_operands():
    tree = parse("add(log(p), div(sub(y, 1), p))")
    # 0 add, 1 log, 2 p, 3 div, 4 sub, 5 y, 6 1, 7 p
    slots = {(s.node, s.kind) for s in default_slots(tree)}
    weights = {n for n, kind in slots if kind == WEIGHT}
    offsets = {n for n, kind in slots if kind == OFFSET}
    assert weights == set(range(1, 8))  # every node but the root
    # 1 and 3 are operands of add, 5 of sub; 2 is log's operand, 7 div's divisor, 6 a
    # constant: only the dividend 4 takes an offset.
    assert offsets == {4}


def test_chosen_nodes_only_and_bad_nodes_are_refused():
    lifted = lift("neg(mul(y, log(p)))", nodes=[2])
    assert lifted.slots == (Slot(2, WEIGHT), Slot(2, OFFSET))
    assert lifted.instantiate([0.5, 0.2]) == "neg(mul(add(mul(0.5, y), 0.2), log(p)))"
    with pytest.raises(ConfigError, match="nodes 1..4"):
        lift("neg(mul(y, log(p)))", nodes=[9])
    with pytest.raises(ConfigError, match="root"):
        lift("neg(mul(y, log(p)))", nodes=[0])
    with pytest.raises(ConfigError, match="expected 2 coefficients"):
        lifted.instantiate([1.0])
    with pytest.raises(ConfigError, match="finite"):
        lifted.instantiate([float("nan"), 0.0])


def test_a_constant_weight_becomes_the_constant_itself_and_the_lifting_round_trips():
    lifted = lift("asinh(add(div(y, p), 1))")
    values = dict(zip(lifted.names, lifted.initial, strict=True))
    values.update(w2=0.7, w5=0.3)
    text = lifted.instantiate([values[n] for n in lifted.names])
    assert text == "asinh(add(mul(0.7, div(y, p)), 0.3))"  # the example
    assert Lifted.from_attr(lifted.to_attr()) == lifted
    assert any("node 2 (w2): div(y, p)" == line for line in lifted.describe())


def test_an_exported_refined_loss_equals_the_compiled_one_and_prints_its_coefficients(tmp_path):
    lifted = lift("asinh(add(div(y, p), 1))")
    values = dict(zip(lifted.names, lifted.initial, strict=True))
    values.update(w2=0.7, w5=0.3, b3=0.05)
    text = lifted.instantiate([values[n] for n in lifted.names])
    source = export_source(text, -1.0, name="Refined")
    assert "0.7" in source and "0.3" in source and "0.05" in source
    assert r"0.7 \cdot" in latex_formula(text, -1.0)
    path = tmp_path / "refined.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("refined_export", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own generated file, not user text
    logits, target = _logits(5, 10.0)
    exported = _value_and_grad(module.Refined(), logits, target)
    compiled = _value_and_grad(lifted.loss([values[n] for n in lifted.names], -1.0), logits, target)
    assert torch.equal(exported[0], compiled[0])
    assert torch.equal(exported[1], compiled[1])
