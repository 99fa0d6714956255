"""Batched RandAugment/TrivialAugment/AutoAugment: torchvision's ops and bins, our generator.

References: torchvision.transforms.v2.functional (each op on fixed parameters), torchvision's
own magnitude bins and AutoAugment table, PIL's ``ImageOps.equalize``, and scipy's chi-square
test for the draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from nlfs.errors import ConfigError
from nlfs.evaluation.data import load_dataset
from nlfs.evaluation.randaugment import (
    CIFAR10_POLICY,
    OPS,
    SIGNED,
    AutoAugment,
    RandAugment,
    TrivialAugmentWide,
    apply_ops,
    magnitude_table,
)

NEAREST = InterpolationMode.NEAREST
EXACT = {"Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Posterize"}
EXACT |= {"Solarize", "AutoContrast", "Equalize", "Invert"}
BLEND_ATOL = 1e-6
"""The enhance ops compute x + (1 - f) (d - x) where torchvision computes f x + (1 - f) d (and
fuses differently): equal in exact arithmetic, a few float32 ulps (1.2e-7 at 1.0) apart."""


def reference(x: torch.Tensor, name: str, m: float) -> torch.Tensor:
    """torchvision's op ``name`` at magnitude ``m``, called as v2's ``_auto_augment.py`` does."""
    affine = dict(angle=0.0, translate=[0, 0], scale=1.0, shear=[0.0, 0.0], interpolation=NEAREST)
    shear = math.degrees(math.atan(m))
    calls = {
        "Identity": lambda: x,
        "ShearX": lambda: TF.affine(x, **{**affine, "shear": [shear, 0.0]}, center=[0, 0]),
        "ShearY": lambda: TF.affine(x, **{**affine, "shear": [0.0, shear]}, center=[0, 0]),
        "TranslateX": lambda: TF.affine(x, **{**affine, "translate": [int(m), 0]}),
        "TranslateY": lambda: TF.affine(x, **{**affine, "translate": [0, int(m)]}),
        "Rotate": lambda: TF.rotate(x, angle=m, interpolation=NEAREST),
        "Brightness": lambda: TF.adjust_brightness(x, 1.0 + m),
        "Color": lambda: TF.adjust_saturation(x, 1.0 + m),
        "Contrast": lambda: TF.adjust_contrast(x, 1.0 + m),
        "Sharpness": lambda: TF.adjust_sharpness(x, 1.0 + m),
        "Posterize": lambda: TF.posterize(x, int(m)),
        "Solarize": lambda: TF.solarize(x, m),
        "AutoContrast": lambda: TF.autocontrast(x),
        "Equalize": lambda: TF.equalize(x),
        "Invert": lambda: TF.invert(x),
    }
    return calls[name]()


@pytest.fixture(scope="module")
def fashion() -> torch.Tensor:
    """16 Fashion-MNIST training images as floats in [0, 1]."""
    return load_dataset("fashion-mnist").train_x[:16].float() / 255.0


def colour_images(n: int = 6, size: int = 20) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (n, 3, size, size), generator=gen).float() / 255.0


def magnitudes(name: str, h: int, w: int) -> list[float]:
    """Every bin of RandAugment's and TrivialAugmentWide's tables, both signs where signed."""
    row = OPS.index(name)
    values = {0.0}
    for wide in (False, True):
        values |= set(magnitude_table(31, h, w, wide)[row].tolist())
    return sorted(values | {-v for v in values} if name in SIGNED else values)


def check_op(x: torch.Tensor, name: str) -> None:
    """Ours on one batch holding every magnitude's copy of ``x``, torchvision magnitude by
    magnitude."""
    values = magnitudes(name, x.shape[-2], x.shape[-1])
    n = len(x)
    m = torch.tensor(values, dtype=torch.float32).repeat_interleave(n)
    ours = apply_ops(x.repeat(len(values), 1, 1, 1), torch.full((len(m),), OPS.index(name)), m)
    for k, value in enumerate(values):
        theirs = reference(x, name, value)
        if name in EXACT:
            assert torch.equal(ours[k * n : (k + 1) * n], theirs), f"{name} at {value}"
        else:
            torch.testing.assert_close(
                ours[k * n : (k + 1) * n], theirs, atol=BLEND_ATOL, rtol=0, msg=f"{name} at {value}"
            )


@pytest.mark.fmnist
@pytest.mark.parametrize("name", OPS)
def test_each_op_equals_torchvision_on_fashion_mnist_at_every_bin(fashion, name):
    """Exact for geometry (same matrices, nearest sampling) and the pointwise ops."""
    check_op(fashion, name)


@pytest.mark.parametrize("name", OPS)
def test_each_op_equals_torchvision_on_colour_images_at_every_bin(name):
    check_op(colour_images(), name)


@pytest.mark.parametrize("channels", [1, 3])
def test_each_image_gets_its_own_op_and_magnitude(channels):
    """A batch of mixed draws equals torchvision applied image by image."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (64, channels, 16, 16), generator=gen).float() / 255.0
    ops = torch.arange(64) % len(OPS)
    table = magnitude_table(31, 16, 16, wide=True)
    m = table[ops, torch.randint(31, (64,), generator=gen)]
    signed = torch.tensor([OPS[i] in SIGNED for i in ops.tolist()])
    m = torch.where(signed & (torch.rand(64, generator=gen) < 0.5), -m, m)
    out = apply_ops(x, ops, m)
    for i, (op, value) in enumerate(zip(ops.tolist(), m.tolist(), strict=True)):
        expected = reference(x[i : i + 1], OPS[op], value)
        torch.testing.assert_close(out[i : i + 1], expected, atol=BLEND_ATOL, rtol=0)


