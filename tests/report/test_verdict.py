"""The verdict that opens a pipeline report: its numbers equal scipy's tests and hand counts,
its sentences are rendered from the JSON alone and appear above every table, a found loss shows
its formula, and learning curves are drawn exactly when stored."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from report_fixtures import strict_json
from scipy import stats

from nlfs.experiments.pipeline_config import ReportSettings
from nlfs.experiments.pipeline_facts import Finalist, PipelineFacts
from nlfs.report import build_report, write_report
from nlfs.report.verdict import build_verdict, sentences, write_pipeline_report
from nlfs.report.verdict_plots import formula_svg, mean_curves
from nlfs.stats.records import RunRecord

FOUND = "s-search:7"
EXPRESSION = "mul(y, log(p))"
SETTINGS = (("cnn", "fmnist", "none"), ("cnn", "fmnist", "flipcrop"), ("res", "fmnist", "none"))
SEEDS = range(5)
SHIFT = {"ce": 0.0, "baikal": 0.001, "focal": 0.006, FOUND: 0.03}
SETTINGS_USED = ReportSettings(resamples=500)


def _records() -> list[RunRecord]:
    """The found loss clearly best, focal the best baseline; seeds paired across losses."""
    rng = np.random.default_rng(11)
    out = []
    for arch, dataset, augment in SETTINGS:
        base = 0.85 + rng.uniform(0, 0.03)
        seed_effect = rng.normal(0, 0.004, len(SEEDS))
        for loss, shift in SHIFT.items():
            for k in SEEDS:
                value = base + shift + seed_effect[k] + rng.normal(0, 0.002)
                out.append(RunRecord(loss, arch, dataset, augment, k, "test_acc", float(value)))
    return out


def _fidelity_facts() -> dict:
    rng = np.random.default_rng(5)
    fitness = np.sort(rng.uniform(0.3, 0.7, 6))[::-1]
    candidates = [
        {
            "label": f"s-search:{i}",
            "trial": i,
            "expression": EXPRESSION,
            "sign": -1.0,
            "anchor": False,
            "surrogate": [float(f), float(f + rng.normal(0, 0.02))],
            "target": [float(0.5 + f + rng.normal(0, 0.05)) for _ in range(2)],
        }
        for i, f in enumerate(fitness)
    ]
    anchor = {
        "label": "ce",
        "trial": None,
        "expression": None,
        "sign": None,
        "anchor": True,
        "surrogate": [0.5, 0.51],
        "target": [0.8, 0.81],
    }
    return {
        "kind": "fidelity",
        "name": "s-fidelity",
        "search_study": "s-search",
        "surrogate_profile": "micro",
        "target": "tiny_cnn with flipcrop",
        "target_settings": ["tiny_cnn/fashion-mnist/flipcrop"],
        "machine": "test machine",
        "seed": 0,
        "surrogate_seeds": [0, 1000],
        "target_seeds": [0, 1],
        "top": 4,
        "candidates": candidates,
        "anchors": [anchor],
        "cross_entropy": {"surrogate": 0.505, "target": 0.805},
    }


SPEND = {
    "search": {
        "study": "s-search",
        "kind": "search",
        "budget": 40,
        "evaluations": 40,
        "ok": 30,
        "pruned": 7,
        "failed": 3,
        "interrupted": 1,
        "rejected": 120,
        "rejections": {"duplicate": 100, "shape": 20},
        "seconds": {"cpu": 61.2},
    },
    "transfer": {"study": "s-transfer", "evaluations": 60, "seconds": {"cpu": 250.0}},
}


def _facts(curves=(), fidelity=True) -> PipelineFacts:
    return PipelineFacts(
        name="s",
        studies={"search": "s-search", "transfer": "s-transfer"},
        storage="runs/s.journal",
        records=tuple(_records()),
        notes=(),
        funnel=None,
        fidelity=_fidelity_facts() if fidelity else None,
        finalists=(Finalist(FOUND, EXPRESSION, -1.0, "k7", 7, 0.71),),
        spend=SPEND,
        curves=tuple(curves),
        trained={"search": 0},
        report=SETTINGS_USED,
    )


def _report(facts: PipelineFacts):
    s = facts.report
    return build_report(
        facts.records, source="test", baseline="ce", seed=s.seed, resamples=s.resamples
    )


def _holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment, written out (Holm 1979)."""
    order = np.argsort(p_values)
    m, running, out = len(p_values), 0.0, [0.0] * len(p_values)
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p_values[i])
        out[i] = min(1.0, running)
    return out


