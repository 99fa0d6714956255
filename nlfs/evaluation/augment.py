"""Batch augmentations on the evaluation device, driven by an explicit ``torch.Generator``.

A pipeline is named by augmentation names joined with ``+`` (``"flipcrop+cutout"``); whatever
the order in the name, stages run in this fixed order, each on a float batch ``[N, C, H, W]``:

1. policy (``randaugment``, ``trivialaugment``, ``autoaugment`` with AutoAugment's CIFAR-10
   policy) on images in [0, 1]: every image draws its own operations and magnitudes, applied to
   the whole batch with tensor ops (:mod:`nlfs.evaluation.randaugment`: torchvision v2's
   operations, bins and fill). ``policy_groups`` is accepted for old configurations and has no
   effect: policies are per image;
2. ``flipcrop``: pad 4 (reflect), random crop back to size, random horizontal flip, per sample;
3. upscaling to the profile's resolution (bilinear);
4. normalisation with the dataset's channel mean and standard deviation;
5. ``cutout``: one square per sample set to 0, i.e. the dataset mean (DeVries & Taylor 2017);
6. ``mixup`` (Zhang et al. 2018) or ``cutmix`` (Yun et al. 2019): images mixed with a permuted
   copy of the batch with a weight ``lam`` ~ Beta(alpha, alpha), one ``lam`` per batch.

Mixed targets keep the ``F.cross_entropy(logits, target)`` loss contract: the batch carries two
integer targets and ``lam``, and :func:`mixed_loss` returns
``lam * loss(logits, y_a) + (1 - lam) * loss(logits, y_b)`` (exact for cross-entropy, and the
natural definition for any candidate loss).

Every random draw comes from the generator on the batch's device and nothing is read back to the
host: a mixed batch's ``lam`` stays a 0-d tensor on the device, so a CUDA training step that
augments on the GPU never waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nlfs.errors import ConfigError
from nlfs.evaluation.randaugment import AutoAugment, BatchPolicy, RandAugment, TrivialAugmentWide

POLICIES = ("randaugment", "trivialaugment", "autoaugment")
AUGMENTATIONS = ("none", "flipcrop", "cutout", "mixup", "cutmix", *POLICIES)
CROP_PAD = 4  # pixels of reflect padding before the random crop (the CIFAR standard)


@dataclass(frozen=True)
class Batch:
    """An augmented batch: images, targets and, for mixed batches, second targets and weight.

    ``lam`` is the weight of ``y``: a 0-d float tensor on the images' device for mixed batches
    (read it with ``float(batch.lam)``, which synchronises), 1.0 otherwise.
    """

    x: torch.Tensor
    y: torch.Tensor
    y_mix: torch.Tensor | None = None
    lam: float | torch.Tensor = 1.0


def mixed_loss(loss: Callable, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The loss of a (possibly mixed) batch with any ``F.cross_entropy``-like ``loss``.

    For a mixed batch, ``lam * loss(logits, y) + (1 - lam) * loss(logits, y_mix)``, a 0-d
    tensor on the device of ``batch.lam``.
    """
    if batch.y_mix is None:
        return loss(logits, batch.y)
    return batch.lam * loss(logits, batch.y) + (1.0 - batch.lam) * loss(logits, batch.y_mix)


def parse_augment(spec: str) -> frozenset[str]:
    """The set of augmentation names in ``spec`` (``"a+b"``), validated.

    Raises:
        ConfigError: unknown names (the known ones are listed), or two policies / both mixes.
    """
    names = frozenset(part.strip() for part in spec.split("+") if part.strip()) - {"none"}
    unknown = sorted(names - set(AUGMENTATIONS))
    if unknown:
        raise ConfigError(
            f"unknown augmentation(s) {', '.join(unknown)}; known: {', '.join(AUGMENTATIONS)}"
        )
    if len(names & set(POLICIES)) > 1 or {"mixup", "cutmix"} <= names:
        raise ConfigError(f"augmentation {spec!r}: choose at most one policy and one mix")
    return names


