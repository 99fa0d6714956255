"""Screening: each rejection reason, the sign rule, duplicates, and rebuilding from trials."""

from __future__ import annotations

import random

import numpy as np
import pytest
import reference_ops as ref
import torch

from nlfs.losses.compile import ExpressionLoss, compile_elementwise
from nlfs.screening import probe
from nlfs.screening.screen import FingerprintIndex, Reason, Screen
from nlfs.spaces import get_space
from nlfs.spaces.cell import CellGenome, CellNode

CE = "neg(mul(y, log(p)))"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("log(p)", Reason.MISSING_Y),
        ("add(log(p), 1)", Reason.MISSING_Y),
        ("mul(y, -1)", Reason.MISSING_P),
        ("exp(inv(mul(y, p)))", Reason.NON_FINITE),  # exp(1/0) overflows into the clamp
        ("mul(sub(y, y), p)", Reason.CONSTANT),
        ("add(y, sub(p, p))", Reason.CONSTANT),
        ("mul(y, exp(neg(inv(p))))", Reason.FLAT),  # exp(-1/q) underflows to 0 for small q
        ("mul(y, max0(sub(p, sigmoid(1))))", Reason.FLAT),  # clipped to 0 below q = 0.73
        ("mul(y, abs(sub(p, inv1pabs(1))))", Reason.SHAPE),  # |q - 0.5|: turns at 0.5
        ("mul(y, sin(mul(p, exp(add(1, 1)))))", Reason.SHAPE),  # sin(7.4 q): turns twice
        (CE, Reason.OK),
    ],
)
def test_each_reason_is_triggered_by_a_hand_made_expression(text, reason):
    """Every probe-level rejection reason has an expression that triggers it."""
    verdict = Screen().check_tree(text)
    assert verdict.reason == reason
    assert verdict.accepted == (reason == Reason.OK)


def test_cyclic_genome_is_rejected_with_the_space_reason():
    """A cell whose active graph has a cycle is rejected as 'cyclic' before any probe."""
    nodes = (
        CellNode(2, "neg", "add", 0, 5),
        CellNode(2, "neg", "add", 1, 4),
        CellNode(1, "neg", "add", 0, 0),
        CellNode(1, "neg", "add", 0, 0),
        CellNode(2, "neg", "add", 4, 5),
    )
    screen = Screen()
    verdict = screen.check(get_space("cell"), CellGenome(nodes))
    assert (verdict.accepted, verdict.reason, verdict.expression) == (False, "cyclic", "")
    assert screen.counts == {"cyclic": 1}


def test_invalid_genome_keeps_its_expression_where_it_has_one():
    """A cell that never reads y is rejected as missing_y and the verdict shows its expression."""
    nodes = (
        CellNode(1, "log", "add", 1, 1),
        CellNode(1, "neg", "add", 1, 1),
        CellNode(1, "neg", "add", 0, 0),
        CellNode(1, "neg", "add", 0, 0),
        CellNode(2, "neg", "mul", 4, 5),
    )
    verdict = Screen().check(get_space("cell"), CellGenome(nodes))
    assert (verdict.reason, verdict.expression) == ("missing_y", "mul(log(p), neg(p))")


def test_duplicates_by_string_and_by_curve():
    """The same text is 'duplicate'; a rescaled, shifted or negated loss is 'duplicate_curve'."""
    screen = Screen()
    assert screen.check_tree(CE).accepted
    assert screen.check_tree("neg(mul(y, log(p)))").reason == Reason.DUPLICATE
    for same_curve in ("mul(y, log(p))", "mul(y, log10(p))", "add(neg(mul(y, log(p))), 1)"):
        assert screen.check_tree(same_curve).reason == Reason.DUPLICATE_CURVE, same_curve
    assert screen.check_tree("square(sub(p, y))").accepted
    assert screen.counts == {"duplicate": 1, "duplicate_curve": 3}
    assert screen.accepted == 2 and len(screen) == 2


