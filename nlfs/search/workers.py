"""Entry points of a search: one process, K local worker processes, or joining a study.

``run_search`` opens (or resumes) the study and runs its workers; ``join_search`` is the search
half of ``nlfs worker`` (the CLI hands studies of other kinds to their own worker loop).
:func:`run_processes` is the one way NLFS runs K local worker processes on a study, for a search
here and for the grid studies of :mod:`nlfs.experiments`, with one Ctrl-C policy: every worker
marks its running trial interrupted before it exits, and the parent waits for that.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
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
from nlfs.storage import open_study, quiet_optuna, resolve_storage, storage_label, study_storage

POLL_S = 0.5
"""How often the parent of K worker processes refreshes the progress (seconds)."""
JOIN_TIMEOUT_S = 60.0
"""How long the parent waits for workers to record an interruption after Ctrl-C (seconds)."""
INTERRUPTED_EXIT = 130
"""Exit code of a worker process stopped by Ctrl-C (128 + SIGINT, as a shell reports it)."""


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
        name,
        resolve_storage(storage, name, runs_dir),
        attrs=study_attrs(config),
        unhashed=NOT_HASHED,
    )
    if config.workers == 1:
        return _run_here(study, config, evaluator_factory, progress, max_trials)
    with ProgressDisplay(config.budget, enabled=progress) as display:
        spec = storage_label(study_storage(study))
        args = (study.study_name, spec, config.to_dict(), evaluator_factory)
        run_processes(_search_worker, args, config.workers, on_poll=_poller(display, study))
    return summarize(study)


def _run_here(
    study: optuna.Study,
    config: SearchConfig,
    factory: EvaluatorFactory | None,
    progress: bool,
    max_trials: int | None = None,
) -> dict[str, Any]:
    """One worker in this process behind the progress bar; returns :func:`summarize`'s dict."""
    with ProgressDisplay(config.budget, enabled=progress) as display:
        worker = SearchWorker(
            study, config, evaluator_factory=factory, on_update=_updater(display, study)
        )
        worker.run(max_trials=max_trials)
    return summarize(study)


def _updater(display: ProgressDisplay, study: optuna.Study):
    """The worker's progress callback; None when nothing is drawn (keeps the loop lean)."""
    if not display.enabled:
        return None
    return lambda worker: display.update(worker.cache, total_rejections(study.user_attrs))


def _poller(display: ProgressDisplay, study: optuna.Study):
    """The parent's progress callback while K processes run; None when nothing is drawn."""
    if not display.enabled:
        return None
    cache = TrialCache(study)

    def refresh() -> None:
        cache.sync()
        display.update(cache, total_rejections(study.user_attrs))

    return refresh


def run_processes(
    target: Callable[..., Any],
    args: Sequence[Any],
    workers: int,
    *,
    on_poll: Callable[[], None] | None = None,
    poll_s: float = POLL_S,
) -> None:
    """Run ``target(*args)`` in ``workers`` spawned processes until every one has exited.

    Each process gets ``cores // workers`` torch threads and quiet Optuna logging; an
    :class:`NLFSError` in it is printed as one line. The parent only calls ``on_poll`` (progress)
    right away, every ``poll_s`` seconds or when a process exits, and once at the end.

    Ctrl-C: a worker takes its first SIGINT as KeyboardInterrupt (its loop marks the running
    trial interrupted) and ignores later ones, so the parent may forward the signal to every
    worker without cutting that short (a terminal sends it to all of them anyway). The parent
    then waits up to :data:`JOIN_TIMEOUT_S` for them and terminates any still running.

    Args:
        target: a module-level function (spawned processes import it by name).
        args: its arguments; picklable.

    Raises:
        KeyboardInterrupt: after Ctrl-C, once the workers stopped.
        NLFSError: a worker exited with an error (its message is on stderr above).
    """
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [
        context.Process(
            target=_process_main, args=(target, tuple(args), threads), name=f"nlfs-worker-{i}"
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        while alive := [p for p in processes if p.is_alive()]:
            if on_poll is not None:
                on_poll()
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=poll_s)
    except KeyboardInterrupt:
        _interrupt(processes)
        raise
    except BaseException:
        _terminate(processes)
        raise
    if on_poll is not None:
        on_poll()
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise NLFSError(
            f"worker process(es) {', '.join(failed)} stopped with an error (see above); "
            "run the same command again to resume"
        )


def _interrupt(processes: list[multiprocessing.Process]) -> None:
    """Ctrl-C every live worker, wait for them to record it, terminate the stragglers."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    try:
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
    finally:  # also on a second Ctrl-C: the user wants out now
        _terminate(processes)


def _terminate(processes: list[multiprocessing.Process]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join()


def _interrupt_once(signum: int, frame: object) -> None:
    # Later SIGINTs (the parent forwarding a terminal's Ctrl-C) must not interrupt the handler
    # that marks the running trial interrupted.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _process_main(target: Callable[..., Any], args: tuple, threads: int) -> None:
    """Body of one spawned worker process."""
    signal.signal(signal.SIGINT, _interrupt_once)
    import torch

    # This process is ours alone, so it may size torch's pool: cores are split between workers.
    torch.set_num_threads(threads)
    quiet_optuna()
    try:
        target(*args)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED_EXIT)
    except NLFSError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(2)
    except Exception as err:
        # Ctrl-C inside a library's cleanup (Optuna's journal lock releases itself again on
        # any exception) surfaces as that cleanup's error; it is still the user's Ctrl-C.
        if _caused_by_ctrl_c(err):
            sys.exit(INTERRUPTED_EXIT)
        raise


def _caused_by_ctrl_c(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def _search_worker(
    study_name: str,
    storage_spec: str,
    config_data: dict[str, Any],
    factory: EvaluatorFactory | None,
) -> None:
    """One search worker process on the study (a :func:`run_processes` target)."""
    storage = resolve_storage(storage_spec, study_name)
    study = optuna.load_study(study_name=study_name, storage=storage)
    SearchWorker(study, config_from_dict(config_data), evaluator_factory=factory).run()


def join_search(
    study: optuna.Study,
    *,
    device: str | None = None,
    data_dir: str | None = None,
    evaluator_factory: EvaluatorFactory | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``nlfs worker`` on a search study: help it until its budget is used.

    Runs :class:`SearchWorker` with the study's stored config; ``device`` and ``data_dir`` may be
    overridden for this machine.

    Returns:
        :func:`summarize`'s dict of the study.
    """
    config = config_from_dict(study.user_attrs["config"])
    overrides = {k: v for k, v in (("device", device), ("data_dir", data_dir)) if v is not None}
    return _run_here(study, dataclasses.replace(config, **overrides), evaluator_factory, progress)
