"""The comparison/ablation report: its numbers equal numpy, scipy and hand derivations on
synthetic facts, summary.json is strict JSON holding every headline number, the HTML stands
alone, and degenerate comparisons (one seed, an arm whose every trial failed) still render."""

from __future__ import annotations

import json
import re
from itertools import combinations

import numpy as np
import pytest
from report_fixtures import json_numbers, markdown_table, strict_json
from scipy import stats

from nlfs.errors import ConfigError
from nlfs.report.comparison import analyse, write_comparison_report

SEEDS = (0, 1, 2)
BUDGET = 8
BASELINE_FITNESS = 0.62


def study(name: str, seed: int, shift: float, rng: np.random.Generator) -> dict:
    """One study as ``collect`` describes it, its derived fields computed from its trials."""
    fitness = [
        None if rng.random() < 0.15 else float(0.5 + shift + 0.1 * rng.random())
        for _ in range(BUDGET)
    ]
    seconds = np.cumsum(rng.uniform(0.5, 2.0, BUDGET)).tolist()
    best, running = [], None
    for f in fitness:
        if f is not None and (running is None or f > running):
            running = f
        best.append(running)
    reached = [i + 1 for i, b in enumerate(best) if b is not None and b >= BASELINE_FITNESS]
    ok = [f for f in fitness if f is not None]
    top = sorted(((f, i) for i, f in enumerate(fitness) if f is not None), reverse=True)[:2]
    entries = []
    for f, trial in top:
        again = [float(f - 0.02 * rng.random()) for _ in range(2)]
        entries.append(
            {
                "trial": trial,
                "expression": f"add(mul(y, log(p)), {trial})",
                "latex": r"y \log p",
                "sign": -1.0,
                "fitness": f,
                "reevaluated": again,
                "reevaluated_mean": float(np.mean(again)),
            }
        )
    rejected = int(rng.integers(0, 6))
    duplicates = int(rng.integers(0, rejected + 1))
    return {
        "study": f"compare-{name}-s{seed}",
        "seed": seed,
        "evaluations": BUDGET,
        "ok": len(ok),
        "failed": BUDGET - len(ok),
        "rejected": rejected,
        "duplicates": duplicates,
        "rejections": {"duplicate": duplicates, "probe_shape": rejected - duplicates},
        "curve": {"evaluations": list(range(1, BUDGET + 1)), "seconds": seconds, "best": best},
        "best_fitness": running,
        "auc": float(np.mean([b or 0.0 for b in best])),
        "evals_to_baseline": reached[0] if reached else None,
        "reevaluated_best": max((e["reevaluated_mean"] for e in entries), default=None),
        "distinct_keys": len(ok),
        "diversity": float(rng.random()),
        "top": entries,
    }


def make_facts(arms: int, seeds=SEEDS, reevaluate: int = 2) -> dict:
    rng = np.random.default_rng(7)
    names = ["regevo", "random", "tpe"][:arms]
    return {
        "kind": "compare",
        "name": "compare",
        "axis": "strategy",
        "profile": "micro",
        "profile_hash": "abc123",
        "machine": "Linux x86_64, 2 CPU cores, torch 2.4.1, cpu",
        "budget": BUDGET,
        "time_budget_s": None,
        "seeds": list(seeds),
        "reevaluate": reevaluate,
        "top_k": 2,
        "eval_seed": 0,
        "reevaluation_seeds": [101, 102][:reevaluate],
        "baseline": {
            "loss": "cross_entropy",
            "fitness": BASELINE_FITNESS,
            "reevaluated": [0.6, 0.61],
        },
        "arms": [
            {
                "name": name,
                "description": f"strategy {name}",
                "config_hash": f"h{index}",
                "studies": [study(name, s, 0.05 * index, rng) for s in seeds],
            }
            for index, name in enumerate(names)
        ],
    }


def values(facts: dict, arm: int, metric: str) -> list[float]:
    return [s[metric] for s in facts["arms"][arm]["studies"] if s[metric] is not None]


