"""The training loop of one candidate: the paper's recipe with every number from the profile.

Adam, linear warm-up then cosine decay per step, a fixed number of steps and batch size, an
evaluation every ``eval_every`` steps; fitness is the best evaluation accuracy. The loop stops at
once on a non-finite loss or gradient (``nan``), gives up when the training accuracy is still
under ``min_train_acc`` at the first evaluation from step ``give_up_after`` (``diverged``), and
stops when the wall-clock deadline passes (``timeout``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nlfs.evaluation.augment import Augmenter, mixed_loss
from nlfs.evaluation.data import Split
from nlfs.evaluation.profiles import Profile
from nlfs.evaluation.results import Monitor, State


@dataclass(frozen=True)
class Outcome:
    """What the loop reached: state, accuracies, steps done, a message and the history."""

    state: State
    best_acc: float | None
    final_acc: float | None
    steps: int
    message: str = ""
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate for 0-based ``step``: linear warm-up, then cosine
    from 1 to 0 over the remaining steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when the profile asks for it; nothing elsewhere."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def accuracy(
    model: Callable,
    augmenter: Augmenter,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    amp: Callable[[], contextlib.AbstractContextManager],
    channels_last: bool = False,
) -> float:
    """Top-1 accuracy of ``model`` on uint8 ``images`` (upscaled and normalised, no
    augmentation), computed in batches; the count stays on the device until the end."""
    correct = torch.zeros((), dtype=torch.int64, device=labels.device)
    for start in range(0, len(images), batch_size):
        x = augmenter.prepare(images[start : start + batch_size])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with amp():
            logits = model(x)
        correct += (logits.argmax(dim=1) == labels[start : start + batch_size]).sum()
    return correct.item() / len(images)


def train(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    split: Split,
    augmenter: Augmenter,
    profile: Profile,
    *,
    data_gen: torch.Generator,
    aug_gen: torch.Generator,
    deadline: float,
    monitor: Monitor | None = None,
) -> Outcome:
    """Train ``model`` (called through ``forward``, e.g. its compiled version) with ``loss``.

    Args:
        model: the freshly initialised model (its parameters are optimised).
        forward: the callable used for forward passes.
        loss: any module with the ``F.cross_entropy(logits, target)`` signature.
        split: training and evaluation images on the device.
        augmenter: the profile's augmentation pipeline.
        data_gen: draws the data order (same seed, same order, whatever the loss).
        aug_gen: draws the augmentations.
        deadline: ``time.perf_counter()`` value after which the run stops (state timeout).
        monitor: sees each evaluation point and may stop the run there (state pruned).
    """
    device = split.train_x.device
    channels_last = device.type == "cuda" and profile.channels_last
    amp = lambda: autocast(device, profile.bf16)  # noqa: E731 - a fresh context each use
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=profile.lr, weight_decay=profile.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, profile.warmup_steps, profile.steps)
    )
    n, batch_size = len(split.train_x), min(profile.batch_size, len(split.train_x))
    order, position = None, n
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, history, best, final = 0, [], None, None
    give_up_checked = profile.give_up_after is None

    def stop(state: State, step: int, message: str = "") -> Outcome:
        return Outcome(state, best, final, step, message, tuple(history))

    model.train()
    for step in range(1, profile.steps + 1):
        if position + batch_size > n:  # a new epoch: drop the last partial batch
            order, position = torch.randperm(n, generator=data_gen, device=device), 0
        index = order[position : position + batch_size]
        position += batch_size
        batch = augmenter(split.train_x[index], split.train_y[index], aug_gen)
        x = batch.x.contiguous(memory_format=torch.channels_last) if channels_last else batch.x
        with amp():
            logits = forward(x)
        value = mixed_loss(loss, logits.float(), batch)
        optimizer.zero_grad(set_to_none=True)
        if value.requires_grad:  # a loss that ignores p has no gradient: nothing to learn
            value.backward()
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=device)
        if not torch.isfinite(value.detach() + norm).item():
            return stop(State.NAN, step, f"non-finite loss or gradient at step {step}")
        optimizer.step()
        schedule.step()
        correct += (logits.detach().argmax(dim=1) == batch.y).sum()
        seen += batch_size
        if time.perf_counter() > deadline:
            return stop(State.TIMEOUT, step, f"time limit reached after {step} steps")
        if step % profile.eval_every and step != profile.steps:
            continue
        model.eval()
        final = accuracy(
            forward,
            augmenter,
            split.eval_x,
            split.eval_y,
            profile.eval_batch_size,
            amp,
            channels_last,
        )
        model.train()
        train_acc, correct, seen = correct.item() / seen, torch.zeros_like(correct), 0
        best = final if best is None else max(best, final)
        history.append({"step": step, "eval_acc": final, "train_acc": train_acc})
        if not give_up_checked and step >= profile.give_up_after:
            give_up_checked = True
            if train_acc < profile.min_train_acc:
                return stop(
                    State.DIVERGED,
                    step,
                    f"training accuracy {train_acc:.3f} under "
                    f"{profile.min_train_acc} at step {step}",
                )
        if monitor is not None and monitor(step, final) and step != profile.steps:
            return stop(State.PRUNED, step, f"pruned at step {step} (accuracy {final:.4f})")
    return stop(State.OK, profile.steps)
