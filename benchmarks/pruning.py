"""What pruning saves: the default search with and without its pruning rule, same seeds.

Issue 11 section 1: for each search seed, run the search config (``configs/default.toml`` by
default) twice in fresh journals, once with its ``[pruning]`` rule and once with rule ``none``,
everything else equal (strategy seed, evaluation seed, budget). From the stored trials:

* total training steps spent (the ``steps`` attribute of every budget-using trial);
* best fitness found (completed trials only; a pruned trial has none);
* steps the pruned run needed to reach the unpruned run's best, exactly and within noise;
* the noise: standard deviation of the unpruned run's best candidate over fresh evaluation
  seeds (``--noise-seeds``), the yardstick of "a best fitness within noise".

Target: at least 2x fewer steps for a best fitness within noise (2 standard deviations).

Usage::

    .venv/bin/python benchmarks/pruning.py [--quick] [--config default] [--seeds 0 1]
        [--budget N] [--json]

``--quick`` runs one seed at budget 40 (about a minute or two on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nlfs.evaluation.results import EvalRequest
from nlfs.search.config import SearchConfig, load_search_config
from nlfs.search.pruning import PruningConfig
from nlfs.search.runner import SearchWorker, default_evaluator, study_attrs
from nlfs.search.trials import counts_toward_budget
from nlfs.spaces import get_space
from nlfs.storage import open_study, quiet_optuna, resolve_storage

QUICK_BUDGET = 40
WITHIN_NOISE_SD = 2.0
"""A best fitness is "within noise" of another when they differ by at most this many noise
standard deviations."""


def search(config: SearchConfig, folder: Path, name: str, factory=None) -> optuna.Study:
    """Run one search to its budget in a fresh journal under ``folder``."""
    storage = resolve_storage(str(folder / f"{name}.journal"), name)
    study = open_study(name, storage, attrs=study_attrs(config))
    SearchWorker(study, config, evaluator_factory=factory).run()
    return study


def trajectory(study: optuna.Study) -> dict[str, Any]:
    """Cumulative steps and running best fitness after each budget-using trial, in order."""
    used = sorted(
        (
            t
            for t in study.get_trials(deepcopy=False)
            if t.state.is_finished() and counts_toward_budget(t)
        ),
        key=lambda t: t.number,
    )
    steps, best, total, running = [], [], 0, None
    for trial in used:
        total += int(trial.user_attrs.get("steps") or 0)
        if trial.state == TrialState.COMPLETE:
            running = trial.value if running is None else max(running, trial.value)
        steps.append(total)
        best.append(running)
    return {
        "trials": len(used),
        "pruned": sum(t.state == TrialState.PRUNED for t in used),
        "failed": sum(t.state == TrialState.FAIL for t in used),
        "steps": steps,
        "best": best,
        "total_steps": total,
        "best_fitness": running,
        "seconds": sum(float(t.user_attrs.get("seconds") or 0.0) for t in used),
    }


def steps_to_reach(run: dict[str, Any], target: float | None) -> int | None:
    """Cumulative steps at which ``run``'s running best first reaches ``target``."""
    if target is None:
        return None
    return next(
        (
            s
            for s, b in zip(run["steps"], run["best"], strict=True)
            if b is not None and b >= target
        ),
        None,
    )


