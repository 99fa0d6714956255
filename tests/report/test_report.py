"""Reports from a synthetic CSV: every format is written, JSON numbers equal the stats functions,
the HTML stands alone with its figures embedded; elimination funnels from a study."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import optuna
import pytest
from report_fixtures import LOSSES, SETTINGS, strict_json, synthetic_records
from scipy import stats

from nlfs.report import FORMATS, build_report, funnel_from_study, parse_formats, stars, write_report
from nlfs.stats import (
    benjamini_hochberg,
    cliffs_delta,
    cohens_d_paired,
    critical_difference,
    holm,
    paired_t,
    wilcoxon_signed_rank,
)
from nlfs.stats.records import RunRecord, read_csv, write_csv


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    csv_path = folder / "results.csv"
    write_csv(synthetic_records(), csv_path)
    records = read_csv(csv_path)
    report = build_report(records, source=str(csv_path), baseline="ce", seed=0, resamples=2000)
    files = write_report(report, folder / "out", FORMATS)
    return records, report, folder / "out", files


def group(records, setting, loss):
    return np.array(
        [
            r.value
            for r in sorted(records, key=lambda r: r.seed)
            if (r.arch, r.dataset, r.augment) == setting and r.loss == loss
        ]
    )


def test_every_format_is_written(written):
    _, _, out, files = written
    for name in ("report.md", "report.html", "report.tex", "report.json"):
        assert out / name in files and (out / name).stat().st_size > 0
    assert (out / "figures" / "critical_difference.png").exists()
    assert len(list((out / "figures").glob("box_*.png"))) == len(SETTINGS)


def test_json_numbers_equal_the_stats_functions(written):
    records, _, out, _ = written
    data = strict_json((out / "report.json").read_text())
    assert data["baseline"] == "cross_entropy" and data["losses"] == list(LOSSES)
    comps = data["comparisons"]
    assert len(comps) == len(SETTINGS) * (len(LOSSES) - 1)
    t_raw, w_raw = [], []
    for c in comps:
        setting = (c["setting"]["arch"], c["setting"]["dataset"], c["setting"]["augment"])
        x, y = group(records, setting, c["loss"]), group(records, setting, "cross_entropy")
        rank, t = c["tests"]
        assert (rank["test"], t["test"]) == ("wilcoxon", "paired_t")
        ref_t, ref_w = paired_t(x, y), wilcoxon_signed_rank(x, y)
        assert t["statistic"] == pytest.approx(ref_t.statistic)
        assert t["p_value"] == pytest.approx(ref_t.p_value)
        assert rank["p_value"] == pytest.approx(ref_w.p_value)
        assert c["cohens_d"] == pytest.approx(cohens_d_paired(x, y))
        assert c["cliffs_delta"] == pytest.approx(cliffs_delta(x, y))
        assert c["mean_difference"] == pytest.approx(x.mean() - y.mean())
        assert c["ci"]["low"] <= c["mean_difference"] <= c["ci"]["high"]
        t_raw.append(ref_t.p_value)
        w_raw.append(ref_w.p_value)
    assert [c["tests"][1]["p_holm"] for c in comps] == pytest.approx(holm(t_raw))
    assert [c["tests"][1]["p_bh"] for c in comps] == pytest.approx(benjamini_hochberg(t_raw))
    assert [c["tests"][0]["p_holm"] for c in comps] == pytest.approx(holm(w_raw))
    fr = data["friedman"]
    means = np.array(
        [[group(records, s, loss).mean() for loss in LOSSES] for s in sorted(SETTINGS)]
    )
    ranks = np.array([np.argsort(np.argsort(-row)) + 1 for row in means]).mean(axis=0)
    assert fr["average_ranks"] == pytest.approx(ranks.tolist())
    assert data["nemenyi"]["critical_difference"] == pytest.approx(
        critical_difference(0.05, len(LOSSES), len(SETTINGS))
    )


def test_stars_and_best_follow_corrected_p_and_means(written):
    records, report, _, _ = written
    for summary in report.summaries:
        setting = (summary.setting.arch, summary.setting.dataset, summary.setting.augment)
        means = {loss: group(records, setting, loss).mean() for loss in LOSSES}
        assert summary.best == (means[summary.loss] == max(means.values()))
        comp = report.comparison(summary.setting, summary.loss)
        assert summary.stars == (stars(comp.t_p_holm, 0.05) if comp else "")


def test_stars_levels():
    assert [stars(p, 0.05) for p in (0.0009, 0.009, 0.049, 0.05)] == ["***", "**", "*", ""]


def test_html_is_self_contained_with_embedded_pngs(written):
    _, _, out, _ = written
    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == len(SETTINGS) + 1  # box plots and the CD diagram
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert 'src="figures/' not in html and "<script" not in html


def test_markdown_and_latex_show_tables_legend_and_figures(written):
    _, _, out, _ = written
    md = (out / "report.md").read_text()
    assert "| Setting | cross_entropy | baikal | focal |" in md
    assert "Holm" in md and "](figures/critical_difference.png)" in md
    tex = (out / "report.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    assert "cross\\_entropy" in tex and "\\includegraphics" in tex
    assert tex.count("\\begin{table}") == tex.count("\\end{table}") >= 4


def test_json_only_writes_no_figures(tmp_path):
    report = build_report(synthetic_records(), source="memory", resamples=200)
    files = write_report(report, tmp_path, ["json"])
    assert files == [tmp_path / "report.json"] and not (tmp_path / "figures").exists()
    strict_json(files[0].read_text())


def test_json_stays_strict_when_statistics_are_undefined(tmp_path):
    """Identical runs make t statistics and Cohen's d NaN and Iman-Davenport F infinite; the
    JSON writes them as null."""
    records = [
        RunRecord(
            loss, "cnn", "fmnist", augment, seed, "test_acc", 0.91 if loss == "focal" else 0.9
        )
        for loss in LOSSES
        for augment in ("none", "flip")
        for seed in range(4)
    ]
    report = build_report(records, source="memory", resamples=200)
    a = report.analysis
    assert all(math.isnan(c.cohens_d) and math.isnan(c.t_test.statistic) for c in a.comparisons)
    assert math.isinf(a.friedman.iman_davenport)
    (path,) = write_report(report, tmp_path, ["json"])
    data = strict_json(path.read_text())
    assert data["friedman"]["iman_davenport"] is None
    assert [c["cohens_d"] for c in data["comparisons"]] == [None] * len(a.comparisons)
    baikal = [c for c in data["comparisons"] if c["loss"] == "baikal"]  # identical to the baseline
    assert baikal and all(t["p_value"] is None for c in baikal for t in c["tests"])


def test_one_seed_per_setting_reports_undefined_tests_and_tests_across_settings(tmp_path):
    """With one seed per setting the per-setting tests are undefined: "–" in Markdown, null in
    JSON (never p = 1.000), and the across-settings tests are shown, equal to scipy's and to
    the stats functions, and the JSON stays strict."""
    records = [r for r in synthetic_records() if r.seed == 0]
    report = build_report(records, source="memory", resamples=200)
    write_report(report, tmp_path, ["md", "json", "html", "tex"])
    md = (tmp_path / "report.md").read_text()
    data = strict_json((tmp_path / "report.json").read_text())
    comps = data["comparisons"]
    assert len(comps) == len(SETTINGS) * (len(LOSSES) - 1)
    for c in comps:
        for t in c["tests"]:
            assert t["n"] == 1 and t["note"] == "fewer than 2 pairs"
            assert (t["p_value"], t["p_holm"], t["p_bh"], t["statistic"]) == (None,) * 4
    rows = [line for line in md.splitlines() if "| paired | 1/1 |" in line]
    assert len(rows) == len(comps)
    assert all(line.endswith("| – / – / – | – / – / – |") for line in rows)
    assert "1.000 /" not in md and "(n=1)" in md and "± 0.0000" not in md
    assert "## Across settings" in md and "Every per-setting test above is undefined" in md
    assert all(s["std"] is None for s in data["summaries"])

    across = data["across_settings"]
    value = {(r.loss, (r.arch, r.dataset, r.augment)): r.value for r in records}
    raw = []
    for w in across["wilcoxon"]:
        x = [value[(w["loss"], s)] for s in SETTINGS]
        y = [value[("cross_entropy", s)] for s in SETTINGS]
        ref = stats.wilcoxon(x, y)
        assert w["n_settings"] == len(SETTINGS)
        assert w["statistic"] == pytest.approx(float(ref.statistic))
        assert w["p_value"] == pytest.approx(float(ref.pvalue))
        assert w["mean_difference"] == pytest.approx(float(np.mean(np.subtract(x, y))))
        raw.append(float(ref.pvalue))
    assert [w["loss"] for w in across["wilcoxon"]] == list(LOSSES[1:])
    assert [w["p_holm"] for w in across["wilcoxon"]] == pytest.approx(holm(raw))
    control = across["vs_control"]
    ranks = dict(zip(data["friedman"]["losses"], data["friedman"]["average_ranks"], strict=True))
    k, n = len(LOSSES), len(SETTINGS)
    se = math.sqrt(k * (k + 1) / (6 * n))
    assert control["control"] == "cross_entropy"
    assert control["standard_error"] == pytest.approx(se)
    for c in control["comparisons"]:
        z = (ranks[c["loss"]] - ranks["cross_entropy"]) / se
        assert c["z"] == pytest.approx(z)
        assert c["p_value"] == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    section = md.split("## Across settings")[1].split("\n## ")[0]
    table = next(line for line in section.splitlines() if line.startswith("| focal | 4 |"))
    focal = next(w for w in across["wilcoxon"] if w["loss"] == "focal")
    assert f"{focal['p_value']:.3f} / {focal['p_holm']:.3f}" in table


def test_parse_formats_refuses_unknown():
    assert parse_formats("md, html,md") == ("md", "html")
    with pytest.raises(ValueError, match="choose from md, html, tex, json"):
        parse_formats("md,pdf")


def _elimination_study(decided: int = 2) -> optuna.Study:
    """Two stages stored as ``nlfs eliminate`` stores them; the first ``decided`` are decided."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("kind", "eliminate")
    plan = {0: ["a", "b", "c", "d"], 1: ["a", "b"]}
    keep = {0: {"a", "b"}, 1: {"b"}}
    for stage, cands in plan.items():
        for i, cand in enumerate(cands):
            trial = study.ask()
            attrs = {
                "job": f"{stage}|{cand}",
                "stage": stage,
                "candidate": f"mul(y, {cand})",
                "key": cand,
                "fitness": 0.5 + 0.1 * i,
                "failure_kind": None,
            }
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            study.tell(trial, attrs["fitness"])
    study.set_user_attr("kept", {str(s): sorted(keep[s]) for s in range(decided)})
    return study


