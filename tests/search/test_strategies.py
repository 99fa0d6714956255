"""The built-in strategies' own rules, the base class's bookkeeping, and the registry."""

from __future__ import annotations

import statistics

import pytest
from strategy_fakes import (
    PLUGIN_DIR,
    drive,
    make_screen,
    make_space,
    plugin_entry_points,
    synthetic_fitness,
    write_dist_info,
)

import nlfs.search.strategy
from nlfs.errors import ConfigError, NLFSError
from nlfs.evaluation.results import State
from nlfs.search.strategy import Proposal, Strategy, TrialRecord, available_strategies, get_strategy
from nlfs.spaces import get_space
from strategies.random_search import RandomSearch
from strategies.regevo import RegularizedEvolution
from strategies.tpe import TPEStrategy


def regevo(space="cell", seed=0, **options) -> RegularizedEvolution:
    return RegularizedEvolution(make_space(space), seed=seed, screen=make_screen(), **options)


def tell_one(strategy, candidate, state=State.OK, fitness=None) -> TrialRecord:
    """Tell the trial numbered by the candidate's ask index."""
    number = len(strategy.history)
    record = TrialRecord(number, candidate, state, fitness)
    strategy.tell([record])
    return record


# --- regularized evolution ------------------------------------------------------------------


def test_regevo_child_replaces_oldest():
    """After P + k ok tells the population is the last P told, though the old ones are fitter."""
    strategy = regevo(population=4, tournament=2)
    for number in range(10):
        (candidate,) = strategy.ask(1)
        tell_one(strategy, candidate, fitness=1.0 - number / 100)
    assert [m.number for m in strategy.population] == [6, 7, 8, 9]
    assert all(r.candidate.parent is not None for r in strategy.history[4:])


def test_regevo_initial_asks_random_even_when_outstanding():
    """Asks before any result (initial phase or not) are random samples without a parent."""
    strategy = regevo(population=2, tournament=2)
    candidates = strategy.ask(6)
    assert [c.mutation for c in candidates] == ["random"] * 6
    assert all(c.parent is None and c.phase == "search" for c in candidates)


def test_regevo_tournament_draws_with_replacement():
    """With tournament == population == 2 the weaker member still wins sometimes."""
    strategy = regevo(population=2, tournament=2)
    first, second = strategy.ask(2)
    weak, strong = tell_one(strategy, first, fitness=0.1), tell_one(strategy, second, fitness=0.9)
    parents = [c.parent for c in strategy.ask(40)]  # all outstanding: same population
    assert parents.count(weak.number) >= 1  # impossible without replacement
    assert parents.count(strong.number) > parents.count(weak.number)


def test_regevo_tournament_may_exceed_population():
    """Drawing with replacement allows a tournament larger than the population."""
    strategy = regevo(population=2, tournament=5)
    for candidate in strategy.ask(2):
        tell_one(strategy, candidate, fitness=0.5)
    assert strategy.ask(1)[0].parent in {0, 1}


def test_regevo_remutates_failed_child_up_to_limit():
    """A failed child's parent is re-mutated ``remutations`` times, then a tournament resumes."""
    strategy = regevo(population=3, tournament=2, remutations=2)
    for candidate in strategy.ask(3):
        tell_one(strategy, candidate, fitness=0.5)
    (child,) = strategy.ask(1)
    parent = child.parent
    failed = tell_one(strategy, child, State.NAN)
    for attempt in (1, 2):
        (retry,) = strategy.ask(1)
        assert retry.parent == parent
        assert retry.params == {"remutation": attempt, "remutation_of": failed.number}
        failed = tell_one(strategy, retry, State.DIVERGED)
    (after,) = strategy.ask(1)
    assert "remutation" not in after.params


def test_regevo_interrupted_child_is_not_remutated():
    """An interrupted trial is re-run by the runner, so it earns no re-mutation."""
    strategy = regevo(population=2, tournament=2)
    for candidate in strategy.ask(2):
        tell_one(strategy, candidate, fitness=0.5)
    tell_one(strategy, strategy.ask(1)[0], State.INTERRUPTED)
    assert "remutation" not in strategy.ask(1)[0].params


def test_regevo_seed_pool_keeps_best():
    """The first N asks are seed-phase samples; the population starts as the best P of them."""
    strategy = regevo(population=4, tournament=2, seed_pool=10)
    seeds = strategy.ask(10)
    assert {c.phase for c in seeds} == {"seed"}
    told = [tell_one(strategy, c, fitness=synthetic_fitness(c.expression)) for c in seeds]
    best = sorted(told, key=lambda r: (-r.fitness, r.number))[:4]
    assert {m.number for m in strategy.population} == {r.number for r in best}
    (child,) = strategy.ask(1)
    assert child.phase == "search" and child.parent in {r.number for r in best}
    oldest = strategy.population[0].number
    tell_one(strategy, child, fitness=0.0)  # joins however weak; the oldest leaves
    assert oldest not in {m.number for m in strategy.population}
    assert strategy.population[-1].candidate == child


