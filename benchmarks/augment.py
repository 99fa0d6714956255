"""Milliseconds per training batch of the augmentation policies: torchvision's loop vs ours.

Issue 11: the paper profile's RandAugment ran torchvision v2 transforms over 8 groups of the
batch (one draw per group, the global generator forked and seeded from ours, host reads for the
seed); :mod:`nlfs.evaluation.randaugment` draws per image on the device and applies a round with
tensor ops. Both are timed here at the paper profile's shape (64 images, upscaled to 80 px and
normalised afterwards) for 28 px grey (Fashion-MNIST) and 32 px RGB (CIFAR-10) batches, beside
the plain upscale+normalise floor, on CPU or CUDA (CUDA timings synchronise once per timed loop,
not per batch). Random images: the cost does not depend on the pixels.

Usage::

    .venv/bin/python benchmarks/augment.py [--device cpu|cuda] [--batches 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from nlfs.evaluation.augment import Augmenter

BATCH = 64
RESOLUTION = 80
SHAPES = {"fmnist 1x28": (1, 28), "cifar 3x32": (3, 32)}
POLICIES = ("randaugment", "trivialaugment", "autoaugment")
OLD_GROUPS = 8  # the paper profile's policy_groups


class TorchvisionLoop(Augmenter):
    """The previous pipeline: a torchvision v2 policy per group of the batch (the baseline)."""

    def __init__(self, spec: str, groups: int, **options) -> None:
        from torchvision.transforms import v2

        super().__init__(spec, **options)
        self.groups = groups
        self.policy = {
            "randaugment": lambda: v2.RandAugment(num_ops=2, magnitude=5),
            "trivialaugment": v2.TrivialAugmentWide,
            "autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10),
        }[spec]()
        self._transform = self.policy
        self.policy = self._grouped

    def _grouped(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        seed = int(torch.randint(2**62, (1,), generator=gen, device=gen.device).item())
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return torch.cat([self._transform(group) for group in x.tensor_split(self.groups)])


def ms_per_batch(augment, images: torch.Tensor, batches: int, device: torch.device) -> float:
    """Mean milliseconds per batch over ``batches`` calls after 3 warm-up calls.

    CUDA: wall time. CPU: this process's CPU time, which other processes sharing the cores do
    not inflate (with one torch thread it is the wall time on an idle core).
    """
    labels = torch.zeros(len(images), dtype=torch.int64, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    for _ in range(3):
        augment(images, labels, gen)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    for _ in range(batches):
        augment(images, labels, gen)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (clock() - start) / batches * 1e3


def measure(device: str = "cpu", batches: int = 50) -> list[dict]:
    """One row per (shape, policy): ms per batch of the old loop over the paper profile's 8
    groups and over every image (what per-image policies cost the old way), of the batched
    policies, and of upscale+normalise alone (the floor)."""
    dev = torch.device(device)
    rows = []
    for shape, (channels, size) in SHAPES.items():
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (BATCH, channels, size, size), generator=gen)
        images = images.to(torch.uint8).to(dev)
        stats = dict(mean=(0.5,) * channels, std=(0.25,) * channels, resolution=RESOLUTION)
        floor = ms_per_batch(Augmenter("none", **stats), images, batches, dev)
        for policy in POLICIES:
            old = ms_per_batch(TorchvisionLoop(policy, OLD_GROUPS, **stats), images, batches, dev)
            per_image = ms_per_batch(
                TorchvisionLoop(policy, BATCH, **stats), images, max(1, batches // 5), dev
            )
            new = ms_per_batch(
                Augmenter(policy, randaugment_magnitude=5, **stats), images, batches, dev
            )
            rows.append(
                dict(
                    shape=shape,
                    policy=policy,
                    old_ms=old,
                    old_per_image_ms=per_image,
                    new_ms=new,
                    floor_ms=floor,
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, batch {BATCH}, upscaled to {RESOLUTION} px, ms per batch")
    for row in measure(args.device, args.batches):
        print(
            f"{row['shape']:<12} {row['policy']:<15} torchvision x{OLD_GROUPS} groups "
            f"{row['old_ms']:7.2f} (per image {row['old_per_image_ms']:7.2f})  batched "
            f"{row['new_ms']:7.2f}  old/new {row['old_ms'] / row['new_ms']:4.1f}x "
            f"(per image {row['old_per_image_ms'] / row['new_ms']:4.1f}x)  upscale+normalise "
            f"only {row['floor_ms']:.2f}"
        )


if __name__ == "__main__":
    main()