@pytest.fixture(scope="module")
def three():
    facts = make_facts(3)
    return facts, analyse(facts)


@pytest.mark.parametrize("metric", ["best_fitness", "reevaluated_best", "auc", "diversity"])
def test_medians_and_iqrs_equal_numpy_percentiles(three, metric):
    facts, analysis = three
    for index, arm in enumerate(analysis["arms"]):
        got = arm[metric]
        q25, med, q75 = np.percentile(values(facts, index, metric), [25, 50, 75])
        assert (got["q25"], got["median"], got["q75"]) == pytest.approx((q25, med, q75))
        assert got["n"] == len(SEEDS)


def test_evaluations_to_baseline_summarise_only_seeds_that_reached_it(three):
    facts, analysis = three
    for index, arm in enumerate(analysis["arms"]):
        reached = values(facts, index, "evals_to_baseline")
        got = arm["evals_to_baseline"]
        assert (got["reached"], got["of"]) == (len(reached), len(SEEDS))
        if reached:
            assert got["median"] == pytest.approx(np.median(reached))
        else:
            assert got["median"] is None


def test_rates_are_summed_over_seeds(three):
    facts, analysis = three
    for arm, got in zip(facts["arms"], analysis["arms"], strict=True):
        rejected = sum(s["rejected"] for s in arm["studies"])
        dup = sum(s["duplicates"] for s in arm["studies"])
        evals = sum(s["evaluations"] for s in arm["studies"])
        failed = sum(s["failed"] for s in arm["studies"])
        assert got["rejection_rate"] == pytest.approx(rejected / (rejected + evals))
        assert got["duplicate_rate"] == pytest.approx(dup / (rejected + evals))
        assert got["failure_rate"] == pytest.approx(failed / evals)
        assert sum(got["rejections"].values()) == rejected


@pytest.mark.parametrize("metric", ["reevaluated_best", "auc"])
def test_mann_whitney_and_cliffs_delta_equal_scipy_and_a_hand_count(three, metric):
    facts, analysis = three
    rows = analysis["pairwise"][metric]
    assert len(rows) == 3
    for row, (i, j) in zip(rows, combinations(range(3), 2), strict=True):
        x, y = values(facts, i, metric), values(facts, j, metric)
        ref = stats.mannwhitneyu(x, y, alternative="two-sided")
        assert row["p"] == pytest.approx(ref.pvalue)
        assert row["u"] == pytest.approx(ref.statistic)
        greater = sum(a > b for a in x for b in y)
        less = sum(a < b for a in x for b in y)
        assert row["cliffs_delta"] == pytest.approx((greater - less) / (len(x) * len(y)))
        assert row["mean_difference"] == pytest.approx(np.mean(x) - np.mean(y))
        assert row["ci_low"] <= row["mean_difference"] <= row["ci_high"]


def test_holm_equals_a_hand_step_down(three):
    _, analysis = three
    rows = analysis["pairwise"]["auc"]
    ordered = sorted(rows, key=lambda r: r["p"])
    m, running = len(ordered), 0.0
    for rank, row in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * row["p"]))
        assert row["p_holm"] == pytest.approx(running)


def test_bootstrap_is_reproducible_and_leaves_the_global_rng_alone(three):
    facts, analysis = three
    state = np.random.get_state()[1].copy()
    again = analyse(facts)
    assert again["pairwise"] == analysis["pairwise"]
    assert np.array_equal(np.random.get_state()[1], state)


def test_friedman_statistic_equals_scipy_with_seeds_as_blocks(three):
    facts, analysis = three
    result = analysis["friedman"]["reevaluated_best"]
    columns = [values(facts, i, "reevaluated_best") for i in range(3)]
    ref = stats.friedmanchisquare(*columns)
    assert result["statistic"] == pytest.approx(ref.statistic)
    assert result["p"] == pytest.approx(ref.pvalue)
    assert result["blocks"] == len(SEEDS)
    assert "Blocks are the search seeds" in analysis["friedman_note"]["reevaluated_best"]


