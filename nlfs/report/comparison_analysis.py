"""Every number the comparison report shows, derived once from the collected facts.

The input is the ``facts`` dict of :func:`nlfs.experiments.compare.collect` (one entry per arm,
one study per search seed). :func:`analyse` is pure: the same facts give the same analysis, the
bootstrap drawing from generators seeded by the comparison's position, never the global RNG.
Undefined values are ``None`` (never NaN), so the result is strict JSON.

Studies of two arms that share a search seed share nothing else but the evaluation seed (the
seed drives different strategies or spaces), so the arms are compared as independent samples:
Mann-Whitney U with Holm's correction over all pairs, Cliff's delta and an unpaired bootstrap
interval of the difference in means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from nlfs.stats import bootstrap_mean_diff, cliffs_delta, friedman, holm, mann_whitney_u, nemenyi

ALPHA = 0.05
"""Family-wise significance level of the Holm-corrected tests and of Nemenyi's CD."""
RESAMPLES = 10_000
"""Bootstrap resamples per interval (about 0.1 percentile-point of Monte Carlo error)."""
BOOTSTRAP_SEED = 20240313
"""Root of the bootstrap generators, so a report rebuilt from the same studies is identical."""
SECONDS_GRID = 200
"""Points of the common wall-seconds grid of the anytime curves."""
BEST_PER_ARM = 3
"""Rows per arm in the table of best losses."""
METRICS = ("best_fitness", "reevaluated_best", "auc", "evals_to_baseline")
METRIC_LABELS = {
    "best_fitness": "in-search best fitness",
    "reevaluated_best": "re-evaluated best fitness",
    "auc": "area under the anytime curve",
    "evals_to_baseline": "evaluations to reach the baseline",
}
PAIRING = (
    "Studies of different arms with the same search seed share only that seed number and the "
    "evaluation seed: the seed drives a different strategy or space in each, so their results "
    "are not paired. Arms are therefore compared as independent samples (Mann-Whitney U, "
    "Cliff's delta, an unpaired bootstrap interval of the difference in means), with Holm's "
    "correction over all pairs of arms for each metric. Friedman's test uses the search seeds "
    "as blocks; since the blocking is nominal it serves as an omnibus rank test beside the "
    "pairwise tests."
)


def analyse(facts: dict) -> dict:
    """Derive every number of the comparison report from ``facts``.

    Args:
        facts: the dict described in the comparison's summary schema (kind, arms, studies...).

    Returns:
        A JSON-able dict: ``headline_metric``, ``pairing``, ``baseline``, ``arms`` (per arm:
        summaries of each metric over seeds, rates, diversity, anytime curves), ``pairwise``
        (per metric: one entry per pair of arms) and ``friedman`` (per metric, or None where it
        does not apply, with ``friedman_note`` saying why).
    """
    headline = "reevaluated_best" if facts.get("reevaluate", 0) > 0 else "best_fitness"
    arms = facts["arms"]
    t_max = _seconds_horizon(facts)
    analysis: dict[str, Any] = {
        "headline_metric": headline,
        "tested_metrics": [headline, "auc"],
        "alpha": ALPHA,
        "pairing": PAIRING,
        "baseline": _baseline(facts["baseline"]),
        "arms": [_arm(arm, t_max) for arm in arms],
        "pairwise": {},
        "friedman": {},
        "friedman_note": {},
        "best_losses": best_losses(arms),
    }
    for index, metric in enumerate(analysis["tested_metrics"]):
        values = {arm["name"]: _values(arm, metric) for arm in arms}
        analysis["pairwise"][metric] = _pairwise(values, index)
        result, note = _friedman(facts["seeds"], values)
        analysis["friedman"][metric] = result
        analysis["friedman_note"][metric] = note
    return analysis


