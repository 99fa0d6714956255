"""Seconds per candidate of the CPU profiles, with cross-entropy, on this machine.

Measured, not asserted (issue 3): for each profile and torch thread count, one warm-up
candidate (it pays one-off kernel set-up; reported apart), then ``--candidates`` seeds; prints
the median seconds per candidate and evaluations per hour beside the targets (micro 3 s, quick
60 s on a 2-core CPU), the CPU seconds per candidate and the machine's load average, since the
CPU may be shared (then wall seconds grow but CPU seconds do not).

Usage::

    .venv/bin/python benchmarks/evaluator.py [--profiles micro quick] [--threads 1 2]
                                             [--candidates 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import torch

from nlfs.evaluation.evaluator import Evaluator
from nlfs.evaluation.profiles import load_profile
from nlfs.evaluation.results import EvalRequest
from nlfs.losses.baselines import get_loss

TARGET_S = {"micro": 3.0, "quick": 60.0}


def measure(profile_name: str, threads: int, candidates: int) -> None:
    torch.set_num_threads(threads)
    # the limit guards searches against stuck runs; a benchmark wants the full time
    profile = dataclasses.replace(load_profile(profile_name), time_limit_s=None)
    evaluator = Evaluator(profile, device="cpu")
    loss = get_loss("cross_entropy")
    warm = evaluator.evaluate([EvalRequest(loss, 10_000)])[0]
    cpu_start = time.process_time()
    results = evaluator.evaluate([EvalRequest(loss, seed) for seed in range(candidates)])
    cpu = (time.process_time() - cpu_start) / candidates
    seconds = [r.seconds for r in results]
    accs = [r.best_acc for r in results if r.best_acc is not None]
    median = statistics.median(seconds)
    target = TARGET_S.get(profile_name)
    print(
        f"{profile_name:<6} threads {threads}: median {median:6.2f} s per candidate "
        f"(min {min(seconds):.2f}, max {max(seconds):.2f}; warm-up {warm.seconds:.2f}) "
        f"-> {3600 / median:7.0f} evaluations/hour; target "
        f"{'-' if target is None else f'{target:.0f} s'}; best acc "
        f"{min(accs):.3f}-{max(accs):.3f}; states {sorted({r.state.value for r in results})}"
    )
    # CPU seconds do not grow when other processes share the cores (wall seconds do); with
    # one thread they are the wall time the candidate would take on an idle core.
    print(f"{'':<6} threads {threads}: {cpu:6.2f} CPU seconds per candidate (all threads)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["micro", "quick"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--candidates", type=int, default=5)
    args = parser.parse_args()
    print(
        f"CPU cores {os.cpu_count()}; load average {os.getloadavg()} (a shared CPU inflates "
        "every number below)"
    )
    for name in args.profiles:
        for threads in args.threads:
            measure(name, threads, args.candidates)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
