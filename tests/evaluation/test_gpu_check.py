"""benchmarks/gpu_check.py's parts on the CPU: the figures' arithmetic, the profiler's busy
fraction, the loss fallback and what the script imports on a bare device machine."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.autograd import DeviceType

from nlfs.evaluation.evaluator import Evaluator
from nlfs.evaluation.profiles import load_profile

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
FORBIDDEN = {"optuna", "scipy", "rich", "click", "matplotlib", "sqlalchemy"}
# import name -> wheel, for what the baseline losses pull in (DEAP and its dependencies)
WHEEL_OF = {
    "deap": "deap",
    "moocore": "moocore",
    "_cffi_backend": "cffi",
    "platformdirs": "platformdirs",
}


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclass looks its module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["gpu_check"]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def event(device: DeviceType, start: float, end: float, **more) -> SimpleNamespace:
    span = SimpleNamespace(start=start, end=end)
    return SimpleNamespace(device_type=device, time_range=span, **more)


def test_busy_fraction_is_the_union_of_cuda_work_over_the_wall(gpu_check):
    """Overlapping kernels count once; CPU events, device-side annotation spans and sync waits
    not at all: by hand, [0, 150] and [300, 400] microseconds are covered, 250 of 1,000."""
    events = [
        event(DeviceType.CUDA, 300.0, 400.0, activity_type="kernel"),
        event(DeviceType.CUDA, 0.0, 100.0),
        event(DeviceType.CUDA, 50.0, 150.0, activity_type="gpu_memcpy"),
        event(DeviceType.CUDA, 60.0, 70.0),  # inside another: adds nothing
        event(DeviceType.CPU, 0.0, 1000.0),
        event(DeviceType.CUDA, 0.0, 900.0, is_user_annotation=True),
        event(DeviceType.CUDA, 500.0, 900.0, activity_type="cuda_sync"),
    ]
    fraction, count = gpu_check.busy_fraction(events, wall_s=0.001)
    assert count == 4
    assert fraction == pytest.approx(0.25)


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_the_profiled_groups_run_end_to_end_on_the_cpu_profiler(gpu_check, one_thread, capsys):
    """The GPU-busy path as the H200 runs it, minus CUDA: each K's group is cut to the profiled
    steps, trains in its group and reports no device events."""
    profile = gpu_check.check_profile(gpu_check.parse_args(["--smoke"]))
    evaluators = {k: Evaluator(profile, device="cpu", group=k) for k in (1, 2)}
    gpu_check.busy(evaluators, gpu_check.losses(), [1, 2], steps=2)
    out = capsys.readouterr().out
    for k in (1, 2):
        assert evaluators[k].profile.steps == 2
        assert (
            f"GPU-busy K={k}: no CUDA events recorded (0 kernels and copies, 0 per step of 2 "
            f"steps)\n      {k} ok; trained in groups of [{k}]"
        ) in out, out


def test_candidates_per_k_are_at_least_the_asked_and_whole_groups(gpu_check):
    pairs = {(1, 3): 3, (2, 3): 4, (4, 3): 4, (8, 3): 8, (3, 7): 9, (5, 10): 10}
    assert {pair: gpu_check.rounded_count(*pair) for pair in pairs} == pairs


def test_timing_figures_by_hand(gpu_check):
    """8 candidates of 1,000 steps in 16 s: 2 ms per candidate-step, 1,800 per hour (225 at
    8,000 steps); 2 GFLOP per step makes 2e9 * 8 * 1000 / 16 = 1e12 FLOP/s."""
    timing = gpu_check.Timing(group=4, candidates=8, steps=1000, seconds=16.0, step_flops=2e9)
    assert timing.per_step_s == pytest.approx(0.002)
    assert timing.per_hour() == pytest.approx(1800)
    assert timing.per_hour(8000) == pytest.approx(225)
    assert timing.tflops == pytest.approx(1.0)


def test_verdict_names_the_best_k_and_each_target(gpu_check, capsys):
    """K=8 at 0.25 ms per candidate-step against K=1 at 1.25 ms: 5x, and 3600 / (0.25e-3 * 8000)
    = 1,800 per hour at the paper's steps: both targets met; K=1 alone meets neither."""
    one = gpu_check.Timing(1, 4, 1000, 5.0, 1)
    eight = gpu_check.Timing(8, 8, 1000, 2.0, 1)
    assert gpu_check.verdict([one, eight]) is eight
    out = capsys.readouterr().out
    assert "best K=8: 5.00x batched/sequential (target >= 4x: met)" in out
    assert "~1,800.0 evaluations per GPU-hour at 8000 steps (target >= 1,000: met)" in out
    assert gpu_check.verdict([one]) is one
    out = capsys.readouterr().out
    assert "1.00x batched/sequential (target >= 4x: NOT met)" in out
    assert "(target >= 1,000: NOT met)" in out


