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


def mixed(spec: str, seed: int) -> tuple[torch.Tensor, Batch, torch.Tensor]:
    """Mix 8 random 3-channel images labelled 0..7 (unnormalised: mean 0, std 1).

    Returns the images as floats, the mixed batch and the permutation its second targets
    name (a label is the index of its image, so ``y_mix`` is the partner of each image).
    """
    gen = torch.Generator().manual_seed(100 + seed)
    x = torch.randint(0, 256, (8, 3, 10, 12), generator=gen, dtype=torch.uint8)
    labels = torch.arange(8)
    batch = Augmenter(spec, mean=(0.0,) * 3, std=(1.0,) * 3)(
        x, labels, torch.Generator().manual_seed(seed)
    )
    assert torch.equal(batch.y, labels)
    assert batch.y_mix is not None and torch.equal(batch.y_mix.sort().values, labels)
    return x.float() / 255.0, batch, batch.y_mix


@pytest.mark.parametrize("seed", range(4))
def test_mixup_blends_each_image_with_the_partner_its_second_target_names(seed):
    """Every pixel is lam * own + (1 - lam) * partner's, partner = the image labelled y_mix,
    and lam measured from the pixels alone matches the batch's."""
    x, batch, perm = mixed("mixup", seed)
    assert 0.0 < batch.lam < 1.0
    assert torch.allclose(batch.x, batch.lam * x + (1.0 - batch.lam) * x[perm], atol=1e-6)
    # lam recovered independently: the least-squares weight of own against partner pixels
    own, partner, out = x.flatten(), x[perm].flatten(), batch.x.flatten()
    diff = own - partner
    measured = ((out - partner) * diff).sum() / (diff * diff).sum()
    assert measured.item() == pytest.approx(batch.lam, abs=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_cutmix_pastes_one_box_from_the_named_partner_and_lam_is_the_kept_area(seed):
    """Each pixel is either every image's own or every image's partner's (the image labelled
    y_mix); the partner's pixels form one rectangle, and lam = 1 - its share of the image."""
    x, batch, perm = mixed("cutmix", seed)
    own = (batch.x == x).flatten(0, 1).all(0)
    partner = (batch.x == x[perm]).flatten(0, 1).all(0)
    assert bool((own | partner).all()), "a pixel came from neither image"
    pasted = ~own  # random images: a pixel equal in both images of all pairs is unlikely
    rows, cols = pasted.any(1), pasted.any(0)
    assert torch.equal(pasted, rows[:, None] & cols[None, :]), "the pasted region is no box"
    assert batch.lam == pytest.approx(1.0 - pasted.float().mean().item(), abs=1e-9)
    assert 0.0 < batch.lam < 1.0, "these seeds paste a box: the checks above are not vacuous"


def test_mixed_loss_is_the_weighted_sum_and_plain_for_unmixed_batches():
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    a, b = torch.arange(6), torch.arange(6).flip(0)
    mixed = Batch(torch.zeros(6), a, b, 0.3)
    expected = 0.3 * F.cross_entropy(logits, a) + 0.7 * F.cross_entropy(logits, b)
    assert torch.allclose(mixed_loss(F.cross_entropy, logits, mixed), expected)
    assert torch.equal(
        mixed_loss(F.cross_entropy, logits, Batch(torch.zeros(6), a)), F.cross_entropy(logits, a)
    )


def test_unknown_or_conflicting_names_are_config_errors():
    with pytest.raises(ConfigError, match="known: none"):
        parse_augment("flipcrop+blur")
    with pytest.raises(ConfigError, match="at most one"):
        parse_augment("randaugment+autoaugment")
    with pytest.raises(ConfigError):
        parse_augment("mixup+cutmix")
    assert parse_augment("none") == frozenset()