def _clean(value: Any) -> float | None:
    """A finite float, or None for None, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _values(arm: dict, metric: str) -> list[float | None]:
    """One value of ``metric`` per study (seed order), None where undefined."""
    return [_clean(study.get(metric)) for study in arm["studies"]]


def summarise(values: Sequence[float | None]) -> dict:
    """Median and interquartile range over the defined values (numpy's linear percentiles)."""
    defined = [v for v in values if v is not None]
    out: dict[str, Any] = {"n": len(defined), "median": None, "q25": None, "q75": None}
    if defined:
        q25, med, q75 = np.percentile(np.asarray(defined), [25, 50, 75])
        out.update(median=float(med), q25=float(q25), q75=float(q75))
    return out


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _arm(arm: dict, t_max: float) -> dict:
    studies = arm["studies"]
    total = {
        k: int(sum(s.get(k, 0) for s in studies))
        for k in ("evaluations", "ok", "failed", "pruned", "rejected", "duplicates")
    }
    screened = total["rejected"] + total["evaluations"]
    reasons: dict[str, int] = {}
    for study in studies:
        for reason, count in study.get("rejections", {}).items():
            reasons[reason] = reasons.get(reason, 0) + int(count)
    summaries = {metric: summarise(_values(arm, metric)) for metric in METRICS}
    # A seed that never reached the baseline is left out of the median; say how many did.
    summaries["evals_to_baseline"]["reached"] = summaries["evals_to_baseline"]["n"]
    summaries["evals_to_baseline"]["of"] = len(studies)
    return {
        "name": arm["name"],
        "seeds": len(studies),
        **summaries,
        "totals": total,
        "rejections": dict(sorted(reasons.items())),
        "rejection_rate": _rate(total["rejected"], screened),
        "duplicate_rate": _rate(total["duplicates"], screened),
        "failure_rate": _rate(total["failed"], total["evaluations"]),
        "pruned_rate": _rate(total["pruned"], total["evaluations"]),
        "distinct_keys": summarise([s.get("distinct_keys") for s in studies]),
        "diversity": summarise([_clean(s.get("diversity")) for s in studies]),
        "curve_evaluations": curve_by_evaluations(studies),
        "curve_seconds": curve_by_seconds(studies, t_max),
    }


def _baseline(baseline: dict) -> dict:
    reevaluated = [_clean(v) for v in baseline.get("reevaluated", [])]
    defined = [v for v in reevaluated if v is not None]
    return {
        "fitness": _clean(baseline.get("fitness")),
        "reevaluated_mean": float(np.mean(defined)) if defined else None,
        "reevaluated_n": len(defined),
    }


def best_losses(arms: Sequence[dict], per_arm: int = BEST_PER_ARM) -> list[dict]:
    """Each arm's best candidates over all its studies: by re-evaluated mean where there is one
    (the less optimistic score), then by in-search fitness."""
    out = []
    for arm in arms:
        found = [
            {
                "arm": arm["name"],
                "study": study["study"],
                "trial": entry["trial"],
                "expression": entry["expression"],
                "latex": entry.get("latex", ""),
                "fitness": _clean(entry.get("fitness")),
                "reevaluated_mean": _clean(entry.get("reevaluated_mean")),
            }
            for study in arm["studies"]
            for entry in study.get("top", [])
        ]
        found.sort(
            key=lambda e: (
                e["reevaluated_mean"] is not None,
                e["reevaluated_mean"] or 0.0,
                e["fitness"] if e["fitness"] is not None else -math.inf,
            ),
            reverse=True,
        )
        out += found[:per_arm]
    return out


def best_so_far(curve: dict, axis: str, x: float, *, carry: bool) -> float | None:
    """The best fitness of ``curve`` once ``axis`` (evaluations or seconds) reached ``x``.

    Args:
        curve: a study's anytime curve (``evaluations``, ``seconds``, ``best``).
        axis: ``"evaluations"`` or ``"seconds"``.
        x: the point on that axis.
        carry: whether the study's final best holds beyond its last point (true for wall time,
            where a finished study's best so far stays what it was; false for evaluations, which
            a study that stopped early never made).

    Returns:
        The best so far of the last point at or before ``x``; None before the first point or
        before the first successful evaluation, and beyond the last point unless ``carry``.
    """
    xs, best = curve[axis], curve["best"]
    if not xs or (not carry and x > xs[-1]):
        return None
    index = int(np.searchsorted(np.asarray(xs, dtype=float), x, side="right")) - 1
    return _clean(best[index]) if index >= 0 else None


def _band(per_seed: Sequence[float | None]) -> tuple[float | None, float | None, float | None, int]:
    s = summarise(per_seed)
    return s["median"], s["q25"], s["q75"], s["n"]


def _curve(studies: Sequence[dict], axis: str, grid: Sequence[float], carry: bool) -> dict:
    """Median and IQR band over seeds of the best so far at each grid point.

    The band is drawn only where every seed has a best so far (``n`` says how many do): a median
    over a growing set of seeds could fall when a late seed joins, which no best-so-far curve
    does.
    """
    out: dict[str, list] = {"x": list(grid), "median": [], "q25": [], "q75": [], "n": []}
    for x in grid:
        median, q25, q75, n = _band(
            [best_so_far(s["curve"], axis, x, carry=carry) for s in studies]
        )
        if n < len(studies):
            median = q25 = q75 = None
        out["median"].append(median)
        out["q25"].append(q25)
        out["q75"].append(q75)
        out["n"].append(n)
    return out


def curve_by_evaluations(studies: Sequence[dict]) -> dict:
    """The anytime band against evaluations 1..the longest study's count."""
    longest = max((len(s["curve"]["evaluations"]) for s in studies), default=0)
    return _curve(studies, "evaluations", list(range(1, longest + 1)), carry=False)


def curve_by_seconds(studies: Sequence[dict], t_max: float) -> dict:
    """The anytime band against wall seconds on the grid shared by every arm."""
    grid = [float(t) for t in np.linspace(0.0, t_max, SECONDS_GRID)] if t_max > 0 else []
    return _curve(studies, "seconds", grid, carry=True)


def _seconds_horizon(facts: dict) -> float:
    """The end of the common time grid: the latest evaluation of any study, or the time budget."""
    ends = [
        float(s["curve"]["seconds"][-1])
        for arm in facts["arms"]
        for s in arm["studies"]
        if s["curve"]["seconds"]
    ]
    return max([*ends, float(facts.get("time_budget_s") or 0.0)], default=0.0)


def _pairwise(values: dict[str, list[float | None]], metric_index: int) -> list[dict]:
    """All pairs of arms on one metric: Mann-Whitney U, Holm, Cliff's delta, bootstrap CI."""
    rows = []
    root = np.random.SeedSequence([BOOTSTRAP_SEED, metric_index])
    pairs = list(combinations(values, 2))
    for (a, b), seed in zip(pairs, root.spawn(len(pairs)), strict=True):
        x = [v for v in values[a] if v is not None]
        y = [v for v in values[b] if v is not None]
        row: dict[str, Any] = {
            "a": a,
            "b": b,
            "n_a": len(x),
            "n_b": len(y),
            "u": None,
            "p": None,
            "p_holm": None,
            "cliffs_delta": None,
            "mean_difference": None,
            "ci_low": None,
            "ci_high": None,
        }
        if x and y:
            row["cliffs_delta"] = _clean(cliffs_delta(x, y))
            ci = bootstrap_mean_diff(
                x, y, rng=np.random.default_rng(seed), paired=False, resamples=RESAMPLES
            )
            row.update(
                mean_difference=_clean(ci.estimate), ci_low=_clean(ci.low), ci_high=_clean(ci.high)
            )
        # With a single value per arm a rank test has nothing to say: undefined, not p = 1.
        if len(x) >= 2 and len(y) >= 2:
            test = mann_whitney_u(x, y)
            row.update(u=_clean(test.statistic), p=_clean(test.p_value))
        rows.append(row)
    tested = [r for r in rows if r["p"] is not None]
    if tested:
        for row, adjusted in zip(tested, holm([r["p"] for r in tested]), strict=True):
            row["p_holm"] = float(adjusted)
    return rows


def _friedman(
    seeds: Sequence[int], values: dict[str, list[float | None]]
) -> tuple[dict | None, str]:
    """Friedman's test and Nemenyi's CD with the seeds as blocks, or None and the reason."""
    names = list(values)
    if len(names) < 3:
        return None, "Friedman's test needs at least three arms."
    blocks = [
        [values[name][i] for name in names]
        for i in range(len(seeds))
        if all(values[name][i] is not None for name in names)
    ]
    dropped = len(seeds) - len(blocks)
    if len(blocks) < 2:
        return None, (
            f"Friedman's test needs at least two seeds with a value for every arm; "
            f"there {'is' if len(blocks) == 1 else 'are'} {len(blocks)} of {len(seeds)}."
        )
    result = friedman(np.asarray(blocks, dtype=float), names, higher_is_better=True)
    note = "Blocks are the search seeds" + (
        f"; {dropped} seed(s) without a value for every arm were left out." if dropped else "."
    )
    if result.note:
        return None, f"{note} Friedman's test is undefined: {result.note}."
    cd = nemenyi(result, ALPHA)
    return {
        "names": list(result.names),
        "average_ranks": list(result.average_ranks),
        "blocks": result.n_blocks,
        "statistic": _clean(result.statistic),
        "p": _clean(result.p_value),
        "iman_davenport": _clean(result.iman_davenport),
        "iman_davenport_p": _clean(result.iman_davenport_p),
        "nemenyi_q": _clean(cd.q_alpha),
        "critical_difference": _clean(cd.critical_difference),
        "nemenyi_pairs": [
            {"a": a, "b": b, "rank_difference": _clean(d), "p": _clean(p), "significant": s}
            for a, b, d, p, s in cd.pairs
        ],
    }, note
