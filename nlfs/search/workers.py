"""Entry points of a search: one process, K local worker processes, or joining a study.

``run_search`` opens (or resumes) the study and runs its workers; ``join_study`` is
``nlfs worker``: it reads the study's ``kind`` and runs the matching worker loop, so a search or
a transfer/elimination grid can be helped from another process or machine.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import os
import time
from typing import Any

import optuna

from nlfs.errors import NLFSError
from nlfs.search.config import NOT_HASHED, SearchConfig, config_from_dict
from nlfs.search.progress import ProgressDisplay, summarize
from nlfs.search.runner import (
    EvaluatorFactory,
    SearchWorker,
    check_config,
    study_attrs,
    total_rejections,
)
from nlfs.search.trials import TrialCache
from nlfs.storage import load_existing_study, open_study, resolve_storage, storage_label

POLL_S = 0.5
"""How often the parent of K worker processes refreshes the progress bar (seconds)."""
JOIN_TIMEOUT_S = 60.0
"""How long the parent waits for workers to record an interruption after Ctrl-C (seconds)."""


def run_search(
    config: SearchConfig,
    *,
    study_name: str | None = None,
    storage: str | None = None,
    runs_dir: str | os.PathLike = "runs",
    evaluator_factory: EvaluatorFactory | None = None,
    progress: bool = False,
    max_trials: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a search until its budget is used; return :func:`summarize`'s dict.

    Args:
        config: the search config.
        study_name: None for :meth:`SearchConfig.default_study_name`.
        storage: journal path or storage URL (see :func:`nlfs.storage.resolve_storage`).
        runs_dir: folder of the default journal files.
        evaluator_factory: replaces the real evaluator (tests, benchmarks); with several
            workers it must be picklable (a module-level function).
        progress: draw the progress bar on stderr.
        max_trials: stop after this many trials of this process (single worker only).

    Raises:
        ConfigError: a study of that name exists with another config.
        KeyboardInterrupt: after Ctrl-C, once the running trials are marked interrupted.
    """
    check_config(config)
    name = study_name or config.default_study_name()
    study = open_study(
        name, resolve_storage(storage, name, runs_dir), attrs=study_attrs(config),
        unhashed=NOT_HASHED,
    )
    display = ProgressDisplay(config.budget, enabled=progress)
    with display:
        if config.workers == 1:
            worker = SearchWorker(
                study,
                config,
                evaluator_factory=evaluator_factory,
                on_update=_updater(display, study),
            )
            worker.run(max_trials=max_trials)
        else:
            _run_processes(study, config, evaluator_factory, display)
    return summarize(study)


def _updater(display: ProgressDisplay, study: optuna.Study):
    """The worker's progress callback; None when nothing is drawn (keeps the loop lean)."""
    if not display.enabled:
        return None
    return lambda worker: display.update(worker.cache, total_rejections(study.user_attrs))


def _run_processes(
    study: optuna.Study,
    config: SearchConfig,
    factory: EvaluatorFactory | None,
    display: ProgressDisplay,
) -> None:
    """K spawned worker processes on one study; the parent only draws progress."""
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    spec = storage_label(study._storage)
    processes = [
        context.Process(
            target=_worker_main,
            args=(study.study_name, spec, config.to_dict(), threads, factory),
            name=f"nlfs-worker-{i}",
        )
        for i in range(config.workers)
    ]
    for process in processes:
        process.start()
    cache = TrialCache(study)
    try:
        while any(p.is_alive() for p in processes):
            cache.sync()
            display.update(cache, total_rejections(study.user_attrs))
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the workers too; give them time to mark their trials.
        for process in processes:
            process.join(JOIN_TIMEOUT_S)
            if process.is_alive():
                process.terminate()
        raise
    for process in processes:
        process.join()
    cache.sync()
    display.update(cache, total_rejections(study.user_attrs))
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise NLFSError(
            f"worker process(es) {', '.join(failed)} stopped with an error (see above); "
            "run the same command again to resume"
        )


def _worker_main(
    study_name: str,
    storage_spec: str,
    config_data: dict[str, Any],
    threads: int,
    factory: EvaluatorFactory | None,
) -> None:
    """Body of one spawned worker process."""
    import sys

    import torch

    # This process is ours alone, so it may size torch's pool: cores are split between workers.
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = resolve_storage(storage_spec, study_name)
        study = optuna.load_study(study_name=study_name, storage=storage)
        SearchWorker(study, config_from_dict(config_data), evaluator_factory=factory).run()
    except KeyboardInterrupt:
        sys.exit(130)
    except NLFSError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(2)


def join_study(
    study_name: str,
    storage: str | None,
    *,
    device: str | None = None,
    data_dir: str | None = None,
    runs_dir: str | os.PathLike = "runs",
    evaluator_factory: EvaluatorFactory | None = None,
    progress: bool = False,
) -> dict[str, Any] | None:
    """``nlfs worker``: help a running study until its budget is used.

    Dispatches on the study's ``kind`` user attribute: ``search`` runs :class:`SearchWorker`
    with the study's stored config (``device`` and ``data_dir`` may be overridden for this
    machine); any other kind is handed to ``nlfs.experiments.grid.run_worker``.

    Returns:
        The search summary, or None for other kinds.
    """
    study = load_existing_study(study_name, storage, runs_dir)
    kind = study.user_attrs.get("kind")
    if kind != "search":
        grid = importlib.import_module("nlfs.experiments.grid")
        grid.run_worker(study_name, study._storage, device=device or "auto", data_dir=data_dir)
        return None
    config = config_from_dict(study.user_attrs["config"])
    overrides = {k: v for k, v in (("device", device), ("data_dir", data_dir)) if v is not None}
    config = dataclasses.replace(config, **overrides)
    display = ProgressDisplay(config.budget, enabled=progress)
    with display:
        worker = SearchWorker(
            study,
            config,
            evaluator_factory=evaluator_factory,
            on_update=_updater(display, study),
        )
        worker.run()
    return summarize(study)
