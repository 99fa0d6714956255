"""Evaluators for the study-runner tests: a fake one (instant) and the real one, shared.

The runner's mechanics (workers, recovery, storage URLs) do not depend on training, so those
tests score a candidate from its loss's expression instead. Budget and resume are checked on
real results: :class:`RealFactory` trains with ``tests/profiles/micro_short.toml``; the
end-to-end tests use the real evaluator with ``tests/profiles/nano.toml`` and ``micro``.
"""

from __future__ import annotations

import os
from pathlib import Path

from nlfs.evaluation.results import EvalResult, State
from nlfs.losses.expressions import expression_key

NANO = str(Path(__file__).parent / "profiles" / "nano.toml")
"""The tiny real profile for end-to-end tests (loaded by path)."""
MICRO_SHORT = str(Path(__file__).parent / "profiles" / "micro_short.toml")
"""micro cut to 40 steps: real, seed-dependent results at a few tenths of a second each."""


def fake_fitness(expression: str) -> float | None:
    """A fitness in [0, 1) from the expression's key; None (a NaN run) for about 1 in 7."""
    value = int(expression_key(expression)[:8], 16)
    if value % 7 == 0:
        return None
    return (value % 10_000) / 10_000


class FakeEvaluator:
    """Scores ``request.loss.expression`` with :func:`fake_fitness`; remembers what it saw.

    Args:
        profile: the profile name it was built for (recorded in results).
        crash_at: evaluation index (0-based) at which to raise ``crash`` (None: never).
        crash: the exception type to raise, or ``"exit"`` to kill the process abruptly.
        inner: a real evaluator to score with instead of :func:`fake_fitness`.
    """

    def __init__(
        self, profile: str, crash_at: int | None = None, crash=KeyboardInterrupt, inner=None
    ):
        self.profile = profile
        self.crash_at = crash_at
        self.crash = crash
        self.inner = inner
        self.seen: list[str] = []

    def evaluate(self, requests):
        results = []
        for request in requests:
            if self.crash_at is not None and len(self.seen) == self.crash_at:
                if self.crash == "exit":
                    os._exit(3)  # a worker killed mid-trial: no cleanup runs
                raise self.crash()
            expression = request.loss.expression
            self.seen.append(expression)
            if self.inner is not None:
                results.extend(self.inner.evaluate([request]))
                continue
            fitness = fake_fitness(expression)
            state = State.OK if fitness is not None else State.NAN
            results.append(
                EvalResult(state, fitness, fitness, 10, 0.001, self.profile, device="cpu")
            )
        return results


class FakeFactory:
    """An evaluator factory that keeps every evaluator it built (one per profile)."""

    def __init__(self, crash_at: int | None = None, crash=KeyboardInterrupt):
        self.crash_at, self.crash = crash_at, crash
        self.built: list[FakeEvaluator] = []

    def __call__(self, profile, config):
        evaluator = FakeEvaluator(profile, self.crash_at, self.crash, self._inner(profile, config))
        self.built.append(evaluator)
        return evaluator

    def _inner(self, profile, config):
        return None

    @property
    def seen(self) -> list[str]:
        return [e for evaluator in self.built for e in evaluator.seen]


class RealFactory(FakeFactory):
    """:class:`FakeFactory` scoring with the real evaluator (shared, see below)."""

    def _inner(self, profile, config):
        return shared_real_factory(profile, config)


_REAL: dict = {}


def shared_real_factory(profile, config):
    """The real evaluator, built once per profile and device for the whole test session.

    Loading Fashion-MNIST dominates a nano evaluation, so the end-to-end tests share one.
    """
    from nlfs.evaluation.evaluator import Evaluator

    key = (profile, config.device, config.data_dir)
    if key not in _REAL:
        _REAL[key] = Evaluator(profile, device=config.device, data_dir=config.data_dir)
    return _REAL[key]


class RendezvousEvaluator(FakeEvaluator):
    """A fake whose first evaluation waits at a shared barrier until every worker reaches it.

    Without it a worker that starts first can finish the whole budget while another is still
    importing torch, so a test could not tell two working processes from one.
    """

    def __init__(self, profile: str, barrier):
        super().__init__(profile)
        self.barrier = barrier

    def evaluate(self, requests):
        if not self.seen:
            self.barrier.wait()
        return super().evaluate(requests)


def rendezvous_factory(barrier, profile, config):
    """Picklable with ``functools.partial(rendezvous_factory, manager_barrier)``."""
    return RendezvousEvaluator(profile, barrier)


def exiting_factory(profile, config):
    """A picklable factory whose evaluator kills its process at the third evaluation."""
    return FakeEvaluator(profile, crash_at=2, crash="exit")
