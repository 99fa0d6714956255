"""benchmarks/throughput.py and benchmarks/run.py must not be broken: their pieces run tiny."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from nlfs.evaluation.evaluator import Evaluator
from nlfs.evaluation.profiles import Profile

ROOT = Path(__file__).resolve().parents[2]
TINY = Profile(name="tiny-bench", train_size=256, val_size=64, batch_size=32, steps=8, eval_every=4)


def load(name: str):
    """Import ``benchmarks/<name>.py`` as the module ``name``: spawned benchmark workers import
    it again by that name, so the folder stays on the path (they inherit it)."""
    folder = str(ROOT / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


@pytest.mark.fmnist
def test_throughput_pieces_run_tiny():
    throughput = load("throughput")
    assert throughput.cpu_splits(2, (1, 2)) == [(1, 2, 1), (1, 2, 2), (2, 1, 1), (2, 1, 2)]
    # two spawned processes sharing four candidates, two at a time
    assert throughput.cpu_rate(TINY, 2, 1, 2, 4) > 0
    evaluator = Evaluator(TINY, device="cpu", group=1)
    assert throughput.plain_loop_seconds(TINY, evaluator, seed=0) > 0


def test_run_names_every_section_it_runs():
    run = load("run")
    assert set(run.SECTIONS) == {"throughput", "overhead", "pruning"}
    assert {s[0] for s in run.OVERHEAD_SETTINGS} == {"regevo", "tpe"}


@pytest.mark.parametrize("setting", load("run").OVERHEAD_SETTINGS, ids=lambda s: f"{s[0]}-K{s[2]}")
def test_every_overhead_setting_runs_the_real_runner_tiny(tmp_path, setting):
    """Each setting run.py measures is one the runner accepts (a removed strategy option once
    broke the section only when someone ran it)."""
    overhead = load("overhead")
    strategy, options, group = setting
    result = overhead.measure(20, 4, tmp_path, strategy, options, group)
    assert result["ran"] == 4
    assert result["per_trial_ms"] > 0 and result["ask_ms"] > 0
