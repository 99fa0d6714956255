"""The fidelity report: its correlations, ceilings, overlaps and regret equal scipy and hand
counts on synthetic facts, anchors stay out of the correlations, the verdict follows its stated
thresholds, summary.json is strict JSON holding every number shown, and the HTML stands alone."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from report_fixtures import json_numbers, markdown_table, strict_json
from scipy import stats

from nlfs.errors import ConfigError
from nlfs.report.fidelity import analyse, verdict, write_fidelity_report

N = 12
TOP = 6
ANCHORS = ("cross_entropy", "baikal", "focal", "label_smoothing")
# A fixed shuffle of the candidates whose Kendall tau with the original order is exactly 0.
PERMUTATION = (5, 10, 2, 7, 0, 11, 3, 8, 1, 6, 9, 4)


def make_facts(target: str = "noisy", seeds=(0, 1)) -> dict:
    """Facts as ``collect`` returns them: N candidates (best surrogate fitness first), four
    anchors; the target accuracy is noisy, a monotone function or a shuffle of the fitness."""
    rng = np.random.default_rng(3)
    fitness = np.sort(rng.uniform(0.2, 0.6, N))[::-1]
    repeat = fitness + rng.normal(0.0, 0.03, N)
    clean = 0.6 + 0.5 * fitness
    if target == "noisy":
        base = clean + rng.normal(0.0, 0.03, N)
        per_seed = [base + rng.normal(0.0, 0.01, N) for _ in seeds]
    else:
        base = clean[list(PERMUTATION)] if target == "shuffled" else clean
        per_seed = [base + 0.001 * k for k in range(len(seeds))]
    candidates = [
        {
            "label": f"search:{3 * i + 1}",
            "trial": 3 * i + 1,
            "expression": f"mul(y, log(add(p, {i})))",
            "sign": -1.0,
            "anchor": False,
            "surrogate": [float(fitness[i]), float(repeat[i])],
            "target": [float(values[i]) for values in per_seed],
        }
        for i in range(N)
    ]
    if target == "noisy" and len(seeds) >= 2:
        candidates[4]["target"][1] = None  # a target run that failed
    anchors = [
        {
            "label": name,
            "trial": None,
            "expression": None,
            "sign": None,
            "anchor": True,
            "surrogate": [0.45 + 0.01 * j, 0.46 + 0.01 * j],
            "target": [0.82 + 0.01 * j + 0.002 * k for k in range(len(seeds))],
        }
        for j, name in enumerate(ANCHORS)
    ]
    return {
        "kind": "fidelity",
        "name": "fidelity-test",
        "search_study": "regevo-cell-micro-s0",
        "surrogate_profile": "micro",
        "target": "small CNN on Fashion-MNIST with flip and crop",
        "target_settings": ["small_cnn/fashion-mnist/flipcrop"],
        "machine": "Linux x86_64, 2 CPU cores, torch 2.4.1, cpu",
        "seed": 0,
        "target_seeds": list(seeds),
        "surrogate_seeds": [0, 101],
        "top": TOP,
        "candidates": candidates,
        "anchors": anchors,
        "cross_entropy": {
            "surrogate": float(np.mean(anchors[0]["surrogate"])),
            "target": float(np.mean(anchors[0]["target"])),
        },
    }


def column(facts: dict, key: str, index: int | None = None, stop: int = N) -> list:
    """One score per candidate among the first ``stop``: a seed's value, or the target mean."""
    out = []
    for c in facts["candidates"][:stop]:
        values = c[key]
        if index is not None:
            out.append(values[index])
        else:
            defined = [v for v in values if v is not None]
            out.append(float(np.mean(defined)) if defined else None)
    return out


def scipy_pair(x: list, y: list) -> tuple[float, float, int]:
    keep = [(a, b) for a, b in zip(x, y, strict=True) if a is not None and b is not None]
    a, b = zip(*keep, strict=True)
    return stats.kendalltau(a, b).statistic, stats.spearmanr(a, b).statistic, len(keep)


@pytest.fixture(scope="module")
def noisy():
    facts = make_facts()
    return facts, analyse(facts)


