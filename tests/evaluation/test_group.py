"""K candidates trained together equal the same candidates trained one after another."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlfs.errors import ConfigError
from nlfs.evaluation.evaluator import Evaluator
from nlfs.evaluation.profiles import Profile
from nlfs.evaluation.results import EvalRequest, State
from nlfs.losses.baselines import get_loss

pytestmark = pytest.mark.fmnist

TINY = Profile(
    name="tiny-group",
    train_size=640,
    val_size=200,
    batch_size=32,
    eval_batch_size=100,
    steps=24,
    eval_every=8,
    lr=3e-3,
    warmup_steps=4,
    # Stacks take contiguous inputs; one candidate alone would otherwise train channels-last,
    # whose other kernels round differently (a few images apart after 24 steps). The layout is
    # held fixed so that what is compared is the stacking.
    channels_last=False,
)


class NanAfter(nn.Module):
    """Cross-entropy until its ``after``-th call, then NaN (a loss that diverges mid-run).

    The count is a tensor on the loss's device, so the loss also works inside a CUDA graph.
    """

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        value = F.cross_entropy(logits, target)
        return value * torch.where(self.calls > self.after, float("nan"), 1.0)


class Constant(nn.Module):
    """A loss whose gradient is zero: the model learns nothing."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return logits.sum() * 0.0


