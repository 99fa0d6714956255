"""``nlfs run``: the whole pipeline in one command, from search to a report that opens with the
verdict."""

from __future__ import annotations

import time
from pathlib import Path

import click

from nlfs.cli.common import console, echo_json, json_option, resumable_on_ctrl_c
from nlfs.experiments.pipeline import Reporter

STEP_COUNT = 5


class _Console(Reporter):
    """Progress for a person: one line per step, a bar with its ETA while it trains."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.search_progress = not quiet
        self.started = time.monotonic()

    def step(self, index: int, step: str, detail: str) -> None:
        if not self.quiet:
            console.print(f"[bold]step {index}/{STEP_COUNT} {step}[/]: {detail}")

    def done(self, step: str, seconds: float, trained: int) -> None:
        if not self.quiet:
            what = f"trained {trained}" if trained else "nothing to train (reused)"
            console.print(f"  {step} done in {_duration(seconds)}: {what}")

    def run_grid(self, study_name, storage, *, workers, label, where, device, data_dir) -> None:
        from nlfs.cli.gridrun import run_jobs

        run_jobs(
            study_name,
            storage,
            workers=workers,
            device=device,
            data_dir=data_dir,
            download=False,
            label=label,
            quiet=self.quiet,
            where=dict(where) if where else None,
        )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


@click.command("run")
@click.option(
    "--config",
    "config_file",
    help="Pipeline config: a name under configs/ or a TOML path [default: pipeline_cpu].",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder of the report [default: reports/NAME, NAME from the config].",
)
@click.option(
    "--storage",
    help="Journal file or Optuna URL holding every step's study [default: runs/NAME.journal].",
)
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes per step.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Dataset folder (default: each profile dataset's location).",
)
@json_option
def run(config_file, out, storage, workers, device, data_dir, as_json) -> None:
    """Search, eliminate, transfer the finalists against the baselines, check the surrogate's
    fidelity and write the report, which opens with the verdict.

    Each step is the study its own command makes (NAME-search, NAME-eliminate, NAME-transfer,
    NAME-fidelity in one storage): running the same command again resumes where it stopped,
    and a finished step trains nothing. With no options: configs/pipeline_cpu.toml, about 4-5
    minutes on 2 CPU cores.
    """
    from nlfs.experiments.pipeline import default_storage, run_pipeline
    from nlfs.experiments.pipeline_config import load_pipeline_config
    from nlfs.report.verdict import write_pipeline_report

    config = load_pipeline_config(config_file, workers=workers)
    storage = storage or default_storage(config)
    out_dir = Path(out or Path("reports") / config.pipeline.name)
    progress = _Console(quiet=as_json)
    if not as_json:
        console.print(
            f"pipeline [bold]{config.pipeline.name}[/] ({Path(config.source).name}) in {storage}"
        )
    with resumable_on_ctrl_c():
        facts = run_pipeline(
            config, storage=storage, device=device, data_dir=data_dir, reporter=progress
        )
    progress.step(STEP_COUNT, "report", str(out_dir))
    files, verdict = write_pipeline_report(facts, out_dir)
    if as_json:
        echo_json(
            {
                "name": config.pipeline.name,
                "storage": storage,
                "studies": dict(facts.studies),
                "finalists": [f.label for f in facts.finalists],
                "trained": dict(facts.trained),
                "files": [str(p) for p in files],
                "verdict": verdict,
            }
        )
        return
    console.print("[bold]verdict[/]")
    for sentence in verdict["sentences"]:
        console.print(f"- {sentence}", markup=False)
    main = next((p for p in files if p.suffix == ".html"), files[0] if files else out_dir)
    others = ", ".join(p.name for p in files if p.suffix in (".md", ".tex", ".json"))
    console.print(
        f"report: {main}" + (f" (also {others})" if others else ""),
        markup=False,
    )
    console.print(f"total {_duration(time.monotonic() - progress.started)}")
