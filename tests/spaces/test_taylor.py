"""The taylor space: TaylorGLO's polynomial against hand and sympy derivations, its genome rules,
its encoding, screening and export. The SearchSpace contract runs over it in
test_space_contract.py (every registered space)."""

from __future__ import annotations

import importlib.util
import math
import random

import pytest
import sympy
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nlfs.errors import ConfigError
from nlfs.experiments.arms import base_table, variant_arms
from nlfs.losses.compile import compile_elementwise
from nlfs.losses.export import write_module
from nlfs.losses.expressions import ParseError, canonical, parse
from nlfs.screening.screen import Screen
from nlfs.spaces import InvalidGenome, get_space
from nlfs.spaces.taylor import NAMES, TaylorSpace

SPACE = TaylorSpace()
MSE = (0.0, 0.0, 0.0, 2.0, 0.0, -2.0, 0.0, 0.0)
"""Centre (0, 0), d2f/dp2 = 2, d2f/dydp = -2: the Taylor polynomial of (y - p)^2 without y^2."""


def values(space: TaylorSpace, genome, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The genome's elementwise polynomial f(y, p), through its canonical text."""
    return compile_elementwise(parse(space.canonical(genome)))(y, p)


def grid(n: int = 41) -> tuple[torch.Tensor, torch.Tensor]:
    """y and p over [-0.5, 1.5]^2 (beyond the one-hot and simplex values, so every term shows)."""
    axis = torch.linspace(-0.5, 1.5, n, dtype=torch.float64)
    y, p = torch.meshgrid(axis, axis, indexing="ij")
    return y.flatten(), p.flatten()


def test_mse_coefficients_give_squared_error_minus_y_squared():
    """Hand derivation: (y - p)^2 = y^2 - 2yp + p^2 at centre (0, 0) has f_pp = 2, f_yp = -2,
    every other p-derivative 0; dropping the y-only term leaves p^2 - 2yp exactly."""
    y, p = grid()
    torch.testing.assert_close(values(SPACE, MSE, y, p), (y - p) ** 2 - y**2)


def test_mse_taylor_loss_is_the_squared_error_of_softmax_less_one():
    """Compiled with F.cross_entropy's signature: mean_b sum_c (y - p)^2 - 1 (one-hot y)."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 10, generator=gen) * 3
    target = torch.randint(0, 10, (32,), generator=gen)
    p = torch.softmax(logits, dim=-1)
    y = F.one_hot(target, 10).float()
    expected = ((y - p) ** 2).sum(-1) - 1.0
    loss = SPACE.compile(MSE)
    torch.testing.assert_close(loss(logits, target, reduction="none"), expected)
    torch.testing.assert_close(loss(logits, target), expected.mean())


def _sympy_taylor_genome(g: sympy.Expr, a: float, b: float) -> tuple[float, ...]:
    """TaylorGLO's theta of g(y, p) around (a, b): the p-involving partial derivatives."""
    y, p = sympy.symbols("y p")
    at = {y: a, p: b}
    orders = [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 1)]  # (y order, p order): theta2..7
    return (a, b, *(float(sympy.diff(g, y, i, p, j).subs(at)) for i, j in orders))


CROSS_ENTROPY = ("cross_entropy", lambda y, p: -y * sympy.log(p))
EXPONENTIAL = ("exp(y - 2p)", lambda y, p: sympy.exp(y - 2 * p))  # every theta2..7 non-zero