def test_tolerance_zero_keeps_only_exact_curve_duplicates():
    """With tolerance 0 a different curve is never a duplicate; a negated one still is."""
    screen = Screen(tolerance=0.0)
    screen.check_tree(CE)
    assert screen.check_tree("mul(y, log(p))").reason == Reason.DUPLICATE_CURVE
    assert screen.check_tree("neg(mul(y, log(add(p, 1))))").accepted


def test_record_false_and_dedupe_off_keep_no_archive():
    """record=False does not remember an accepted candidate; dedupe=False never rejects one."""
    screen = Screen()
    assert screen.check_tree(CE, record=False).accepted
    assert screen.check_tree(CE).accepted
    loose = Screen(dedupe=False)
    assert all(loose.check_tree(CE).accepted for _ in range(3))
    assert loose.counts == {} and len(loose) == 0


def test_sign_makes_the_loss_fall_as_the_true_class_probability_rises():
    """Cross-entropy keeps +1; its negation and 'reward' expressions get -1."""
    assert Screen().check_tree(CE).sign == 1.0
    assert Screen().check_tree("mul(y, log(p))").sign == -1.0
    assert Screen().check_tree("mul(y, p)").sign == -1.0
    assert Screen().check_tree("square(sub(p, y))").sign == 1.0


def _two_class_loss(expression: str, sign: float) -> np.ndarray:
    """The signed two-class loss at q = 0.0005 .. 0.9995 ascending, through ExpressionLoss."""
    q = torch.linspace(0.0005, 0.9995, 1000, dtype=torch.float64)
    p = torch.stack([q, 1 - q], dim=1)
    y = torch.zeros_like(p)
    y[:, 0] = 1.0
    return ExpressionLoss(expression, sign=sign).elementwise(y, p).sum(dim=1).numpy()


@pytest.mark.parametrize("space_name", ["cell", "tree"])
def test_accepted_candidates_fall_as_the_true_class_probability_rises(space_name):
    """For sampled accepted candidates the signed loss falls with q on most of the range, and a
    monotone one is higher at q ~ 0 than at q ~ 1."""
    space = get_space(space_name)
    rng = random.Random(7)
    screen = Screen()
    checked = 0
    while checked < 40:
        verdict = screen.check(space, space.sample(rng))
        if not verdict.accepted:
            continue
        checked += 1
        loss = _two_class_loss(verdict.expression, verdict.sign)
        steps = np.diff(loss)
        moving = np.abs(steps) > 1e-9 * np.maximum(np.abs(loss[1:]), np.abs(loss[:-1]))
        falls, rises = int((steps[moving] < 0).sum()), int((steps[moving] > 0).sum())
        assert falls > rises, verdict
        if rises == 0:
            assert loss[0] > loss[-1], verdict


def test_analyse_curve_rules_on_synthetic_curves():
    """Monotone passes; one turn passes unless within 0.01 of q=0.5; two turns, more than 10
    flat steps or a constant fail. Sweep index 0 is q ~ 1."""
    q = probe.curve_q()
    assert probe.analyse_curve(-np.log(q)).problem == ""
    assert probe.analyse_curve(-np.log(q)).sign == 1.0
    assert probe.analyse_curve(np.log(q)).sign == -1.0
    u_at_03 = (q - 0.3) ** 2  # falls with q on [0, 0.3], rises on [0.3, 1]: larger part rises
    shape = probe.analyse_curve(u_at_03)
    assert (shape.problem, shape.sign) == ("", -1.0) and abs(shape.turning_q - 0.3) < 0.002
    assert probe.analyse_curve((q - 0.7) ** 2).sign == 1.0
    assert probe.analyse_curve((q - 0.505) ** 2).problem == "bad_shape"
    assert probe.analyse_curve((q - 0.52) ** 2).problem == ""
    assert probe.analyse_curve(np.sin(10 * q)).problem == "bad_shape"
    assert probe.analyse_curve(np.full_like(q, 3.0)).problem == "constant"
    ten_flat = -np.log(q)
    ten_flat[500:511] = ten_flat[500]
    assert probe.analyse_curve(ten_flat).flat_steps == 10
    assert probe.analyse_curve(ten_flat).problem == ""
    eleven_flat = -np.log(q)
    eleven_flat[500:512] = eleven_flat[500]
    assert probe.analyse_curve(eleven_flat).problem == "flat"


