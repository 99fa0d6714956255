"""One prepared check of the GPU path: the ``paper`` profile on a few candidates.

Run on a CUDA machine (CIFAR-10 when ``--data-dir`` holds it, else Fashion-MNIST upscaled to the
profile's 80x80)::

    python benchmarks/gpu_check.py [--data-dir DIR] [--steps 1000] [--candidates 3] [--compile]

It trains cross-entropy and two other baselines with the paper's recipe cut to ``--steps``
(warm-up scaled with it, no early give-up) and prints each result, the seconds per candidate,
evaluations per GPU-hour (measured, and extrapolated to the profile's full step count) and the
achieved TFLOP/s: training FLOPs of one step (counted with ``FlopCounterMode``) times the steps,
over the wall time (evaluation passes are in the time but not in the FLOPs: a lower bound).
Budget: under 5 minutes on one GPU with the defaults. ``--smoke`` runs it tiny on the CPU so a
test can tell the script is not broken.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from nlfs.evaluation.evaluator import Evaluator
from nlfs.evaluation.models import build_model
from nlfs.evaluation.profiles import Profile, load_profile
from nlfs.evaluation.results import EvalRequest

LOSSES = ("cross_entropy", "focal", "baikal")
SMOKE = {
    "steps": 3,
    "train_size": 256,
    "val_size": 64,
    "resolution": 16,
    "eval_batch_size": 64,
    "batch_size": 8,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder holding CIFAR-10")
    parser.add_argument("--steps", type=int, default=1000, help="steps per candidate")
    parser.add_argument("--candidates", type=int, default=3, help="candidates to train")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run (tests)")
    return parser.parse_args(argv)


def check_profile(args: argparse.Namespace) -> Profile:
    """The paper profile cut to ``--steps``, on Fashion-MNIST when no data dir is given."""
    paper = load_profile("paper")
    steps = SMOKE["steps"] if args.smoke else args.steps
    changes = {
        "steps": steps,
        "eval_every": steps,
        "give_up_after": None,
        "time_limit_s": None,
        "warmup_steps": round(paper.warmup_steps * steps / paper.steps),
        "compile": args.compile,
    }
    if args.data_dir is None:
        changes["dataset"] = "fashion-mnist"
    if args.smoke:
        changes.update(SMOKE)
    return dataclasses.replace(paper, name=f"{paper.name}-check", **changes)


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


def losses(count: int) -> list[tuple[str, torch.nn.Module]]:
    from nlfs.losses.baselines import get_loss

    return [(name, get_loss(name)) for name in (LOSSES * count)[:count]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = "cpu" if args.smoke else args.device
    profile = check_profile(args)
    count = 2 if args.smoke else args.candidates
    start = time.perf_counter()
    evaluator = Evaluator(profile, device=device, data_dir=args.data_dir)
    load_s = time.perf_counter() - start
    gpu = (
        torch.cuda.get_device_name(evaluator.device)
        if evaluator.device.type == "cuda"
        else "none (CPU)"
    )
    print(f"device {evaluator.device} ({gpu}); dataset {profile.dataset} loaded in {load_s:.1f} s")
    print(
        f"profile: model {profile.model}, {profile.resolution} px, augment {profile.augment}, "
        f"batch {profile.batch_size}, steps {profile.steps}, bf16 {profile.bf16}, "
        f"channels_last {profile.channels_last}, compile {profile.compile}"
    )
    flops = step_flops(profile, evaluator)
    seconds = []
    for seed, (name, loss) in enumerate(losses(count)):
        result = evaluator.evaluate([EvalRequest(loss, seed, name)])[0]
        seconds.append(result.seconds)
        best = "-" if result.best_acc is None else f"{result.best_acc:.4f}"
        print(
            f"  {name:<14} seed {seed}: {result.state.value:<8} best acc {best}  "
            f"{result.steps} steps in {result.seconds:.1f} s {result.message}"
        )
    # the first candidate pays one-off costs (kernel selection, compilation): report it apart
    steady = seconds[1:] or seconds
    per_candidate = statistics.median(steady)
    per_step = per_candidate / profile.steps
    full = load_profile("paper").steps
    print(
        f"first candidate {seconds[0]:.1f} s; median of the rest {per_candidate:.2f} s "
        f"({1000 * per_step:.2f} ms per step)"
    )
    print(
        f"evaluations per GPU-hour: {3600 / per_candidate:.1f} at {profile.steps} steps, "
        f"~{3600 / (per_step * full):.1f} extrapolated to the full {full} steps"
    )
    print(
        f"training FLOPs per step {flops / 1e9:.3f} GFLOP; achieved TFLOP/s "
        f"{flops * profile.steps / per_candidate / 1e12:.3f} (lower bound: eval time included)"
    )
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
