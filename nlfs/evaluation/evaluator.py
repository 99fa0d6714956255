"""The evaluator: trains candidate losses with a fidelity profile and returns result records.

It is the only code that touches the accelerator (docs/architecture.md). It is long-lived: the
dataset is loaded once per process and kept on the device; the model of a profile is built once
and re-initialised from each candidate's seed (identical to building it anew, and it lets
``torch.compile`` reuse its graph). Seeds are paired: a seed fixes the initial weights, the data
order and the augmentation draws, whatever the loss.

Requests with the same seed are trained together in groups of up to ``group`` candidates (one
:class:`~nlfs.evaluation.learners.StackedLearner` step for all of them): same seed, same initial
weights, data order, augmentations and dropout masks, so a group's results equal those of the
candidates trained one after another, within floating-point tolerance. If a group fails (a loss
that raises, say), its candidates are trained again one at a time, so one bad loss cannot take
the others down.

Randomness: one ``numpy.random.SeedSequence([seed])`` is split into generators for the weights,
the data order and the augmentations. Dropout (and torchvision's stochastic depth) draw from the
global torch generator and accept no other, so each candidate trains inside
``torch.random.fork_rng`` with that state seeded from the same sequence: runs are reproducible
and the caller's global state is restored afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch

from nlfs.errors import ConfigError
from nlfs.evaluation.augment import Augmenter
from nlfs.evaluation.data import Split, load_dataset, make_split
from nlfs.evaluation.learners import SingleLearner, StackedLearner
from nlfs.evaluation.models import build_model, init_parameters
from nlfs.evaluation.profiles import Profile, load_profile
from nlfs.evaluation.results import EvalRequest, EvalResult, State
from nlfs.evaluation.training import Outcome, train

SPLITS = ("val", "test")
DEFAULT_GROUP = {"cpu": 1, "cuda": 1}
"""Candidates trained together by default, per device type (``benchmarks/throughput.py``
measures them). On an H200 (2026-11-30) 8 stacked ``paper`` surrogates took 2.9 ms per
candidate-step against 1.3 ms for one model in a CUDA graph: the stacked models' grouped
convolutions cost more than the launches they save, so one at a time is the default there."""
_MESSAGE_CHARS = 500  # an error message longer than this is cut: it goes into trial records


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU.

    Raises:
        ConfigError: ``cuda`` asked for on a machine without it.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA is not available here; use --device cpu or --device auto")
    return resolved


def seed_streams(seed: int) -> dict[str, int]:
    """Independent 64-bit seeds for the weights, data order, augmentations and dropout."""
    children = np.random.SeedSequence([seed]).spawn(4)
    names = ("init", "data", "augment", "dropout")
    return {
        name: int(child.generate_state(1, np.uint64)[0])
        for name, child in zip(names, children, strict=True)
    }


class Evaluator:
    """Trains each requested loss with the profile and reports one result per request.

    Args:
        profile: a :class:`Profile` or the name/path of one.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        data_dir: folder of the dataset files (None: Debian's Fashion-MNIST).
        download: let torchvision download a missing dataset into ``data_dir``.
        split: ``val`` trains on the training set minus a seeded held-out slice and measures on
            that slice (searches); ``test`` trains on the training set (or its subset) and
            measures on the test set (transfer only).
        group: most candidates trained together (None: :data:`DEFAULT_GROUP` for the device).

    ``profile`` may be replaced later (``evaluator.profile = dataclasses.replace(...)``):
    data, model and augmentations are looked up again from its fields.

    Raises:
        ConfigError, DataError: a bad profile, device or split, or a missing dataset.
    """

    def __init__(
        self,
        profile: Profile | str,
        *,
        device: str = "auto",
        data_dir: str | None = None,
        download: bool = False,
        split: str = "val",
        group: int | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if group is not None and group < 1:
            raise ConfigError(f"group must be at least 1, got {group}")
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self.device = resolve_device(device)
        self.group = group if group is not None else DEFAULT_GROUP.get(self.device.type, 1)
        self.data_dir, self.download, self.split = data_dir, download, split
        self._splits: dict[tuple, Split] = {}
        self._models: dict[tuple, tuple[torch.nn.Module, object]] = {}
        self.data()  # fail now, not at the first candidate, when the dataset is missing

    def data(self) -> Split:
        """The profile's training and evaluation images on the device (cached)."""
        p = self.profile
        key = (p.dataset, p.val_size, p.train_size, p.test_size, p.split_seed)
        if key not in self._splits:
            dataset = load_dataset(p.dataset, self.data_dir, self.download)
            self._splits[key] = make_split(
                dataset,
                self.split,
                val_size=p.val_size,
                train_size=p.train_size,
                test_size=p.test_size,
                seed=p.split_seed,
                device=self.device,
            )
        return self._splits[key]

    def augmenter(self) -> Augmenter:
        """The profile's augmentation pipeline for its dataset."""
        p, dataset = self.profile, self.data().dataset
        return Augmenter(
            p.augment,
            mean=dataset.mean,
            std=dataset.std,
            resolution=p.resolution,
            randaugment_ops=p.randaugment_ops,
            randaugment_magnitude=p.randaugment_magnitude,
            policy_groups=p.policy_groups,
            cutout_size=p.cutout_size,
            mix_alpha=p.mix_alpha,
        )

    def _model(self, generator: torch.Generator) -> tuple[torch.nn.Module, object]:
        p, dataset = self.profile, self.data().dataset
        key = (
            p.model,
            dataset.in_channels,
            dataset.num_classes,
            p.width,
            p.dropout,
            p.compile,
            p.channels_last,
        )
        if key not in self._models:
            model = build_model(
                p.model,
                dataset.in_channels,
                dataset.num_classes,
                generator=generator,
                device=self.device,
                width=p.width,
                dropout=p.dropout,
            )
            cuda = self.device.type == "cuda"
            if p.channels_last:  # faster on CUDA and on the CPU (oneDNN) alike
                model = model.to(memory_format=torch.channels_last)
            forward = torch.compile(model) if cuda and p.compile else model
            self._models[key] = (model, forward)
            return self._models[key]
        model, forward = self._models[key]
        init_parameters(model, generator)
        return model, forward

    def evaluate(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        """Train every request's loss from its seed; one result per request, in order.

        Requests with the same seed train together in groups of up to :attr:`group`.
        """
        results: dict[int, EvalResult] = {}
        by_seed: dict[int, list[int]] = {}
        for index, request in enumerate(requests):
            by_seed.setdefault(request.seed, []).append(index)
        for indices in by_seed.values():
            for start in range(0, len(indices), self.group):
                chunk = indices[start : start + self.group]
                group = self._evaluate_group([requests[i] for i in chunk])
                results.update(zip(chunk, group, strict=True))
        return [results[i] for i in range(len(requests))]

    def _evaluate_group(self, requests: Sequence[EvalRequest]) -> list[EvalResult]:
        p = self.profile
        limit = p.time_limit_s * len(requests) if p.time_limit_s is not None else float("inf")
        start = time.perf_counter()
        try:
            outcomes = self._train(requests, seed_streams(requests[0].seed), start + limit)
        except Exception as err:  # noqa: BLE001 - any failure of a candidate is a result
            text = f"{type(err).__name__}: {err}".splitlines()[0][:_MESSAGE_CHARS]
            if len(requests) > 1:  # find out which one failed: train them one at a time
                note = f"trained alone after its group of {len(requests)} failed: {text}"
                return [
                    _noted(result, note)
                    for request in requests
                    for result in self._evaluate_group([request])
                ]
            outcomes = [Outcome(State.ERROR, None, None, 0, text)]
        seconds = (time.perf_counter() - start) / len(requests)  # each candidate's share
        return [
            self._result(request, outcome, seconds, len(requests))
            for request, outcome in zip(requests, outcomes, strict=True)
        ]

    def _result(
        self, request: EvalRequest, outcome: Outcome, seconds: float, group: int
    ) -> EvalResult:
        p = self.profile
        metadata = {
            "profile": p.name,
            "dataset": p.dataset,
            "model": p.model,
            "steps": p.steps,
            "augment": p.augment,
            "resolution": p.resolution,
            "split": self.split,
            "device": str(self.device),
            "seed": request.seed,
            "name": request.name,
            "group": group,
            "history": list(outcome.history),
            "profile_config": dataclasses.asdict(p),
        }
        return EvalResult(
            state=outcome.state,
            best_acc=outcome.best_acc,
            final_acc=outcome.final_acc,
            steps=outcome.steps,
            seconds=seconds,
            profile=p.name,
            device=str(self.device),
            message=outcome.message,
            metadata=metadata,
        )

    def _learner(self, requests: Sequence[EvalRequest], generator: torch.Generator):
        p = self.profile
        model, forward = self._model(generator)
        losses = [
            r.loss.to(self.device) if isinstance(r.loss, torch.nn.Module) else r.loss
            for r in requests
        ]
        options = {"lr": p.lr, "weight_decay": p.weight_decay, "bf16": p.bf16}
        if len(requests) == 1:
            return SingleLearner(
                model, forward, losses[0], self.device, channels_last=p.channels_last, **options
            )
        # Stacked models take contiguous inputs: with channels-last inputs the first groups
        # tried on an H200 failed and fell back to one-at-a-time training.
        return StackedLearner(model, losses, self.device, **options)

    def _train(
        self, requests: Sequence[EvalRequest], seeds: dict[str, int], deadline: float
    ) -> list[Outcome]:
        split = self.data()
        augmenter = self.augmenter()

        def generator(name: str) -> torch.Generator:
            return torch.Generator(device=self.device).manual_seed(seeds[name])

        learner = self._learner(requests, generator("init"))
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), self._backend():
            torch.default_generator.manual_seed(seeds["dropout"])
            if cuda:
                with torch.cuda.device(self.device):  # the evaluator's GPU, not the current one
                    torch.cuda.manual_seed(seeds["dropout"])
            return train(
                learner,
                split,
                augmenter,
                self.profile,
                data_gen=generator("data"),
                aug_gen=generator("augment"),
                deadline=deadline,
                monitors=[r.monitor for r in requests],
                graph=self.profile.cuda_graph and not self.profile.compile,
            )

    def _backend(self) -> contextlib.AbstractContextManager:
        """cuDNN picks the fastest convolution algorithms for the profile's shapes (CUDA)."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.backends.cudnn.flags(
            enabled=True,
            benchmark=True,
            deterministic=False,
            allow_tf32=torch.backends.cudnn.allow_tf32,
        )


def _noted(result: EvalResult, note: str) -> EvalResult:
    message = f"{result.message}; {note}" if result.message else note
    return dataclasses.replace(result, message=message[:_MESSAGE_CHARS])
