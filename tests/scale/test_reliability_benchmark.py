"""benchmarks/reliability.py must not be broken: its tiny mode runs here, and even tiny it must
lose nothing (its targets are invariants of the runner and the grid)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
FIGURES = ("trials lost", "evaluated twice after completing", "budget overshoot")


def test_the_reliability_benchmark_runs_tiny_and_meets_its_targets(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "reliability", ROOT / "benchmarks" / "reliability.py"
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "reliability", module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0
    out = capsys.readouterr().out
    parts = re.split(r"^(search|transfer): ", out, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert sorted(sections) == ["search", "transfer"], out
    for run, section in sections.items():
        assert re.match(r"\d+ s, 2 kills", section), section
        for figure in FIGURES:
            value = re.search(rf"{figure}\s+(\d+)", section)
            assert value is not None and value.group(1) == "0", f"{run}: {figure}\n{section}"
        assert "STOPPED" not in section
        assert re.search(r"kill -> recovered\s+\d+\.\d+ s \(2\)", section), section