@pytest.mark.parametrize(
    "decided, kept, survivors",
    [
        (2, [2, 1], [("mul(y, b)", 0.6)]),
        (1, [2, None], [("mul(y, b)", 0.6), ("mul(y, a)", 0.5)]),  # the last decided stage's
    ],
)
def test_funnel_counts_stages_and_survivors(decided, kept, survivors):
    funnel = funnel_from_study(_elimination_study(decided))
    assert [(s.ran, s.kept) for s in funnel.stages] == list(zip([4, 2], kept, strict=True))
    assert [(s.candidate, s.fitness) for s in funnel.survivors] == [
        (c, pytest.approx(f)) for c, f in survivors
    ]


def test_report_with_funnel_renders_it(tmp_path):
    funnel = funnel_from_study(_elimination_study())
    one_setting = [r for r in synthetic_records() if (r.arch, r.augment) == ("cnn", "none")]
    report = build_report(one_setting, source="memory", resamples=200, funnel=funnel)
    write_report(report, tmp_path, ["md", "json"])
    md = (tmp_path / "report.md").read_text()
    assert "Elimination funnel" in md and "mul(y, b)" in md and "figures/funnel.png" in md
    data = strict_json((tmp_path / "report.json").read_text())
    assert data["funnel"]["survivors"][0]["candidate"] == "mul(y, b)"