@pytest.mark.parametrize(("key", "stop"), [("all", N), ("top", TOP)])
def test_correlations_and_ceilings_equal_scipy(noisy, key, stop):
    """The candidates come best surrogate fitness first, so the top ones are the first TOP."""
    facts, analysis = noisy
    block = analysis[key]
    surrogate = column(facts, "surrogate", 0, stop)
    for name, (x, y) in {
        "agreement": (surrogate, column(facts, "target", None, stop)),
        "target_ceiling": (column(facts, "target", 0, stop), column(facts, "target", 1, stop)),
        "surrogate_ceiling": (surrogate, column(facts, "surrogate", 1, stop)),
    }.items():
        tau, rho, n = scipy_pair(x, y)
        found = block[name]
        assert found["n"] == n
        assert found["kendall"]["estimate"] == pytest.approx(tau, abs=1e-12)
        assert found["spearman"]["estimate"] == pytest.approx(rho, abs=1e-12)
        for c in (found["kendall"], found["spearman"]):
            assert -1.0 <= c["low"] <= c["high"] <= 1.0
    ceiling = block["target_ceiling"]["kendall"]["estimate"]
    tau = block["agreement"]["kendall"]["estimate"]
    assert block["closeness"] == (pytest.approx(tau / ceiling) if ceiling > 0 else None)
    assert block["candidates"] == stop


def test_anchors_are_shown_but_left_out_of_the_correlations(noisy):
    facts, analysis = noisy
    assert analysis["all"]["agreement"]["n"] == N  # not N + 4
    assert [a["label"] for a in analysis["anchors"]] == list(ANCHORS)
    assert all(a["anchor"] for a in analysis["anchors"])
    assert [c["label"] for c in analysis["candidates"] if c["in_top"]] == [
        c["label"] for c in facts["candidates"][:TOP]
    ]


def test_overlap_and_regret_equal_a_hand_count(noisy):
    facts, analysis = noisy
    target = column(facts, "target")
    by_target = sorted(range(N), key=lambda i: target[i], reverse=True)
    for overlap in analysis["overlap"]:
        k = overlap["k"]
        shared = len(set(range(k)) & set(by_target[:k]))  # surrogate order is the given order
        assert (overlap["shared"], overlap["chance"]) == (shared, pytest.approx(k / N))
    assert [o["k"] for o in analysis["overlap"]] == [1, 3, 5]
    r = analysis["regret"]
    assert r["pick"] == 0 and r["pick_label"] == facts["candidates"][0]["label"]
    assert r["best_target"] == pytest.approx(max(target))
    assert r["regret"] == pytest.approx(max(target) - target[0])
    ce = facts["cross_entropy"]["target"]
    assert r["reference_regret"] == pytest.approx(ce - target[0])


def test_the_analysis_is_reproducible_and_leaves_the_global_rng_alone(noisy):
    facts, analysis = noisy
    state = np.random.get_state()[1].copy()
    assert analyse(facts) == analysis
    assert np.array_equal(np.random.get_state()[1], state)


def agreement(tau: float, low: float, high: float) -> dict:
    return {"kendall": {"estimate": tau, "low": low, "high": high}, "note": ""}


@pytest.mark.parametrize(
    ("tau", "low", "high", "ceiling", "kind"),
    [
        (0.62, 0.41, 0.80, 0.75, "carries"),
        (0.40, 0.05, 0.60, 0.80, "carries"),  # exactly half the ceiling
        (0.39, 0.05, 0.60, 0.80, "weak"),
        (0.45, 0.10, 0.70, None, "carries"),  # no ceiling: tau >= 0.4
        (0.35, 0.10, 0.70, None, "weak"),
        (0.35, 0.10, 0.70, -0.10, "weak"),  # a ceiling <= 0 counts as none
        (0.10, -0.20, 0.40, 0.75, "does_not_predict"),
        (0.20, 0.00, 0.40, 0.30, "does_not_predict"),  # an interval that reaches 0
        (-0.50, -0.80, -0.20, 0.75, "does_not_predict"),
    ],
)
def test_the_verdict_follows_its_stated_thresholds(tau, low, high, ceiling, kind):
    target = None if ceiling is None else agreement(ceiling, ceiling, ceiling)
    result = verdict(agreement(tau, low, high), target)
    assert result["kind"] == kind
    assert f"tau {tau:.2f} [{low:.2f}, {high:.2f}]" in result["text"]


def test_the_verdict_line_reads_as_the_issue_shows_it():
    result = verdict(agreement(0.62, 0.41, 0.80), agreement(0.75, 0.6, 0.9))
    assert result["text"] == "ranking carries (tau 0.62 [0.41, 0.80], target ceiling 0.75)"
    result = verdict(agreement(0.1, -0.2, 0.4), None)
    assert result["text"].startswith("the surrogate does not predict this target: use a closer")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("fidelity")
    facts = make_facts()
    summary = write_fidelity_report(facts, out)
    return facts, summary, out