def noise(study: optuna.Study, config: SearchConfig, seeds: int, factory=None) -> float | None:
    """Standard deviation of the study's best candidate over ``seeds`` fresh evaluation seeds."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if seeds < 2 or not done:
        return None
    best = max(done, key=lambda t: t.value)
    space = get_space(config.space, **config.space_options)
    genome = space.from_json(best.user_attrs["genome"])
    loss = space.compile(genome, float(best.user_attrs["sign"]))
    evaluator = (factory or default_evaluator)(config.profile, config)
    base = config.eval_seed + 1000
    requests = [EvalRequest(loss, seed=base + i) for i in range(seeds)]
    values = [r.best_acc for r in evaluator.evaluate(requests) if r.fitness is not None]
    return statistics.stdev(values) if len(values) >= 2 else None


def compare_seed(config: SearchConfig, seed: int, folder: Path, noise_seeds: int, factory=None):
    """One seed: the search with its pruning rule and with none; the figures of the docstring."""
    pruned_cfg = dataclasses.replace(config, seed=seed)
    plain_cfg = dataclasses.replace(pruned_cfg, pruning=PruningConfig())
    start = time.perf_counter()
    plain_study = search(plain_cfg, folder, f"plain-s{seed}", factory)
    plain_wall = time.perf_counter() - start
    print(f"seed {seed}: unpruned search done in {plain_wall:.0f} s", file=sys.stderr)
    start = time.perf_counter()
    pruned_study = search(pruned_cfg, folder, f"pruned-s{seed}", factory)
    pruned_wall = time.perf_counter() - start
    plain, pruned = trajectory(plain_study), trajectory(pruned_study)
    sd = noise(plain_study, plain_cfg, noise_seeds, factory)
    target = plain["best_fitness"]
    reach = steps_to_reach(pruned, target)
    tolerance = WITHIN_NOISE_SD * sd if sd is not None else 0.0
    reach_noise = steps_to_reach(pruned, None if target is None else target - tolerance)
    gap = None
    if target is not None and pruned["best_fitness"] is not None:
        gap = pruned["best_fitness"] - target
    for run in (plain, pruned):
        run.pop("steps"), run.pop("best")
    return {
        "seed": seed,
        "plain": {**plain, "wall_s": plain_wall},
        "pruned": {**pruned, "wall_s": pruned_wall},
        "noise_sd": sd,
        "best_gap": gap,
        "within_noise": gap is not None and abs(gap) <= tolerance,
        "steps_ratio": plain["total_steps"] / max(pruned["total_steps"], 1),
        "pruned_steps_to_plain_best": reach,
        "pruned_steps_to_plain_best_within_noise": reach_noise,
        "plain_steps_to_own_best": steps_to_reach(trajectory(plain_study), target),
    }


def run(args: argparse.Namespace, factory=None) -> dict[str, Any]:
    config = load_search_config(args.config)
    budget = args.budget or (QUICK_BUDGET if args.quick else config.budget)
    config = dataclasses.replace(config, budget=budget, device=args.device, workers=1)
    if config.pruning.rule == "none":
        raise SystemExit(f"config {args.config!r} has no [pruning] rule to measure")
    seeds = args.seeds or ([config.seed] if args.quick else [config.seed])
    with tempfile.TemporaryDirectory() as tmp:
        rows = [compare_seed(config, s, Path(tmp), args.noise_seeds, factory) for s in seeds]
    return {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "config": args.config,
        "profile": config.profile,
        "budget": budget,
        "pruning": dataclasses.asdict(config.pruning),
        "seeds": rows,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"pruning benchmark {result['date']}: config {result['config']}, profile "
        f"{result['profile']}, budget {result['budget']}, rule {result['pruning']['rule']}"
    ]
    for row in result["seeds"]:
        p, q = row["plain"], row["pruned"]
        sd = row["noise_sd"]
        lines += [
            f"seed {row['seed']}: steps {p['total_steps']} -> {q['total_steps']} "
            f"({row['steps_ratio']:.2f}x fewer; {q['pruned']} of {q['trials']} pruned); "
            f"training seconds {p['seconds']:.0f} -> {q['seconds']:.0f}",
            f"  best fitness {p['best_fitness']} -> {q['best_fitness']} (gap {row['best_gap']}, "
            f"noise sd {sd}; within {WITHIN_NOISE_SD:g} sd: {row['within_noise']})",
            f"  steps to the unpruned best: unpruned {row['plain_steps_to_own_best']}, pruned "
            f"{row['pruned_steps_to_plain_best']} (within noise: "
            f"{row['pruned_steps_to_plain_best_within_noise']})",
        ]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"one seed, budget {QUICK_BUDGET}")
    parser.add_argument("--config", default="default")
    parser.add_argument("--seeds", type=int, nargs="*")
    parser.add_argument("--budget", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--noise-seeds", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, factory=None) -> dict[str, Any]:
    quiet_optuna()
    args = parse(argv)
    result = run(args, factory)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
