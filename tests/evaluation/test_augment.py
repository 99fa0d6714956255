"""Augmentations: shapes and dtypes kept, reproducible from their generator, seed-dependent,
and free of host round trips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from nlfs.errors import ConfigError
from nlfs.evaluation.augment import (
    AUGMENTATIONS,
    Augmenter,
    Batch,
    _beta,
    mixed_loss,
    parse_augment,
)

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
    assert torch.equal(first.x, again.x) and float(first.lam) == float(again.lam)
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
    lam = float(batch.lam)
    assert 0.0 < lam < 1.0
    assert torch.allclose(batch.x, lam * x + (1.0 - lam) * x[perm], atol=1e-6)
    # lam recovered independently: the least-squares weight of own against partner pixels
    own, partner, out = x.flatten(), x[perm].flatten(), batch.x.flatten()
    diff = own - partner
    measured = ((out - partner) * diff).sum() / (diff * diff).sum()
    assert measured.item() == pytest.approx(lam, abs=1e-5)


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
    lam = float(batch.lam)
    assert lam == pytest.approx(1.0 - pasted.float().mean().item(), abs=1e-6)  # float32 lam
    assert 0.0 < lam < 1.0, "these seeds paste a box: the checks above are not vacuous"


@pytest.mark.parametrize("lam", [0.3, torch.tensor(0.3)], ids=["float", "tensor"])
def test_mixed_loss_is_the_weighted_sum_and_plain_for_unmixed_batches(lam):
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    a, b = torch.arange(6), torch.arange(6).flip(0)
    mixed = Batch(torch.zeros(6), a, b, lam)
    expected = 0.3 * F.cross_entropy(logits, a) + 0.7 * F.cross_entropy(logits, b)
    value = mixed_loss(F.cross_entropy, logits, mixed)
    assert value.shape == () and torch.allclose(value, expected)
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


@pytest.mark.parametrize("spec", ["mixup", "cutmix"])
def test_mixed_lam_stays_a_tensor_on_the_batch_device(spec):
    batch = run(spec, images(3), seed=0)
    assert isinstance(batch.lam, torch.Tensor) and batch.lam.shape == ()
    assert batch.lam.device == batch.x.device


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0])
def test_beta_draws_follow_beta_and_come_from_the_generator(alpha):
    """Kolmogorov-Smirnov against scipy's Beta(alpha, alpha); same seed, same draws."""
    gen = torch.Generator().manual_seed(5)
    draws = torch.stack([_beta(alpha, gen) for _ in range(2000)])
    again = torch.Generator().manual_seed(5)
    assert torch.equal(draws[:10], torch.stack([_beta(alpha, again) for _ in range(10)]))
    assert stats.kstest(draws.double().numpy(), stats.beta(alpha, alpha).cdf).pvalue > 1e-3


@pytest.fixture
def no_host_reads(monkeypatch):
    """Every way of reading a tensor's value into Python raises: a CPU stand-in for CUDA's
    sync debug mode (a read of a CUDA tensor waits for the device)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a tensor value was read on the host")

    for name in ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)


@pytest.mark.parametrize("spec", ["randaugment+flipcrop+cutout+mixup", "autoaugment+cutmix"])
@pytest.mark.parametrize("channels", [1, 3])
def test_training_augmentations_read_nothing_back_to_the_host(spec, channels, no_host_reads):
    batch = run(spec, images(channels), seed=0, resolution=20)
    assert batch.x.shape == (16, channels, 20, 20)


def test_trivialaugment_reads_nothing_back_to_the_host(no_host_reads):
    run("trivialaugment", images(3), seed=0)


def test_policy_groups_is_accepted_and_policies_are_per_image():
    x = images(3)
    assert torch.equal(
        run("randaugment", x, seed=4, policy_groups=1).x,
        run("randaugment", x, seed=4, policy_groups=16).x,
    )


@pytest.mark.gpu
@pytest.mark.parametrize("spec", ["randaugment+flipcrop+cutout+mixup", "trivialaugment+cutmix"])
def test_cuda_augmentations_never_synchronise(spec):
    """CUDA's sync debug mode turns any wait for the device (a read, a blocking copy) into an
    error; the first call builds the per-device tables and is left out."""
    device = torch.device("cuda")
    x = images(3, n=64, size=32).to(device)
    labels = torch.arange(64, device=device) % 10
    aug = Augmenter(spec, mean=(0.5,) * 3, std=(0.25,) * 3, resolution=80)
    gen = torch.Generator(device=device).manual_seed(0)
    aug(x, labels, gen)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        batch = aug(x, labels, gen)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert batch.x.shape == (64, 3, 80, 80) and batch.x.device.type == "cuda"
