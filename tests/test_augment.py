"""Augmentations: shapes and dtypes kept, reproducible from their generator, seed-dependent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlfs.errors import ConfigError
from nlfs.evaluation.augment import AUGMENTATIONS, Augmenter, Batch, mixed_loss, parse_augment

SPECS = [*AUGMENTATIONS, "flipcrop+cutout", "randaugment+flipcrop+mixup"]


def images(channels: int, n: int = 16, size: int = 12) -> torch.Tensor:
    gen = torch.Generator().manual_seed(channels)
    return torch.randint(0, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8)


def run(spec: str, x: torch.Tensor, seed: int, **options) -> Batch:
    aug = Augmenter(spec, mean=(0.5,) * x.shape[1], std=(0.25,) * x.shape[1], **options)
    labels = torch.arange(len(x)) % 10
    return aug(x, labels, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("spec", SPECS)
def test_augmentation_keeps_shape_and_dtype_and_is_reproducible(spec, channels):
    x = images(channels)
    first, again = run(spec, x, seed=1), run(spec, x, seed=1)
    assert first.x.shape == x.shape and first.x.dtype == torch.float32
    assert first.y.shape == (len(x),)
    assert torch.equal(first.x, again.x) and first.lam == again.lam
    if spec != "none":
        assert not torch.equal(first.x, run(spec, x, seed=2).x), "seed did not matter"


@pytest.mark.parametrize("spec", ["none", "flipcrop+cutout", "trivialaugment"])
def test_upscaling_gives_the_requested_resolution(spec):
    batch = run(spec, images(1), seed=0, resolution=20)
    assert batch.x.shape == (16, 1, 20, 20)


def test_none_only_normalises():
    x = images(3)
    expected = (x.float() / 255.0 - 0.5) / 0.25
    assert torch.allclose(run("none", x, seed=0).x, expected)


@pytest.mark.parametrize("spec", ["randaugment", "autoaugment", "mixup"])
def test_augmentations_leave_the_global_rng_alone(spec):
    state = torch.random.get_rng_state()
    run(spec, images(3), seed=0)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("spec", ["mixup", "cutmix"])
def test_mixes_carry_two_targets_and_a_weight(spec):
    batch = run(spec, images(1), seed=4)
    assert batch.y_mix is not None and 0.0 <= batch.lam <= 1.0


def test_cutmix_weight_is_the_kept_area():
    x = torch.zeros(4, 1, 10, 10, dtype=torch.uint8)
    x[1:] = 255  # sample 0 black, others white
    aug = Augmenter("cutmix", mean=(0.0,), std=(1.0,))
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        batch = aug(x, torch.arange(4), gen)
        pasted = (batch.x != x.float() / 255.0).float()
        kept = 1.0 - pasted.sum() / pasted.numel()
        # pasting from a same-coloured partner changes nothing, so the visible area bounds it
        assert kept >= batch.lam - 1e-6


def test_mixed_loss_is_the_weighted_sum_and_plain_for_unmixed_batches():
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    a, b = torch.arange(6), torch.arange(6).flip(0)
    mixed = Batch(torch.zeros(6), a, b, 0.3)
    expected = 0.3 * F.cross_entropy(logits, a) + 0.7 * F.cross_entropy(logits, b)
    assert torch.allclose(mixed_loss(F.cross_entropy, logits, mixed), expected)
    assert torch.equal(mixed_loss(F.cross_entropy, logits, Batch(torch.zeros(6), a)),
                       F.cross_entropy(logits, a))


def test_unknown_or_conflicting_names_are_config_errors():
    with pytest.raises(ConfigError, match="known: none"):
        parse_augment("flipcrop+blur")
    with pytest.raises(ConfigError, match="at most one"):
        parse_augment("randaugment+autoaugment")
    with pytest.raises(ConfigError):
        parse_augment("mixup+cutmix")
    assert parse_augment("none") == frozenset()
