"""Helpers for the strategy tests: synthetic fitness (no training) and a plugin installer."""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from nlfs.evaluation.results import State
from nlfs.losses.expressions import expression_key
from nlfs.screening.screen import Screen
from nlfs.search.strategy import Candidate, Strategy, TrialRecord
from nlfs.spaces import SearchSpace, get_space

PLUGIN_DIR = Path(__file__).parent / "plugin_pkg"

# --- synthetic evaluation -------------------------------------------------------------------

GOOD_OPS = frozenset({"sqrt", "tanh", "softplus", "sub", "erf", "atan", "sigmoid", "max"})
"""Operators the synthetic objective rewards: a landscape with structure a model can learn."""


def synthetic_fitness(expression: str) -> float:
    """1 if the outermost operator is in GOOD_OPS, plus 0.1 times the share of GOOD_OPS among
    all operators, plus a tiny key-derived jitter (so ties are rare)."""
    ops = re.findall(r"([a-z][a-z0-9_]*)\(", expression)
    share = sum(op in GOOD_OPS for op in ops) / max(len(ops), 1)
    jitter = int(expression_key(expression)[:6], 16) / 16**6 * 1e-3
    return float(bool(ops) and ops[0] in GOOD_OPS) + 0.1 * share + jitter


def synthetic_trial(number: int, candidate: Candidate, failures: bool = True) -> TrialRecord:
    """A finished trial without training. With ``failures``, trials 3, 8, 13, ... end NaN and
    trials 4, 11, 18, ... are ok but report a NaN fitness."""
    if failures and number % 5 == 3:
        return TrialRecord(number, candidate, State.NAN, None)
    if failures and number % 7 == 4:
        return TrialRecord(number, candidate, State.OK, float("nan"))
    return TrialRecord(number, candidate, State.OK, synthetic_fitness(candidate.expression))


def drive(strategy: Strategy, steps: int, failures: bool = True) -> list[TrialRecord]:
    """Ask one, evaluate synthetically, tell it; ``steps`` times. Trial number = ask index."""
    records = []
    for _ in range(steps):
        (candidate,) = strategy.ask(1)
        record = synthetic_trial(strategy.asked - 1, candidate, failures)
        strategy.tell([record])
        records.append(record)
    return records


# --- plugin installation on a temporary path ------------------------------------------------


def plugin_entry_points() -> dict[str, str]:
    """The ``nlfs.strategies`` entry points the test plugin package declares."""
    data = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())
    return dict(data["project"]["entry-points"]["nlfs.strategies"])


def write_dist_info(root: Path, dist: str, entry_points: Mapping[str, str]) -> Path:
    """Make ``root`` look like site-packages holding ``dist`` with these entry points."""
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[nlfs.strategies]\n{lines}")
    return info


@contextlib.contextmanager
def plugin_on_path() -> Iterator[None]:
    """The test plugin package importable and discoverable for the duration (no install)."""
    tmp = Path(tempfile.mkdtemp())
    write_dist_info(tmp, "nlfs-echo-plugin", plugin_entry_points())
    sys.path[:0] = [str(tmp), str(PLUGIN_DIR)]
    try:
        yield
    finally:
        for entry in (str(tmp), str(PLUGIN_DIR)):
            sys.path.remove(entry)
        shutil.rmtree(tmp)


# --- the real components, small ------------------------------------------------------------


def make_space(name: str) -> SearchSpace:
    """The built-in space ``name`` with its default options."""
    return get_space(name)


def make_screen(expressions: list[str] | None = None) -> Screen:
    """A fresh screen, or one rebuilt from stored expressions as the runner does on resume."""
    return Screen() if expressions is None else Screen.rebuild(expressions)
