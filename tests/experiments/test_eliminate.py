"""Elimination: each stage keeps the configured number of best candidates by their mean over
seeds, reports each cut against the seed-to-seed noise, and resumes."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from scipy import stats

from nlfs.errors import ConfigError
from nlfs.evaluation.profiles import load_profile
from nlfs.evaluation.results import EvalResult, State
from nlfs.experiments.cuts import Cut, judge_cut, keep_best, pooled_sd
from nlfs.experiments.eliminate import (
    load_elimination_config,
    open_elimination,
    records,
    run_elimination,
    stage_profile,
    top_candidates,
)
from nlfs.experiments.funnel import funnel_from_study
from nlfs.experiments.grid import run_worker
from nlfs.experiments.jobs import check_names
from nlfs.storage import open_study, resolve_storage

NANO = Path(__file__).parents[1] / "profiles" / "nano.toml"
# (expression, key, search fitness); "k1" appears twice (a duplicate key), one trial fails.
SEARCH = [
    ("mul(y, log(p))", "k0", 0.90),
    ("mul(y, sub(p, 1))", "k1", 0.85),
    ("mul(y, sub(p, 1))", "k1", 0.84),
    ("neg(mul(y, p))", "k2", 0.80),
    ("mul(y, square(sub(p, 1)))", "k3", 0.75),
    ("mul(y, neg(sqrt(p)))", "k4", 0.70),
    ("mul(y, neg(tanh(p)))", "k5", 0.65),
]


class StageEvaluator:
    """Fitness depends on the stage (its steps), the candidate and the seed; one candidate can
    fail."""

    def __init__(self, setting, fail_on: str | None, log: list) -> None:
        self.steps = setting.profile["steps"]
        self.fail_on = fail_on
        log.append(self.steps)

    def evaluate(self, requests):
        out = []
        for req in requests:
            expr = req.loss.expression
            if self.fail_on and self.fail_on == expr:
                out.append(EvalResult(State.DIVERGED, None, None, 1, 0.0, "fake", "cpu"))
                continue
            # Deterministic, and the ranking changes between stages (steps enter the value) and
            # seeds (the seed shifts it).
            acc = (sum(map(ord, expr)) * (self.steps + 7) + 131 * req.seed) % 997 / 997
            out.append(EvalResult(State.OK, acc, acc, self.steps, 0.0, "fake", "cpu"))
        return out


def write_config(tmp_path, keep="3, 2, 1", top=5, extra="") -> Path:
    path = tmp_path / "elim.toml"
    path.write_text(
        f"profile = '{NANO}'\ntop = {top}\nkeep = [{keep}]\n{extra}"
        "[[stages]]\nsteps = 4\n[[stages]]\nsteps = 6\naugment = 'flipcrop'\n"
        "[[stages]]\nsteps = 8\ndropout = 0.1\n"
    )
    return path


@pytest.fixture
def search(tmp_path):
    """A search study built from trials directly (no training)."""
    path = str(tmp_path / "runs.journal")
    storage = resolve_storage(path, "s")
    study = open_study("s", storage, attrs={"kind": "search"})
    for expr, key, value in SEARCH:
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={"x": value},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"expression": expr, "key": key, "sign": 1.0},
            )
        )
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.FAIL, user_attrs={"expression": "log(p)", "key": "bad"}
        )
    )
    return path, storage


def run(tmp_path, search, *, fail_on=None, log=None, stop_after=None, keep="3, 2, 1", seeds=None):
    path, storage = search
    config = load_elimination_config(write_config(tmp_path, keep=keep), seeds=seeds)
    study, settings, pool = open_elimination("s-eliminate", storage, config, "s", storage)
    log = [] if log is None else log
    stages_run = []

    def run_stage(index, jobs):
        if stop_after is not None and index >= stop_after:
            raise KeyboardInterrupt
        stages_run.append(index)
        run_worker(
            "s-eliminate", path, evaluator_factory=lambda s, *_: StageEvaluator(s, fail_on, log)
        )

    finalists = run_elimination(study, settings, config, pool, run_stage)
    return study, pool, finalists, stages_run


def test_top_candidates_are_distinct_keys_best_first(search):
    _, storage = search
    study = optuna.load_study(study_name="s", storage=storage)
    cands = top_candidates(study, 5)
    assert [c.key for c in cands] == ["k0", "k1", "k2", "k3", "k4"]
    assert cands[1].source_fitness == 0.85


def stored_fitnesses(study) -> dict[int, dict[str, dict[int, float | None]]]:
    """stage -> key -> seed -> fitness (None: failed), read from the trials themselves."""
    out: dict[int, dict[str, dict[int, float | None]]] = {}
    for trial in study.get_trials():
        a = trial.user_attrs
        value = trial.value if trial.state is TrialState.COMPLETE else None
        out.setdefault(a["stage"], {}).setdefault(a["key"], {})[a["seed"]] = value
    return out


def hand_ranking(by_key: dict[str, dict[int, float | None]], pool, keep: int) -> list[str]:
    """The keep best keys by mean over seeds; a failed seed drops out; ties to the pool order."""
    order = [c.key for c in pool]
    means = {k: statistics.fmean(v.values()) for k, v in by_key.items() if None not in v.values()}
    return sorted(means, key=lambda k: (-means[k], order.index(k)))[:keep]


@pytest.mark.parametrize("seeds", [1, 2, 3])
def test_each_stage_keeps_the_configured_best_by_mean(tmp_path, search, seeds):
    """Stage i trains the survivors of stage i-1 once per seed and keeps the keep[i] best by
    their mean fitness over the seeds."""
    study, pool, finalists, _ = run(tmp_path, search, seeds=seeds)
    rows = records(study)
    assert [sum(r["stage"] == i for r in rows) for i in range(3)] == [n * seeds for n in (5, 3, 2)]
    assert {r["seed"] for r in rows} == set(range(seeds))
    fitness = stored_fitnesses(study)
    survivors = [c.key for c in pool]
    for stage, keep in enumerate((3, 2, 1)):
        assert sorted(fitness[stage]) == sorted(survivors)
        survivors = hand_ranking(fitness[stage], pool, keep)
        assert sorted({r["key"] for r in rows if r["stage"] == stage and r["kept"]}) == sorted(
            survivors
        )
    assert finalists == survivors
    funnel = funnel_from_study(study)
    assert [(s.ran, s.kept, s.seeds) for s in funnel.stages] == [
        (5, 3, seeds),
        (3, 2, seeds),
        (2, 1, seeds),
    ]
    (survivor,) = funnel.survivors
    assert survivor.candidate == next(c.expression for c in pool if c.key == finalists[0])
    assert survivor.fitness == pytest.approx(statistics.mean(fitness[2][finalists[0]].values()))
    assert {"candidate", "sign", "source_trial", "seed", "best_acc", "final_acc"} <= set(rows[0])
    if seeds == 1:  # one seed measures no noise, so no cut can be judged against it
        assert all(s.noise is None and s.clear is None for s in funnel.stages)


def test_agreement_between_stages_is_kendalls_tau_of_the_means(tmp_path, search):
    """Stage 2's tau compares its means with stage 1's over the candidates both trained, as
    scipy's tau-b does; a stage of 2 candidates has none."""
    study, _, _, _ = run(tmp_path, search, seeds=2)
    fitness = stored_fitnesses(study)
    common = sorted(fitness[1])
    means = [[statistics.mean(fitness[s][k].values()) for k in common] for s in (0, 1)]
    funnel = funnel_from_study(study)
    first, second, third = funnel.stages
    assert (first.tau, first.tau_n) == (None, 0)
    assert second.tau_n == 3
    assert second.tau == pytest.approx(stats.kendalltau(*means).statistic)
    assert -1.0 <= second.tau_low <= second.tau_high <= 1.0
    assert (third.tau, third.tau_n) == (None, 2)


