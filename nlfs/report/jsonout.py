"""The report as plain JSON data: every statistic computed, for other tools to read.

Numbers that are undefined (NaN, or a p-value of a test the data leave undefined, such as any
per-setting test with one run per loss and setting) or infinite (Iman-Davenport F when every
setting ranks the losses alike; its p-value is then 0) are written as ``null``, keeping the file
strict JSON.

Schema 2: undefined p-values are ``null`` (schema 1 wrote 1.0); ``across_settings`` holds the
Wilcoxon tests over settings and the Friedman-rank comparisons with the baseline.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from nlfs.report.build import Report
from nlfs.stats import Analysis, Comparison, TestResult

SCHEMA_VERSION = 2


def _f(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _test(result: TestResult, holm: float | None, bh: float | None) -> dict[str, Any]:
    return {
        "test": result.test,
        "statistic": _f(result.statistic),
        "p_value": _f(result.p_value),
        "p_holm": _f(holm),
        "p_bh": _f(bh),
        "n": result.n,
        "note": result.note,
    }


def _comparison(c: Comparison) -> dict[str, Any]:
    return {
        "setting": {
            "arch": c.setting.arch,
            "dataset": c.setting.dataset,
            "augment": c.setting.augment,
        },
        "loss": c.loss,
        "baseline": c.baseline,
        "paired": c.paired,
        "n_loss": c.n_loss,
        "n_baseline": c.n_baseline,
        "mean_difference": _f(c.mean_difference),
        "better": c.better,
        "ci": {
            "low": _f(c.ci.low),
            "high": _f(c.ci.high),
            "confidence": c.ci.confidence,
            "resamples": c.ci.resamples,
            "method": "percentile bootstrap",
        },
        "cohens_d": _f(c.cohens_d),
        "cohens_d_kind": "d_z" if c.paired else "pooled",
        "cliffs_delta": _f(c.cliffs_delta),
        "tests": [
            _test(c.rank_test, c.rank_p_holm, c.rank_p_bh),
            _test(c.t_test, c.t_p_holm, c.t_p_bh),
        ],
    }


def _across(a: Analysis) -> dict[str, Any]:
    control = a.vs_control
    return {
        "wilcoxon": [
            {
                "loss": w.loss,
                "baseline": w.baseline,
                "n_settings": w.n_settings,
                "mean_difference": _f(w.mean_difference),
                "statistic": _f(w.wilcoxon.statistic),
                "p_value": _f(w.wilcoxon.p_value),
                "p_holm": _f(w.p_holm),
                "note": w.wilcoxon.note,
            }
            for w in a.across
        ],
        "vs_control": None
        if control is None
        else {
            "control": control.control,
            "alpha": control.alpha,
            "standard_error": _f(control.standard_error),
            "comparisons": [
                {
                    "loss": c.name,
                    "rank_difference": _f(c.rank_difference),
                    "z": _f(c.z),
                    "p_value": _f(c.p_value),
                    "p_holm": _f(c.p_holm),
                    "significant": c.significant,
                }
                for c in control.comparisons
            ],
        },
    }


def to_json(report: Report) -> dict[str, Any]:
    """Every statistic of ``report`` as JSON-ready data."""
    a = report.analysis
    data: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "source": report.source,
        "metric": a.metric,
        "baseline": a.baseline,
        "alpha": a.alpha,
        "higher_is_better": a.higher_is_better,
        "significance_test": a.significance_test,
        "correction": "holm",
        "losses": list(a.losses),
        "settings": [
            {"arch": s.arch, "dataset": s.dataset, "augment": s.augment} for s in a.settings
        ],
        "summaries": [
            {
                "arch": s.setting.arch,
                "dataset": s.setting.dataset,
                "augment": s.setting.augment,
                "loss": s.loss,
                "n": s.n,
                "mean": _f(s.mean),
                "std": _f(s.std),
                "values": list(s.values),
                "best": s.best,
                "stars": s.stars,
            }
            for s in report.summaries
        ],
        "comparisons": [_comparison(c) for c in a.comparisons],
        "wins": [
            {
                "loss": w.loss,
                "baseline": w.baseline,
                "wins": w.wins,
                "ties": w.ties,
                "losses": w.losses,
                "significant_wins": w.significant_wins,
                "significant_losses": w.significant_losses,
                "sign_test_p": _f(w.sign_test_p),
            }
            for w in a.wins
        ],
        "friedman": None,
        "nemenyi": None,
        "across_settings": _across(a),
        "notes": list(report.notes),
    }
    if a.friedman is not None:
        f = a.friedman
        data["friedman"] = {
            "losses": list(f.names),
            "average_ranks": [_f(r) for r in f.average_ranks],
            "n_settings": f.n_blocks,
            "statistic": _f(f.statistic),
            "p_value": _f(f.p_value),
            "iman_davenport": _f(f.iman_davenport),
            "iman_davenport_p": _f(f.iman_davenport_p),
            "note": f.note,
        }
    if a.nemenyi is not None:
        n = a.nemenyi
        data["nemenyi"] = {
            "alpha": n.alpha,
            "q_alpha": _f(n.q_alpha),
            "critical_difference": _f(n.critical_difference),
            "pairs": [
                {"a": x, "b": y, "rank_difference": _f(d), "p_value": _f(p), "significant": sig}
                for x, y, d, p, sig in n.pairs
            ],
        }
    if report.funnel is not None:
        data["funnel"] = {
            "study": report.funnel.study,
            "stages": [asdict(s) for s in report.funnel.stages],
            "survivors": [
                {"candidate": s.candidate, "fitness": _f(s.fitness)}
                for s in report.funnel.survivors
            ],
        }
    return data
