"""The evaluator on real Fashion-MNIST: sanity bars, failure states, determinism, RNG hygiene.

The CPU here is shared by several engineers, so these tests run torch on one thread (restored
afterwards) and lift the profiles' wall-clock limits; no test asserts a duration.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nlfs.config import build
from nlfs.errors import ConfigError
from nlfs.evaluation.evaluator import Evaluator, seed_streams
from nlfs.evaluation.profiles import Profile, load_profile
from nlfs.evaluation.results import EvalRequest, State
from nlfs.evaluation.training import lr_factor
from nlfs.losses.compile import ExpressionLoss

ROOT = Path(__file__).resolve().parents[2]
CROSS_ENTROPY = "neg(mul(y, log(p)))"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def micro():
    return dataclasses.replace(load_profile("micro"), time_limit_s=None)


@pytest.fixture(scope="module")
def short(micro):
    """micro cut to 40 steps, with dropout and augmentation so their draws are exercised."""
    return dataclasses.replace(
        micro, steps=40, eval_every=20, dropout=0.3, augment="flipcrop+cutout", give_up_after=None
    )


def run(profile, loss, seed=0):
    return Evaluator(profile, device="cpu").evaluate([EvalRequest(loss, seed)])[0]


@pytest.mark.fmnist
def test_cross_entropy_on_micro_reaches_the_sanity_bar(micro):
    result = run(micro, ExpressionLoss(CROSS_ENTROPY))
    assert result.state is State.OK, result.message
    assert result.fitness is not None and result.fitness >= 0.75
    assert result.steps == micro.steps
    assert [h["step"] for h in result.metadata["history"]] == [50, 100, 150, 200]
    assert result.metadata["model"] == "tiny_cnn" and result.profile == "micro"


@pytest.mark.fmnist
def test_a_loss_without_gradient_stays_at_chance_and_is_given_up(micro):
    result = run(micro, ExpressionLoss("mul(y, 1)"))
    assert result.state is State.DIVERGED and result.fitness is None
    assert "training accuracy" in result.message
    assert result.best_acc < 0.3


@pytest.mark.fmnist
def test_wrong_signed_cross_entropy_never_gets_a_fitness(micro):
    result = run(micro, ExpressionLoss(CROSS_ENTROPY, sign=-1.0))
    assert result.state in (State.DIVERGED, State.NAN) and result.fitness is None
    assert result.best_acc is None or result.best_acc < 0.3


@pytest.mark.fmnist
def test_same_seed_same_result_and_other_seeds_differ(short):
    evaluator = Evaluator(short, device="cpu")
    loss = nn.CrossEntropyLoss()
    first, again, other = evaluator.evaluate(
        [EvalRequest(loss, 7), EvalRequest(loss, 7), EvalRequest(loss, 8)]
    )
    assert first.metadata["history"] == again.metadata["history"]
    assert first.fitness == again.fitness
    assert first.metadata["history"] != other.metadata["history"]


@pytest.mark.fmnist
def test_a_nan_loss_stops_at_once(short):
    def nan_loss(logits, target):
        return F.cross_entropy(logits, target) * float("nan")

    result = run(short, nan_loss)
    assert result.state is State.NAN and result.steps == 1 and result.fitness is None


@pytest.mark.fmnist
def test_a_tiny_time_limit_times_out(short):
    result = run(dataclasses.replace(short, time_limit_s=1e-9), nn.CrossEntropyLoss())
    assert result.state is State.TIMEOUT and result.steps == 1 and result.fitness is None


@pytest.mark.fmnist
def test_an_exception_in_training_is_an_error_result(short):
    def broken(logits, target):
        raise ValueError("candidate exploded")

    result = run(short, broken)
    assert result.state is State.ERROR and "candidate exploded" in result.message


@pytest.mark.fmnist
def test_keyboard_interrupt_is_not_swallowed(short):
    def interrupted(logits, target):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(short, interrupted)


@pytest.mark.fmnist
def test_evaluate_leaves_the_global_rng_alone(short):
    state = torch.random.get_rng_state()
    run(short, nn.CrossEntropyLoss())
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.fmnist
def test_one_result_per_request_in_order_and_a_replaced_profile_is_rebuilt(short):
    evaluator = Evaluator(dataclasses.replace(short, steps=2, eval_every=1), device="cpu")
    results = evaluator.evaluate([EvalRequest(nn.CrossEntropyLoss(), s, f"r{s}") for s in range(3)])
    assert [r.metadata["name"] for r in results] == ["r0", "r1", "r2"]
    evaluator.profile = dataclasses.replace(
        evaluator.profile, model="small_cnn", width=4, resolution=None
    )
    result = evaluator.evaluate([EvalRequest(nn.CrossEntropyLoss(), 0)])[0]
    assert result.state is State.OK and result.metadata["model"] == "small_cnn"


@pytest.mark.fmnist
@pytest.mark.gpu
def test_micro_on_cuda_reaches_the_sanity_bar_and_keeps_the_data_on_the_device(micro):
    """The GPU path (data on the device, channels_last, bf16) trains as well as the CPU one."""
    evaluator = Evaluator(micro, device="cuda")
    assert evaluator.data().train_x.device.type == "cuda"
    first, again = evaluator.evaluate([EvalRequest(ExpressionLoss(CROSS_ENTROPY), 0)] * 2)
    assert first.state is State.OK and first.device.startswith("cuda"), first.message
    assert first.fitness >= 0.75
    # cuDNN may pick non-deterministic kernels: a repeat agrees closely, not bit for bit
    assert again.fitness == pytest.approx(first.fitness, abs=0.01)


def test_cuda_without_cuda_is_a_config_error(short):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="--device cpu"):
        Evaluator(short, device="cuda")


def test_seed_streams_are_distinct_and_stable():
    streams = seed_streams(3)
    assert len(set(streams.values())) == 4 and streams == seed_streams(3)
    assert streams != seed_streams(4)


def test_learning_rate_warms_up_linearly_then_decays_to_zero():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(10, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.0)
    values = [lr_factor(s, 10, 100) for s in range(10, 101)]
    assert values == sorted(values, reverse=True)


@pytest.mark.fmnist
def test_gpu_check_runs_in_smoke_mode(capsys, monkeypatch):
    """The prepared GPU script must not be broken: it runs tiny on the CPU here (in this
    process, so it reuses the loaded dataset) for K = 1 and 2, and each K's figures agree with
    each other and with its ratio to K = 1."""
    import re
    import sys

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # its dataclass looks it up
    spec.loader.exec_module(module)
    assert module.main(["--smoke", "--groups", "2"]) == 0  # K = 1 is always measured
    out = capsys.readouterr().out
    pattern = (
        r"K=(\d+): (\d+) candidates in [\d.]+ s, ([\d.]+) ms per candidate-step, evaluations "
        r"per GPU-hour ([\d,.]+) at (\d+) steps, ~([\d,.]+) at 8000; ([\d.e+-]+) TFLOP/s; "
        r"([\d.]+)x K=1 \(batched/sequential\)\n +(.*)"
    )
    lines = {int(m[0]): m[1:] for m in re.findall(pattern, out)}
    assert sorted(lines) == [1, 2], out
    per_hour = {}
    for k, (count, ms, hour, steps, full, tflops, _, summary) in lines.items():
        assert (int(count), int(steps)) == (2, 3)
        assert summary == f"2 ok; trained in groups of [{k}]"
        hour, full = float(hour.replace(",", "")), float(full.replace(",", ""))
        # evaluations per hour = 3600 s / (s per candidate-step x steps), to printed precision
        assert hour == pytest.approx(3600 / (float(ms) / 1000 * 3), rel=1e-3)
        assert full == pytest.approx(hour * 3 / 8000, rel=1e-3)
        assert float(tflops) > 0
        per_hour[k] = hour
    assert lines[1][6] == "1.00"
    assert float(lines[2][6]) == pytest.approx(per_hour[2] / per_hour[1], abs=0.01)
    assert f"best K={max(per_hour, key=per_hour.get)}: " in out
    assert "GPU-busy fraction: skipped" in out


def test_fields_added_later_stay_out_of_stored_profile_data_at_their_default():
    """Job ids and config hashes of studies stored before a field existed must not change."""
    from nlfs.evaluation.profiles import ADDED_LATER, profile_data

    micro = load_profile("micro")
    data = profile_data(micro)
    assert not set(ADDED_LATER) & set(data)
    assert {k: v for k, v in dataclasses.asdict(micro).items() if k not in ADDED_LATER} == data
    changed = profile_data(dataclasses.replace(micro, augment_chunk=4))
    assert changed["augment_chunk"] == 4 and "cuda_graph" not in changed
    # the data rebuilds the same profile: the dropped fields come back as their defaults
    assert build(Profile, data, where="test") == micro
