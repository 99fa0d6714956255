"""Elimination: each stage keeps the configured number of best candidates and resumes."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from nlfs.errors import ConfigError
from nlfs.evaluation.profiles import load_profile
from nlfs.evaluation.results import EvalResult, State
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
    """Fitness depends on the stage (its steps) and the candidate; one candidate can fail."""

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
            # Deterministic, and the ranking changes between stages (steps enter the value).
            acc = (sum(map(ord, expr)) * (self.steps + 7)) % 997 / 997
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


def run(tmp_path, search, *, fail_on=None, log=None, stop_after=None, keep="3, 2, 1"):
    path, storage = search
    config = load_elimination_config(write_config(tmp_path, keep=keep))
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


def test_each_stage_keeps_the_configured_best(tmp_path, search):
    """Stage i trains the survivors of stage i-1 and keeps the keep[i] best by its fitness."""
    study, pool, finalists, _ = run(tmp_path, search)
    rows = records(study)
    assert [sum(r["stage"] == i for r in rows) for i in range(3)] == [5, 3, 2]
    survivors = [c.key for c in pool]
    for stage, keep in enumerate((3, 2, 1)):
        runs = [r for r in rows if r["stage"] == stage]
        assert sorted(r["key"] for r in runs) == sorted(survivors)
        ranked = sorted(runs, key=lambda r: -r["fitness"])
        survivors = [r["key"] for r in ranked[:keep]]
        assert sorted(r["key"] for r in runs if r["kept"]) == sorted(survivors)
    assert finalists == survivors
    funnel = funnel_from_study(study)
    assert [(s.ran, s.kept) for s in funnel.stages] == [(5, 3), (3, 2), (2, 1)]
    assert [s.candidate for s in funnel.survivors] == [
        next(c.expression for c in pool if c.key == finalists[0])
    ]
    assert {"candidate", "sign", "source_trial", "best_acc", "final_acc"} <= set(rows[0])


def test_failed_candidates_drop_out(tmp_path, search):
    """A candidate whose training fails at a stage is never kept, whatever its search rank."""
    study, _, _, _ = run(tmp_path, search, fail_on="mul(y, log(p))")
    rows = records(study)
    failed = [r for r in rows if r["failure_kind"] is not None]
    assert [(r["stage"], r["key"], r["kept"]) for r in failed] == [(0, "k0", False)]
    assert all(r["key"] != "k0" for r in rows if r["stage"] > 0)


def test_resume_does_not_rerun_finished_stages(tmp_path, search):
    """Interrupted after stage 1, a rerun trains only stages 2 and 3, same finalists."""
    log: list = []
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, search, log=log, stop_after=1)
    trained_first = len(log)
    study, _, finalists, stages_run = run(tmp_path, search, log=log)
    assert stages_run == [1, 2]
    assert len(log) == trained_first + 2  # one evaluator per remaining stage
    assert len(study.get_trials()) == 5 + 3 + 2
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    path = str(fresh_dir / "runs.journal")
    storage = resolve_storage(path, "s")
    study2 = open_study("s", storage, attrs={"kind": "search"})
    for trial in optuna.load_study(study_name="s", storage=search[1]).get_trials():
        study2.add_trial(trial)
    _, _, again, _ = run(fresh_dir, (path, storage))
    assert again == finalists


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
