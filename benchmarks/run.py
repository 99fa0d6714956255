"""Every performance figure of issue 11, measured side by side in one run, as ratios.

Sections (each a script of its own in this folder, run here in one process tree):

- ``throughput.py``: evaluations per hour for K candidates at once and for processes x threads
  on the CPU; one micro evaluation against a plain PyTorch loop; on CUDA, the paper profile's
  step eager against a CUDA graph and K = 1 against K > 1;
- ``overhead.py``: the runner's own time per trial against a micro evaluation (K = 1 and K in
  flight) and the strategies' ask latency at 2,000 stored trials (TPE's grows with them);
- ``pruning.py``: the default search with and without its pruning rule (steps spent, best
  fitness).

Usage::

    .venv/bin/python benchmarks/run.py [--quick] [--json] [--only throughput overhead pruning]

The figures and the machine they were measured on are kept in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # the sibling scripts, run as modules

import overhead  # noqa: E402
import pruning  # noqa: E402
import throughput  # noqa: E402

SECTIONS = ("throughput", "overhead", "pruning")
OVERHEAD_SETTINGS = (("regevo", {}, 1), ("regevo", {}, 4), ("tpe", {}, 1))
"""(strategy, options, trials in flight): the runner alone, K in flight, TPE."""


def overhead_section(quick: bool) -> dict[str, Any]:
    """Runner time per trial (K = 1 and 4) and the asks' latency, regevo and TPE."""
    from nlfs.storage import quiet_optuna

    quiet_optuna()
    micro = overhead.micro_seconds()
    stored = (100, 500) if quick else (100, 2000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for strategy, options, group in OVERHEAD_SETTINGS:
            for n in stored:
                folder = Path(tmp) / f"{strategy}-{len(rows)}"
                folder.mkdir()
                r = overhead.measure(n, 10 if quick else 20, folder, strategy, options, group)
                row = {
                    "strategy": strategy,
                    "options": options,
                    "group": group,
                    **r,
                    "runner_share_of_micro": r["per_trial_ms"] / 1000 / micro,
                    "ask_share_of_micro": r["ask_ms"] / 1000 / micro,
                }
                rows.append(row)
                print(
                    f"  {strategy:<6} {str(options or ''):<16} K={group} stored {n:>5}: runner "
                    f"{r['per_trial_ms']:7.1f} ms/trial ({100 * row['runner_share_of_micro']:5.2f}%"
                    f" of micro), ask {r['ask_ms']:7.1f} ms "
                    f"({100 * row['ask_share_of_micro']:5.1f}% of micro)",
                    flush=True,
                )
    return {"micro_seconds": micro, "rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller settings (a few minutes)")
    parser.add_argument("--json", action="store_true", help="print every figure as JSON too")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "date": datetime.now(tz=UTC).isoformat(timespec="minutes"),
        "load_before": os.getloadavg(),
    }
    print(f"{figures['machine']}; {figures['date']}; load {figures['load_before']}")
    if "throughput" in args.only:
        print("== throughput")
        figures["throughput"] = throughput.main(["--quick"] if args.quick else [])
    if "overhead" in args.only:
        print("== runner overhead and TPE ask latency")
        figures["overhead"] = overhead_section(args.quick)
    if "pruning" in args.only:
        print("== pruning")
        figures["pruning"] = pruning.main(["--quick"] if args.quick else [])
    figures["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(figures, default=throughput._finite))
    return figures


if __name__ == "__main__":
    main()
