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


FAKE_POINTS = (2, 4, 6, 8, 10)
"""Evaluation points of a fake evaluation (it reports 10 steps)."""


def fake_curve(fitness: float) -> list[tuple[int, float]]:
    """A fake learning curve rising to ``fitness`` at the last point (ranks never cross)."""
    return [(step, fitness * (0.5 + 0.05 * step)) for step in FAKE_POINTS]


def fake_fitness(expression: str) -> float | None:
    """A fitness in [0, 1) from the expression's key; None (a NaN run) for about 1 in 7."""
    value = int(expression_key(expression)[:8], 16)
    if value % 7 == 0:
        return None
    return (value % 10_000) / 10_000


class FakeEvaluator:
    """Scores ``request.loss.expression`` with :func:`fake_fitness`; remembers what it saw.

    A request's monitor sees :func:`fake_curve`; when it says stop, the result is ``pruned``
    with the best accuracy reached so far, as the real evaluator does.

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
        self.calls: list[int] = []  # requests per evaluate call

    def evaluate(self, requests):
        self.calls.append(len(requests))
        for request in requests:
            if self.crash_at is not None and len(self.seen) == self.crash_at:
                if self.crash == "exit":
                    os._exit(3)  # a worker killed mid-trial: no cleanup runs
                raise self.crash()
            self.seen.append(request.loss.expression)
        if self.inner is not None:
            return self.inner.evaluate(list(requests))
        return [self._fake_result(r, fake_fitness(r.loss.expression)) for r in requests]

    def _fake_result(self, request, fitness: float | None) -> EvalResult:
        if fitness is None:
            return EvalResult(State.NAN, None, None, 10, 0.001, self.profile, device="cpu")
        history = []
        for step, acc in fake_curve(fitness):
            history.append({"step": step, "eval_acc": acc})
            if request.monitor is not None and request.monitor(step, acc):
                meta = {"history": history}
                return EvalResult(
                    State.PRUNED, acc, acc, step, 0.001, self.profile, "cpu", metadata=meta
                )
        meta = {"history": history}
        return EvalResult(State.OK, fitness, fitness, 10, 0.001, self.profile, "cpu", metadata=meta)


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
