"""What a person sees of a search: the live progress bar, the best-losses table, the summary.

The progress bar goes to stderr (evaluations done of the budget, best fitness so far, screen
rejections, failures, ETA); tables go to stdout; ``--json`` prints :func:`summarize`'s dict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from nlfs.search.trials import TrialCache, classify
from nlfs.storage import storage_label, study_storage


class ProgressDisplay:
    """A rich progress bar over a study's shared budget (a no-op when disabled).

    Args:
        budget: trials the study should reach.
        console: where to draw (stderr by default).
        enabled: False for ``--json`` and tests.
    """

    def __init__(self, budget: int, console: Console | None = None, enabled: bool = True) -> None:
        self.budget = budget
        self.enabled = enabled
        self._progress = None
        self._task = None
        self._console = console or Console(stderr=True, highlight=False)

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]search"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("best {task.fields[best]}"),
                TextColumn("rejects {task.fields[rejects]}"),
                TextColumn("failures {task.fields[failures]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self._console,
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(
                "search", total=self.budget, best="-", rejects=0, failures=0
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def update(self, cache: TrialCache, rejections: Mapping[str, int] | None = None) -> None:
        """Redraw from a synced trial cache and the study's rejection counts."""
        if self._progress is None:
            return
        best = f"{cache.best.value:.4f}" if cache.best is not None else "-"
        self._progress.update(
            self._task,
            completed=cache.finished_count(),
            best=best,
            rejects=sum((rejections or {}).values()),
            failures=cache.kinds["failed"],
        )


def _rejections(user_attrs: Mapping[str, Any]) -> dict[str, int]:
    from nlfs.search.runner import total_rejections

    return total_rejections(user_attrs)


def best_trials(study: optuna.Study, n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` completed trials of highest fitness, best first, as plain dicts.

    When the study used a cheaper ``seed_profile`` for regevo's seed pool, those trials'
    fitness is on another scale and they are left out.
    """
    skip_seed = bool(study.user_attrs.get("seed_profile"))
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not (skip_seed and t.user_attrs.get("phase") == "seed")
    ]
    done.sort(key=lambda t: (-t.value, t.number))
    return [
        {
            "number": t.number,
            "fitness": t.value,
            "expression": t.user_attrs.get("expression"),
            "key": t.user_attrs.get("key"),
            "sign": t.user_attrs.get("sign"),
            "mutation": t.user_attrs.get("mutation"),
            "parent": t.user_attrs.get("parent"),
            "seconds": t.user_attrs.get("seconds"),
        }
        for t in done[:n]
    ]


def summarize(study: optuna.Study, n: int = 10) -> dict[str, Any]:
    """A machine-readable summary of a study (``--json`` output)."""
    trials = study.get_trials(deepcopy=False)
    attrs = study.user_attrs
    counts = Counter(classify(t) for t in trials)
    return {
        "study": study.study_name,
        "storage": storage_label(study_storage(study)),
        "kind": attrs.get("kind"),
        "strategy": attrs.get("strategy"),
        "space": attrs.get("space"),
        "profile": attrs.get("profile"),
        "seed": attrs.get("seed"),
        "budget": attrs.get("budget"),
        "finished": counts["ok"] + counts["failed"] + counts["pruned"],
        "counts": dict(sorted(counts.items())),
        "rejections": _rejections(attrs),
        "best": best_trials(study, n),
    }


def render_best(summary: Mapping[str, Any], console: Console) -> None:
    """Print the best-losses table and one line of counts."""
    table = Table(title=f"best losses of {summary['study']}", title_justify="left")
    table.add_column("trial", justify="right")
    table.add_column("fitness", justify="right")
    table.add_column("sign", justify="right")
    table.add_column("expression", overflow="fold")
    for row in summary["best"]:
        sign = row["sign"]
        table.add_row(
            str(row["number"]),
            f"{row['fitness']:.4f}",
            "" if sign is None else f"{sign:+.0f}",
            str(row["expression"]),
        )
    console.print(table)
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items()) or "no trials"
    rejects = sum(summary["rejections"].values())
    console.print(
        f"{summary['finished']}/{summary['budget']} evaluated ({counts}); "
        f"{rejects} candidates rejected before training; storage {summary['storage']}"
    )