@pytest.mark.fmnist
def test_equalize_matches_pil(fashion):
    """PIL's ImageOps.equalize is the rule torchvision's kernel follows (independent check)."""
    out = apply_ops(fashion, torch.full((16,), OPS.index("Equalize")), torch.zeros(16))
    pixels = (fashion * 255).round().to(torch.uint8).numpy()
    expected = np.stack(
        [np.asarray(ImageOps.equalize(Image.fromarray(p[0])))[None] for p in pixels]
    )
    assert torch.equal((out * 255).round().to(torch.uint8), torch.from_numpy(expected))


@pytest.mark.parametrize("size", [(28, 28), (32, 32), (20, 36)])
def test_magnitude_bins_are_torchvisions(size):
    h, w = size
    for policy, bins, wide in [
        (v2.RandAugment, 31, False),
        (v2.TrivialAugmentWide, 31, True),
        (v2.AutoAugment, 10, False),
    ]:
        table = magnitude_table(bins, h, w, wide)
        for name, (values, signed) in policy._AUGMENTATION_SPACE.items():
            expected = values(bins, h, w)
            row = table[OPS.index(name)]
            assert (name in SIGNED) == signed, name
            if expected is None:
                assert torch.equal(row, torch.zeros(bins)), name
            else:
                assert torch.equal(row, expected.float()), name


def test_autoaugment_table_is_torchvisions_cifar10_policy():
    theirs = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)._policies
    assert [tuple(pair) for pair in theirs] == list(CIFAR10_POLICY)


POLICIES = {
    "randaugment": lambda: RandAugment(2, 9),
    "trivialaugment": TrivialAugmentWide,
    "autoaugment": AutoAugment,
}


@pytest.mark.parametrize("policy", POLICIES)
def test_draws_come_from_the_generator(policy):
    x = colour_images(32)
    augment = POLICIES[policy]()
    first = augment(x, torch.Generator().manual_seed(1))
    state = torch.random.get_rng_state()
    again = augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.random.get_rng_state()), "the global generator was used"
    assert torch.equal(first, again)
    assert not torch.equal(first, augment(x, torch.Generator().manual_seed(2)))


