"""Pruning inside a search: stored curves, Optuna's PRUNED state, budget, strategies, reports.

The runner mechanics use :class:`search_fakes.FakeFactory` (its curves rise to the fake fitness,
so the median rule has something to cut); one test runs the real evaluator (micro cut to 40
steps) to check that stored curves are the evaluator's own points.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from search_fakes import NANO, FakeFactory, RealFactory, fake_curve, fake_fitness

from nlfs.evaluation.results import State
from nlfs.experiments.compare import study_facts, top_trials
from nlfs.experiments.fidelity import pick
from nlfs.search.config import SearchConfig
from nlfs.search.progress import best_trials, summarize
from nlfs.search.pruning import PruningConfig
from nlfs.search.runner import SearchWorker, study_attrs
from nlfs.search.strategy import TrialRecord, available_strategies, get_strategy
from nlfs.search.trials import TrialCache
from nlfs.spaces import get_space, space_names
from nlfs.storage import open_study, resolve_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

MEDIAN = PruningConfig(rule="median", n_startup_trials=3)
OPTIONS = {
    "regevo": {"population": 4, "tournament": 2},
    "random": {},
    "tpe": {"n_startup_trials": 3},
}


def config(strategy: str = "random", **changes) -> SearchConfig:
    base = dict(
        strategy=strategy,
        space="cell",
        profile="fake",
        budget=16,
        seed=2,
        pruning=MEDIAN,
        strategy_options=OPTIONS[strategy],
    )
    base.update(changes)
    return SearchConfig(**base)


def run(tmp_path, cfg: SearchConfig, factory=None, name: str = "s"):
    storage = resolve_storage(str(tmp_path / f"{name}.journal"), name)
    study = open_study(name, storage, attrs=study_attrs(cfg))
    worker = SearchWorker(study, cfg, evaluator_factory=factory or FakeFactory())
    worker.run()
    return study, worker


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One pruned fake search per strategy (run once each)."""
    runs = {}

    def get(strategy: str):
        if strategy not in runs:
            runs[strategy] = run(tmp_path_factory.mktemp(strategy), config(strategy))
        return runs[strategy]

    return get


@pytest.mark.parametrize("strategy", ["regevo", "random", "tpe"])
def test_pruned_trials_are_optuna_pruned_use_budget_and_keep_their_curve(searched, strategy):
    study, worker = searched(strategy)
    trials = study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert pruned and complete
    assert len(pruned) + len(complete) + len(failed) == 16  # a pruned trial used budget
    assert worker.cache.finished_count() == 16
    assert worker.cache.kinds["pruned"] == len(pruned)
    for t in pruned:
        assert t.user_attrs["state"] == "pruned" and t.user_attrs["failure_kind"] == "pruned"
        curve = fake_curve(fake_fitness(t.user_attrs["expression"]))[: len(t.intermediate_values)]
        assert t.intermediate_values == pytest.approx(dict(curve))
        assert t.user_attrs["best_acc"] == pytest.approx(max(v for _, v in curve))
        assert t.user_attrs["steps"] == curve[-1][0] < 10
    for t in complete:
        assert t.intermediate_values == pytest.approx(dict(fake_curve(t.value)))


@pytest.mark.parametrize("strategy", ["regevo", "random", "tpe"])
def test_replay_with_pruned_trials_gives_the_same_next_ask(searched, strategy):
    """Resume by replay holds with pruned trials among the told ones."""
    study, worker = searched(strategy)
    resumed = SearchWorker(study, config(strategy), evaluator_factory=FakeFactory())
    resumed.start()
    assert any(r.pruned for r in resumed.strategy.history)
    number = len(study.get_trials())
    resumed.strategy.asked = worker.strategy.asked = number
    assert resumed.strategy.ask(1)[0].key == worker.strategy.ask(1)[0].key


def pruned_record(space, number: int, candidate) -> TrialRecord:
    return TrialRecord(number, candidate, State.PRUNED, None, curve=((2, 0.3), (4, 0.35)))


def candidates(strategy, n):
    return [strategy.ask(1)[0] for _ in range(n)]


def test_regevo_skips_pruned_children_in_selection():
    """A pruned child neither joins the population nor earns a re-mutation."""
    space = get_space("cell")
    evo = get_strategy("regevo")(space, seed=0, population=2, tournament=2)
    first, second, child = candidates(evo, 3)
    evo.tell([TrialRecord(0, first, State.OK, 0.5), TrialRecord(1, second, State.OK, 0.6)])
    record = pruned_record(space, 2, child)
    assert record.partial == 0.35 and record.fitness is None and not record.ok
    evo.tell([record])
    assert [m.number for m in evo.population] == [0, 1]
    assert not evo._retries


def test_random_ignores_pruned_trials():
    space = get_space("cell")
    told, plain = (get_strategy("random")(space, seed=4) for _ in range(2))
    cand = candidates(told, 1)[0]
    candidates(plain, 1)
    told.tell([pruned_record(space, 0, cand)])
    assert told.ask(1)[0].key == plain.ask(1)[0].key


