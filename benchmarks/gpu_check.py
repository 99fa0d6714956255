"""One prepared check of the GPU path: the ``paper`` profile, one at a time against stacked groups.

For each K of ``--groups`` (default 1 4 8; K = 1 always) it trains ``max(K, --candidates)``
same-seed candidates rounded up to whole groups (cross-entropy, focal, Baikal in turn) through
``Evaluator(profile, group=K)`` after one untimed warm-up group (cuDNN autotuning, first graph
capture), and prints ms per candidate-step, evaluations per GPU-hour at ``--steps`` and
extrapolated to the paper's 8,000 steps, achieved TFLOP/s (one step's FLOPs from
``FlopCounterMode`` x K x steps over the wall time; evaluation passes are timed, not counted: a
lower bound), the ratio to K = 1 (batched/sequential), the group sizes really trained in and any
message (a failed group trained one at a time, a CUDA graph not used). Then the best K against
the targets (batching at least 4x; at least 1,000 evaluations per GPU-hour at 8,000 steps), and
last, for K = 1 and the best K, the GPU-busy fraction of one more group of ``--profile-steps``
steps under ``torch.profiler``: time covered by CUDA kernels and copies over the wall time
(indicative: the profiler slows each step; CUDA only). The figures are printed and flushed
before the profiler runs, so its failure cannot lose them.

Run it from the repository root on the device machine (Python 3.11+, torch and torchvision)::

    PYTHONPATH=. python benchmarks/gpu_check.py --data-dir DIR [--groups 1 4 8] [--steps 1000]

``PYTHONPATH=.`` is needed only where nlfs is not installed. ``DIR`` holds Fashion-MNIST's four
idx files, gzipped or not, directly or under ``DIR/FashionMNIST/raw/`` (torchvision's layout):
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each optionally ending in ``.gz`` (30 MB gzipped; Debian's
``dataset-fashion-mnist`` puts them in ``/usr/share/datasets/fashion-mnist/``, the default). The
images are upscaled to the profile's 80 px; ``--dataset cifar10`` takes the paper's own CIFAR-10
from ``DIR/cifar-10-batches-py/`` instead.

The training path (``nlfs.evaluation``) imports nothing beyond torch, torchvision, numpy and the
standard library. The baseline losses (``nlfs.losses.baselines``) also import DEAP, whose
``deap.tools`` imports moocore, which needs cffi and platformdirs: carry these wheels (pycparser
is cffi's declared dependency; cffi's wheel must match the device's Python)::

    deap==1.4.4 moocore==0.3.2 cffi==2.1.1 platformdirs==4.14.8 pycparser==3.12

e.g. ``pip download --only-binary=:all: --python-version X.Y -d wheels/ <those>`` here and
``pip install --no-index --find-links wheels/ deap`` there. Without them the script says so and
trains torch's cross-entropy for every candidate (about the same step cost).

Budget, from the H200 figures of 2026-11-30 (1.4 ms per step at K = 1, 2.9 ms per
candidate-step stacked): with the defaults (``--steps 1000 --candidates 3``) K = 1 trains 4
candidates (6 s), K = 4 8 (about 25 s) and K = 8 16 (about 46 s), the two profiled groups 200 steps
each; with data loading and evaluation passes about 2 minutes, under the 5 allowed. ``--smoke``
runs it tiny on the CPU (no profiler) so a test can tell the script is not broken.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Iterable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from nlfs.errors import NLFSError
from nlfs.evaluation.evaluator import Evaluator
from nlfs.evaluation.models import build_model
from nlfs.evaluation.profiles import Profile, load_profile
from nlfs.evaluation.results import EvalRequest, EvalResult

LOSSES = ("cross_entropy", "focal", "baikal")
TARGET_RATIO = 4.0  # batched over sequential evaluations per hour
TARGET_PER_HOUR = 1000  # evaluations per GPU-hour at the paper's full step count
FULL_STEPS = load_profile("paper").steps
MET = {True: "met", False: "NOT met"}
NOT_DEVICE_WORK = {"gpu_user_annotation", "cuda_sync", "cuda_profiler_range"}  # kineto's names
SMOKE = dict(steps=3, train_size=256, val_size=64, resolution=16, eval_batch_size=64, batch_size=8)
Pool = Sequence[tuple[str, torch.nn.Module]]  # (name, loss) pairs that requests cycle through


@dataclasses.dataclass(frozen=True)
class Timing:
    """The timed groups of one K: ``candidates`` trained ``steps`` steps in ``seconds``."""

    group: int
    candidates: int
    steps: int
    seconds: float
    step_flops: int  # one candidate's training step

    @property
    def per_step_s(self) -> float:
        return self.seconds / (self.candidates * self.steps)

    def per_hour(self, steps: int | None = None) -> float:
        """Evaluations per hour at ``steps`` (None: the steps measured)."""
        return 3600 / (self.per_step_s * (steps or self.steps))

    @property
    def tflops(self) -> float:
        return self.step_flops * self.candidates * self.steps / self.seconds / 1e12


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder of the dataset's files")
    parser.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist", "cifar10"))
    parser.add_argument("--groups", type=positive, nargs="+", default=[1, 4, 8], help="the Ks")
    parser.add_argument("--steps", type=positive, default=1000, help="steps per candidate")
    parser.add_argument("--candidates", type=positive, default=3, help="least candidates per K")
    parser.add_argument("--profile-steps", type=positive, default=200, help="steps profiled")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run (tests)")
    return parser.parse_args(argv)


def cut(profile: Profile, steps: int) -> Profile:
    """The profile cut to ``steps``: warm-up scaled with it, one evaluation at the end."""
    warmup = round(profile.warmup_steps * steps / profile.steps)
    return dataclasses.replace(profile, steps=steps, eval_every=steps, warmup_steps=warmup)


def check_profile(args: argparse.Namespace) -> Profile:
    """The paper profile on ``--dataset``, cut to ``--steps``, with no early give-up."""
    paper = load_profile("paper")
    changes = {"give_up_after": None, "time_limit_s": None, "compile": args.compile}
    changes.update(SMOKE if args.smoke else {"steps": args.steps})
    profile = dataclasses.replace(paper, name=f"{paper.name}-check", dataset=args.dataset)
    steps = changes.pop("steps")
    return cut(dataclasses.replace(profile, **changes), steps)


def step_flops(profile: Profile, evaluator: Evaluator) -> int:
    """FLOPs of one training step (forward and backward) of the profile's model and batch."""
    dataset = evaluator.data().dataset
    model = build_model(
        profile.model,
        dataset.in_channels,
        dataset.num_classes,
        seed=0,
        device=evaluator.device,
        width=profile.width,
        dropout=profile.dropout,
    )
    size = profile.resolution or dataset.image_size
    x = torch.zeros(profile.batch_size, dataset.in_channels, size, size, device=evaluator.device)
    y = torch.zeros(profile.batch_size, dtype=torch.int64, device=evaluator.device)
    counter = FlopCounterMode(display=False)
    with counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def losses() -> list[tuple[str, torch.nn.Module]]:
    """The baseline losses to cycle through; torch's cross-entropy where DEAP is missing."""
    try:
        from nlfs.losses.baselines import get_loss
    except ModuleNotFoundError as err:  # a bare device machine: the step costs the same
        print(f"nlfs.losses unavailable ({err}): every candidate trains torch's cross-entropy")
        return [("cross_entropy", torch.nn.CrossEntropyLoss())]
    return [(name, get_loss(name)) for name in LOSSES]


