"""Reliability under SIGKILL: a search and a transfer grid whose local workers keep dying.

Measured, not asserted (issue 12). For each of a search study and a transfer grid study in a
journal file, K worker processes run while a seeded supervisor SIGKILLs a random busy worker
(one running a trial) at random times, at least ``--kills`` times per run, and starts a new
worker in its place. When every worker has finished it reads the study back and prints:

- trials lost (target 0): search trials short of the budget, plus killed candidates never
  re-evaluated; grid jobs never settled;
- candidates evaluated twice after completing (target 0): a key (search) or a job (grid) with
  more than one finished result;
- budget overshoot (target 0): finished results beyond the budget (or the number of jobs);
- the median time from a kill to the killed trial's recovery (failed as ``interrupted``, seen
  by polling the storage), and to the start of its re-run (its candidate's retry, or the job's
  next trial, which waits its turn behind the queued jobs);
- journal repairs: damaged last lines cut off by :mod:`nlfs.journal` (counted by the ``.bak``
  copies it keeps beside the journal).

Workers score candidates with a stand-in that sleeps about ``--eval-seconds`` (what is measured
is storage, recovery and the budget rule, not training); ``--real`` trains with the micro
profile instead. Kills land anywhere in a trial, journal writes included.

Usage::

    .venv/bin/python benchmarks/reliability.py [--seed 0] [--kills 20] [--workers 3]
        [--budget 60] [--jobs 48] [--eval-seconds 1.0] [--real] [--quick]

``--quick`` is a tiny run (2 kills, 2 workers, budget 6, 6 jobs) for the smoke test.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

STUDY = "reliability"
TICK_S = 0.05
"""How often the supervisor looks at its workers (seconds)."""
RUN_LIMIT_S = 1800.0
"""A run that takes longer is stopped and reported as such (a hang is a finding too)."""


# --------------------------------------------------------------- one worker (a subprocess)


class SleepingEvaluator:
    """Sleeps 0.5x to 1.5x ``seconds`` per request; fitness from the request's name."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.rng = random.Random(os.getpid())

    def evaluate(self, requests):
        from nlfs.evaluation.results import EvalResult, State

        results = []
        for request in requests:
            time.sleep(self.seconds * self.rng.uniform(0.5, 1.5))
            acc = (sum(map(ord, str(request.name))) % 997) / 997
            results.append(EvalResult(State.OK, acc, acc, 1, self.seconds, "sleep"))
        return results


def run_one_worker(kind: str, path: str, seconds: float | None) -> None:
    """The body of one worker process: join the study and work until it is done."""
    from nlfs.storage import load_existing_study, quiet_optuna

    quiet_optuna()
    if kind == "search":
        from nlfs.search.config import config_from_dict
        from nlfs.search.runner import SearchWorker

        study = load_existing_study(STUDY, path)
        factory = None if seconds is None else (lambda profile, config: SleepingEvaluator(seconds))
        config = config_from_dict(study.user_attrs["config"])
        SearchWorker(study, config, evaluator_factory=factory).run()
    else:
        from nlfs.experiments.grid import run_worker

        factory = None if seconds is None else (lambda *setting: SleepingEvaluator(seconds))
        run_worker(STUDY, path, device="cpu", evaluator_factory=factory)


# --------------------------------------------------------------- the supervisor


@dataclass
class Kill:
    """One SIGKILL: when, the trial its worker was running, and when that trial was failed as
    interrupted (seen by the supervisor's polling; None if it never was)."""

    at: datetime
    trial: int
    job: str | None
    recovered: datetime | None = None


@dataclass
class Outcome:
    kind: str
    kills: list[Kill] = field(default_factory=list)
    lost: int = 0
    twice: int = 0
    overshoot: int = 0
    recovery_s: list[float] = field(default_factory=list)
    rerun_s: list[float] = field(default_factory=list)
    repairs: int = 0
    seconds: float = 0.0
    finished: bool = True