def test_anytime_band_at_an_evaluation_count_equals_numpy_percentiles(three):
    facts, analysis = three
    n = 5
    for index, arm in enumerate(analysis["arms"]):
        per_seed = [s["curve"]["best"][n - 1] for s in facts["arms"][index]["studies"]]
        defined = [b for b in per_seed if b is not None]
        assert len(defined) == len(per_seed)  # the fixture: every seed has succeeded by then
        curve = arm["curve_evaluations"]
        at = curve["x"].index(n)
        q25, med, q75 = np.percentile(defined, [25, 50, 75])
        assert (curve["q25"][at], curve["median"][at], curve["q75"][at]) == pytest.approx(
            (q25, med, q75)
        )
        assert curve["n"][at] == len(defined)


def test_anytime_band_in_seconds_is_the_best_so_far_at_each_time(three):
    facts, analysis = three
    arm, curve = facts["arms"][1], analysis["arms"][1]["curve_seconds"]
    ends = [s["curve"]["seconds"][-1] for a in facts["arms"] for s in a["studies"]]
    assert curve["x"][0] == 0.0 and curve["x"][-1] == pytest.approx(max(ends))
    at = len(curve["x"]) // 2
    t = curve["x"][at]
    per_seed = []
    for s in arm["studies"]:
        steps = zip(s["curve"]["seconds"], s["curve"]["best"], strict=True)
        finished = [b for sec, b in steps if sec <= t]
        if finished and finished[-1] is not None:
            per_seed.append(finished[-1])
    assert len(per_seed) == len(arm["studies"])
    assert curve["median"][at] == pytest.approx(np.median(per_seed))
    assert curve["median"][0] is None  # nothing has finished at time zero


def test_the_band_starts_when_every_seed_has_succeeded_and_never_falls():
    """A late seed joining a median of the others could pull it down; the band waits for it."""
    facts = make_facts(2)
    studies = facts["arms"][0]["studies"]
    studies[0]["curve"]["best"][:3] = [None, None, None]  # its first success is evaluation 4
    studies[1]["curve"]["best"][0] = None
    curve = analyse(facts)["arms"][0]["curve_evaluations"]
    assert curve["median"][:3] == [None, None, None] and curve["n"][:4] == [1, 2, 2, 3]
    medians = curve["median"][3:]
    assert all(m is not None for m in medians)
    assert medians == sorted(medians)


def test_two_arms_have_one_pair_and_no_friedman():
    analysis = analyse(make_facts(2))
    assert len(analysis["pairwise"]["auc"]) == 1
    assert analysis["friedman"]["auc"] is None
    assert "three arms" in analysis["friedman_note"]["auc"]


def test_without_reevaluation_the_headline_is_the_in_search_best(tmp_path):
    facts = make_facts(3, reevaluate=0)
    summary = write_comparison_report(facts, tmp_path, formats=("md",))
    assert summary["analysis"]["headline_metric"] == "best_fitness"
    assert set(summary["analysis"]["pairwise"]) == {"best_fitness", "auc"}
    text = (tmp_path / "report.md").read_text()
    assert "Re-evaluated best" not in text and "No re-evaluation was run" in text


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("comparison")
    facts = make_facts(3)
    summary = write_comparison_report(facts, out)
    return facts, summary, out


def test_summary_json_is_strict_and_holds_every_headline_number(written):
    facts, summary, out = written
    loaded = strict_json((out / "summary.json").read_text())
    assert loaded == json.loads(json.dumps(summary))
    assert {k: loaded[k] for k in facts} == facts
    numbers = json_numbers(loaded)
    rows = markdown_table((out / "report.md").read_text(), "Arm")
    assert len(rows) == 4  # three arms and the baseline
    shown = [token for row in rows for cell in row[1:] for token in re.findall(r"\d+\.?\d*", cell)]
    assert len(shown) > 20
    for token in shown:
        digits = len(token.split(".")[1]) if "." in token else 0
        assert any(f"{x:.{digits}f}" == token for x in numbers), token