def requests(pool: Pool, count: int) -> list[EvalRequest]:
    """``count`` candidates cycling through ``pool``, one seed: only same seeds are stacked."""
    return [EvalRequest(pool[i % len(pool)][1], 0, pool[i % len(pool)][0]) for i in range(count)]


def rounded_count(group: int, candidates: int) -> int:
    """``max(group, candidates)`` rounded up to a whole number of groups."""
    return math.ceil(max(group, candidates) / group) * group


def timed(evaluator: Evaluator, batch: Sequence[EvalRequest]) -> tuple[float, list[EvalResult]]:
    """Wall seconds of evaluating ``batch`` (the device drained before and after) and results."""
    synchronize(evaluator.device)
    start = time.perf_counter()
    results = evaluator.evaluate(batch)
    synchronize(evaluator.device)
    return time.perf_counter() - start, results


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(results: Sequence[EvalResult]) -> str:
    """States, the group sizes actually trained in and any messages (fallbacks say so)."""
    states = sorted({r.state.value for r in results})
    counts = ", ".join(f"{sum(r.state.value == s for r in results)} {s}" for s in states)
    groups = sorted({r.metadata["group"] for r in results})
    messages = sorted({r.message for r in results if r.message})
    notes = "".join(f"\n      note: {m[:200]}" for m in messages)
    return f"{counts}; trained in groups of {groups}{notes}"


def busy_fraction(events: Iterable, wall_s: float) -> tuple[float, int]:
    """Fraction of ``wall_s`` covered by CUDA kernels and copies, and how many there were.

    ``events`` are profiler events (``prof.events()``, ``time_range`` in microseconds). Those on
    the CUDA device are kernels, copies and memsets, but also the device-side spans of
    ``record_function`` ranges and sync waits: these cover idle gaps, so they are left out, as
    torch's own device-time totals leave them out. Overlapping events (several streams) count
    once: the union of their intervals, not the sum.
    """
    spans = sorted(
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.device_type == torch.autograd.DeviceType.CUDA
        and not getattr(e, "is_user_annotation", False)
        and getattr(e, "activity_type", None) not in NOT_DEVICE_WORK
    )
    covered, reach = 0.0, -math.inf
    for start, end in spans:
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered / 1e6 / wall_s, len(spans)


