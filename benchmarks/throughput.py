"""Evaluation throughput: K candidates at once, processes x threads, a plain loop, the GPU step.

Measured side by side in one run, reported as ratios (issue 11):

- CPU: evaluations per hour of a profile for one process with K = 1, 2, 4, 8 candidates per
  step, and for the cores split into P processes of T threads (each with its best K), against
  one sequential process using every core;
- one micro evaluation against a plain PyTorch loop training the same model class on the same
  in-memory data for the same steps (Adam, the same schedule, the same evaluation passes);
- CUDA (when present): the paper profile (Fashion-MNIST upscaled to 80 px) per candidate-step,
  eager against a CUDA graph, K = 1 against K = 8 and 32, and evaluations per GPU-hour
  extrapolated to the profile's 8,000 steps.

Usage::

    .venv/bin/python benchmarks/throughput.py [--quick] [--json] [--profiles micro quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import statistics
import time
from typing import Any

import torch

from nlfs.evaluation.evaluator import Evaluator
from nlfs.evaluation.profiles import Profile, load_profile
from nlfs.evaluation.results import EvalRequest
from nlfs.losses.baselines import get_loss

LOSSES = ("cross_entropy", "focal", "poly1", "label_smoothing", "squared_error", "baikal")


def requests(count: int, seed: int = 0) -> list[EvalRequest]:
    """``count`` baseline losses, one seed: the shape of a search's requests."""
    return [EvalRequest(get_loss(LOSSES[i % len(LOSSES)]), seed=seed) for i in range(count)]


def bench_profile(name: str) -> Profile:
    # the limit guards searches against stuck runs; a benchmark wants the full time
    return dataclasses.replace(load_profile(name), time_limit_s=None, give_up_after=None)


# --- CPU: processes x threads x K --------------------------------------------------------------


def _cpu_worker(profile, threads, group, count, barrier, queue) -> None:
    torch.set_num_threads(threads)
    evaluator = Evaluator(profile, device="cpu", group=group)
    evaluator.evaluate(requests(group, seed=99))  # warm-up: one-off kernel set-up
    barrier.wait()
    start = time.perf_counter()
    results = evaluator.evaluate(requests(count))
    queue.put((start, time.perf_counter(), [r.state.value for r in results]))


