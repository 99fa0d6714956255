"""Learners: the models of one training run and their optimizer, stepped without host syncs.

A learner trains ``size`` candidates of one profile on the same batches. :class:`SingleLearner`
is one ``nn.Module`` (optionally compiled); :class:`StackedLearner` is K copies of one
architecture with their own weights, optimizer state and batch-norm statistics, trained in one
step through ``torch.func.functional_call`` under ``vmap``: one forward, one backward over the
summed losses, one Adam over the stacked parameters. Both keep what the loop needs on the
device and hand it over only when asked (at evaluation points):

- the first step at which each candidate's loss or gradient norm was not finite (0: none yet);
- each candidate's count of correct training predictions since the last read.

A candidate that stopped (non-finite, given up, pruned) is *inactive*: its loss is masked out
of the summed loss, so it gets zero gradients and cannot disturb the others (every computation
of a candidate uses only its own slice of the stacked tensors).

On CUDA a learner's step can be captured once in a CUDA graph (:class:`GraphedStep`) and
replayed every step: the batch is copied into static buffers, the learning rate lives in a
device tensor, and the step counter too, so a replay needs nothing from the host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from nlfs.evaluation.augment import Augmenter, Batch, mixed_loss

GRAPH_WARMUP_STEPS = 3
"""Eager steps on a side stream before a CUDA graph is captured (PyTorch's recipe)."""


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when the profile asks for it; nothing elsewhere."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _Learner:
    """What both learners share: flags, counters, learning rate and the optimizer."""

    size: int
    channels_last: bool

    def __init__(
        self, params: list[torch.Tensor], device: torch.device, *, lr: float, weight_decay: float
    ) -> None:
        self.device = device
        cuda = device.type == "cuda"
        # Adam is fused: one kernel per tensor, on the CPU a third of the time of torch's default
        # for the micro surrogate. On CUDA the learning rate is a device tensor and Adam is
        # capturable, so a step (or its CUDA graph) reads nothing from the host. A stack on the
        # CPU keeps foreach Adam: its fused kernel rounds a stacked tensor otherwise than the
        # same candidate's alone (2 training images apart after 24 steps of small_cnn), for 1-2%
        # of a stacked step.
        fused = cuda or self.size == 1
        self._lr = torch.tensor(lr, device=device) if cuda else None
        self.optimizer = torch.optim.Adam(
            params,
            lr=self._lr if cuda else lr,
            weight_decay=weight_decay,
            fused=fused or None,
            foreach=not fused or None,
            capturable=cuda,
        )
        self.active = torch.ones(self.size, dtype=torch.bool, device=device)
        self._bad = torch.zeros(self.size, dtype=torch.int64, device=device)
        self._correct = torch.zeros(self.size, dtype=torch.int64, device=device)
        self._step = torch.zeros((), dtype=torch.int64, device=device)
        # On the CPU a read costs nothing: the flags and counts live on the host there, which
        # spares the small tensor operations that keep them on an accelerator.
        self._host = device.type == "cpu"
        self._host_step = 0
        self._host_bad = [0] * self.size
        self._host_correct = [0] * self.size
        self._host_active = [True] * self.size

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def set_lr(self, value: float) -> None:
        """The learning rate of the next step."""
        if self._lr is not None:
            self._lr.fill_(value)
        else:
            for group in self.optimizer.param_groups:
                group["lr"] = value

    def deactivate(self, index: int) -> None:
        """Mask candidate ``index`` out of later steps (it stopped)."""
        self.active[index] = False
        self._host_active[index] = False

    def first_bad(self) -> list[int]:
        """Per candidate, the first step with a non-finite loss or gradient (0: none)."""
        return list(self._host_bad) if self._host else self._bad.tolist()

    def take_correct(self) -> list[int]:
        """Per candidate, correct training predictions since the last call."""
        if self._host:
            counts, self._host_correct = self._host_correct, [0] * self.size
            return counts
        counts = self._correct.tolist()
        self._correct.zero_()
        return counts

    def _account(self, values: torch.Tensor, norms: torch.Tensor, logits, y) -> None:
        """Flag non-finite losses or gradient norms and count correct predictions, all on the
        device. ``values``, ``norms``: one per candidate; ``logits``: ``[size, batch, classes]``.
        """
        if self._host:
            self._host_step += 1
            finite = torch.isfinite(values.detach() + norms).tolist()
            correct = (logits.detach().argmax(dim=-1) == y).sum(dim=-1).tolist()
            for k in range(self.size):
                if not finite[k] and not self._host_bad[k] and self._host_active[k]:
                    self._host_bad[k] = self._host_step
                self._host_correct[k] += correct[k]
            return
        self._step += 1
        finite = torch.isfinite(values.detach() + norms)
        fresh = (self._bad == 0) & ~finite & self.active
        self._bad.copy_(torch.where(fresh, self._step, self._bad))
        self._correct += (logits.detach().argmax(dim=-1) == y).sum(dim=-1)


class SingleLearner(_Learner):
    """One model (``forward`` may be its compiled version)."""

    size = 1

    def __init__(
        self,
        model: nn.Module,
        forward: Callable[[torch.Tensor], torch.Tensor],
        loss: Callable,
        device: torch.device,
        *,
        lr: float,
        weight_decay: float,
        bf16: bool,
        channels_last: bool,
    ) -> None:
        self.model, self.forward, self.loss = model, forward, loss
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.bf16, self.channels_last = bf16, channels_last
        super().__init__(self.params, device, lr=lr, weight_decay=weight_decay)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def step(self, batch: Batch) -> None:
        """One optimizer step on ``batch``."""
        with autocast(self.device, self.bf16):
            logits = self.forward(self._input(batch.x))
        value = mixed_loss(self.loss, logits.float(), batch)
        self.optimizer.zero_grad(set_to_none=True)
        if value.requires_grad:  # a loss that ignores p has no gradient: nothing to learn
            value.backward()
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = (
            torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=self.device)
        )
        self.optimizer.step()
        self._account(value.reshape(1), norm.reshape(1), logits[None], batch.y)

    @torch.no_grad()
    def accuracy(
        self, augmenter: Augmenter, images: torch.Tensor, labels: torch.Tensor, batch_size: int
    ) -> list[float]:
        correct = torch.zeros((), dtype=torch.int64, device=labels.device)
        for start in range(0, len(images), batch_size):
            x = self._input(augmenter.prepare(images[start : start + batch_size]))
            with autocast(self.device, self.bf16):
                logits = self.forward(x)
            correct += (logits.argmax(dim=1) == labels[start : start + batch_size]).sum()
        return [correct.item() / len(images)]