@pytest.mark.parametrize(
    "function, centre",
    [
        (CROSS_ENTROPY, (1.0, 0.5)),
        (CROSS_ENTROPY, (0.5, 0.5)),
        (CROSS_ENTROPY, (1.0, 1.0)),
        (CROSS_ENTROPY, (0.0, 0.25)),
        (EXPONENTIAL, (0.0, 0.0)),
        (EXPONENTIAL, (0.5, 0.25)),
    ],
    ids=lambda v: v[0] if isinstance(v[0], str) else str(v),
)
def test_coefficients_from_sympy_derivatives_give_sympys_third_order_expansion(function, centre):
    """theta from sympy's derivatives of g; the polynomial equals sympy's full third-order
    Taylor polynomial of g less its y-only part (its value at p = centre)."""
    y, p = sympy.symbols("y p")
    g = function[1](y, p)
    a, b = centre
    theta = _sympy_taylor_genome(g, a, b)
    space = TaylorSpace(bound=50.0)
    genome = space.make(theta)
    assert genome == theta  # the chosen centres give coefficients on the grid
    taylor = sum(
        sympy.diff(g, y, i, p, j).subs({y: a, p: b})
        * (y - a) ** i
        * (p - b) ** j
        / (math.factorial(i) * math.factorial(j))
        for i in range(4)
        for j in range(4 - i)
    )
    reference = sympy.lambdify((y, p), sympy.expand(taylor - taylor.subs(p, b)), "math")
    ys, ps = grid(9)
    expected = [float(reference(u, v)) for u, v in zip(ys.tolist(), ps.tolist(), strict=True)]
    torch.testing.assert_close(values(space, genome, ys, ps), torch.tensor(expected).double())


def test_cross_entropy_expansion_by_hand_at_one_half():
    """Hand: d^n/dp^n (-y ln p) = (-1)^n (n-1)! y / p^n and d/dy of it drops y, so around
    (1, 1/2): theta2..7 = -2, 4, -16, -2, 4, 0; near the centre it approximates -y ln p to
    fourth order (here within 1e-3)."""
    theta = (1.0, 0.5, -2.0, 4.0, -16.0, -2.0, 4.0, 0.0)
    space = TaylorSpace(bound=20.0)
    y = torch.tensor([1.0, 1.0, 0.97, 1.02], dtype=torch.float64)
    p = torch.tensor([0.5, 0.55, 0.47, 0.52], dtype=torch.float64)
    # -y ln p, less its y-only Taylor part at p = 1/2: y ln 2.
    exact = -y * torch.log(p) - y * math.log(2.0)
    torch.testing.assert_close(values(space, theta, y, p), exact, atol=1e-3, rtol=0)


def test_screen_accepts_mse_and_fixes_the_sign_of_its_negation():
    """The screen reads a taylor loss like any expression: MSE falls as the true-class
    probability rises (sign +1); the negated coefficients get sign -1."""
    screen = Screen(dedupe=False)
    verdict = screen.check(SPACE, MSE)
    assert verdict.accepted and verdict.sign == 1.0
    negated = SPACE.make([MSE[0], MSE[1], *(-x for x in MSE[2:])])
    verdict = screen.check(SPACE, negated)
    assert verdict.accepted and verdict.sign == -1.0


