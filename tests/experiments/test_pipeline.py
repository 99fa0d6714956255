"""The pipeline of ``nlfs run``: its config is checked like the others (unknown keys listed, one
line), step tables start from named configs, and the report's facts (what each study spent, the
stored learning curves) are read back from the trials as they are."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nlfs.config import load_toml, resolve_config
from nlfs.errors import ConfigError
from nlfs.experiments.pipeline import check, default_storage
from nlfs.experiments.pipeline_config import load_pipeline_config
from nlfs.experiments.pipeline_facts import device_kind, learning_curves, spend

PROFILES = Path(__file__).parents[1] / "profiles"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipe.toml"
    path.write_text(text)
    return path


def test_default_config_is_the_cpu_pipeline_and_passes_the_checks():
    config = load_pipeline_config()
    assert Path(config.source).name == "pipeline_cpu.toml"
    default = load_toml(resolve_config("default"))
    # [search] config = "default": the default search as it is, strategy options and budget
    assert config.search.strategy_options == default["strategy"]["regevo"]
    assert config.search.profile == default["search"]["profile"] == "micro"
    assert config.search.budget == default["search"]["budget"]
    assert config.transfer.losses[0] == "ce" and "baikal" in config.transfer.losses
    assert default_storage(config) == f"runs/{config.pipeline.name}.journal"
    assert config.study("search") == f"{config.pipeline.name}-search"
    check(config)


def test_paper_config_takes_the_paper_protocols():
    config = load_pipeline_config("pipeline_paper")
    paper = load_toml(resolve_config("paper"))
    protocol = load_toml(resolve_config("eliminate_paper"))
    assert config.search.budget == paper["search"]["budget"]
    assert config.search.strategy_options == paper["strategy"]["regevo"]
    assert config.search.seed_profile == "paper_seed"
    assert (config.eliminate.top, list(config.eliminate.keep)) == (
        protocol["top"],
        protocol["keep"],
    )
    assert [s.resolution for s in config.eliminate.stages] == [128, 160, 192, 224]
    assert set(config.transfer.losses) == {"ce", "baikal"}
    assert set(config.transfer.datasets) == {"cifar10", "cifar100"}
    assert config.transfer.seeds == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serch]\nbudget = 3\n", "unknown table(s) serch; valid: pipeline, search"),
        ("[eliminate]\ntop = 3\nkeep = [2]\nstages = [{steps = 5}]\nkepp = 1\n", "kepp"),
        ("[transfer]\nlosses = ['ce']\n", "name the losses to beat as baselines"),
        ("[transfer]\nbaselines = ['baikal']\n", "baseline 'ce' is not among the transfer"),
        ("[fidelity]\ncandidates = 3\n", "fidelity candidates must be at least 4"),
        ("[search]\nbudgte = 3\n", "unknown key(s) budgte"),
        ("[search]\nconfig = 'nosuch'\n", "no config named 'nosuch'"),
        ("[report]\nsignificance_test = 'z'\n", "'z' is not one of 't', 'rank'"),
        ("[pipeline]\nname = 'a/b'\n", "cannot name a study file"),
    ],
)
def test_bad_configs_fail_in_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_pipeline_config(_write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_tables_merge_over_named_configs_and_paths_are_relative(tmp_path):
    (tmp_path / "prof").mkdir()
    (tmp_path / "prof" / "nano.toml").write_text((PROFILES / "nano.toml").read_text())
    path = _write(
        tmp_path,
        "[pipeline]\nname = 't'\nworkers = 2\n"
        "[search]\nconfig = 'default'\nprofile = 'prof/nano.toml'\nstrategy = 'random'\n"
        "[search.strategy_options]\n"
        "[eliminate]\nconfig = 'eliminate_cpu'\ntop = 3\nkeep = [2, 1]\n"
        "stages = [{steps = 5}, {steps = 9, augment = 'flipcrop'}]\n"
        "[transfer]\nconfig = 'transfer_cpu'\nbaselines = ['ce', 'focal']\nseeds = 2\n"
        "[transfer.overrides]\ntest_size = 500\n"
        "[fidelity]\ntarget = 'fidelity_cpu'\nseeds = 1\nenabled = false\n",
    )
    config = load_pipeline_config(path, workers=3)
    assert config.search.profile == str(tmp_path / "prof" / "nano.toml")
    assert (config.search.strategy, config.search.strategy_options) == ("random", {})
    assert config.search.budget == load_toml(resolve_config("default"))["search"]["budget"]
    assert config.pipeline.workers == config.search.workers == config.transfer.workers == 3
    assert config.eliminate.profile == "micro" and config.eliminate.top == 3
    assert [(s.steps, s.augment) for s in config.eliminate.stages] == [(5, None), (9, "flipcrop")]
    assert config.transfer.losses == ("ce", "focal") and config.transfer.seeds == 2
    # overrides merge key by key: the base grid's stay, the table's are added
    assert config.transfer.overrides == {"eval_every": 150, "time_limit_s": 600.0, "test_size": 500}
    assert config.fidelity.target.seeds == 1 and config.fidelity.enabled is False


def test_check_names_a_bad_architecture_before_anything_runs(tmp_path):
    path = _write(tmp_path, "[transfer]\nconfig = 'transfer_cpu'\narchs = ['tiny_cn']\n")
    with pytest.raises(ConfigError, match="unknown architecture 'tiny_cn'; known: "):
        check(load_pipeline_config(path))


def _search_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("kind", "search")
    study.set_user_attr("budget", 5)
    study.set_user_attr("rejections/w1", {"duplicate": 4, "shape": 1})
    study.set_user_attr("rejections/w2", {"duplicate": 2})
    outcomes = [  # (state, failure kind, device, seconds)
        ("ok", None, "cpu", 1.5),
        ("ok", None, "cuda:0", 0.25),
        ("fail", "nan", "cpu", 0.5),
        ("fail", "interrupted", "cpu", 9.0),  # no counted work: no evaluation, no seconds
        ("ok", None, None, 2.0),
        ("pruned", None, "cpu", 0.75),  # stopped early by the pruning rule: it trained
    ]
    for state, kind, device, seconds in outcomes:
        trial = study.ask()
        for key, value in (("failure_kind", kind), ("device", device), ("seconds", seconds)):
            trial.set_user_attr(key, value)
        if state == "ok":
            study.tell(trial, 0.5)
        elif state == "pruned":
            trial.report(0.3, 50)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study


def test_spend_counts_outcomes_rejections_and_seconds_by_device():
    s = spend(_search_study())
    assert (s["evaluations"], s["ok"], s["pruned"], s["failed"]) == (5, 3, 1, 1)
    assert s["interrupted"] == 1
    assert s["rejected"] == 7 and s["rejections"] == {"duplicate": 6, "shape": 1}
    assert s["seconds"] == {"cpu": 2.75, "gpu": 0.25, "unknown": 2.0}
    assert s["budget"] == 5
    assert [device_kind(d) for d in ("cpu", "cuda", "cuda:1", "", None)] == [
        "cpu",
        "gpu",
        "gpu",
        "unknown",
        "unknown",
    ]


def _job(study, loss, seed, points, *, complete=True, setting=("tiny", "fm", "none")):
    """A transfer job's trial whose worker reported ``points`` (step -> test accuracy)."""
    trial = study.ask()
    for step, value in points.items():
        trial.report(value, step)
    attrs = dict(zip(("arch", "dataset", "augment"), setting, strict=True))
    attrs.update(job=f"{loss}|{'|'.join(setting)}|{seed}", loss=loss, seed=seed)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if complete:
        study.tell(trial, max(points.values(), default=0.5))
    else:
        trial.set_user_attr("failure_kind", "nan")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return trial.number


def test_learning_curves_are_the_stored_intermediate_values():
    study = optuna.create_study(direction="maximize")
    ce = _job(study, "ce", 0, {150: 0.7, 300: 0.8})
    found = _job(study, "s:4", 1, {300: 0.82, 150: 0.75, 200: float("nan")})
    _job(study, "focal", 0, {150: 0.6})  # not asked for
    _job(study, "ce", 1, {})  # stored no intermediate values: no curve
    _job(study, "s:4", 0, {150: 0.1}, complete=False)  # failed: not a curve of a result
    curves = learning_curves(study, {"ce", "s:4"})
    assert [(c["loss"], c["trial"]) for c in curves] == [("ce", ce), ("s:4", found)]
    assert curves[0]["steps"] == [150, 300] and curves[0]["values"] == [0.7, 0.8]
    assert curves[1]["steps"] == [150, 300] and curves[1]["values"] == [0.75, 0.82]  # NaN out
    assert curves[0]["setting"] == "tiny / fm / none" and curves[1]["seed"] == 1
    assert learning_curves(study, {"baikal"}) == []
