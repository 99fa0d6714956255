"""Helpers of the fault tests: real ``nlfs`` processes, waiting on storage, and the invariants.

Each command runs in its own session (process group), so a Ctrl-C sent to it, as a terminal
sends one to the foreground group, never reaches pytest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from nlfs.experiments.jobs import job_trials, settling_trial

NLFS = str(Path(sys.executable).with_name("nlfs"))
WAIT_S = 150.0
"""Bound on any wait for a worker to reach a state (a broken test fails, never hangs)."""
POLL_S = 0.05

T = TypeVar("T")


def start_cli(args: list[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start ``nlfs ARGS`` as a process group leader, output in ``log``, one torch thread."""
    environment = {**os.environ, "NLFS_THREADS": "1", **(env or {})}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [NLFS, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )


def finish(process: subprocess.Popen, log: Path, timeout: float = WAIT_S) -> int:
    """Wait for a started command; its return code (on a timeout: kill it and fail)."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"{process.args} did not finish in {timeout} s; output:\n{log.read_text()}")


def wait_until(check: Callable[[], T], what: str, timeout: float = WAIT_S) -> T:
    """Poll ``check`` until it returns something truthy, and return it; fail after ``timeout``."""
    pause = threading.Event()  # never set: wait() is an interruptible pause between polls
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        pause.wait(POLL_S)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def running(study: optuna.Study, **worker: Any) -> list[FrozenTrial]:
    """RUNNING trials whose ``worker`` attribute matches ``worker`` (e.g. ``host=...``)."""
    found = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        named = trial.user_attrs.get("worker")
        if isinstance(named, Mapping) and all(named.get(k) == v for k, v in worker.items()):
            found.append(trial)
    return found


def holds_result(trial: FrozenTrial) -> bool:
    """A trial whose work was done and counted: COMPLETE, or FAIL with a real failure kind."""
    kind = trial.user_attrs.get("failure_kind")
    return trial.state == TrialState.COMPLETE or (
        trial.state == TrialState.FAIL and kind not in (None, "interrupted", "surplus")
    )


def assert_every_job_settled_once(study: optuna.Study, jobs: int) -> dict[str, list[FrozenTrial]]:
    """Each of the ``jobs`` jobs has exactly one trial holding a result, none is pending, and
    every other trial of a job did no counted work (interrupted or surplus)."""
    grouped = job_trials(study.get_trials(deepcopy=False))
    assert len(grouped) == jobs
    for job, trials in grouped.items():
        results = [t for t in trials if holds_result(t)]
        assert len(results) == 1, f"job {job} holds {len(results)} results"
        assert settling_trial(trials) is results[0]
        assert not [t for t in trials if not t.state.is_finished()], f"job {job} still pending"
    return grouped


def duplicates(values) -> list:
    return [v for v, n in Counter(values).items() if n > 1]