def test_tpe_stores_a_pruned_trial_as_optunas_pruned_with_its_curve():
    """TPE's inner study holds the pruned trial as PRUNED (ranked below completed trials by
    Optuna's TPE), with its curve and its last value; a failure stays FAIL."""
    space = get_space("cell")
    tpe = get_strategy("tpe")(space, seed=1, n_startup_trials=2)
    a, b, c = candidates(tpe, 3)
    tpe.tell(
        [
            TrialRecord(0, a, State.OK, 0.7),
            pruned_record(space, 1, b),
            TrialRecord(2, c, State.NAN, None),
        ]
    )
    inner = {t.params and tuple(sorted(t.params.items())): t for t in tpe._study.get_trials()}
    states = [inner[tuple(sorted(x.params.items()))].state for x in (a, b, c)]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    stored = inner[tuple(sorted(b.params.items()))]
    assert stored.intermediate_values == {2: 0.3, 4: 0.35} and stored.value == 0.35
    assert tpe.ask(1)[0].key  # TPE samples with a pruned trial in its history


@pytest.mark.parametrize("name", sorted(available_strategies()))
def test_every_strategy_takes_pruned_trials_and_asks_on(name):
    """Contract: any registered strategy is told pruned trials without error, never as a
    fitness, and keeps proposing."""
    cls = get_strategy(name)
    spaces = [get_space(n) for n in space_names()]
    space = next(s for s in spaces if getattr(cls, "refusal", lambda s: None)(s) is None)
    strategy = cls(space, seed=0)
    a, b, c = candidates(strategy, 3)
    records = [TrialRecord(0, a, State.OK, 0.5), pruned_record(space, 1, b)]
    strategy.tell([*records, TrialRecord(2, c, State.OK, 0.6)])
    assert [r.ok for r in strategy.history] == [True, False, True]
    assert strategy.ask(1)[0].key not in {a.key, b.key, c.key}


def add_high_pruned_trial(study):
    """A pruned trial whose last intermediate value (Optuna's ``value``) beats every fitness."""
    trial = study.ask()
    for key in ("expression", "key", "sign", "genome", "phase"):
        trial.set_user_attr(key, study.trials[0].user_attrs[key])
    trial.set_user_attr("state", "pruned")
    trial.set_user_attr("failure_kind", "pruned")
    trial.set_user_attr("seconds", 1.0)
    trial.report(0.999, 2)
    study.tell(trial, state=TrialState.PRUNED)
    return study.trials[-1]


def test_a_pruned_trial_is_never_read_as_a_finished_one(tmp_path):
    """best, export's candidate list, compare's facts and anytime curve, fidelity's pick and
    the cache's best all ignore a pruned trial, though Optuna gives it a value."""
    study, _ = run(tmp_path, config(budget=8))
    high = add_high_pruned_trial(study)
    assert high.value == 0.999
    cache = TrialCache(study)
    cache.sync()
    assert cache.best.number != high.number
    assert high.number not in [row["number"] for row in best_trials(study, 100)]
    summary = summarize(study)
    assert summary["finished"] == 9 and summary["counts"]["pruned"] >= 1
    facts = study_facts(study, baseline=None, top_k=100)
    completed = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert facts["best_fitness"] == max(t.value for t in completed) < 0.999
    assert max(b for b in facts["curve"]["best"] if b is not None) < 0.999
    assert facts["pruned"] + facts["ok"] + facts["failed"] == facts["evaluations"] == 9
    assert high.number not in [t.number for t in top_trials(study, 100)]
    assert high.number not in [t.number for t in pick(study.get_trials(), 100, 0)]


def test_real_evaluator_curves_are_stored_and_a_pruned_run_stops_at_its_checkpoint(tmp_path):
    """With the real evaluator (nano: 8 steps, points at 4 and 8), the stored intermediate
    values are the evaluator's own points and a pruned trial trained 4 steps."""
    seen = {}
    cfg = config(profile=NANO, device="cpu", budget=6, eval_seed=5)
    cfg = dataclasses.replace(cfg, pruning=PruningConfig(rule="median", n_startup_trials=2))
    storage = resolve_storage(str(tmp_path / "real.journal"), "real")
    study = open_study("real", storage, attrs=study_attrs(cfg))
    on_result = lambda number, cand, result: seen.__setitem__(number, result)  # noqa: E731
    SearchWorker(study, cfg, evaluator_factory=RealFactory(), on_result=on_result).run()
    trials = {t.number: t for t in study.get_trials()}
    assert len(seen) == 6
    for number, result in seen.items():
        history = {h["step"]: h["eval_acc"] for h in result.metadata["history"]}
        assert trials[number].intermediate_values == pytest.approx(history)
    pruned = [t for t in trials.values() if t.state == TrialState.PRUNED]
    assert pruned, "the median rule should stop a real candidate below its peers at step 4"
    assert all(t.user_attrs["steps"] == 4 for t in pruned)


def test_benchmark_smoke():
    """benchmarks/pruning.py runs end to end (fake evaluator, tiny budget) and reports."""
    path = Path(__file__).parents[2] / "benchmarks" / "pruning.py"
    spec = importlib.util.spec_from_file_location("pruning_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick", "--budget", "16", "--noise-seeds", "2"], FakeFactory())
    (row,) = result["seeds"]
    assert row["plain"]["trials"] == row["pruned"]["trials"] == 16
    assert row["plain"]["pruned"] == 0 < row["pruned"]["pruned"]
    # A fake evaluation reports 10 steps (a NaN one too); a pruned one the step it stopped at.
    assert row["pruned"]["total_steps"] < row["plain"]["total_steps"] == 10 * 16