def profiled(
    evaluator: Evaluator, batch: Sequence[EvalRequest], activities: Sequence
) -> tuple[float, int, float, list[EvalResult]]:
    """Evaluate ``batch`` under the profiler: (busy fraction, device events, wall s, results)."""
    with torch.profiler.profile(activities=list(activities)) as prof:
        wall, results = timed(evaluator, batch)
    fraction, count = busy_fraction(prof.events(), wall)
    return fraction, count, wall, results


def sweep(
    evaluators: dict[int, Evaluator], pool: Pool, candidates: int, flops: int
) -> list[Timing]:
    """Time each K after one warm-up group; print a line per K with its ratio to K = 1."""
    timings = []
    for group, evaluator in evaluators.items():
        evaluator.evaluate(requests(pool, group))  # warm-up: autotuning and first capture
        count = rounded_count(group, candidates)
        seconds, results = timed(evaluator, requests(pool, count))
        steps = evaluator.profile.steps
        timing = Timing(group, count, steps, seconds, flops)
        timings.append(timing)
        ratio = timing.per_hour() / timings[0].per_hour()
        print(
            f"  K={group}: {count} candidates in {seconds:.1f} s, "
            f"{1000 * timing.per_step_s:.3f} ms per candidate-step, evaluations per GPU-hour "
            f"{timing.per_hour():,.1f} at {steps} steps, ~{timing.per_hour(FULL_STEPS):,.1f} at "
            f"{FULL_STEPS}; {timing.tflops:.4g} TFLOP/s; {ratio:.2f}x K=1 (batched/sequential)"
            f"\n      {describe(results)}",
            flush=True,
        )
    return timings


def verdict(timings: Sequence[Timing]) -> Timing:
    """Print the best K against the targets; return its timing."""
    best = max(timings, key=lambda t: t.per_hour())
    ratio = best.per_hour() / timings[0].per_hour()
    full = best.per_hour(FULL_STEPS)
    print(
        f"best K={best.group}: {ratio:.2f}x batched/sequential (target >= {TARGET_RATIO:g}x: "
        f"{MET[ratio >= TARGET_RATIO]}); ~{full:,.1f} evaluations per GPU-hour at {FULL_STEPS} "
        f"steps (target >= {TARGET_PER_HOUR:,}: {MET[full >= TARGET_PER_HOUR]})",
        flush=True,
    )
    return best


def busy(evaluators: dict[int, Evaluator], pool: Pool, groups: Sequence[int], steps: int) -> None:
    """GPU-busy fraction of one profiled group of each K in ``groups`` (CUDA only)."""
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    for group in groups:
        evaluator = evaluators[group]
        evaluator.profile = cut(evaluator.profile, min(steps, evaluator.profile.steps))
        try:
            fraction, count, wall, results = profiled(evaluator, requests(pool, group), activities)
        except Exception as err:  # noqa: BLE001 - the figures above are printed already
            print(f"  K={group}: profiler failed: {type(err).__name__}: {err}", flush=True)
            continue
        ran = evaluator.profile.steps
        seen = f"{fraction:.1%} of {wall:.2f} s" if count else "no CUDA events recorded"
        print(
            f"  GPU-busy K={group}: {seen} ({count} kernels and copies, {count / ran:.0f} per "
            f"step of {ran} steps)\n      {describe(results)}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = check_profile(args)
    groups = sorted({1, *args.groups})
    candidates = 2 if args.smoke else args.candidates
    asked = "cpu" if args.smoke else args.device
    start = time.perf_counter()
    try:
        evaluators = {
            k: Evaluator(profile, device=asked, data_dir=args.data_dir, group=k) for k in groups
        }
    except NLFSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = evaluators[1].device
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU)"
    print(
        f"device {device} ({gpu}); dataset {profile.dataset} loaded in "
        f"{time.perf_counter() - start:.1f} s"
    )
    print(
        f"profile: model {profile.model}, {profile.resolution} px, augment {profile.augment}, "
        f"batch {profile.batch_size}, steps {profile.steps}, bf16 {profile.bf16}, "
        f"channels_last {profile.channels_last}, cuda_graph {profile.cuda_graph}, "
        f"compile {profile.compile}"
    )
    flops = step_flops(profile, evaluators[1])
    print(f"training FLOPs per candidate-step {flops / 1e9:.3f} GFLOP; groups K = {groups}")
    pool = losses()
    timings = sweep(evaluators, pool, candidates, flops)
    best = verdict(timings)
    if device.type == "cuda":
        print("GPU-busy fraction (the profiler slows each step: indicative):")
        busy(evaluators, pool, sorted({1, best.group}), args.profile_steps)
    else:
        print("GPU-busy fraction: skipped (the CUDA profiler needs a CUDA device)")
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