def test_html_stands_alone_with_embedded_figures(written):
    _, _, out = written
    text = (out / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert r"\( y \log p \)" in text
    names = {p.name for p in (out / "figures").iterdir()}
    assert {"anytime_evaluations.png", "anytime_seconds.png", "final_best.png"} <= names
    assert "critical_difference.png" in names
    assert len(sources) == len(names)


def test_markdown_shows_the_expressions_and_the_pairing(written):
    facts, _, out = written
    text = (out / "report.md").read_text()
    assert text.startswith("# Search strategies compared")
    assert "`add(mul(y, log(p)), " in text and r"\(" not in text
    assert "not paired" in text and "abc123" in text and facts["machine"] in text


def test_one_seed_and_an_arm_whose_every_trial_failed_render_with_dashes(tmp_path):
    facts = make_facts(3, seeds=(5,))
    failed = facts["arms"][2]["studies"][0]
    failed.update(
        ok=0,
        failed=failed["evaluations"],
        best_fitness=None,
        reevaluated_best=None,
        auc=None,
        evals_to_baseline=None,
        diversity=None,
        distinct_keys=0,
        top=[],
    )
    failed["curve"]["best"] = [None] * BUDGET
    summary = write_comparison_report(facts, tmp_path)
    strict_json((tmp_path / "summary.json").read_text())
    analysis = summary["analysis"]
    assert all(r["p"] is None for r in analysis["pairwise"]["reevaluated_best"])
    assert analysis["friedman"]["auc"] is None
    assert analysis["arms"][2]["reevaluated_best"]["median"] is None
    rows = markdown_table((tmp_path / "report.md").read_text(), "Arm")
    assert rows[2][0] == "tpe" and rows[2][2] == "–"
    assert (tmp_path / "report.html").read_text().count("–") > 5


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="choose from md, html, json"):
        write_comparison_report(make_facts(2), tmp_path, formats=("pdf",))


def test_a_time_budget_sets_the_seconds_grid_and_shortens_evaluation_curves(tmp_path):
    facts = make_facts(2)
    facts.update(budget=None, time_budget_s=30.0)
    short = facts["arms"][0]["studies"][0]["curve"]
    for key in ("evaluations", "seconds", "best"):
        del short[key][5:]  # this seed finished five evaluations in its time
    analysis = write_comparison_report(facts, tmp_path, formats=("md",))["analysis"]
    seconds = analysis["arms"][0]["curve_seconds"]
    assert seconds["x"][-1] == pytest.approx(30.0)
    assert seconds["n"][-1] == len(SEEDS)  # a finished study keeps its best to the end
    evaluations = analysis["arms"][0]["curve_evaluations"]
    assert evaluations["n"][evaluations["x"].index(5)] == len(SEEDS)
    assert evaluations["n"][evaluations["x"].index(6)] == len(SEEDS) - 1
    assert evaluations["median"][evaluations["x"].index(6)] is None  # not every seed is there
    assert "a time budget of 30.0 wall seconds per study" in (tmp_path / "report.md").read_text()


def test_arms_with_different_numbers_of_values_are_compared_unpaired():
    """Seeds are not pairs: an arm missing one seed's value is still tested, on 3 and 2 values."""
    facts = make_facts(2)
    facts["arms"][1]["studies"][0]["reevaluated_best"] = None
    (row,) = analyse(facts)["pairwise"]["reevaluated_best"]
    x, y = values(facts, 0, "reevaluated_best"), values(facts, 1, "reevaluated_best")
    assert (row["n_a"], row["n_b"]) == (3, 2)
    assert row["p"] == pytest.approx(stats.mannwhitneyu(x, y).pvalue)
    assert row["mean_difference"] == pytest.approx(np.mean(x) - np.mean(y))
    assert row["ci_low"] <= row["mean_difference"] <= row["ci_high"]