def test_regevo_replay_rebuilds_population():
    """Replaying told trials in number order rebuilds the population and pending re-mutations."""
    original = regevo(population=5, tournament=3, seed=4)
    records = drive(original, 24, failures=True)
    replayed = regevo(population=5, tournament=3, seed=4)
    replayed.tell(records)
    assert [m.number for m in replayed.population] == [m.number for m in original.population]


def test_regevo_takes_an_immigrant_when_every_parent_yields_only_seen_children(monkeypatch):
    """A population whose children the screen has all seen gets a random sample, not an error;
    the sample comes only after PLANS_BEFORE_IMMIGRANT parents were tried."""
    import strategies.regevo as module

    strategy = regevo(population=1, tournament=1)
    (first,) = strategy.ask(1)
    tell_one(strategy, first, fitness=0.5)
    mutations = []

    def stale_child(genome, rng):  # every child is the parent again: a duplicate
        mutations.append(genome)
        return genome, "stale"

    monkeypatch.setattr(strategy.space, "mutate", stale_child)
    (child,) = strategy.ask(1)
    assert child.mutation == "random" and child.parent is None
    assert child.key != first.key
    assert len(mutations) == module.PLANS_BEFORE_IMMIGRANT * module.RETRIES_PER_PLAN
    assert strategy.asked == 2


def test_regevo_crossover_only_where_supported():
    """Crossover is refused for spaces without it and used on ``tree`` when asked for."""
    with pytest.raises(ConfigError, match="crossover"):
        regevo("cell", crossover=0.5)
    strategy = regevo("tree", population=3, tournament=2, crossover=1.0)
    for candidate in strategy.ask(3):
        tell_one(strategy, candidate, fitness=synthetic_fitness(candidate.expression))
    child = strategy.ask(1)[0]
    assert child.mutation == "crossover" and "other_parent" in child.params


@pytest.mark.parametrize(
    "options", [{"population": 0}, {"population": "100"}, {"tournament": 2.5}, {"crossover": 2}]
)
def test_regevo_bad_option_values(options):
    """Out-of-range or mistyped option values raise ConfigError."""
    with pytest.raises(ConfigError):
        regevo(**options)


# --- TPE ------------------------------------------------------------------------------------


def test_tpe_refuses_space_without_encoding():
    """``tpe`` on ``tree`` fails at construction, naming the space and the remedy."""
    with pytest.raises(ConfigError, match="fixed-length encoding.*'tree'.*--space cell"):
        TPEStrategy(make_space("tree"), screen=make_screen())


def test_tpe_needs_stored_params():
    """A told trial without the encoding values is refused with a clear error."""
    source = RandomSearch(make_space("cell"), screen=make_screen())
    (candidate,) = source.ask(1)
    strategy = TPEStrategy(make_space("cell"), screen=make_screen())
    with pytest.raises(NLFSError, match="encoding values"):
        strategy.tell([TrialRecord(0, candidate, State.OK, 0.5)])


def test_tpe_beats_random_on_structured_objective():
    """On a learnable synthetic objective TPE's later trials beat random search's on average.

    Fitness is mostly whether the outermost operator (the cell's root node) is a rewarded one.
    Per seed we compare the mean fitness of trials 25..49. Measured over seeds 0..7 the margin
    was 0.17 to 0.53 per seed (mean 0.32), so requiring 0.1 on the mean of four is robust.
    """
    margins = []
    for seed in range(4):
        means = []
        for cls, options in ((TPEStrategy, {"n_startup_trials": 5}), (RandomSearch, {})):
            strategy = cls(make_space("cell"), seed=seed, screen=make_screen(), **options)
            records = drive(strategy, 50, failures=False)
            means.append(statistics.fmean(r.fitness for r in records[25:]))
        margins.append(means[0] - means[1])
    assert statistics.fmean(margins) > 0.1, margins


@pytest.mark.parametrize(
    "options",
    [{"hidden": 2, "constants": False}, {"hidden": 6, "exclude": ["minmax", "bessel"]}],
    ids=["hidden2-yp", "hidden6-nominmax-nobessel"],
)
def test_tpe_searches_cell_variants(options):
    """TPE's encoding follows a variant's options: past the startup trials too, every
    proposal's params are exactly the variant's coordinates and decode to its genome, which
    validates in the variant and uses no excluded operator."""
    space = get_space("cell", **options)
    strategy = TPEStrategy(space, seed=0, screen=make_screen(), n_startup_trials=4)
    records = drive(strategy, 12, failures=False)
    names = {spec.name for spec in space.encoding()}
    assert len(names) == 5 * (options["hidden"] + 1)
    excluded = {"i0", "i0e", "i1", "i1e", "max0", "min0", "max", "min"}
    for record in records:
        candidate = record.candidate
        assert set(candidate.params) == names
        assert space.decode(candidate.params) == candidate.genome
        space.validate(candidate.genome)
        ops = {n for node in candidate.genome.nodes for n in (node.unary, node.binary)}
        if "exclude" in options:
            assert not ops & excluded
        else:
            assert all({node.in0, node.in1} <= {0, 1, 4, 5, 6} for node in candidate.genome.nodes)