def test_screen_rejects_a_polynomial_that_ignores_the_target():
    """theta5..7 = 0 leaves a loss of p alone: the same for true and false classes, refused."""
    genome = SPACE.make([0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert not Screen().check(SPACE, genome).accepted


def test_exported_module_equals_the_compiled_loss(tmp_path):
    """nlfs export's standalone module of a taylor loss computes the compiled loss."""
    genome = SPACE.sample(random.Random(5))
    path = write_module(tmp_path / "taylor_loss.py", SPACE.canonical(genome), -1.0)
    spec = importlib.util.spec_from_file_location("taylor_loss", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gen = torch.Generator().manual_seed(1)
    logits, target = torch.randn(16, 5, generator=gen) * 4, torch.randint(0, 5, (16,))
    torch.testing.assert_close(
        module.TaylorLoss(reduction="none")(logits, target),
        SPACE.compile(genome, -1.0)(logits, target, reduction="none"),
    )


# --- genome rules ---------------------------------------------------------------------------


def test_make_rounds_clips_and_normalises_negative_zero():
    """make() puts numbers on the 4-decimal grid, within the bound, without -0.0."""
    genome = TaylorSpace(bound=2.0).make([0.123456, -0.00001, 7, -9.5, 1, -1, 0, 1.99999])
    assert genome == (0.1235, 0.0, 2.0, -2.0, 1.0, -1.0, 0.0, 2.0)
    assert math.copysign(1.0, genome[1]) == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        (0.0,) * 7,
        (0.0,) * 9,
        (0.12345,) + (0.0,) * 7,
        (11.0,) + (0.0,) * 7,
        (math.nan,) + (0.0,) * 7,
        (True,) + (0.0,) * 7,
        [0.0] * 8,
        "0" * 8,
    ],
)
def test_validate_refuses_anything_but_eight_grid_numbers_in_bound(bad):
    """Wrong length, off the grid, out of bound, NaN, booleans, a list or a string: invalid."""
    with pytest.raises(InvalidGenome):
        SPACE.validate(bad)


def test_from_json_refuses_off_grid_data_and_accepts_integers():
    """Stored data must already be a genome; JSON integers are numbers like any other."""
    assert SPACE.from_json([1, 0, 0, 2, 0, -2, 0, 0]) == (1.0, 0.0, 0.0, 2.0, 0.0, -2.0, 0.0, 0.0)
    with pytest.raises(InvalidGenome):
        SPACE.from_json([0.00001] * 8)


def test_from_expression_reads_the_numbers_back_and_refuses_other_expressions():
    """The canonical text gives its genome; others fail: ParseError or not_representable."""
    genome = SPACE.sample(random.Random(2))
    assert SPACE.from_expression(SPACE.canonical(genome)) == genome
    with pytest.raises(ParseError):
        SPACE.from_expression("add(y, log(p))")  # log is not in the taylor vocabulary
    for text in ("mul(y, p)", SPACE.canonical(genome).replace("sub(y", "sub(p", 1)):
        with pytest.raises(InvalidGenome) as info:
            SPACE.from_expression(text)
        assert info.value.reason == "not_representable"
    off_grid = SPACE.canonical(genome).replace(repr(genome[2]), "0.123456", 1)
    with pytest.raises(InvalidGenome):
        SPACE.from_expression(off_grid)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_mutants_stay_in_bound_on_the_grid_and_near_their_parent(seed):
    """A Gaussian mutant validates and moves each number by a few sigma at most."""
    space = TaylorSpace(bound=3.0, sigma=0.1)
    rng = random.Random(seed)
    parent = space.sample(rng)
    child, kind = space.mutate(parent, rng)
    space.validate(child)
    assert kind == "gaussian" and child != parent
    assert max(abs(a - b) for a, b in zip(child, parent, strict=True)) < 0.1 * 7


def test_encoding_is_eight_float_ranges_and_decode_rounds():
    """theta0..7 in [-bound, bound]; decode puts values on the grid and needs every name."""
    specs = TaylorSpace(bound=4.0).encoding()
    assert [s.name for s in specs] == list(NAMES)
    assert all(s.continuous and (s.low, s.high) == (-4.0, 4.0) for s in specs)
    params = {name: 0.333333 for name in NAMES}
    assert SPACE.decode({**params, "generation": 3}) == (0.3333,) * 8
    del params["theta5"]
    with pytest.raises(InvalidGenome, match="theta5"):
        SPACE.decode(params)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"bound": 0.0}, "bound"),
        ({"bound": 1.00001}, "multiple"),
        ({"bound": "10"}, "number"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": True}, "number"),
    ],
)
def test_bad_options_are_config_errors(options, fragment):
    """Options a config can get wrong fail at construction with one line."""
    with pytest.raises(ConfigError, match=fragment):
        get_space("taylor", **options)


def test_canonical_text_is_stable_and_readable():
    """The polynomial's text: the MSE genome, term by term, parses back to itself."""
    text = SPACE.canonical(MSE)
    assert canonical(parse(text)) == text
    assert "div(mul(2.0, square(sub(p, 0.0))), 2.0)" in text
    assert "mul(-2.0, mul(sub(y, 0.0), sub(p, 0.0)))" in text


def test_the_ablation_variant_builds_an_arm_with_the_base_strategy():
    """configs/ablations/taylor.toml over the default config: regevo on the taylor space."""
    table, where = base_table(None)
    (arm,) = variant_arms(["taylor"], table, where, {})
    assert (arm.config.strategy, arm.config.space) == ("regevo", "taylor")
    assert get_space(arm.config.space, **arm.config.space_options).bound == 10.0