def _values(loss: str, setting) -> np.ndarray:
    recs = [r for r in _records() if r.loss == loss and (r.arch, r.dataset, r.augment) == setting]
    return np.array([r.value for r in sorted(recs, key=lambda r: r.seed)])


def test_transfer_numbers_equal_scipy_paired_t_with_holm():
    """Against ce: Holm over all 9 comparisons of the report; against the best other baseline
    (focal): Holm over the found loss's 3."""
    facts = _facts()
    verdict = build_verdict(_report(facts), facts)
    assert verdict["best_baseline"] == "focal"
    assert verdict["test"] == "paired t-test"
    for against, losses in (("ce", ("baikal", "focal", FOUND)), ("focal", (FOUND,))):
        pairs = [(loss, s) for s in sorted(SETTINGS) for loss in losses]
        raw = [stats.ttest_rel(_values(loss, s), _values(against, s)).pvalue for loss, s in pairs]
        holm = dict(zip(pairs, _holm(raw), strict=True))
        entry = next(t for t in verdict["transfer"] if t["against"] == against)
        assert entry["loss"] == FOUND and entry["settings"] == len(SETTINGS)
        for row in entry["per_setting"]:
            setting = next(s for s in SETTINGS if " / ".join(s) == row["setting"])
            diff = _values(FOUND, setting) - _values(against, setting)
            assert row["mean_difference"] == pytest.approx(diff.mean())
            assert row["cohens_d"] == pytest.approx(diff.mean() / diff.std(ddof=1))
            assert row["p_holm"] == pytest.approx(holm[(FOUND, setting)])
            assert row["significant"] == (holm[(FOUND, setting)] < 0.05)
        assert entry["significant_wins"] == sum(r["significant"] for r in entry["per_setting"])
        assert entry["outcome"] == "beat" and entry["significant_wins"] == 3
        strongest = min(entry["per_setting"], key=lambda r: r["p_holm"])
        assert entry["strongest"] == strongest


def test_fidelity_and_spend_numbers():
    facts = _facts()
    verdict = build_verdict(_report(facts), facts)
    f = verdict["fidelity"]
    cands = facts.fidelity["candidates"]
    tau = stats.kendalltau(
        [c["surrogate"][0] for c in cands], [np.mean(c["target"]) for c in cands]
    )
    ceiling = stats.kendalltau([c["target"][0] for c in cands], [c["target"][1] for c in cands])
    assert f["tau"] == pytest.approx(tau.statistic)
    assert f["ceiling"] == pytest.approx(ceiling.statistic)
    assert f["tau_low"] <= f["tau"] <= f["tau_high"] and f["candidates"] == 6
    text = sentences(verdict)
    assert (
        f"Kendall's tau {f['tau']:.2f} [95% CI {f['tau_low']:.2f}, {f['tau_high']:.2f}]"
        in (text[-2])
    )
    assert (
        "spent 40 evaluations of its budget of 40: 30 trained to a fitness, 7 stopped early by "
        "the pruning rule, 3 failed in training" in text[-1]
    )
    assert "rejected 120 candidates" in text[-1] and "1 interrupted trial had" in text[-1]
    assert "61 s on CPU" in text[-1] and "transfer 250 s on CPU" in text[-1]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One pipeline report of the default facts, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("report")
    files, verdict = write_pipeline_report(_facts(), out)
    return out, files, verdict


def test_report_opens_with_sentences_rendered_from_its_json(written):
    tmp_path, files, verdict = written
    data = strict_json((tmp_path / "report.json").read_text())
    assert data["verdict"] == json.loads(json.dumps(verdict))
    assert sentences(data["verdict"]) == data["verdict"]["sentences"]  # one source
    md = (tmp_path / "report.md").read_text()
    first_table = md.index("## Results per setting")
    for sentence in data["verdict"]["sentences"]:
        assert 0 < md.index(f"- {sentence}") < first_table
    # The verdict's numbers against ce are the comparisons table's (the report's JSON).
    rows = {(c["loss"], " / ".join(c["setting"].values())): c for c in data["comparisons"]}
    for row in data["verdict"]["transfer"][0]["per_setting"]:
        c = rows[(FOUND, row["setting"])]
        assert row["mean_difference"] == c["mean_difference"]
        assert row["cohens_d"] == c["cohens_d"]
        assert row["p_holm"] == next(t["p_holm"] for t in c["tests"] if t["test"] == "paired_t")
    strongest = data["verdict"]["transfer"][0]["strongest"]
    assert f"Δ {strongest['mean_difference']:+.4f}" in data["verdict"]["sentences"][0]
    assert f"p (Holm) {strongest['p_holm']:.2e}" in data["verdict"]["sentences"][0]
    html = (tmp_path / "report.html").read_text()
    assert html.index("Verdict") < html.index("Results per setting")
    assert {p.name for p in files} >= {"report.md", "report.html", "report.tex", "report.json"}