def test_probe_evaluation_equals_compiled_expression():
    """The probe's fast evaluator gives exactly what compile_elementwise gives, for random trees."""
    y, p = probe.probe_inputs()
    for seed in range(100):
        tree = ref.random_tree(random.Random(seed), max_depth=5)
        with torch.no_grad():
            want = compile_elementwise(tree)(y, p).numpy()
        np.testing.assert_array_equal(probe.evaluate(tree), want, err_msg=str(tree))


def test_probe_inputs_are_not_modified_by_evaluation():
    """Evaluating expressions never writes into the shared probe tensors."""
    y, p = (t.clone() for t in probe.probe_inputs())
    for text in ("max0(p)", "abs(y)", "neg(mul(y, log(p)))", "min(y, p)"):
        Screen(dedupe=False).check_tree(text)
    assert torch.equal(y, probe.probe_inputs()[0]) and torch.equal(p, probe.probe_inputs()[1])


def test_rebuild_reproduces_duplicate_rejections():
    """A screen rebuilt from the accepted expressions rejects exactly what the original does."""
    space = get_space("cell")
    rng = random.Random(3)
    original = Screen()
    accepted = []
    while len(accepted) < 30:
        verdict = original.check(space, space.sample(rng))
        if verdict.accepted:
            accepted.append(verdict.expression)
    rebuilt = Screen.rebuild(accepted)
    assert len(rebuilt) == len(original) == 30
    for text in accepted:
        assert rebuilt.check_tree(text, record=False).reason == Reason.DUPLICATE
    for _ in range(100):
        genome = space.sample(rng)
        a = original.check(space, genome, record=False)
        b = rebuilt.check(space, genome, record=False)
        assert (a.accepted, a.reason, a.sign) == (b.accepted, b.reason, b.sign)


def test_add_marks_an_expression_seen():
    """add() makes the expression and its curve duplicates without counting anything."""
    screen = Screen()
    screen.add(CE)
    screen.add(CE)
    assert len(screen) == 1 and screen.counts == {}
    assert screen.check_tree(CE).reason == Reason.DUPLICATE
    assert screen.check_tree("mul(y, log(p))").reason == Reason.DUPLICATE_CURVE


def test_counts_are_a_copy():
    """Changing the returned counts does not change the screen's."""
    screen = Screen()
    screen.check_tree("log(p)")
    screen.counts["missing_y"] = 99
    assert screen.counts == {"missing_y": 1}


def test_fingerprint_index_agrees_with_brute_force():
    """The sketch-pruned index finds a neighbour within tolerance exactly when one exists."""
    rng = np.random.default_rng(0)
    base = rng.random((300, 2 * probe.CURVE_POINTS)).astype(np.float32)
    index = FingerprintIndex()
    for row in base:
        index.add(row)
    tol = 0.01
    for i in range(200):
        query = base[i % 300] + rng.normal(0, 0.011 / np.sqrt(base.shape[1]), base.shape[1])
        query = query.astype(np.float32)
        dist = np.sqrt(((base.astype(np.float64) - query.astype(np.float64)) ** 2).sum(axis=1))
        assert index.within(query, tol) == bool((dist <= tol).any())
    assert not FingerprintIndex().within(base[0], tol)


def test_screening_leaves_global_random_state_alone():
    """Screening touches neither Python's, NumPy's nor torch's global random state."""
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    screen = Screen()
    for text in (CE, "square(sub(p, y))", "mul(y, p)", "log(p)"):
        screen.check_tree(text)
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])