def cpu_rate(profile: Profile, processes: int, threads: int, group: int, count: int) -> float:
    """Evaluations per hour of ``processes`` spawned workers sharing ``count`` candidates."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    share = [count // processes + (i < count % processes) for i in range(processes)]
    workers = [
        ctx.Process(target=_cpu_worker, args=(profile, threads, group, n, barrier, queue))
        for n in share
    ]
    for w in workers:
        w.start()
    ends = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    states = {s for _, _, batch in ends for s in batch}
    if states != {"ok"}:
        raise RuntimeError(f"benchmark candidates ended {sorted(states)}")
    wall = max(e for _, e, _ in ends) - min(s for s, _, _ in ends)
    return 3600 * count / wall


def cpu_splits(cores: int, groups: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(processes, threads, K) settings: one process with each K, then each process split."""
    splits = [(1, cores, k) for k in groups]
    for processes in range(2, cores + 1):
        if cores % processes == 0:
            splits += [(processes, cores // processes, k) for k in groups[:3]]
    return splits


def cpu_section(names: list[str], count: int, groups: tuple[int, ...]) -> list[dict[str, Any]]:
    cores = os.cpu_count() or 1
    rows = []
    for name in names:
        profile = bench_profile(name)
        base = None
        for processes, threads, group in cpu_splits(cores, groups):
            rate = cpu_rate(profile, processes, threads, group, count)
            base = base or rate
            rows.append(
                {
                    "profile": name,
                    "processes": processes,
                    "threads": threads,
                    "group": group,
                    "evals_per_hour": rate,
                    "ratio": rate / base,
                }
            )
            print(
                f"  {name:<6} {processes} proc x {threads} thr, K={group:<2}: "
                f"{rate:7.0f} evals/h  ({rate / base:4.2f}x)",
                flush=True,
            )
    return rows


# --- a plain PyTorch loop ----------------------------------------------------------------------


def plain_loop_seconds(profile: Profile, evaluator: Evaluator, seed: int) -> float:
    """The same model class, data, optimizer, schedule and evaluations, written plainly."""
    from nlfs.evaluation.models import build_model
    from nlfs.evaluation.training import lr_factor

    split = evaluator.data()
    mean, std = split.dataset.mean[0], split.dataset.std[0]
    train_x = (split.train_x.float() / 255 - mean) / std
    eval_x = (split.eval_x.float() / 255 - mean) / std
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    model = build_model(profile.model, 1, 10, seed=seed, width=profile.width)
    opt = torch.optim.Adam(model.parameters(), lr=profile.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, profile.warmup_steps, profile.steps)
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    n, bs = len(train_x), profile.batch_size
    order, pos = torch.randperm(n, generator=gen), 0
    for step in range(1, profile.steps + 1):
        if pos + bs > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos : pos + bs]
        pos += bs
        loss = loss_fn(model(train_x[idx]), split.train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % profile.eval_every == 0 or step == profile.steps:
            with torch.no_grad():
                model.eval()
                (model(eval_x).argmax(1) == split.eval_y).float().mean().item()
                model.train()
    return time.perf_counter() - start


def plain_section(count: int) -> dict[str, Any]:
    profile = bench_profile("micro")
    evaluator = Evaluator(profile, device="cpu", group=1)
    evaluator.evaluate(requests(1, seed=99))
    plain_loop_seconds(profile, evaluator, 99)  # both warmed up
    ours, plain = [], []
    for seed in range(count):  # interleaved, so a change of load hits both
        ours.append(evaluator.evaluate([EvalRequest(get_loss("cross_entropy"), seed)])[0].seconds)
        plain.append(plain_loop_seconds(profile, evaluator, seed))
    row = {
        "ours_s": statistics.median(ours),
        "plain_s": statistics.median(plain),
    }
    row["ratio"] = row["plain_s"] / row["ours_s"]
    print(
        f"  micro: ours {row['ours_s']:.3f} s, plain loop {row['plain_s']:.3f} s per candidate "
        f"-> {row['ratio']:.2f}x (target >= 1.0)",
        flush=True,
    )
    return row


# --- CUDA --------------------------------------------------------------------------------------


GPU_SETTINGS = (
    ("eager", 1, {"cuda_graph": False}),
    ("graph", 1, {}),
    ("graph", 8, {}),
    ("graph fp32", 8, {"bf16": False}),
    ("graph", 32, {}),
)
"""(label, K, profile changes): eager against graphs, K = 1 against K > 1, layouts and precision
(the stacked models' grouped convolutions may prefer other settings than one model)."""


def gpu_section(steps: int, quick: bool) -> list[dict[str, Any]]:
    paper = load_profile("paper")
    base = dataclasses.replace(
        paper,
        dataset="fashion-mnist",
        steps=steps,
        eval_every=steps,
        warmup_steps=round(paper.warmup_steps * steps / paper.steps),
        give_up_after=None,
        time_limit_s=None,
    )
    settings = GPU_SETTINGS[:3] if quick else GPU_SETTINGS
    rows, reference = [], None
    for label, group, changes in settings:
        profile = dataclasses.replace(base, **changes)
        evaluator = Evaluator(profile, device="cuda", group=group)
        evaluator.profile = dataclasses.replace(profile, steps=20, eval_every=20, warmup_steps=2)
        evaluator.evaluate(requests(group, seed=99))  # warm-up: cuDNN's algorithm search
        evaluator.profile = profile
        torch.cuda.synchronize()
        start = time.perf_counter()
        results = evaluator.evaluate(requests(group))
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
        per_step_ms = 1000 * wall / group / steps
        reference = reference or per_step_ms
        messages = sorted({r.message for r in results if r.message})
        if any(r.metadata["group"] != group for r in results):
            messages.append(f"not trained as a group of {group}")
        row = {
            "setting": label,
            "group": group,
            "ms_per_candidate_step": per_step_ms,
            "speedup": reference / per_step_ms,
            "evals_per_gpu_hour_at_8000": 3600 / (per_step_ms / 1000 * paper.steps),
            "best_acc": [r.best_acc for r in results],
            "messages": messages,
        }
        rows.append(row)
        accs = [a for a in row["best_acc"] if a is not None]
        print(
            f"  paper-fmnist {label:<10} K={group:<3}: {per_step_ms:7.3f} ms per candidate-step "
            f"({row['speedup']:5.1f}x eager K=1) -> {row['evals_per_gpu_hour_at_8000']:7.0f} "
            f"evals/GPU-hour at 8000 steps; best acc {min(accs, default=0):.3f}"
            f"-{max(accs, default=0):.3f} {messages or ''}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer candidates, micro only")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--profiles", nargs="+", default=None)
    parser.add_argument("--skip-cpu", action="store_true", help="only the plain loop and GPU")
    args = parser.parse_args(argv)
    names = args.profiles or (["micro"] if args.quick else ["micro", "quick"])
    figures: dict[str, Any] = {"cores": os.cpu_count(), "load_before": os.getloadavg()}
    if not args.skip_cpu:
        print("CPU: processes x threads x K candidates per step (ratio to 1 process, K=1)")
        groups = (1, 2, 4) if args.quick else (1, 2, 4, 8)
        figures["cpu"] = cpu_section(names, 8 if args.quick else 16, groups)
        best = max(figures["cpu"], key=lambda r: r["ratio"])
        print(
            f"  best: {best['processes']} x {best['threads']}, K={best['group']}: "
            f"{best['ratio']:.2f}x (target >= 1.25x)"
        )
    print("One micro evaluation against a plain PyTorch loop (ratio: plain / ours)")
    figures["plain"] = plain_section(3 if args.quick else 7)
    if torch.cuda.is_available():
        print(f"CUDA: {torch.cuda.get_device_name()}")
        figures["gpu"] = gpu_section(300 if args.quick else 1000, args.quick)
    figures["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(figures, allow_nan=False, default=_finite))
    return figures


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


if __name__ == "__main__":
    main()