def test_failed_candidates_drop_out(tmp_path, search):
    """A candidate whose training fails at a stage is never kept, whatever its search rank."""
    study, _, _, _ = run(tmp_path, search, fail_on="mul(y, log(p))")
    rows = records(study)
    failed = [r for r in rows if r["failure_kind"] is not None]
    assert sorted((r["stage"], r["key"], r["seed"], r["kept"]) for r in failed) == [
        (0, "k0", 0, False),
        (0, "k0", 1, False),
    ]
    assert all(r["key"] != "k0" for r in rows if r["stage"] > 0)
    assert funnel_from_study(study).stages[0].failed == 1


def test_resume_does_not_rerun_finished_stages(tmp_path, search):
    """Interrupted after stage 1, a rerun trains only stages 2 and 3, same finalists."""
    log: list = []
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, search, log=log, stop_after=1)
    trained_first = len(log)
    study, _, finalists, stages_run = run(tmp_path, search, log=log)
    assert stages_run == [1, 2]
    assert len(log) == trained_first + 2  # one evaluator per remaining stage
    assert len(study.get_trials()) == (5 + 3 + 2) * 2
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    path = str(fresh_dir / "runs.journal")
    storage = resolve_storage(path, "s")
    study2 = open_study("s", storage, attrs={"kind": "search"})
    for trial in optuna.load_study(study_name="s", storage=search[1]).get_trials():
        study2.add_trial(trial)
    _, _, again, _ = run(fresh_dir, (path, storage))
    assert again == finalists