def test_summary_json_is_strict_and_holds_every_number_of_the_verdict_and_the_table(written):
    facts, summary, out = written
    loaded = strict_json((out / "summary.json").read_text())
    assert loaded == json.loads(json.dumps(summary))
    assert {k: loaded[k] for k in facts} == facts
    numbers = json_numbers(loaded)
    text = (out / "report.md").read_text()
    line = next(s for s in text.splitlines() if s.startswith("Verdict: "))
    rows = markdown_table(text, "Candidates")
    assert len(rows) == 6  # three pairs for all candidates and for the top ones
    cells = [line] + [cell for row in rows for cell in row]
    shown = [token for cell in cells for token in re.findall(r"-?\d+\.?\d*", cell)]
    assert len(shown) > 40
    for token in shown:
        digits = len(token.split(".")[1]) if "." in token else 0
        assert any(f"{x:.{digits}f}" == token for x in numbers), token
    assert text.startswith("# Does the surrogate's ranking carry?\n\nVerdict: ")


def test_html_stands_alone_with_embedded_figures(written):
    _, _, out = written
    text = (out / "report.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    names = {p.name for p in (out / "figures").iterdir()}
    assert names == {"surrogate_vs_target.png", "seed_noise.png"}
    assert len(sources) == len(names)


def test_markdown_lists_candidates_with_their_expressions_and_the_anchors(written):
    facts, _, out = written
    text = (out / "report.md").read_text()
    rows = markdown_table(text, "#")
    assert len(rows) == N + len(ANCHORS)
    assert [r[1] for r in rows[:N]] == [c["label"] for c in facts["candidates"]]
    assert rows[0][2] == f"`{facts['candidates'][0]['expression']}`"
    assert [r[7] for r in rows[:N]] == ["top"] * TOP + [""] * (N - TOP)
    assert [(r[1], r[7]) for r in rows[N:]] == [(a, "anchor") for a in ANCHORS]
    assert rows[4][6] == "1/2"  # the failed target run
    for needed in (facts["machine"], facts["search_study"], "stratified by quantile", "0.5 times"):
        assert needed in text


def test_a_monotone_target_carries_and_a_shuffled_one_is_not_predicted(tmp_path):
    summary = write_fidelity_report(make_facts("monotone"), tmp_path / "m", formats=("md",))
    assert summary["analysis"]["all"]["verdict"]["kind"] == "carries"
    assert summary["analysis"]["verdict"].startswith("ranking carries (tau 1.00")
    text = (tmp_path / "m" / "report.md").read_text()
    assert "Verdict: ranking carries (tau 1.00 [1.00, 1.00], target ceiling 1.00)." in text
    summary = write_fidelity_report(make_facts("shuffled"), tmp_path / "s", formats=("md",))
    found = summary["analysis"]["all"]
    assert found["agreement"]["kendall"]["estimate"] == pytest.approx(0.0, abs=1e-12)
    assert found["verdict"]["kind"] == "does_not_predict"
    assert "does not predict this target" in (tmp_path / "s" / "report.md").read_text()


def test_one_target_seed_renders_the_target_ceiling_as_a_dash(tmp_path):
    summary = write_fidelity_report(make_facts("noisy", seeds=(7,)), tmp_path)
    analysis = summary["analysis"]
    assert analysis["all"]["target_ceiling"] is None and analysis["all"]["closeness"] is None
    assert "no target ceiling" in analysis["all"]["verdict"]["text"]
    text = (tmp_path / "report.md").read_text()
    rows = markdown_table(text, "Candidates")
    ceilings = [r for r in rows if r[1].startswith("target seed")]
    assert len(ceilings) == 2 and all(r[2:7] == ["–"] * 5 for r in ceilings)
    assert [r[7] for r in rows if r[1] == "surrogate vs target mean"] == ["–", "–"]
    assert (tmp_path / "figures" / "seed_noise.png").exists()  # the surrogate's panel alone


def test_a_run_without_target_results_yet_renders_without_a_verdict(tmp_path):
    facts = make_facts()
    for entry in facts["candidates"] + facts["anchors"]:
        entry["target"] = [None, None]
    facts["cross_entropy"]["target"] = None
    summary = write_fidelity_report(facts, tmp_path)
    analysis = summary["analysis"]
    assert analysis["all"]["verdict"]["kind"] == "undefined"
    assert analysis["regret"]["pick"] is None and analysis["overlap"][0]["shared"] is None
    strict_json((tmp_path / "summary.json").read_text())
    assert "Verdict: undefined (0 pair(s) with both values" in (tmp_path / "report.md").read_text()


def test_an_unknown_format_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown report format 'pdf'"):
        write_fidelity_report(make_facts(), tmp_path, formats=("md", "pdf"))