class StackedLearner(_Learner):
    """K copies of ``model``'s architecture and initial weights, one loss each, trained together.

    Dropout draws one mask per call shared by the K copies (``vmap(randomness="same")``): the
    same draws each candidate makes when trained alone from the same seed.
    """

    def __init__(
        self,
        model: nn.Module,
        losses: Sequence[Callable],
        device: torch.device,
        *,
        lr: float,
        weight_decay: float,
        bf16: bool,
    ) -> None:
        self.size = len(losses)
        self.losses = list(losses)
        self.bf16, self.channels_last = bf16, False
        self.base = model  # its own tensors are replaced by the stacked ones in every call
        k = self.size
        self.params = {
            name: p.detach().unsqueeze(0).repeat(k, *([1] * p.dim())).requires_grad_()
            for name, p in model.named_parameters()
        }
        self.buffers = {
            name: b.detach().unsqueeze(0).repeat(k, *([1] * b.dim()))
            for name, b in model.named_buffers()
        }

        def call(params, buffers, x):
            return torch.func.functional_call(self.base, (params, buffers), (x,))

        self._forward = torch.func.vmap(call, in_dims=(0, 0, None), randomness="same")
        super().__init__(list(self.params.values()), device, lr=lr, weight_decay=weight_decay)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def step(self, batch: Batch) -> None:
        """One optimizer step of every candidate on ``batch``."""
        with autocast(self.device, self.bf16):
            logits = self._forward(self.params, self.buffers, self._input(batch.x))
        logits = logits.float()
        values = torch.stack(
            [mixed_loss(loss, logits[i], batch) for i, loss in enumerate(self.losses)]
        )
        total = torch.where(self.active, values, torch.zeros_like(values)).sum()
        self.optimizer.zero_grad(set_to_none=True)
        if total.requires_grad:
            total.backward()
        norms = [
            torch.linalg.vector_norm(p.grad.flatten(1), dim=1)
            for p in self.params.values()
            if p.grad is not None
        ]
        norm = (
            torch.linalg.vector_norm(torch.stack(norms), dim=0)
            if norms
            else torch.zeros(self.size, device=self.device)
        )
        self.optimizer.step()
        self._account(values, norm, logits, batch.y)

    @torch.no_grad()
    def accuracy(
        self, augmenter: Augmenter, images: torch.Tensor, labels: torch.Tensor, batch_size: int
    ) -> list[float]:
        correct = torch.zeros(self.size, dtype=torch.int64, device=labels.device)
        for start in range(0, len(images), batch_size):
            x = self._input(augmenter.prepare(images[start : start + batch_size]))
            with autocast(self.device, self.bf16):
                logits = self._forward(self.params, self.buffers, x)
            correct += (logits.argmax(dim=-1) == labels[start : start + batch_size]).sum(dim=-1)
        return [c / len(images) for c in correct.tolist()]