def test_eliminate_table_shows_each_seed_and_the_cut(tmp_path, search, monkeypatch):
    """``nlfs eliminate``'s stage table: per-seed fitnesses, their mean, noise, margin, verdict."""
    from rich.console import Console

    import nlfs.cli.eliminate as cli_eliminate

    study, _, _, _ = run(tmp_path, search, seeds=2)
    config = load_elimination_config(write_config(tmp_path), seeds=2)
    stage = funnel_from_study(study).stages[0]
    out = Console(width=250, record=True)
    monkeypatch.setattr(cli_eliminate, "console", out)
    cli_eliminate._print_stage(records(study), stage, config)
    text = out.export_text()
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()]
    for values in stored_fitnesses(study)[0].values():  # columns: kept, mean, seed 0, seed 1
        mean = statistics.fmean(values.values())
        assert [f"{mean:.4f}", f"{values[0]:.4f}", f"{values[1]:.4f}"] in [r[1:4] for r in rows]
    assert "seed 0" in text and "seed 1" in text
    assert f"noise (seed-to-seed sd) {stage.noise:.4f}" in text
    assert f"margin (last kept - best dropped) {stage.margin:.4f}" in text
    assert ("clear" if stage.clear else "within noise") in text


@pytest.mark.fmnist
def test_two_seed_elimination_on_nano_keeps_by_mean(tmp_path, search):
    """Real training (nano profile, 2 seeds): the kept sets are the hand ranking of the stored
    per-seed fitnesses by mean, the noise is numpy's pooled standard deviation of them, the
    margin is last kept minus best dropped, and a rerun trains nothing."""
    path, storage = search
    config = load_elimination_config(write_config(tmp_path), seeds=2)
    assert config.training_seeds == range(0, 2)

    def train(index, jobs):
        run_worker("s-eliminate", path, device="cpu")

    def no_training(index, jobs):
        raise AssertionError(f"stage {index + 1} trained again")

    def eliminate(run_stage):
        study, settings, pool = open_elimination("s-eliminate", storage, config, "s", storage)
        return study, pool, run_elimination(study, settings, config, pool, run_stage)

    study, pool, finalists = eliminate(train)
    fitness = stored_fitnesses(study)
    funnel = funnel_from_study(study)
    survivors = [c.key for c in pool]
    for stage, keep in enumerate(config.keep):
        by_key = fitness[stage]
        assert sorted(by_key) == sorted(survivors)
        assert all(sorted(seeds) == [0, 1] for seeds in by_key.values())
        survivors = hand_ranking(by_key, pool, keep)
        assert sorted(study.user_attrs["kept"][str(stage)]) == sorted(survivors)
        scored = {k: list(v.values()) for k, v in by_key.items() if None not in v.values()}
        noise = float(np.sqrt(np.mean(np.var(np.array(list(scored.values())), axis=1, ddof=1))))
        kept = [statistics.mean(v) for k, v in scored.items() if k in survivors]
        dropped = [statistics.mean(v) for k, v in scored.items() if k not in survivors]
        margin = min(kept) - max(dropped)
        summary = funnel.stages[stage]
        assert summary.noise == pytest.approx(noise, abs=1e-12)
        assert summary.margin == pytest.approx(margin, abs=1e-12)
        assert summary.clear is (margin > noise)
    assert finalists == survivors
    trials = len(study.get_trials())
    assert trials == (5 + 3 + 2) * 2

    study, _, again = eliminate(no_training)
    assert again == finalists and len(study.get_trials()) == trials


def test_resume_with_other_protocol_is_refused(tmp_path, search):
    run(tmp_path, search)
    with pytest.raises(ConfigError, match="another config"):
        run(tmp_path, search, keep="4, 2, 1")


