"""Batch augmentations on the evaluation device, driven by an explicit ``torch.Generator``.

A pipeline is named by augmentation names joined with ``+`` (``"flipcrop+cutout"``); whatever
the order in the name, stages run in this fixed order, each on a float batch ``[N, C, H, W]``:

1. policy (``randaugment``, ``trivialaugment``, ``autoaugment``) on images in [0, 1]. These are
   torchvision transforms v2, which draw the operation from the global torch generator and
   apply one draw to a whole tensor. The batch is split into ``policy_groups`` groups, each with
   its own draw (groups = batch size gives per-sample policies), run under
   ``torch.random.fork_rng`` seeded from our generator, so the caller's global state is restored
   and the draws are reproducible from our generator alone;
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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nlfs.errors import ConfigError

POLICIES = ("randaugment", "trivialaugment", "autoaugment")
AUGMENTATIONS = ("none", "flipcrop", "cutout", "mixup", "cutmix", *POLICIES)
CROP_PAD = 4  # pixels of reflect padding before the random crop (the CIFAR standard)


@dataclass(frozen=True)
class Batch:
    """An augmented batch: images, targets and, for mixed batches, second targets and weight."""

    x: torch.Tensor
    y: torch.Tensor
    y_mix: torch.Tensor | None = None
    lam: float = 1.0


def mixed_loss(loss: Callable, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The loss of a (possibly mixed) batch with any ``F.cross_entropy``-like ``loss``."""
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


def _beta(alpha: float, gen: torch.Generator) -> float:
    # torch's Beta sampler takes no generator: draw a seed from ours and use numpy's.
    seed = int(_randint(2**62, (1,), gen).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


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
    scale = float(np.sqrt(1.0 - lam))
    box = _boxes(
        1,
        h,
        w,
        torch.tensor([scale * h], device=gen.device),
        torch.tensor([scale * w], device=gen.device),
        gen,
    )
    x = torch.where(box, batch.x[perm], batch.x)
    kept = 1.0 - box.float().mean().item()
    return Batch(x, batch.y, batch.y[perm], kept)


def _policy_transform(name: str, ops: int, magnitude: int):
    from torchvision.transforms import v2

    if name == "randaugment":
        return v2.RandAugment(num_ops=ops, magnitude=magnitude)
    if name == "trivialaugment":
        return v2.TrivialAugmentWide()
    return v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)


class Augmenter:
    """The augmentation pipeline of a profile, applied to uint8 batches.

    Args:
        spec: names joined by ``+`` (see :data:`AUGMENTATIONS`).
        mean, std: the dataset's per-channel statistics (in [0, 1] units).
        resolution: output side in pixels (None: unchanged).
        randaugment_ops, randaugment_magnitude: RandAugment's N and M.
        policy_groups: groups of the batch drawing separate policy operations.
        cutout_size: Cutout side in input pixels, scaled with the resolution.
        mix_alpha: Beta parameter of Mixup/CutMix.
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
            _policy_transform(next(iter(policy)), randaugment_ops, randaugment_magnitude)
            if policy
            else None
        )

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images to float in [0, 1], upscaled and normalised (no randomness: eval)."""
        return self._normalise(self._upscale(images.float() / 255.0))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> Batch:
        """Augment a uint8 training batch; every random draw comes from ``gen``."""
        x = images.float() / 255.0
        in_size = x.shape[-1]
        if self.policy is not None:
            x = self._apply_policy(x, gen)
        if "flipcrop" in self.names:
            x = flip_crop(x, gen)
        x = self._normalise(self._upscale(x))
        if "cutout" in self.names:
            x = cutout(x, max(1, round(self.cutout_size * x.shape[-1] / in_size)), gen)
        batch = Batch(x, labels)
        if "mixup" in self.names:
            batch = mixup(batch, self.mix_alpha, gen)
        elif "cutmix" in self.names:
            batch = cutmix(batch, self.mix_alpha, gen)
        return batch

    def _apply_policy(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        groups = x.tensor_split(min(self.policy_groups, len(x)))
        seed = int(_randint(2**62, (1,), gen).item())
        # v2 transforms draw from the global CPU generator and accept no other; fork_rng
        # restores the caller's state afterwards (only the CPU one is seeded: torch.manual_seed
        # would also reseed every CUDA device).
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return torch.cat([self.policy(group) for group in groups])

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
