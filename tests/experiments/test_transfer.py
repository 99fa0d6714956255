"""Transfer grids: loss specs, axes, paired seeds, and a resumable grid study."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from nlfs.errors import ConfigError, NLFSError
from nlfs.evaluation.results import EvalRequest, EvalResult, State
from nlfs.experiments.grid import run_worker
from nlfs.experiments.transfer import (
    TransferConfig,
    base_profile,
    check_axes,
    job_profile,
    load_transfer_config,
    plan_jobs,
    prepare,
    resolve_losses,
    results,
    summary,
)
from nlfs.storage import open_study, resolve_storage

NANO_GRID = Path(__file__).parents[1] / "profiles" / "nano_transfer.toml"
_MICRO = base_profile(TransferConfig(profile="micro"))


@pytest.fixture
def journal(tmp_path):
    """A journal holding a search study ``s`` with two completed trials and one failed."""
    path = str(tmp_path / "runs.journal")
    storage = resolve_storage(path, "s")
    study = open_study("s", storage, attrs={"kind": "search"})
    for value, expr, sign in ((0.8, "mul(y, log(p))", -1.0), (0.9, "mul(y, sub(p, 1))", -1.0)):
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={"x": value},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"expression": expr, "sign": sign, "key": expr},
            )
        )
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    return path


def test_baseline_specs_and_ce_alias():
    refs = resolve_losses(["ce", "baikal", "poly1"])
    assert [(r.label, r.spec, r.sign) for r in refs] == [
        ("ce", "cross_entropy", None),
        ("baikal", "baikal", None),
        ("poly1", "poly1", None),
    ]


def test_study_trial_specs_load_expression_and_sign(journal):
    """STUDY:TRIAL and STUDY:best build the trial's expression with its stored sign."""
    refs = resolve_losses(["s:0", "s:best"], journal)
    assert [(r.label, r.spec, r.sign) for r in refs] == [
        ("s:0", "mul(y, log(p))", -1.0),
        ("s:1", "mul(y, sub(p, 1))", -1.0),
    ]


@pytest.mark.parametrize(
    "specs, message",
    [
        (["cee"], "unknown loss 'cee'; known: cross_entropy"),
        (["ce", "cross_entropy"], "name one loss twice"),
        (["mul(y, lg(p))"], "lg"),
        (["s:7"], "no trial 7"),
        (["s:2"], "has no expression"),
        (["s:first"], "trial number or 'best'"),
        (["nope:1"], "no study named 'nope'"),
    ],
)
def test_bad_loss_specs_fail_clearly(journal, specs, message):
    with pytest.raises(NLFSError, match=message):
        resolve_losses(specs, journal)


@pytest.mark.parametrize(
    "axis, value, message",
    [
        ("archs", ("resnet1000",), "unknown architecture 'resnet1000'; known:"),
        ("datasets", ("imagenet",), "unknown dataset 'imagenet'; known:"),
        ("augment", ("flipcorp",), "flipcorp"),
    ],
)
def test_bad_axes_fail_clearly(axis, value, message):
    config = dataclasses.replace(TransferConfig(), **{axis: value})
    with pytest.raises(NLFSError, match=message):
        check_axes(config)


def test_grid_config_validation():
    with pytest.raises(ConfigError, match="steps or epochs"):
        TransferConfig(steps=10, epochs=1.0)
    with pytest.raises(ConfigError, match="repeats"):
        TransferConfig(archs=("tiny_cnn", "tiny_cnn"))
    with pytest.raises(ConfigError, match="unknown key"):
        base_profile(
            TransferConfig(profile=str(NANO_GRID.parent / "nano.toml"), overrides={"stepz": 3})
        )


def test_shipped_cpu_grid_is_valid():
    config = load_transfer_config("transfer_cpu")
    check_axes(config)
    assert config.seeds == 3 and "fashion-mnist" in config.datasets
    assert {"ce", "baikal", "focal", "poly1"} <= set(config.losses)
    resolve_losses(config.losses)


def test_plan_pairs_seeds_across_losses():
    """Every (setting, seed) has one job per loss, all with the same setting and seed."""
    config = dataclasses.replace(
        load_transfer_config(NANO_GRID),
        archs=("tiny_cnn", "small_cnn"),
        augment=("none", "flipcrop"),
        seeds=3,
    )
    refs = resolve_losses(config.losses)
    jobs = plan_jobs(config, refs, base_profile(config))
    assert len(jobs) == 2 * 2 * 3 * len(refs)
    assert len({c.id for c in jobs}) == len(jobs)
    groups: dict[tuple, set] = {}
    for job in jobs:
        groups.setdefault((job.setting.id, job.seed), set()).add(job.attrs["loss"])
        assert job.setting.split == "test"
        assert job.setting.profile["model"] == job.attrs["arch"]
    assert all(losses == {"ce", "focal"} for losses in groups.values())
    assert len(groups) == 2 * 2 * 3