def _randint(high: int, size: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.randint(high, size, generator=gen, device=gen.device)


def _beta(alpha: float, gen: torch.Generator) -> torch.Tensor:
    """One Beta(alpha, alpha) draw, a 0-d tensor on ``gen.device``.

    ``torch.distributions.Beta`` takes no generator; the Dirichlet kernel it samples with does
    (the first coordinate of Dirichlet(alpha, alpha) is Beta(alpha, alpha)), on CPU and CUDA.
    """
    concentration = torch.full((2,), float(alpha), device=gen.device)
    return torch._sample_dirichlet(concentration, generator=gen)[0]


def flip_crop(x: torch.Tensor, gen: torch.Generator, pad: int = CROP_PAD) -> torch.Tensor:
    """Random crop after ``pad`` pixels of reflect padding, then random horizontal flip."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy, dx = _randint(2 * pad + 1, (n,), gen), _randint(2 * pad + 1, (n,), gen)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    flip = _randint(2, (n,), gen).bool()[:, None, None, None]
    return torch.where(flip, out.flip(3), out)


def _boxes(
    n: int, h: int, w: int, size_h: torch.Tensor, size_w: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Boolean masks ``[n, 1, h, w]`` of boxes centred uniformly, clipped at the border."""
    cy = torch.rand(n, generator=gen, device=gen.device) * h
    cx = torch.rand(n, generator=gen, device=gen.device) * w
    ys = torch.arange(h, device=gen.device)[None, :] + 0.5
    xs = torch.arange(w, device=gen.device)[None, :] + 0.5
    in_y = (ys - cy[:, None]).abs() < size_h[..., None] / 2
    in_x = (xs - cx[:, None]).abs() < size_w[..., None] / 2
    return (in_y[:, :, None] & in_x[:, None, :])[:, None]


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one ``size``-pixel square per image (after normalisation: the dataset mean)."""
    n, _, h, w = x.shape
    side = torch.full((n,), float(size), device=x.device)
    return x.masked_fill(_boxes(n, h, w, side, side, gen), 0.0)


def mixup(batch: Batch, alpha: float, gen: torch.Generator) -> Batch:
    """Blend each image with a partner from a permutation of the batch."""
    lam = _beta(alpha, gen)
    perm = torch.randperm(len(batch.x), generator=gen, device=gen.device)
    x = lam * batch.x + (1.0 - lam) * batch.x[perm]
    return Batch(x, batch.y, batch.y[perm], lam)


def cutmix(batch: Batch, alpha: float, gen: torch.Generator) -> Batch:
    """Paste a box of a partner image; ``lam`` is the exact kept area after clipping."""
    n, _, h, w = batch.x.shape
    lam = _beta(alpha, gen)
    perm = torch.randperm(n, generator=gen, device=gen.device)
    side = (1.0 - lam).sqrt().view(1)  # the box's share of each side: area 1 - lam
    box = _boxes(1, h, w, side * h, side * w, gen)
    x = torch.where(box, batch.x[perm], batch.x)
    kept = 1.0 - box.float().mean()  # lam after clipping the box at the border
    return Batch(x, batch.y, batch.y[perm], kept)


def _policy(name: str, ops: int, magnitude: int) -> BatchPolicy:
    if name == "randaugment":
        return RandAugment(ops, magnitude)
    if name == "trivialaugment":
        return TrivialAugmentWide()
    return AutoAugment()


class Augmenter:
    """The augmentation pipeline of a profile, applied to uint8 batches.

    Args:
        spec: names joined by ``+`` (see :data:`AUGMENTATIONS`).
        mean, std: the dataset's per-channel statistics (in [0, 1] units).
        resolution: output side in pixels (None: unchanged).
        randaugment_ops, randaugment_magnitude: RandAugment's N and M.
        policy_groups: accepted for old configurations; no effect (policies are per image).
        cutout_size: Cutout side in input pixels, scaled with the resolution.
        mix_alpha: Beta parameter of Mixup/CutMix.

    Raises:
        ConfigError: unknown or conflicting names, or RandAugment's N or M out of range.
    """

    def __init__(
        self,
        spec: str = "none",
        *,
        mean: tuple[float, ...] = (0.5,),
        std: tuple[float, ...] = (0.5,),
        resolution: int | None = None,
        randaugment_ops: int = 2,
        randaugment_magnitude: int = 9,
        policy_groups: int = 8,
        cutout_size: int = 8,
        mix_alpha: float = 1.0,
    ) -> None:
        self.names = parse_augment(spec)
        self.mean, self.std = mean, std
        self._stats: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.resolution = resolution
        self.policy_groups = policy_groups
        self.cutout_size = cutout_size
        self.mix_alpha = mix_alpha
        policy = self.names & set(POLICIES)
        self.policy = (
            _policy(next(iter(policy)), randaugment_ops, randaugment_magnitude) if policy else None
        )

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images to float in [0, 1], upscaled and normalised (no randomness: eval)."""
        return self._normalise(self._upscale(images.float() / 255.0))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> Batch:
        """Augment a uint8 training batch; every random draw comes from ``gen``."""
        return self.mix(Batch(self.images(images, gen), labels), gen)

    def images(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The per-image stages (policy, flip-crop, upscaling, normalisation, Cutout) of uint8
        ``images``: any number of images at once, e.g. several steps' batches in one call."""
        x = images.float() / 255.0
        in_size = x.shape[-1]
        if self.policy is not None:
            x = self.policy(x, gen)
        if "flipcrop" in self.names:
            x = flip_crop(x, gen)
        x = self._normalise(self._upscale(x))
        if "cutout" in self.names:
            x = cutout(x, max(1, round(self.cutout_size * x.shape[-1] / in_size)), gen)
        return x

    def mix(self, batch: Batch, gen: torch.Generator) -> Batch:
        """Mixup or CutMix of one training batch (partners drawn within the batch)."""
        if "mixup" in self.names:
            return mixup(batch, self.mix_alpha, gen)
        if "cutmix" in self.names:
            return cutmix(batch, self.mix_alpha, gen)
        return batch

    def _upscale(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolution is None or self.resolution == x.shape[-1]:
            return x
        size = (self.resolution, self.resolution)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        if key not in self._stats:  # built once per device: no host-to-device copy per batch
            self._stats[key] = tuple(
                torch.tensor(v, device=x.device, dtype=x.dtype)[None, :, None, None]
                for v in (self.mean, self.std)
            )
        mean, std = self._stats[key]
        return (x - mean) / std