def create_study(kind: str, path: str, budget: int, jobs: int, real: bool) -> int:
    """Create the study; returns its budget (search) or number of jobs (grid)."""
    from nlfs.storage import open_study, resolve_storage

    storage = resolve_storage(path, STUDY)
    if kind == "search":
        from nlfs.search.config import SearchConfig
        from nlfs.search.runner import study_attrs

        config = SearchConfig(
            strategy="regevo",
            space="cell",
            profile="micro",
            budget=budget,
            seed=0,
            device="cpu",
            strategy_options={"population": 8, "tournament": 3},
        )
        open_study(STUDY, storage, attrs=study_attrs(config))
        return budget
    from nlfs.experiments.transfer import TransferConfig, prepare, resolve_losses

    seeds = max(1, jobs // 2)
    config = TransferConfig(
        losses=("ce", "focal"),
        archs=("tiny_cnn",),
        seeds=seeds,
        profile="micro",
        overrides={"test_size": 1000},
    )
    _, total, _ = prepare(STUDY, storage, config, resolve_losses(config.losses))
    return total


def _start(kind: str, path: str, seconds: float | None, log) -> subprocess.Popen:
    args = [sys.executable, __file__, "--worker", kind, path]
    if seconds is not None:
        args += ["--eval-seconds", str(seconds)]
    env = {**os.environ, "NLFS_THREADS": "1"}
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)


def _busy(study, pids: set[int]) -> dict[int, object]:
    """pid -> the RUNNING trial of each live worker that is running one."""
    from optuna.trial import TrialState

    busy = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if isinstance(worker, dict) and worker.get("pid") in pids:
            busy[worker["pid"]] = trial
    return busy


def supervise(kind: str, path: str, args, rng: random.Random, log) -> tuple[list[Kill], bool]:
    """Run ``args.workers`` workers to the end, killing busy ones; returns (kills, finished)."""
    from nlfs.experiments.jobs import job_id
    from nlfs.storage import load_existing_study

    study = load_existing_study(STUDY, path)
    seconds = None if args.real else args.eval_seconds
    workers = [_start(kind, path, seconds, log) for _ in range(args.workers)]
    kills: list[Kill] = []
    next_kill = time.monotonic() + rng.uniform(0.2, 2.0) * args.kill_every
    deadline = time.monotonic() + RUN_LIMIT_S
    while any(w.poll() is None for w in workers):
        if time.monotonic() > deadline:
            for worker in workers:
                worker.kill()
            return kills, False
        if len(kills) < args.kills and time.monotonic() >= next_kill:
            live = {w.pid: i for i, w in enumerate(workers) if w.poll() is None}
            busy = _busy(study, set(live))
            if busy:
                pid = rng.choice(sorted(busy))
                os.kill(pid, signal.SIGKILL)
                kills.append(Kill(datetime.now(tz=UTC), busy[pid].number, job_id(busy[pid])))
                workers[live[pid]].wait()
                workers[live[pid]] = _start(kind, path, seconds, log)
                next_kill = time.monotonic() + rng.uniform(0.2, 2.0) * args.kill_every
        _note_recoveries(study, kills)
        time.sleep(TICK_S)
    _note_recoveries(study, kills)
    return kills, True


def _note_recoveries(study, kills: list[Kill]) -> None:
    """Stamp the kills whose trial is no longer RUNNING (recovered as interrupted)."""
    waiting = [k for k in kills if k.recovered is None]
    if not waiting:
        return
    trials = study.get_trials(deepcopy=False)
    now = datetime.now(tz=UTC)
    for kill in waiting:
        if trials[kill.trial].state.is_finished():
            kill.recovered = now


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)  # a naive time (Optuna's journal) is local time


