"""Fidelity profiles: every number of the training recipe, read from ``configs/profiles/``.

A profile is a named configuration, not a code path (docs/architecture.md): ``micro`` trains in
seconds on a laptop CPU, ``quick`` in about a minute, ``paper`` is the paper's surrogate (section
5) for a GPU. Transfer and elimination derive variants with ``dataclasses.replace(profile,
model=..., dataset=..., augment=..., steps=..., resolution=...)``; the evaluator rebuilds whatever
depends on those fields.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from nlfs.config import build, load_toml, resolve_config
from nlfs.errors import ConfigError


@dataclass(frozen=True)
class Profile:
    """One training recipe. Steps and sizes are counts; times are seconds.

    Attributes:
        name: the profile's name, recorded with every result.
        dataset: dataset name (see :data:`nlfs.evaluation.data.DATASETS`).
        train_size: train on a seeded subset of this many images (None: all that remain).
        val_size: size of the seeded held-out validation slice of the training set.
        test_size: evaluate on a seeded subset of the test set for ``split="test"`` (None: all).
        split_seed: seed of the validation slice and subsets; fixed per profile so every
            candidate is measured on the same images.
        model: architecture name (see :func:`nlfs.evaluation.models.model_names`).
        width: base channel count for the hand-written surrogates (tiny/small CNN, ResNet-9).
        dropout: dropout before the classifier (where the model has one).
        resolution: upscale images to this many pixels a side (None: native size).
        augment: augmentation names joined by ``+`` (see
            :data:`nlfs.evaluation.augment.AUGMENTATIONS`).
        randaugment_ops: RandAugment's number of operations N.
        randaugment_magnitude: RandAugment's magnitude M (0 to 30).
        policy_groups: accepted for old configurations; no effect (RandAugment,
            TrivialAugment and AutoAugment draw their operations per image).
        augment_chunk: the per-image augmentations of this many steps' batches run in one call
            (their fixed cost is paid once per chunk; the draws differ with the chunk size).
        cutout_size: side of the Cutout square in native pixels (scaled with ``resolution``).
        mix_alpha: Beta(alpha, alpha) parameter of Mixup and CutMix.
        batch_size: training batch size.
        eval_batch_size: batch size for validation/test passes.
        steps: optimiser steps.
        lr: Adam's peak learning rate.
        warmup_steps: linear warm-up steps before the cosine decay.
        weight_decay: Adam's (coupled, L2) weight decay.
        eval_every: evaluate every this many steps (and after the last step).
        min_train_acc: give up (state diverged) when the training accuracy is below this...
        give_up_after: ...at the first evaluation at or after this step (None: never).
        time_limit_s: wall-clock limit per candidate in seconds (None: none); state timeout.
        compile: ``torch.compile`` the model (CUDA only).
        channels_last: channels-last memory format for one candidate at a time (CUDA and CPU;
            stacked groups take contiguous inputs).
        bf16: bfloat16 autocast (CUDA only).
        cuda_graph: capture the training step in a CUDA graph and replay it (CUDA only; not
            with ``compile``); a step that cannot be captured runs eagerly, and the result's
            message says why.
    """

    name: str
    dataset: str = "fashion-mnist"
    train_size: int | None = None
    val_size: int = 5000
    test_size: int | None = None
    split_seed: int = 0
    model: str = "tiny_cnn"
    width: int = 16
    dropout: float = 0.0
    resolution: int | None = None
    augment: str = "none"
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    policy_groups: int = 8
    augment_chunk: int = 16
    cutout_size: int = 8
    mix_alpha: float = 1.0
    batch_size: int = 128
    eval_batch_size: int = 1000
    steps: int = 200
    lr: float = 1e-3
    warmup_steps: int = 0
    weight_decay: float = 0.0
    eval_every: int = 50
    min_train_acc: float = 0.0
    give_up_after: int | None = None
    time_limit_s: float | None = None
    compile: bool = False
    channels_last: bool = True
    bf16: bool = True
    cuda_graph: bool = True

    def __post_init__(self) -> None:
        positive = (
            "val_size",
            "batch_size",
            "eval_batch_size",
            "steps",
            "eval_every",
            "policy_groups",
            "augment_chunk",
        )
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"profile {self.name!r}: {key} must be at least 1")
        for key in ("train_size", "test_size", "resolution", "time_limit_s"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise ConfigError(f"profile {self.name!r}: {key} must be positive or absent")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"profile {self.name!r}: dropout must be in [0, 1)")
        if self.lr <= 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ConfigError(
                f"profile {self.name!r}: lr > 0, warmup_steps >= 0, weight_decay >= 0 are required"
            )


ADDED_LATER = ("augment_chunk", "cuda_graph")
"""Fields added after studies were first stored with profiles (session 3, 2026-11-30)."""


def profile_data(profile: Profile) -> dict:
    """The profile as plain data, for job settings and configuration hashes.

    Fields of :data:`ADDED_LATER` are left out while they hold their default, so a study stored
    before they existed keeps its hash and its job ids, and resumes instead of being refused.
    """
    data = dataclasses.asdict(profile)
    for name in ADDED_LATER:
        if data[name] == _DEFAULTS[name]:
            del data[name]
    return data


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Load a profile by name (``micro`` -> ``configs/profiles/micro.toml``) or path.

    The file's keys are :class:`Profile`'s fields; ``name`` defaults to the file's stem.

    Raises:
        ConfigError: unknown profile, unknown key (the valid keys are listed) or bad value.
    """
    path = resolve_config(name_or_path, "profiles")
    table = dict(load_toml(path))
    table.setdefault("name", path.stem)
    return build(Profile, table, where=f"profile {path.name}")


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Profile)}