class Raising(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this loss always fails")


def evaluator(model: str, group: int, **changes) -> Evaluator:
    profile = dataclasses.replace(TINY, model=model, **changes)
    return Evaluator(profile, device="cpu", group=group)


def summary(result) -> tuple:
    history = [(h["step"], h["eval_acc"], h["train_acc"]) for h in result.metadata["history"]]
    return result.state, result.steps, history


def assert_close(together, alone) -> None:
    """Same states and steps; accuracies within one image of the evaluation slice (float
    summation order differs between a batched and a single model)."""
    assert together[0] == alone[0] and together[1] == alone[1]
    assert len(together[2]) == len(alone[2]) > 0
    for (s1, e1, t1), (s2, e2, t2) in zip(together[2], alone[2], strict=True):
        assert s1 == s2
        assert abs(e1 - e2) <= 1 / TINY.val_size + 1e-12
        assert abs(t1 - t2) <= 1 / (TINY.batch_size * TINY.eval_every) + 1e-12


@pytest.mark.parametrize(
    ("model", "dropout"), [("tiny_cnn", 0.0), ("small_cnn", 0.0), ("resnet9_preact", 0.5)]
)
def test_a_group_equals_its_candidates_trained_alone(model, dropout):
    names = ("cross_entropy", "focal", "squared_error")
    requests = [EvalRequest(get_loss(name), seed=7, name=name) for name in names]
    together = evaluator(model, 3, dropout=dropout).evaluate(requests)
    alone = evaluator(model, 1, dropout=dropout).evaluate(requests)
    assert [r.metadata["group"] for r in together] == [3, 3, 3]
    assert [r.metadata["group"] for r in alone] == [1, 1, 1]
    for t, a in zip(together, alone, strict=True):
        assert t.state is State.OK
        assert_close(summary(t), summary(a))
    # the candidates really differ: a group is not one model reported three times
    assert len({tuple(h[1] for h in summary(t)[2]) for t in together}) > 1


def test_a_diverging_candidate_does_not_disturb_the_others():
    def requests():
        return [
            EvalRequest(get_loss("cross_entropy"), seed=3),
            EvalRequest(NanAfter(9), seed=3),
            EvalRequest(get_loss("focal"), seed=3),
        ]

    together = evaluator("small_cnn", 3).evaluate(requests())
    alone = evaluator("small_cnn", 1).evaluate(requests())
    assert together[1].state is State.NAN and together[1].steps == 10
    assert together[1].message == alone[1].message == "non-finite loss or gradient at step 10"
    for t, a in zip(together, alone, strict=True):
        assert_close(summary(t), summary(a))
    assert together[0].state is together[2].state is State.OK


def test_a_pruned_candidate_stops_and_the_others_go_on():
    seen: list[tuple[int, float]] = []

    def prune_at_first_point(step: int, acc: float) -> bool:
        seen.append((step, acc))
        return True

    requests = [
        EvalRequest(get_loss("cross_entropy"), seed=1),
        EvalRequest(get_loss("focal"), seed=1, monitor=prune_at_first_point),
    ]
    together = evaluator("tiny_cnn", 2).evaluate(requests)
    assert together[1].state is State.PRUNED and together[1].steps == TINY.eval_every
    assert together[1].fitness is None and together[1].best_acc == seen[0][1]
    assert seen == [(TINY.eval_every, together[1].best_acc)]
    alone = evaluator("tiny_cnn", 1).evaluate(requests[:1])
    assert_close(summary(together[0]), summary(alone[0]))


def test_a_monitor_sees_every_point_and_the_last_one_cannot_prune():
    points: list[int] = []

    def always(step: int, acc: float) -> bool:
        points.append(step)
        return step == TINY.steps  # asks to stop only at the end: too late to prune

    result = evaluator("tiny_cnn", 1).evaluate([EvalRequest(get_loss("ce"), 2, monitor=always)])
    assert points == [8, 16, 24]
    assert result[0].state is State.OK and result[0].fitness is not None


def test_a_failing_loss_in_a_group_fails_alone():
    requests = [
        EvalRequest(get_loss("cross_entropy"), seed=4),
        EvalRequest(Raising(), seed=4),
    ]
    together = evaluator("tiny_cnn", 2).evaluate(requests)
    assert together[1].state is State.ERROR
    note = "trained alone after its group of 2 failed: RuntimeError: this loss always fails"
    assert together[1].message == f"RuntimeError: this loss always fails; {note}"
    assert together[0].message == note and together[0].state is State.OK
    alone = evaluator("tiny_cnn", 1).evaluate(requests[:1])
    assert_close(summary(together[0]), summary(alone[0]))


def test_requests_with_other_seeds_train_in_their_own_groups():
    requests = [EvalRequest(get_loss("cross_entropy"), seed=s) for s in (1, 2, 1)]
    together = evaluator("tiny_cnn", 4).evaluate(requests)
    assert [r.metadata["group"] for r in together] == [2, 1, 2]
    assert [r.metadata["seed"] for r in together] == [1, 2, 1]
    alone = evaluator("tiny_cnn", 1).evaluate(requests)
    for t, a in zip(together, alone, strict=True):
        assert_close(summary(t), summary(a))


def test_giving_up_is_decided_per_candidate():
    # a loss that learns nothing stays at chance; cross-entropy passes the bar
    requests = [
        EvalRequest(get_loss("cross_entropy"), seed=5),
        EvalRequest(Constant(), seed=5),
    ]
    results = evaluator("tiny_cnn", 2, min_train_acc=0.2, give_up_after=16).evaluate(requests)
    assert results[0].state is State.OK
    assert results[1].state is State.DIVERGED and results[1].steps == 16


def test_group_must_be_positive():
    with pytest.raises(ConfigError, match="group must be at least 1"):
        evaluator("tiny_cnn", 0)


@pytest.mark.gpu
def test_on_cuda_a_graphed_group_agrees_with_eager_candidates_alone():
    """The CUDA graph and K-at-once paths give what eager one-at-a-time training gives (bf16:
    close, not equal), and a candidate that turns NaN inside the graph is caught at its step."""
    profile = dataclasses.replace(TINY, model="small_cnn", steps=48, eval_every=16)

    def requests():
        names = ("cross_entropy", "focal", "squared_error")
        return [EvalRequest(get_loss(n), seed=7) for n in names] + [
            EvalRequest(NanAfter(20), seed=7)
        ]

    together = Evaluator(profile, device="cuda", group=4).evaluate(requests())
    eager = dataclasses.replace(profile, cuda_graph=False)
    alone = Evaluator(eager, device="cuda", group=1).evaluate(requests())
    for t, a in zip(together[:3], alone[:3], strict=True):
        assert t.state is a.state is State.OK
        assert "CUDA graph not used" not in t.message, t.message
        assert abs(t.best_acc - a.best_acc) <= 0.03
    assert together[3].state is alone[3].state is State.NAN
    assert together[3].steps == alone[3].steps == 21
