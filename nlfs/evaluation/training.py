"""The training loop: the paper's recipe with every number from the profile, for one candidate
or a group trained together (:mod:`~nlfs.evaluation.learners`).

Adam, linear warm-up then cosine decay per step, a fixed number of steps and batch size, an
evaluation every ``eval_every`` steps; fitness is the best evaluation accuracy. A candidate stops
on a non-finite loss or gradient (``nan``, at the step where it happened), gives up when its
training accuracy is still under ``min_train_acc`` at the first evaluation from step
``give_up_after`` (``diverged``), stops when its monitor says so at an evaluation point
(``pruned``), and all stop when the wall-clock deadline passes (``timeout``).

Augmentation runs on ``augment_chunk`` steps' batches at once (per-image stages; Mixup and
CutMix per batch): one call's fixed overhead (many small kernels on an accelerator) is paid once
per chunk. The data order does not depend on the chunk; the augmentation draws do.

The step leaves its flags on the device; the loop reads them every step on the CPU (a read
costs nothing there) and at evaluation points on an accelerator (a read waits for the queue).
Either way a candidate's outcome is the same: a non-finite step is found before the next
evaluation, and nothing measured after it counts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nlfs.evaluation.augment import Augmenter, Batch
from nlfs.evaluation.data import Split
from nlfs.evaluation.learners import GraphedStep, SingleLearner, StackedLearner
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


class _Track:
    """One candidate's progress through the loop."""

    def __init__(self, monitor: Monitor | None) -> None:
        self.monitor = monitor
        self.outcome: Outcome | None = None
        self.best: float | None = None
        self.final: float | None = None
        self.history: list[dict[str, Any]] = []

    def stop(self, state: State, step: int, message: str = "") -> None:
        self.outcome = Outcome(state, self.best, self.final, step, message, tuple(self.history))


def train(
    learner: SingleLearner | StackedLearner,
    split: Split,
    augmenter: Augmenter,
    profile: Profile,
    *,
    data_gen: torch.Generator,
    aug_gen: torch.Generator,
    deadline: float,
    monitors: Sequence[Monitor | None] = (),
    graph: bool = False,
) -> list[Outcome]:
    """Train the learner's candidates together; one outcome per candidate, in order.

    Args:
        learner: the freshly initialised candidates with their losses.
        split: training and evaluation images on the device.
        augmenter: the profile's augmentation pipeline.
        data_gen: draws the data order (same seed, same order, whatever the loss).
        aug_gen: draws the augmentations.
        deadline: ``time.perf_counter()`` value after which the run stops (state timeout).
        monitors: per candidate, an optional monitor of its evaluation points (pruning).
        graph: capture the step in a CUDA graph (CUDA only).
    """
    device = split.train_x.device
    tracks = [_Track(m) for m in (list(monitors) or [None] * learner.size)]
    step_fn = GraphedStep(learner) if graph and device.type == "cuda" else learner.step
    check_every = 1 if device.type == "cpu" else profile.eval_every
    n, batch_size = len(split.train_x), min(profile.batch_size, len(split.train_x))
    order, position, seen = None, n, 0
    give_up_checked = profile.give_up_after is None

    def running() -> list[tuple[int, _Track]]:
        return [(k, t) for k, t in enumerate(tracks) if t.outcome is None]

    def stop(k: int, state: State, step: int, message: str) -> None:
        tracks[k].stop(state, step, message)
        learner.deactivate(k)

    def indices(count: int) -> torch.Tensor:
        """The next ``count`` batches' image indices, concatenated."""
        nonlocal order, position
        parts = []
        for _ in range(count):
            if position + batch_size > n:  # a new epoch: drop the last partial batch
                order, position = torch.randperm(n, generator=data_gen, device=device), 0
            parts.append(order[position : position + batch_size])
            position += batch_size
        return torch.cat(parts)

    learner.train()
    for step in range(1, profile.steps + 1):
        offset = (step - 1) % profile.augment_chunk
        if offset == 0:  # augment the next chunk of batches in one call
            count = min(profile.augment_chunk, profile.steps - step + 1)
            index = indices(count)
            images = augmenter.images(split.train_x[index], aug_gen)
            labels = split.train_y[index]
        part = slice(offset * batch_size, (offset + 1) * batch_size)
        batch = augmenter.mix(Batch(images[part], labels[part]), aug_gen)
        learner.set_lr(profile.lr * lr_factor(step - 1, profile.warmup_steps, profile.steps))
        step_fn(batch)
        seen += batch_size
        at_eval = step % profile.eval_every == 0 or step == profile.steps
        if at_eval or step % check_every == 0:
            for k, bad in enumerate(learner.first_bad()):
                if bad and tracks[k].outcome is None:
                    stop(k, State.NAN, bad, f"non-finite loss or gradient at step {bad}")
        if time.perf_counter() > deadline:
            for k, _ in running():
                stop(k, State.TIMEOUT, step, f"time limit reached after {step} steps")
        if not running():
            break
        if not at_eval:
            continue
        learner.train(False)
        accs = learner.accuracy(augmenter, split.eval_x, split.eval_y, profile.eval_batch_size)
        learner.train()
        correct = learner.take_correct()
        give_up_now = not give_up_checked and step >= profile.give_up_after
        give_up_checked = give_up_checked or give_up_now
        for k, track in running():
            track.final = accs[k]
            track.best = accs[k] if track.best is None else max(track.best, accs[k])
            train_acc = correct[k] / seen
            track.history.append({"step": step, "eval_acc": accs[k], "train_acc": train_acc})
            if give_up_now and train_acc < profile.min_train_acc:
                stop(
                    k,
                    State.DIVERGED,
                    step,
                    f"training accuracy {train_acc:.3f} under "
                    f"{profile.min_train_acc} at step {step}",
                )
            elif track.monitor is not None and track.monitor(step, accs[k]):
                if step != profile.steps:
                    stop(k, State.PRUNED, step, f"pruned at step {step} (accuracy {accs[k]:.4f})")
        seen = 0
        if not running():
            break
    for _, track in running():
        track.stop(State.OK, profile.steps)
    outcomes = [t.outcome for t in tracks]
    if isinstance(step_fn, GraphedStep) and step_fn.failure:
        outcomes = [_note(o, f"CUDA graph not used: {step_fn.failure}") for o in outcomes]
    return outcomes


def _note(outcome: Outcome, text: str) -> Outcome:
    message = f"{outcome.message}; {text}" if outcome.message else text
    return Outcome(
        outcome.state, outcome.best_acc, outcome.final_acc, outcome.steps, message, outcome.history
    )
