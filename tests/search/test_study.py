"""The study runner on a journal: budget, attributes, resume by replay, recovery, workers.

Budget and resume are checked on real results (:class:`search_fakes.RealFactory`: the real
evaluator with the 40-step micro profile, so fitness depends on the candidate and the seed).
The mechanics that do not depend on training (refusals, dead workers, several workers, storage
URLs) use :class:`search_fakes.FakeFactory`, instant and deterministic; the end-to-end tests
are in test_search_e2e.py.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState
from search_fakes import (
    MICRO_SHORT,
    FakeFactory,
    RealFactory,
    exiting_factory,
    rendezvous_factory,
    shared_real_factory,
)

from nlfs.errors import ConfigError
from nlfs.evaluation.results import EvalRequest, State
from nlfs.screening import loss_from_spec
from nlfs.search.config import SearchConfig
from nlfs.search.runner import SearchWorker, study_attrs
from nlfs.search.workers import run_search
from nlfs.storage import open_study, resolve_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

TRIAL_ATTRS = {
    "expression",
    "key",
    "sign",
    "parent",
    "mutation",
    "eval_seed",
    "failure_kind",
    "device",
    "seconds",
    "genome",
    "phase",
    "state",
    "best_acc",
    "final_acc",
    "steps",
}
FAILURES = {state.value for state in State} - {"ok", "interrupted"}
OPTIONS = {
    "regevo": {"population": 4, "tournament": 2},
    "random": {},
    "tpe": {"n_startup_trials": 3},
}


def config(**changes) -> SearchConfig:
    base = dict(
        strategy="regevo",
        space="cell",
        profile="fake",
        budget=12,
        seed=3,
        strategy_options={"population": 4, "tournament": 2},
    )
    base.update(changes)
    return SearchConfig(**base)


def real_config(strategy: str = "regevo", **changes) -> SearchConfig:
    """A config scored by the real evaluator (micro_short, CPU, training seed 5)."""
    return config(
        strategy=strategy,
        strategy_options=OPTIONS[strategy],
        profile=MICRO_SHORT,
        device="cpu",
        eval_seed=5,
        **changes,
    )


def load(path, name="s"):
    return optuna.load_study(study_name=name, storage=resolve_storage(str(path), name))


def counted(study) -> list[optuna.trial.FrozenTrial]:
    """Trials that used budget (finished ok or failed), in number order."""
    return [
        t
        for t in study.get_trials()
        if t.state == TrialState.COMPLETE
        or (
            t.state == TrialState.FAIL
            and t.user_attrs.get("failure_kind") not in ("interrupted", "surplus")
        )
    ]


def outcomes(study) -> list[tuple]:
    """What each counted trial tried and got: (key, fitness, failure kind, best accuracy)."""
    return [
        (t.user_attrs["key"], t.value, t.user_attrs["failure_kind"], t.user_attrs["best_acc"])
        for t in counted(study)
    ]


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    """Outcomes of one uninterrupted real search to budget 6 per strategy (run once each)."""
    runs: dict[str, list[tuple]] = {}

    def get(strategy: str) -> list[tuple]:
        if strategy not in runs:
            path = tmp_path_factory.mktemp("unbroken") / "j"
            run_search(
                real_config(strategy, budget=6),
                study_name="s",
                storage=str(path),
                evaluator_factory=RealFactory(),
            )
            runs[strategy] = outcomes(load(path))
        return runs[strategy]

    return get


@pytest.mark.fmnist
def test_budget_is_reached_exactly_and_trials_carry_their_real_results(tmp_path):
    cfg = real_config(budget=8)
    factory = RealFactory()
    summary = run_search(
        cfg, study_name="s", storage=str(tmp_path / "j"), evaluator_factory=factory
    )
    study = load(tmp_path / "j")
    done = counted(study)
    assert len(done) == 8 == summary["finished"] == len(factory.seen)
    assert len({t.user_attrs["key"] for t in done}) == 8, "a duplicate reached the evaluator"
    for trial in done:
        assert TRIAL_ATTRS <= set(trial.user_attrs)
        assert trial.user_attrs["eval_seed"] == 5 and trial.user_attrs["device"] == "cpu"
        if trial.state == TrialState.COMPLETE:
            assert trial.user_attrs["failure_kind"] is None
            assert trial.value == trial.user_attrs["best_acc"] >= trial.user_attrs["final_acc"]
        else:
            assert trial.value is None and trial.user_attrs["failure_kind"] in FAILURES
    fitnesses = [t.value for t in done if t.value is not None]
    assert len(set(fitnesses)) >= 2, "real candidates should not all score alike"
    attrs = study.user_attrs
    assert attrs["kind"] == "search" and attrs["strategy"] == "regevo"
    assert attrs["config_hash"] == cfg.hash()
    assert {"space", "profile", "seed", "budget", "rejections"} <= set(attrs)
    best = max((t for t in done if t.value is not None), key=lambda t: t.value)
    assert summary["best"][0]["fitness"] == best.value
    # The stored fitness is that loss trained from the recorded seed: retraining reproduces it.
    loss = loss_from_spec(best.user_attrs["expression"], sign=best.user_attrs["sign"])
    again = shared_real_factory(MICRO_SHORT, cfg).evaluate([EvalRequest(loss, 5)])[0]
    assert again.fitness == best.value


@pytest.mark.fmnist
@pytest.mark.parametrize("strategy", ["regevo", "random", "tpe"])
def test_resume_replays_storage_so_a_split_run_equals_an_unbroken_one(tmp_path, strategy, unbroken):
    """Stopping after k trials and rerunning gives the same candidates and fitness as one run."""
    path = str(tmp_path / "b")
    run_search(
        real_config(strategy, budget=3),
        study_name="s",
        storage=path,
        evaluator_factory=RealFactory(),
    )
    again = RealFactory()
    run_search(
        real_config(strategy, budget=6), study_name="s", storage=path, evaluator_factory=again
    )
    split = outcomes(load(path))
    assert len(split) == 6 and len({key for key, *_ in split}) == 6
    assert split == unbroken(strategy)
    assert len(again.seen) == 3, "the resumed run re-evaluated finished trials"


@pytest.mark.fmnist
def test_a_finished_study_resumes_to_nothing_and_a_raised_budget_extends_it(tmp_path):
    path = str(tmp_path / "j")
    run_search(real_config(budget=3), study_name="s", storage=path, evaluator_factory=RealFactory())
    idle = RealFactory()
    run_search(real_config(budget=3), study_name="s", storage=path, evaluator_factory=idle)
    assert idle.seen == []
    extend = RealFactory()
    run_search(real_config(budget=5), study_name="s", storage=path, evaluator_factory=extend)
    assert len(extend.seen) == 2 and len(counted(load(path))) == 5


def test_a_different_config_for_an_existing_study_is_refused(tmp_path):
    path = str(tmp_path / "j")
    run_search(config(budget=2), study_name="s", storage=path, evaluator_factory=FakeFactory())
    changed = config(budget=3, strategy_options={"population": 5, "tournament": 2})
    with pytest.raises(ConfigError, match=r"population.*--study") as refused:
        run_search(changed, study_name="s", storage=path, evaluator_factory=FakeFactory())
    assert "budget" not in str(refused.value), "values that may change are not listed"
    with pytest.raises(ConfigError, match="seed"):
        run_search(
            config(budget=2, seed=4), study_name="s", storage=path, evaluator_factory=FakeFactory()
        )


@pytest.mark.fmnist
def test_ctrl_c_marks_the_running_trial_interrupted_and_the_next_run_redoes_it(tmp_path, unbroken):
    """After Ctrl-C the rerun first retries the interrupted candidate, with the outcome it has
    in an unbroken run; later asks draw from their trial numbers, so they may differ."""
    path = str(tmp_path / "j")
    with pytest.raises(KeyboardInterrupt):
        run_search(
            real_config(budget=6),
            study_name="s",
            storage=path,
            evaluator_factory=RealFactory(crash_at=2),
        )
    study = load(path)
    interrupted = [
        t for t in study.get_trials() if t.user_attrs.get("failure_kind") == "interrupted"
    ]
    assert len(interrupted) == 1 and interrupted[0].state == TrialState.FAIL
    assert len(counted(study)) == 2
    rerun = RealFactory()
    run_search(real_config(budget=6), study_name="s", storage=path, evaluator_factory=rerun)
    assert rerun.seen[0] == interrupted[0].user_attrs["expression"], "not re-evaluated first"
    assert len(rerun.seen) == 4
    done = counted(load(path))
    assert len(done) == 6 and len({t.user_attrs["key"] for t in done}) == 6
    retry = [t for t in done if t.user_attrs.get("retry_of") == interrupted[0].number]
    assert len(retry) == 1 and retry[0].user_attrs["key"] == interrupted[0].user_attrs["key"]
    assert outcomes(load(path))[:3] == unbroken("regevo")[:3]


def test_a_dead_workers_running_trial_is_recovered_as_interrupted_and_re_evaluated(tmp_path):
    path = str(tmp_path / "j")
    cfg = config(budget=6)
    open_study("s", resolve_storage(path, "s"), attrs=study_attrs(cfg))
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_run_worker, args=(path, cfg.to_dict(), exiting_factory))
    child.start()
    child.join(120)
    assert child.exitcode == 3, "the worker should have died mid-trial"
    study = load(path)
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert len(running) == 1 and len(counted(study)) == 2
    factory = FakeFactory()
    worker = SearchWorker(study, cfg, evaluator_factory=factory)
    worker.run()
    assert worker.recovered == [running[0].number]
    trial = load(path).trials[running[0].number]
    assert trial.state == TrialState.FAIL and trial.user_attrs["failure_kind"] == "interrupted"
    assert factory.seen[0] == trial.user_attrs["expression"]
    done = counted(load(path))
    assert len(done) == 6 and len({t.user_attrs["key"] for t in done}) == 6


def _run_worker(path, config_data, factory):
    from nlfs.search.config import config_from_dict

    study = load(path)
    SearchWorker(study, config_from_dict(config_data), evaluator_factory=factory).run()


def test_two_worker_processes_share_the_budget_exactly_without_duplicates(tmp_path):
    path = str(tmp_path / "j")
    cfg = config(budget=16, workers=2)
    with multiprocessing.get_context("spawn").Manager() as manager:
        barrier = manager.Barrier(2, timeout=120)
        factory = functools.partial(rendezvous_factory, barrier)
        run_search(cfg, study_name="s", storage=path, evaluator_factory=factory)
    study = load(path)
    done = counted(study)
    assert len(done) == 16
    assert len({t.user_attrs["key"] for t in done}) == 16
    hosts = Counter(t.user_attrs["worker"]["pid"] for t in done)
    assert len(hosts) == 2, f"one worker did everything: {hosts}"
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_an_sqlite_storage_url_runs_the_same_search(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run_search(config(budget=4), study_name="s", storage=url, evaluator_factory=FakeFactory())
    study = optuna.load_study(study_name="s", storage=url)
    assert len(counted(study)) == 4
    assert TRIAL_ATTRS <= set(study.trials[0].user_attrs)


def test_seed_phase_candidates_are_scored_with_the_seed_profile(tmp_path):
    factory = FakeFactory()
    cfg = config(
        budget=6,
        seed_profile="cheap",
        strategy_options={"population": 2, "tournament": 2, "seed_pool": 4},
    )
    run_search(cfg, study_name="s", storage=str(tmp_path / "j"), evaluator_factory=factory)
    by_profile = {e.profile: len(e.seen) for e in factory.built}
    assert by_profile == {"cheap": 4, "fake": 2}
    phases = [t.user_attrs["phase"] for t in counted(load(tmp_path / "j"))]
    assert phases == ["seed"] * 4 + ["search"] * 2


def test_screen_rejections_are_counted_per_study(tmp_path):
    run_search(
        config(budget=10, strategy="random", strategy_options={}),
        study_name="s",
        storage=str(tmp_path / "j"),
        evaluator_factory=FakeFactory(),
    )
    rejections = load(tmp_path / "j").user_attrs["rejections"]
    assert sum(rejections.values()) > 0
    assert all(isinstance(v, int) and v > 0 for v in rejections.values())


@pytest.mark.parametrize("name", ["default", "paper", "quick", "ci"])
def test_every_shipped_search_config_loads_and_builds_its_strategy(name):
    from nlfs.evaluation.profiles import load_profile
    from nlfs.search.config import load_search_config
    from nlfs.search.strategy import get_strategy
    from nlfs.spaces import get_space

    cfg = load_search_config(name)
    load_profile(cfg.profile)
    if cfg.seed_profile:
        load_profile(cfg.seed_profile)
    get_strategy(cfg.strategy)(get_space(cfg.space), seed=cfg.seed, **cfg.strategy_options)


def test_a_reservation_past_the_shared_budget_is_surplus_and_uses_no_budget(tmp_path):
    """Two workers reserving the last slot at once: the later one steps back (never evaluated)."""
    path = str(tmp_path / "j")
    cfg = config(budget=1)
    study = open_study("s", resolve_storage(path, "s"), attrs=study_attrs(cfg))
    first, second = (
        SearchWorker(load(path), cfg, evaluator_factory=FakeFactory()) for _ in range(2)
    )
    first.start()
    second.start()
    reserved = first._reserve()
    assert reserved is not None and second._reserve() is None
    first._run_trials([reserved])
    trials = load(path).trials
    assert trials[0].user_attrs["failure_kind"] in (None, "nan")  # evaluated
    assert trials[1].user_attrs["failure_kind"] == "surplus"
    assert trials[1].state == TrialState.FAIL and "key" not in trials[1].user_attrs
    assert len(counted(study)) == 1
    assert second.run() == 0, "the budget is used: nothing more to do"


def test_with_the_duplicate_check_off_a_search_may_evaluate_a_key_again(tmp_path):
    """`[screen] dedupe = false` (an ablation variant): a strategy re-proposing an evaluated
    candidate is evaluated again, not mistaken for another worker's race (which once ended the
    search with 'kept proposing candidates other workers already took')."""
    from nlfs.search.config import ScreenConfig

    tiny = {"hidden": 1, "constants": False, "exclude": ["trigonometric", "hyperbolic", "bessel"]}
    cfg = config(
        budget=30,
        screen=ScreenConfig(dedupe=False),
        space_options=tiny,
        strategy_options={"population": 2, "tournament": 2},
    )
    factory = FakeFactory()
    storage = str(tmp_path / "d.journal")
    run_search(cfg, study_name="d", storage=storage, evaluator_factory=factory)
    study = optuna.load_study(study_name="d", storage=resolve_storage(storage, "d"))
    finished = [t for t in study.get_trials() if t.state.is_finished()]
    assert len(finished) == 30
    keys = Counter(t.user_attrs["key"] for t in finished)
    assert max(keys.values()) > 1  # the tiny space forces repeats
    assert len(factory.seen) == 30
