"""The end-to-end pipeline behind ``nlfs run``: search, elimination, transfer, fidelity.

Every step is the study its own command makes, run by the same code: ``nlfs search``
(:func:`nlfs.search.workers.run_search`), ``nlfs eliminate``
(:func:`~nlfs.experiments.eliminate.run_elimination`), ``nlfs transfer``
(:func:`~nlfs.experiments.transfer.prepare`) and ``nlfs fidelity``
(:func:`~nlfs.experiments.fidelity.prepare`). The studies are named ``<name>-<step>`` and live in
one storage, so a rerun resumes where the last one stopped and a finished step trains nothing.
What flows between steps is read from the studies, never typed by hand: the elimination draws
from the search study, and its finalists enter the transfer grid as ``<name>-search:<trial>``.

:func:`run_pipeline` runs the steps and returns the report's facts
(:mod:`~nlfs.experiments.pipeline_facts`); the report itself is one role up
(:mod:`nlfs.report.verdict`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from nlfs.errors import ConfigError
from nlfs.experiments.pipeline_config import STEPS, PipelineConfig
from nlfs.experiments.pipeline_facts import Finalist, PipelineFacts, gather, trained_count

T = TypeVar("T")


class Reporter:
    """What the pipeline tells its user. The defaults print nothing and draw no bar; the CLI
    overrides them (a line per step, bars with an ETA)."""

    search_progress = False
    """Whether the search draws its own progress bar (on stderr)."""

    def step(self, index: int, step: str, detail: str) -> None:
        """Step ``index`` (1-based) of :data:`STEPS` starts; ``detail`` says what it will do."""

    def done(self, step: str, seconds: float, trained: int) -> None:
        """``step`` ended after ``seconds``, having trained ``trained`` trials in this run."""

    def run_grid(
        self,
        study_name: str,
        storage: str,
        *,
        workers: int,
        label: str,
        where: Mapping[str, Any] | None,
        device: str,
        data_dir: str | None,
    ) -> None:
        """Run the waiting jobs of a grid study (``where``: the jobs a progress bar counts)."""
        from nlfs.experiments.grid import run_local

        run_local(study_name, storage, workers=workers, device=device, data_dir=data_dir)


def default_storage(config: PipelineConfig) -> str:
    """``runs/<name>.journal``: one journal file for every study of the pipeline."""
    return f"runs/{config.pipeline.name}.journal"


def check(config: PipelineConfig, storage: str | None = None) -> None:
    """Fail before the search on anything a later step would refuse: the strategy and space,
    architectures, datasets and augmentations, the baselines.

    Raises:
        ConfigError: with the valid choices.
    """
    from nlfs.evaluation.profiles import load_profile
    from nlfs.experiments.eliminate import stage_profile
    from nlfs.experiments.jobs import check_names
    from nlfs.experiments.transfer import check_axes, resolve_losses
    from nlfs.search.runner import check_config

    check_config(config.search)
    base = load_profile(config.eliminate.profile)
    stages = [stage_profile(base, s, i) for i, s in enumerate(config.eliminate.stages)]
    check_names(
        models={p.model for p in stages},
        datasets={p.dataset for p in stages},
        augments={p.augment for p in stages},
    )
    check_axes(config.transfer)
    resolve_losses(config.transfer.losses, storage)
    if config.fidelity.enabled:
        check_axes(config.fidelity.target)


@dataclasses.dataclass
class _Run:
    """One run of the pipeline: its settings, and what each step trained."""

    config: PipelineConfig
    storage: str
    device: str
    data_dir: str | None
    reporter: Reporter
    trained: dict[str, int] = dataclasses.field(default_factory=dict)

    def study(self, step: str) -> str:
        return self.config.study(step)

    def timed(self, step: str, body: Callable[[], T]) -> T:
        """Run one step, then report its time and how many trials it trained."""
        started, before = time.monotonic(), trained_count(self.study(step), self.storage)
        result = body()
        self.trained[step] = trained_count(self.study(step), self.storage) - before
        self.reporter.done(step, time.monotonic() - started, self.trained[step])
        return result

    def grid(self, step: str, label: str, where: Mapping[str, Any] | None = None) -> None:
        self.reporter.run_grid(
            self.study(step),
            self.storage,
            workers=self.config.pipeline.workers,
            label=label,
            where=where,
            device=self.device,
            data_dir=self.data_dir,
        )


def run_pipeline(
    config: PipelineConfig,
    *,
    storage: str | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    reporter: Reporter | None = None,
) -> PipelineFacts:
    """Run (or resume) every step and gather the facts of the report.

    Args:
        config: the pipeline.
        storage: a journal path or storage URL holding every study (None:
            :func:`default_storage`).
        device, data_dir: where the evaluators train and find their data.
        reporter: progress callbacks and the way grid jobs run (None: silent, in this process).

    Raises:
        ConfigError: a bad setting, or a study of this name made with other settings.
        NLFSError: a worker process failed (rerun to resume).
    """
    from nlfs.storage import quiet_optuna

    quiet_optuna()
    run = _Run(config, storage or default_storage(config), device, data_dir, reporter or Reporter())
    check(config, run.storage)
    run.timed("search", lambda: _search(run))
    finalists = run.timed("eliminate", lambda: _eliminate(run))
    run.timed("transfer", lambda: _transfer(run, finalists))
    facts = None
    if config.fidelity.enabled:
        facts = run.timed("fidelity", lambda: _fidelity(run))
    else:
        run.reporter.step(4, "fidelity", "disabled in the config")
    return gather(config, run.storage, finalists, facts, run.trained)


def _search(run: _Run) -> None:
    from nlfs.search.workers import run_search

    search = dataclasses.replace(run.config.search, device=run.device, data_dir=run.data_dir)
    name = run.study("search")
    run.reporter.step(
        1,
        "search",
        f"{name}: {search.budget} evaluations ({search.strategy} on {search.space}, profile "
        f"{search.profile_label()})",
    )
    run_search(search, study_name=name, storage=run.storage, progress=run.reporter.search_progress)


def _eliminate(run: _Run) -> tuple[Finalist, ...]:
    from nlfs.experiments.eliminate import open_elimination, run_elimination
    from nlfs.storage import resolve_storage

    protocol, name, source = run.config.eliminate, run.study("eliminate"), run.study("search")
    study, settings, pool = open_elimination(
        name, resolve_storage(run.storage, name), protocol, source, run.storage
    )
    run.reporter.step(
        2,
        "eliminate",
        f"{name}: {len(pool)} candidates, keep {','.join(map(str, protocol.keep))}, "
        f"{protocol.seeds} seed(s) each",
    )

    def run_stage(index: int, jobs: int) -> None:
        run.grid("eliminate", f"stage {index + 1}/{len(protocol.stages)}", {"stage": index})

    kept = run_elimination(study, settings, protocol, pool, run_stage)
    by_key = {c.key: c for c in pool}
    if not kept:
        raise ConfigError(
            f"no candidate of {source!r} came through the elimination (each failed a stage); "
            f"`nlfs eliminate --study {source}` shows the funnel"
        )
    return tuple(
        Finalist(
            f"{source}:{by_key[k].source_trial}",
            by_key[k].expression,
            by_key[k].sign,
            k,
            by_key[k].source_trial,
            by_key[k].source_fitness,
        )
        for k in kept
    )


def _transfer(run: _Run, finalists: tuple[Finalist, ...]) -> None:
    from nlfs.experiments.transfer import prepare, resolve_losses
    from nlfs.storage import resolve_storage

    name, baselines = run.study("transfer"), run.config.transfer.losses
    grid = dataclasses.replace(
        run.config.transfer, losses=(*(f.label for f in finalists), *baselines)
    )
    refs = resolve_losses(grid.losses, run.storage)
    _, total, todo = prepare(name, resolve_storage(run.storage, name), grid, refs)
    run.reporter.step(
        3,
        "transfer",
        f"{name}: {len(finalists)} finalist(s) against {', '.join(baselines)}, {total} jobs, "
        f"{todo} to run",
    )
    run.grid("transfer", "transfer")


def _fidelity(run: _Run) -> dict[str, Any]:
    from nlfs.experiments.fidelity import Fidelity, collect, prepare

    f = run.config.fidelity
    experiment = Fidelity(
        run.study("search"),
        f.target,
        candidates=f.candidates,
        seed=f.seed,
        top=f.top,
        name=run.study("fidelity"),
    )
    _, total, todo = prepare(experiment, run.storage)
    run.reporter.step(
        4,
        "fidelity",
        f"{run.study('fidelity')}: {f.candidates} candidates and the baselines, {total} jobs, "
        f"{todo} to run",
    )
    run.grid("fidelity", "fidelity")
    return collect(experiment, run.storage)


__all__ = [
    "STEPS",
    "Finalist",
    "PipelineFacts",
    "Reporter",
    "check",
    "default_storage",
    "run_pipeline",
]