def test_found_loss_formula_in_each_format(written):
    tmp_path = written[0]
    md = (tmp_path / "report.md").read_text()
    assert f"Found loss {FOUND} (search fitness 0.7100): `-1 * sum_c {EXPRESSION}`" in md
    html = (tmp_path / "report.html").read_text()
    assert "data:image/svg+xml;base64," in html and f"-1 * sum_c {EXPRESSION}" in html
    tex = (tmp_path / "report.tex").read_text()
    assert r"\[ -1 \cdot \sum_c y \cdot \ln\left|p\right| \]" in tex
    assert formula_svg(r"\frac{1}{") is None  # mathtext cannot parse it: no image, no crash


def _curve(loss, seed, values, setting="cnn / fmnist / none"):
    return {
        "loss": loss,
        "setting": setting,
        "seed": seed,
        "trial": seed,
        "steps": [50, 100, 150][: len(values)],
        "values": values,
    }


def test_learning_curves_mean_over_seeds_at_shared_steps():
    curves = [
        _curve("ce", 0, [0.5, 0.6, 0.7]),
        _curve("ce", 1, [0.6, 0.8]),
        _curve(FOUND, 0, [0.4, 0.9, 0.95]),
    ]
    means = mean_curves(curves)["cnn / fmnist / none"]
    steps, mean, low, high, n = means["ce"]
    assert steps == [50, 100] and n == 2
    assert list(mean) == pytest.approx([0.55, 0.7]) and list(low) == [0.5, 0.6]
    assert list(high) == [0.6, 0.8]
    assert means[FOUND][0] == [50, 100, 150]


@pytest.mark.parametrize("stored", [True, False])
def test_curve_figure_only_where_curves_are_stored(tmp_path, stored):
    curves = [_curve(loss, s, [0.5 + 0.1 * s, 0.7]) for loss in ("ce", FOUND) for s in (0, 1)]
    write_pipeline_report(_facts(curves if stored else ()), tmp_path)
    figure = tmp_path / "figures" / "learning_curves.png"
    md = (tmp_path / "report.md").read_text()
    assert figure.is_file() == stored
    assert ("figures/learning_curves.png" in md) == stored
    if stored:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert md.index("learning_curves.png") < md.index("## Results per setting")


def test_without_fidelity_and_without_a_finished_found_loss(tmp_path):
    """A disabled fidelity step says nothing of the surrogate; a finalist with no transfer run
    is shown, and the verdict says nothing can be said of it."""
    facts = _facts(fidelity=False)
    records = tuple(r for r in facts.records if r.loss != FOUND)
    facts = PipelineFacts(**{**facts.__dict__, "records": records})
    verdict = build_verdict(_report(facts), facts)
    assert verdict["fidelity"] is None and verdict["transfer"] == []
    assert verdict["found"][0]["in_transfer"] is False
    assert sentences(verdict)[0].startswith("No found loss finished a transfer job")
    assert not any("Surrogate fidelity" in s for s in sentences(verdict))
    assert all(not isinstance(v, float) or math.isfinite(v) for v in _numbers(verdict))


def _numbers(node):
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        return [x for item in node for x in _numbers(item)]
    return [node] if isinstance(node, float) else []


def test_plain_report_has_no_verdict(tmp_path):
    """``nlfs report`` (no verdict) is unchanged: no Verdict section, no "verdict" key."""
    facts = _facts()
    write_report(_report(facts), tmp_path, ("md", "json"))
    assert "## Verdict" not in (tmp_path / "report.md").read_text()
    assert "verdict" not in json.loads((tmp_path / "report.json").read_text())
    assert re.search(r"^# NLFS report", (tmp_path / "report.md").read_text())