def measure(kind: str, path: str, target: int, kills: list[Kill]) -> Outcome:
    """Read the finished study back: what was lost, doubled, overshot, and how fast redone."""
    from optuna.trial import TrialState

    from nlfs.experiments.jobs import job_trials
    from nlfs.storage import NOT_COUNTED, load_existing_study

    trials = load_existing_study(STUDY, path).get_trials(deepcopy=False)

    def holds_result(trial) -> bool:
        kind_ = trial.user_attrs.get("failure_kind")
        return trial.state == TrialState.COMPLETE or (
            trial.state == TrialState.FAIL and kind_ is not None and kind_ not in NOT_COUNTED
        )

    outcome = Outcome(kind, kills)
    results = [t for t in trials if holds_result(t)]
    if kind == "search":
        keys = [t.user_attrs["key"] for t in results]
        # The re-run of a killed trial: the next trial of the same candidate (a retry may be
        # killed in turn; the chain ends at a result).
        retried = {
            t.number: next(
                (r for r in trials if r.number > t.number and r.user_attrs.get("key") == key),
                None,
            )
            for t in trials
            if (key := t.user_attrs.get("key")) is not None
        }
        unretried = {  # candidates that were being evaluated and never finished
            t.user_attrs["key"]
            for t in trials
            if t.user_attrs.get("failure_kind") == "interrupted"
            and "genome" in t.user_attrs
            and t.user_attrs["key"] not in keys
        }
        outcome.lost = max(0, target - len(results)) + len(unretried)
        outcome.twice = len(keys) - len(set(keys))
        outcome.overshoot = max(0, len(results) - target)
        redo = {k.trial: retried.get(k.trial) for k in kills}
    else:
        grouped = job_trials(trials)
        settled = {job: [t for t in ts if holds_result(t)] for job, ts in grouped.items()}
        outcome.lost = target - sum(1 for r in settled.values() if r)
        outcome.twice = sum(1 for r in settled.values() if len(r) > 1)
        outcome.overshoot = max(0, sum(len(r) for r in settled.values()) - target)
        redo = {
            k.trial: next((t for t in grouped.get(k.job, []) if t.number > k.trial), None)
            for k in kills
        }
    for kill in kills:
        if kill.recovered is not None:
            outcome.recovery_s.append((kill.recovered - kill.at).total_seconds())
        again = redo.get(kill.trial)
        if again is not None and again.datetime_start is not None:
            outcome.rerun_s.append((_utc(again.datetime_start) - kill.at).total_seconds())
    outcome.repairs = len(list(Path(path).parent.glob(Path(path).name + ".bak*")))
    return outcome


def run(kind: str, args, folder: Path) -> Outcome:
    path = str(folder / f"{kind}.journal")
    target = create_study(kind, path, args.budget, args.jobs, args.real)
    rng = random.Random(f"{args.seed}-{kind}")
    start = time.monotonic()
    with open(folder / f"{kind}-workers.log", "ab") as log:
        kills, finished = supervise(kind, path, args, rng, log)
    outcome = measure(kind, path, target, kills)
    outcome.seconds = time.monotonic() - start
    outcome.finished = finished
    return outcome


def report(outcome: Outcome, repair_available: bool, kills_asked: int) -> None:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s ({len(values)})" if values else "n/a"

    repairs = str(outcome.repairs) if repair_available else "0 (nlfs.journal not available)"
    print(f"{outcome.kind}: {outcome.seconds:.0f} s, {len(outcome.kills)} kills")
    if len(outcome.kills) < kills_asked:
        print(f"  (asked for {kills_asked}: the study finished first; raise the budget)")
    if not outcome.finished:
        print(f"  STOPPED after {RUN_LIMIT_S:.0f} s: the workers did not finish")
    print(f"  trials lost                      {outcome.lost}   (target 0)")
    print(f"  evaluated twice after completing {outcome.twice}   (target 0)")
    print(f"  budget overshoot                 {outcome.overshoot}   (target 0)")
    print(f"  median kill -> recovered         {median(outcome.recovery_s)}")
    print(f"  median kill -> re-run starts     {median(outcome.rerun_s)}")
    print(f"  journal repairs                  {repairs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per run")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--budget", type=int, default=60, help="search budget")
    parser.add_argument("--jobs", type=int, default=48, help="transfer grid jobs")
    parser.add_argument("--eval-seconds", type=float, default=1.0)
    parser.add_argument("--kill-every", type=float, default=1.5, help="mean seconds between")
    parser.add_argument("--real", action="store_true", help="train with the micro profile")
    parser.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    parser.add_argument("--runs", default="search,transfer", help="which runs")
    parser.add_argument("--worker", nargs=2, metavar=("KIND", "JOURNAL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_one_worker(*args.worker, None if args.real else args.eval_seconds)
        return 0
    if args.quick:
        args.kills, args.workers, args.budget, args.jobs = 2, 2, 6, 6
        args.eval_seconds, args.kill_every = 0.3, 0.5
    from nlfs.storage import quiet_optuna

    quiet_optuna()
    try:
        import nlfs.journal  # noqa: F401  (the journal repair of issue 12)

        repair_available = True
    except ImportError:
        repair_available = False
    with tempfile.TemporaryDirectory(prefix="nlfs-reliability-") as folder:
        for kind in args.runs.split(","):
            outcome = run(kind, args, Path(folder))
            report(outcome, repair_available, args.kills)
    return 0


if __name__ == "__main__":
    sys.exit(main())