@pytest.mark.parametrize(
    "keep, top, extra, message",
    [
        ("3, 2", 5, "", "3 stages need 3 keep counts"),
        ("3, 3, 1", 5, "", "decreasing"),
        ("3, 2, 1", 3, "", "decreasing"),
        ("3, 2, 1", 5, "colour = 1\n", "unknown key"),
        ("3, 2, 1", 5, "seeds = 0\n", "seeds must be at least 1"),
    ],
)
def test_bad_protocols_fail_clearly(tmp_path, keep, top, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_elimination_config(write_config(tmp_path, keep=keep, top=top, extra=extra))


def test_unknown_stage_key_lists_the_valid_ones(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text("[[stages]]\nsteps = 4\nresolutoin = 64\n")
    with pytest.raises(ConfigError, match="valid keys: name, model"):
        load_elimination_config(path)


@pytest.mark.parametrize("name", ["eliminate_cpu", "eliminate_paper"])
def test_shipped_protocols_build_valid_stage_profiles(name):
    """Every stage of the shipped protocols names a known model, dataset and augmentation."""
    config = load_elimination_config(name)
    assert len(config.keep) == len(config.stages)
    assert config.seeds == 2 and load_elimination_config(name, seeds=3).seeds == 3
    base = load_profile(config.profile)
    profiles = [stage_profile(base, s, i) for i, s in enumerate(config.stages)]
    check_names(
        models=[p.model for p in profiles],
        datasets=[p.dataset for p in profiles],
        augments=[p.augment for p in profiles],
    )
    assert [p.steps for p in profiles] == [s.steps for s in config.stages]


def test_unknown_stage_model_fails_before_training(tmp_path, search):
    path = tmp_path / "e.toml"
    path.write_text(f"profile = '{NANO}'\ntop = 2\nkeep = [1]\n[[stages]]\nmodel = 'vgg99'\n")
    with pytest.raises(ConfigError, match="unknown architecture 'vgg99'"):
        open_elimination("x", search[1], load_elimination_config(path), "s", search[1])


def test_paper_protocol_grows_fidelity():
    """The paper's rounds: EfficientNetV2-S, 128 -> 224 px, magnitude 5 -> 15, dropout up."""
    config = load_elimination_config("eliminate_paper")
    assert config.keep == (25, 12, 6, 4)
    stages = config.stages
    assert {s.model for s in stages} == {"efficientnet_v2_s"}
    assert [stages[0].resolution, stages[-1].resolution] == [128, 224]
    assert [stages[0].randaugment_magnitude, stages[-1].randaugment_magnitude] == [5, 15]
    for field in ("resolution", "randaugment_magnitude", "dropout", "steps"):
        values = [getattr(s, field) for s in stages]
        assert values == sorted(values) and len(set(values)) == len(values)


def test_pooled_sd_is_the_pooled_within_group_deviation():
    """sqrt(sum of squared deviations from each group's mean / sum of (n - 1)), groups of
    unequal size included; one value per group measures nothing."""
    groups = [[0.5, 0.7], [0.2, 0.3, 0.7], [0.9]]
    squares = sum(float(np.sum((np.array(g) - np.mean(g)) ** 2)) for g in groups)
    assert pooled_sd(groups) == pytest.approx(math.sqrt(squares / (1 + 2)))
    assert pooled_sd([[0.5], [0.9]]) is None


def test_keep_best_ranks_by_mean_and_drops_failures():
    """By mean over seeds; a failed seed drops the candidate; equal means keep the pool order."""
    scored = [("a", [0.5, None]), ("b", [0.4, 0.6]), ("c", [0.6, 0.4]), ("d", [0.9, 0.0])]
    assert keep_best(scored, 2) == ["b", "c"]
    assert keep_best(scored, 5) == ["b", "c", "d"]


def test_a_cut_is_clear_only_when_its_margin_exceeds_the_noise():
    """Margin = last kept mean - best dropped mean; clear when it exceeds the noise."""
    cut = judge_cut([0.8, 0.7], [0.6, 0.65], 0.04)
    assert cut.margin == pytest.approx(0.05) and cut.clear is True
    assert judge_cut([0.8, 0.7], [0.6, 0.65], 0.06).clear is False
    assert judge_cut([0.8], [], 0.01) == Cut(0.01, None, None)
    assert judge_cut([0.8], [0.7], None).clear is None