def test_epochs_become_steps():
    config = dataclasses.replace(load_transfer_config(NANO_GRID), steps=None, epochs=2.0)
    base = base_profile(config)
    profile = job_profile(base, config, "tiny_cnn", "fashion-mnist", "none")
    assert profile.steps == -(-2 * base.train_size // base.batch_size)


class RecordingLoss(torch.nn.Module):
    """Wraps a loss and keeps the logits of its first call (before any update)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.first: torch.Tensor | None = None

    def forward(self, logits, target, *args, **kwargs):
        if self.first is None:
            self.first = logits.detach().clone()
        return self.inner(logits, target, *args, **kwargs)


@pytest.mark.fmnist
def test_same_seed_same_initial_weights_and_batch_across_losses():
    """Two different losses with one seed see identical first-step logits; another seed not."""
    from nlfs.evaluation.evaluator import Evaluator
    from nlfs.screening import loss_from_spec

    config = load_transfer_config(NANO_GRID)
    profile = dataclasses.replace(
        job_profile(base_profile(config), config, "tiny_cnn", "fashion-mnist", "none"), steps=2
    )
    evaluator = Evaluator(profile, device="cpu", split="test")
    losses = [RecordingLoss(loss_from_spec(n)) for n in ("cross_entropy", "focal", "focal")]
    evaluator.evaluate(
        [EvalRequest(losses[0], 3), EvalRequest(losses[1], 3), EvalRequest(losses[2], 4)]
    )
    assert torch.equal(losses[0].first, losses[1].first)
    assert not torch.equal(losses[1].first, losses[2].first)


class FakeTestEvaluator:
    def __init__(self, setting, *_):
        assert setting.split == "test"

    def evaluate(self, requests):
        return [
            EvalResult(State.OK, 0.5 + r.seed / 10, 0.4 + r.seed / 10, 1, 0.0, "f", "cpu")
            for r in requests
        ]


def test_rerun_enqueues_only_missing_jobs_and_extends(tmp_path):
    """A second run adds nothing; a grid with one more seed adds only that seed's jobs."""
    path = str(tmp_path / "t.journal")
    storage = resolve_storage(path, "t")
    config = load_transfer_config(NANO_GRID)
    refs = resolve_losses(config.losses)
    study, total, added = prepare("t", storage, config, refs)
    assert total == added == 4
    run_worker("t", path, evaluator_factory=FakeTestEvaluator, max_jobs=1)
    assert prepare("t", storage, config, refs)[2] == 3
    assert len(study.get_trials()) == 4  # nothing was enqueued twice
    run_worker("t", path, evaluator_factory=FakeTestEvaluator)
    more = dataclasses.replace(config, seeds=3)
    assert prepare("t", storage, more, refs)[1:] == (6, 2)
    run_worker("t", path, evaluator_factory=FakeTestEvaluator)
    rows = results(study)
    assert len(rows) == 6 and {r["seed"] for r in rows} == {0, 1, 2}
    table = {r["loss"]: r for r in summary(rows)}
    assert table["ce"]["mean"] == pytest.approx(0.5) and table["ce"]["runs"] == 3
    with pytest.raises(ConfigError, match="another config"):
        prepare("t", storage, dataclasses.replace(config, steps=13), refs)


def test_missing_source_study_creates_no_journal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match="no study named 'ghost' in runs/ghost.journal: the file does not exist"
    ):
        resolve_losses(["ghost:3"])
    assert not (tmp_path / "runs" / "ghost.journal").exists()


@settings(max_examples=25, deadline=None)
@given(
    n_losses=st.integers(1, 4),
    n_archs=st.integers(1, 3),
    n_aug=st.integers(1, 3),
    seeds=st.integers(1, 4),
    first=st.integers(0, 100),
)
def test_every_grid_is_complete_and_paired(n_losses, n_archs, n_aug, seeds, first):
    """Any grid has one job per combination, and each (setting, seed) holds every loss."""
    from nlfs.experiments.transfer import LossRef

    refs = [LossRef(f"l{i}", "cross_entropy") for i in range(n_losses)]
    config = TransferConfig(
        losses=tuple(r.label for r in refs),
        archs=("tiny_cnn", "small_cnn", "resnet18")[:n_archs],
        augment=("none", "flipcrop", "cutout")[:n_aug],
        seeds=seeds,
        first_seed=first,
        profile="micro",
        steps=10,
    )
    jobs = plan_jobs(config, refs, _MICRO)
    assert len({c.id for c in jobs}) == len(jobs) == n_losses * n_archs * n_aug * seeds
    pairs: dict[tuple, list] = {}
    for job in jobs:
        pairs.setdefault((job.setting.id, job.seed), []).append(job.attrs["loss"])
    assert {seed for _, seed in pairs} == set(range(first, first + seeds))
    assert all(sorted(losses) == sorted(config.losses) for losses in pairs.values())