class GraphedStep:
    """A learner's step captured in a CUDA graph after a few eager steps, then replayed.

    The batch of each step is copied into static buffers before the replay. If capture fails
    (a loss that syncs with the host, say), the learner keeps stepping eagerly and
    :attr:`failure` says why.
    """

    def __init__(self, learner: SingleLearner | StackedLearner) -> None:
        self.learner = learner
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failure: str | None = None
        self._static: Batch | None = None
        self._eager_steps = 0

    def __call__(self, batch: Batch) -> None:
        if self.graph is not None:
            self._fill(batch)
            self.graph.replay()
            return
        if self.failure is not None:
            self.learner.step(batch)
            return
        if self._eager_steps < GRAPH_WARMUP_STEPS:
            self._warm(batch)
            return
        self._capture(batch)

    def _warm(self, batch: Batch) -> None:
        stream = torch.cuda.Stream(self.learner.device)
        stream.wait_stream(torch.cuda.current_stream(self.learner.device))
        with torch.cuda.stream(stream):
            self.learner.step(batch)
        torch.cuda.current_stream(self.learner.device).wait_stream(stream)
        self._eager_steps += 1

    def _capture(self, batch: Batch) -> None:
        lam = batch.lam if torch.is_tensor(batch.lam) else torch.tensor(batch.lam)
        self._static = Batch(
            batch.x.clone(),
            batch.y.clone(),
            None if batch.y_mix is None else batch.y_mix.clone(),
            lam.to(self.learner.device, copy=True),
        )
        graph = torch.cuda.CUDAGraph()
        try:
            self.learner.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                self.learner.step(self._static)
        except Exception as err:  # noqa: BLE001 - fall back to eager steps, say why
            self.failure = f"{type(err).__name__}: {err}".splitlines()[0][:200]
            torch.cuda.synchronize(self.learner.device)
            self.learner.step(batch)
            return
        self.graph = graph
        graph.replay()  # capture records the step without running it

    def _fill(self, batch: Batch) -> None:
        static = self._static
        static.x.copy_(batch.x)
        static.y.copy_(batch.y)
        if static.y_mix is not None:
            static.y_mix.copy_(batch.y_mix)
            static.lam.copy_(batch.lam if torch.is_tensor(batch.lam) else torch.tensor(batch.lam))