def test_check_profile_is_the_paper_cut_to_the_steps(gpu_check):
    paper = load_profile("paper")
    profile = gpu_check.check_profile(gpu_check.parse_args(["--steps", "1000"]))
    # warm-up 800 of 8,000 steps scales to 100 of 1,000
    assert (profile.steps, profile.eval_every, profile.warmup_steps) == (1000, 1000, 100)
    assert profile.dataset == "fashion-mnist"
    assert (profile.give_up_after, profile.time_limit_s) == (None, None)
    kept = dataclasses.replace(
        profile,
        name=paper.name,
        dataset=paper.dataset,
        steps=paper.steps,
        eval_every=paper.eval_every,
        warmup_steps=paper.warmup_steps,
        give_up_after=paper.give_up_after,
        time_limit_s=paper.time_limit_s,
    )
    assert kept == paper
    cifar = gpu_check.check_profile(gpu_check.parse_args(["--dataset", "cifar10"]))
    assert cifar.dataset == "cifar10"


def test_group_sizes_must_be_positive(gpu_check, capsys):
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--groups", "1", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_losses_cycle_and_fall_back_to_torch_cross_entropy_without_deap(
    gpu_check, monkeypatch, capsys
):
    names = [r.name for r in gpu_check.requests(gpu_check.losses(), 5)]
    assert names == ["cross_entropy", "focal", "baikal", "cross_entropy", "focal"]
    monkeypatch.setitem(sys.modules, "nlfs.losses.baselines", None)  # import now fails
    pool = gpu_check.losses()
    assert "every candidate trains torch's cross-entropy" in capsys.readouterr().out
    batch = gpu_check.requests(pool, 3)
    assert [type(r.loss) for r in batch] == [torch.nn.CrossEntropyLoss] * 3


def test_the_script_imports_nothing_beyond_torch_numpy_and_the_wheels_it_names(gpu_check):
    """A device machine has torch and torchvision only: what else the script's imports pull in
    must be named in its docstring as wheels to carry, and none of the heavy CLI packages."""
    code = f"""
import importlib.util, json, sys
import numpy, torch, torchvision
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("gpu_check", {str(SCRIPT)!r})
module = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = module
spec.loader.exec_module(module)
training = set(sys.modules)
module.losses()
roots = lambda names: sorted({{n.split(".")[0] for n in names}} - set(sys.stdlib_module_names))
print(json.dumps([roots(training - before), roots(set(sys.modules) - training)]))
"""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    training, losses = json.loads(run.stdout.strip().splitlines()[-1])
    ours = {"nlfs", "gpu_check", "torch", "torchvision", "numpy"}
    assert set(training) <= ours, training  # the training path
    extra = set(losses) - ours
    assert not extra & FORBIDDEN
    assert extra <= set(WHEEL_OF), extra
    doc = gpu_check.__doc__
    for name in extra:
        assert f"{WHEEL_OF[name]}==" in doc, name


def test_the_script_runs_where_only_torch_and_torchvision_are_installed():
    """The bare device machine, simulated: every package beyond torch, torchvision and numpy is
    hidden from the import system; the smoke run still completes, on torch's cross-entropy."""
    hidden = sorted(FORBIDDEN | set(WHEEL_OF) | {"cffi", "pycparser"})
    code = f"""
import runpy, sys
from importlib.machinery import PathFinder

class Bare(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in {hidden!r}:
            return None  # as if not installed
        return super().find_spec(name, path, target)

sys.meta_path = [Bare if finder is PathFinder else finder for finder in sys.meta_path]
sys.argv = ["gpu_check.py", "--smoke", "--groups", "2"]
try:
    runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
except SystemExit as done:
    print("exit", done.code, sorted(set({hidden!r}) & {{n.split(".")[0] for n in sys.modules}}))
"""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "exit 0 []", run.stdout + run.stderr
    assert "every candidate trains torch's cross-entropy" in run.stdout
    assert "best K=" in run.stdout
