"""The study runner's own cost per trial, next to one micro evaluation.

Measured, not asserted (issue 4): with 100 and 10,000 trials already stored in a journal, run
the real runner (regevo on the cell space, the real screen, Optuna journal writes) with an
evaluator that returns at once, so everything timed is overhead: ask + screen + tell + storage
reads and writes. Target: under 2% of a micro evaluation per trial, and an ask latency that does
not grow linearly with the number of stored trials (the runner syncs incrementally).

Usage::

    .venv/bin/python benchmarks/overhead.py [--trials 30] [--stored 100 10000] [--eval-seconds S]
        [--strategy tpe] [--option n_ei_candidates=24] [--group K]

``--eval-seconds`` skips training a micro candidate and uses the given time instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from nlfs.evaluation.results import EvalRequest, EvalResult, State
from nlfs.search.config import load_search_config
from nlfs.search.runner import SearchWorker, study_attrs
from nlfs.spaces import get_space
from nlfs.storage import open_study, quiet_optuna, resolve_storage


class InstantEvaluator:
    """Returns a fixed result at once, so the timed loop is the runner alone."""

    def evaluate(self, requests):
        return [EvalResult(State.OK, 0.5, 0.5, 1, 0.0, "instant") for _ in requests]


def micro_seconds() -> float:
    """Seconds of one warm micro evaluation (cross-entropy) on this machine."""
    from nlfs.evaluation.evaluator import Evaluator
    from nlfs.losses.compile import ExpressionLoss

    evaluator = Evaluator("micro", device="cpu")
    loss = ExpressionLoss("neg(mul(y, log(p)))")
    evaluator.evaluate([EvalRequest(loss, seed=0)])  # warm-up: first-call imports and caches
    start = time.perf_counter()
    evaluator.evaluate([EvalRequest(loss, seed=0)])
    return time.perf_counter() - start


def fill(study: optuna.Study, n: int, seed: int = 0) -> None:
    """Store ``n`` finished trials of random cell genomes with the runner's attributes."""
    space = get_space("cell")
    rng = random.Random(seed)
    now = datetime.now(tz=UTC)
    trials = []
    for _ in range(n):
        genome = space.sample(rng)
        expression = space.canonical(genome)
        attrs = {
            "expression": expression,
            "key": space.key(genome),
            "sign": 1.0,
            "parent": None,
            "mutation": "random",
            "eval_seed": 0,
            "failure_kind": None,
            "device": "cpu",
            "seconds": 2.0,
            "genome": space.to_json(genome),
            "params": space.encode(genome),
            "phase": "search",
            "state": "ok",
            "best_acc": 0.5,
            "final_acc": 0.5,
            "steps": 200,
            "worker": {"host": "bench", "pid": 0, "token": "fill"},
            "retry_of": None,
        }
        trials.append(
            create_trial(state=TrialState.COMPLETE, value=rng.random() * 0.8, user_attrs=attrs)
        )
        trials[-1].datetime_start = trials[-1].datetime_complete = now
    study.add_trials(trials)


def measure(
    stored: int,
    trials: int,
    folder: Path,
    strategy: str = "regevo",
    options: dict | None = None,
    group: int = 1,
) -> dict[str, float]:
    overrides = {"budget": stored + trials, "device": "cpu", "strategy": strategy, "group": group}
    config = load_search_config("default", overrides)
    if options:
        config = dataclasses.replace(config, strategy_options={**options})
    storage = resolve_storage(str(folder / f"bench-{stored}.journal"), "bench")
    study = open_study("bench", storage, attrs=study_attrs(config))
    start = time.perf_counter()
    fill(study, stored)
    filled = time.perf_counter() - start
    worker = SearchWorker(study, config, evaluator_factory=lambda profile, cfg: InstantEvaluator())
    start = time.perf_counter()
    worker.start()
    replay = time.perf_counter() - start
    ask_times: list[float] = []
    ask = worker.strategy.ask

    def timed_ask(n: int = 1):
        t0 = time.perf_counter()
        out = ask(n)
        ask_times.append(time.perf_counter() - t0)
        return out

    worker.strategy.ask = timed_ask
    start = time.perf_counter()
    ran = worker.run()
    loop = time.perf_counter() - start
    return {
        "stored": stored,
        "ran": ran,
        "fill_s": filled,
        "replay_s": replay,
        "per_trial_ms": 1000 * loop / max(ran, 1),
        "ask_ms": 1000 * sum(ask_times) / max(len(ask_times), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="trials timed per setting")
    parser.add_argument("--stored", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--eval-seconds", type=float, help="skip measuring micro; use this")
    parser.add_argument("--strategy", default="regevo")
    parser.add_argument("--option", action="append", default=[], help="strategy option k=v (int)")
    parser.add_argument("--group", type=int, default=1, help="trials in flight per worker")
    args = parser.parse_args()
    options = {k: int(v) for k, v in (o.split("=", 1) for o in args.option)}
    quiet_optuna()
    eval_s = args.eval_seconds if args.eval_seconds is not None else micro_seconds()
    print(f"micro evaluation: {eval_s:.2f} s per candidate (2% = {20 * eval_s:.0f} ms)")
    print(f"strategy {args.strategy} {options or ''}, {args.group} trial(s) in flight")
    print(
        f"{'stored':>7} {'fill s':>7} {'replay s':>9} {'runner ms/trial':>16} "
        f"{'ask ms':>7} {'% of micro':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for stored in args.stored:
            r = measure(stored, args.trials, Path(tmp), args.strategy, options, args.group)
            share = 100 * r["per_trial_ms"] / 1000 / eval_s
            print(
                f"{r['stored']:>7} {r['fill_s']:>7.1f} {r['replay_s']:>9.2f} "
                f"{r['per_trial_ms']:>16.1f} {r['ask_ms']:>7.1f} {share:>9.2f}%"
            )
    print(
        "replay s: one-time start-up (screen rebuilt from every stored expression, strategy "
        "told every trial); runner ms/trial includes ask, screen, tell and journal writes."
    )


if __name__ == "__main__":
    main()