# --- base class bookkeeping -----------------------------------------------------------------


class _Stuck(Strategy):
    """Always proposes the same genome: after the first ask only duplicates are left."""

    name = "stuck"
    genome = None

    def _propose(self, rng, k):
        return Proposal(self.genome, mutation="same")


def test_ask_gives_up_after_max_tries(monkeypatch):
    """An ask that keeps being rejected stops with NLFSError instead of looping forever."""
    monkeypatch.setattr(nlfs.search.strategy, "MAX_TRIES", 30)
    (accepted,) = RandomSearch(make_space("cell"), screen=make_screen()).ask(1)
    monkeypatch.setattr(_Stuck, "genome", accepted.genome)
    strategy = _Stuck(make_space("cell"), screen=make_screen())
    assert strategy.ask(1)[0].key == accepted.key
    with pytest.raises(NLFSError, match="no acceptable candidate in 30 tries"):
        strategy.ask(1)
    assert strategy.asked == 1


def test_per_ask_randomness_depends_on_seed_and_index_only():
    """rng_for(k) is the same for equal (seed, k) and differs across k and seeds."""
    a = RandomSearch(make_space("cell"), seed=5, screen=make_screen())
    b = RandomSearch(make_space("cell"), seed=5, screen=make_screen())
    c = RandomSearch(make_space("cell"), seed=6, screen=make_screen())
    draw = [s.rng_for(k).random() for s in (a, b, c) for k in (0, 1)]
    assert draw[0:2] == draw[2:4] and draw[0] != draw[1] and draw[0:2] != draw[4:6]


def test_tell_ignores_repeated_trials():
    """Telling the same trial number twice records it once."""
    strategy = regevo(population=2)
    record = tell_one(strategy, strategy.ask(1)[0], fitness=0.5)
    strategy.tell([record, record])
    assert len(strategy.history) == 1 and len(strategy.population) == 1


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed_refused(seed):
    with pytest.raises(ConfigError, match="seed"):
        RandomSearch(make_space("cell"), seed=seed, screen=make_screen())


def test_ask_zero_returns_nothing():
    strategy = RandomSearch(make_space("cell"), screen=make_screen())
    assert strategy.ask(0) == [] and strategy.asked == 0


# --- registry -------------------------------------------------------------------------------


def test_unknown_strategy_lists_known():
    """An unknown name raises ConfigError listing the registered names."""
    with pytest.raises(ConfigError, match="unknown strategy 'evo'; known: .*random.*regevo.*tpe"):
        get_strategy("evo")


def test_builtins_resolve_to_their_classes():
    assert get_strategy("regevo") is RegularizedEvolution
    assert get_strategy("random") is RandomSearch
    assert get_strategy("tpe") is TPEStrategy


def test_plugin_package_found_through_entry_point(tmp_path, monkeypatch):
    """A strategy from a separate package (tests/plugin_pkg) is discovered via its entry point."""
    write_dist_info(tmp_path, "nlfs-echo-plugin", plugin_entry_points())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    cls = get_strategy("echo_test")
    assert issubclass(cls, Strategy) and cls.__module__ == "nlfs_echo_plugin"
    assert available_strategies()["echo_test"] is cls
    strategy = cls(make_space("cell"), screen=make_screen())
    assert len(drive(strategy, 5)) == 5


def test_duplicate_name_is_an_error(tmp_path, monkeypatch):
    """Two packages registering the same name: NLFSError naming both targets."""
    write_dist_info(tmp_path, "nlfs-clash", {"regevo": "nlfs_echo_plugin:EchoStrategy"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(NLFSError, match="'regevo'") as info:
        get_strategy("random")
    message = str(info.value)
    assert "strategies.regevo:RegularizedEvolution" in message
    assert "nlfs_echo_plugin:EchoStrategy" in message


@pytest.mark.parametrize(
    ("target", "match"),
    [("nlfs_no_such_module:Thing", "failed to import"), ("nlfs.errors:NLFSError", "subclass")],
)
def test_broken_plugin_named_in_error(tmp_path, monkeypatch, target, match):
    """A plugin that cannot be loaded is named; the other strategies still load by name."""
    write_dist_info(tmp_path, "nlfs-broken", {"broken": target})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(NLFSError, match=f"'broken'.*{match}"):
        get_strategy("broken")
    with pytest.raises(NLFSError, match="'broken'"):
        available_strategies()
    assert get_strategy("regevo") is RegularizedEvolution