def chi_square_p(observed: torch.Tensor, expected: np.ndarray) -> float:
    return stats.chisquare(
        observed.numpy(), expected * observed.sum().item() / expected.sum()
    ).pvalue


def test_randaugment_draws_ops_uniformly_with_fair_signs_at_its_bin():
    rounds = RandAugment(2, 5).draw(20_000, 28, 28, torch.Generator().manual_seed(0))
    assert len(rounds) == 2
    table = magnitude_table(31, 28, 28)
    for op, m in rounds:
        counts = torch.bincount(op, minlength=len(OPS))
        assert counts[OPS.index("Invert")] == 0, "RandAugment has no Invert"
        assert chi_square_p(counts[:-1], np.ones(len(OPS) - 1)) > 1e-3
        assert torch.equal(m.abs(), table[op, 5].abs())
        signed = torch.tensor([OPS[i] in SIGNED for i in op.tolist()])
        negative = int((m[signed] < 0).sum())
        assert stats.binomtest(negative, int(signed.sum()), 0.5).pvalue > 1e-3
        assert bool((m[~signed] >= 0).all())


def test_trivialaugment_draws_op_and_bin_uniformly():
    (op, m), *rest = TrivialAugmentWide().draw(20_000, 32, 32, torch.Generator().manual_seed(0))
    assert not rest
    assert chi_square_p(torch.bincount(op, minlength=len(OPS))[:-1], np.ones(len(OPS) - 1)) > 1e-3
    rotate = op == OPS.index("Rotate")
    bins = (m[rotate].abs() / 4.5).round().long()  # Rotate's wide bins: 0, 4.5, ..., 135 degrees
    assert chi_square_p(torch.bincount(bins, minlength=31), np.ones(31)) > 1e-3


def test_autoaugment_op_frequencies_follow_the_cifar10_policy():
    """Expected counts from torchvision's table: sub-policy 1/25, each step with its p."""
    theirs = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)._policies
    n = 40_000
    rounds = AutoAugment().draw(n, 32, 32, torch.Generator().manual_seed(0))
    for step, (op, _) in enumerate(rounds):
        expected = np.zeros(len(OPS))
        for pair in theirs:
            name, p, _ = pair[step]
            expected[OPS.index(name)] += p / len(theirs)
            expected[0] += (1 - p) / len(theirs)
        seen = expected > 0
        counts = torch.bincount(op, minlength=len(OPS))
        assert int(counts[~torch.from_numpy(seen)].sum()) == 0
        assert chi_square_p(counts[seen], expected[seen]) > 1e-3


def test_bad_randaugment_settings_are_config_errors():
    with pytest.raises(ConfigError, match="magnitude in 0..30"):
        RandAugment(2, 31)
    with pytest.raises(ConfigError, match="num_ops"):
        RandAugment(-1, 5)


GPU_FLIPS = 1e-3
"""Share of pixels a geometric op may differ by on CUDA: its kernels may round the sampling
coordinates differently from torchvision's, which moves a point lying on a pixel boundary by
one pixel under nearest sampling."""


@pytest.mark.gpu
@pytest.mark.parametrize("name", OPS)
def test_each_op_equals_torchvision_on_cuda(name):
    x = colour_images(16, 32).cuda()
    values = magnitudes(name, 32, 32)
    m = torch.tensor(values, dtype=torch.float32).repeat_interleave(16).cuda()
    ours = apply_ops(x.repeat(len(values), 1, 1, 1), torch.full_like(m, OPS.index(name)).long(), m)
    theirs = torch.cat([reference(x, name, value) for value in values])
    if name in {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}:
        assert (ours != theirs).float().mean().item() <= GPU_FLIPS
    elif name in EXACT:
        assert torch.equal(ours, theirs)
    else:
        torch.testing.assert_close(ours, theirs, atol=BLEND_ATOL, rtol=0)