# stage -> candidate -> fitness per seed (0, 1): stage 1 keeps b, a, d; stage 2 keeps a.
TWO_SEEDS = {
    0: {
        "a": (0.60, 0.64),
        "b": (0.70, 0.66),
        "c": (0.50, 0.58),
        "d": (0.55, 0.57),
        "e": (0.40, 0.44),
    },
    1: {"a": (0.80, 0.90), "b": (0.75, 0.77), "d": (0.70, 0.60)},
}
TWO_SEEDS_KEPT = {0: ["a", "b", "d"], 1: ["a"]}


def _two_seed_study() -> optuna.Study:
    """Two stages of ``nlfs eliminate`` with 2 seeds, as it stores them (config included)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("kind", "eliminate")
    study.set_user_attr("config", {"seed": 0, "seeds": 2, "stages": [{"name": "short"}, {}]})
    for stage, cands in TWO_SEEDS.items():
        for cand, values in cands.items():
            for seed, value in enumerate(values):
                trial = study.ask()
                attrs = {
                    "job": f"{stage}|{cand}|{seed}",
                    "stage": stage,
                    "candidate": f"mul(y, {cand})",
                    "key": cand,
                    "seed": seed,
                    "fitness": value,
                    "failure_kind": None,
                }
                for k, v in attrs.items():
                    trial.set_user_attr(k, v)
                study.tell(trial, value)
    study.set_user_attr("kept", {str(s): keys for s, keys in TWO_SEEDS_KEPT.items()})
    return study


def test_funnel_judges_each_cut_against_the_seed_noise():
    """Noise: numpy's pooled within-candidate sd; margin: last kept mean - best dropped mean;
    clear when the margin exceeds the noise; tau between stages as scipy computes it."""
    funnel = funnel_from_study(_two_seed_study())
    means = {s: {k: float(np.mean(v)) for k, v in c.items()} for s, c in TWO_SEEDS.items()}
    for stage, summary in zip(TWO_SEEDS, funnel.stages, strict=True):
        values = np.array(list(TWO_SEEDS[stage].values()))
        noise = float(np.sqrt(np.mean(np.var(values, axis=1, ddof=1))))
        kept = [m for k, m in means[stage].items() if k in TWO_SEEDS_KEPT[stage]]
        dropped = [m for k, m in means[stage].items() if k not in TWO_SEEDS_KEPT[stage]]
        assert summary.seeds == 2
        assert summary.noise == pytest.approx(noise)
        assert summary.margin == pytest.approx(min(kept) - max(dropped))
        assert summary.clear is (min(kept) - max(dropped) > noise)
    # by hand: stage 1 cuts d (0.56) from c (0.54) inside a noise of 0.034; stage 2 cuts a
    # (0.85) from b (0.76) outside a noise of 0.058
    assert [s.clear for s in funnel.stages] == [False, True]
    common = list(TWO_SEEDS[1])
    tau = stats.kendalltau([means[0][k] for k in common], [means[1][k] for k in common])
    assert funnel.stages[0].tau is None
    assert (funnel.stages[1].tau, funnel.stages[1].tau_n) == (pytest.approx(tau.statistic), 3)
    assert funnel.stages[1].tau == pytest.approx(1 / 3)  # two concordant pairs, one discordant
    assert [(s.candidate, s.fitness) for s in funnel.survivors] == [
        ("mul(y, a)", pytest.approx(0.85))
    ]


def test_report_shows_the_cuts_and_the_agreement(tmp_path):
    funnel = funnel_from_study(_two_seed_study())
    one_setting = [r for r in synthetic_records() if (r.arch, r.augment) == ("cnn", "none")]
    report = build_report(one_setting, source="memory", resamples=200, funnel=funnel)
    write_report(report, tmp_path, ["md", "json"])
    md = (tmp_path / "report.md").read_text()
    first, second = funnel.stages
    assert (
        f"| 1 | short | 5 | 0 | 3 | 2 | {first.noise:.4f} | {first.margin:.4f} | within noise | – |"
        in md
    )
    assert (
        f"| 2 | stage2 | 3 | 0 | 1 | 2 | {second.noise:.4f} | {second.margin:.4f} | clear | "
        f"{second.tau:.2f} [{second.tau_low:.2f}, {second.tau_high:.2f}] (n=3) |" in md
    )
    assert "A cut is clear when the margin exceeds the noise" in md
    data = strict_json((tmp_path / "report.json").read_text())
    assert [s["clear"] for s in data["funnel"]["stages"]] == [False, True]
    assert data["funnel"]["stages"][1]["tau"] == pytest.approx(second.tau)
