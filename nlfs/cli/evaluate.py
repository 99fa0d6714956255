"""``nlfs evaluate``: train one loss with a fidelity profile and print the result."""

from __future__ import annotations

import click
from rich.table import Table

from nlfs.cli.common import console, echo_json, json_option, seed_option


@click.command()
@click.option(
    "--loss",
    "spec",
    required=True,
    help="A baseline name (see `nlfs losses list`) or a canonical expression.",
)
@click.option(
    "--profile",
    default="micro",
    show_default=True,
    help="Fidelity profile: micro, quick, paper, or a path to a profile TOML.",
)
@seed_option
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of the dataset files (default: Debian's Fashion-MNIST).",
)
@click.option("--download", is_flag=True, help="Let torchvision download a missing dataset.")
@json_option
def evaluate(
    spec: str,
    profile: str,
    seed: int,
    device: str,
    data_dir: str | None,
    download: bool,
    as_json: bool,
) -> None:
    """Train one loss with a profile and print its fitness (best validation accuracy)."""
    from nlfs.evaluation.evaluator import Evaluator
    from nlfs.evaluation.results import EvalRequest
    from nlfs.screening import loss_from_spec

    loss = loss_from_spec(spec)
    evaluator = Evaluator(profile, device=device, data_dir=data_dir, download=download)
    result = evaluator.evaluate([EvalRequest(loss, seed, spec)])[0]
    if as_json:
        data = result.to_dict()
        data["loss"] = spec
        data["seed"] = seed
        echo_json(data)
        return
    table = Table(title=f"{spec} · profile {result.profile} · seed {seed}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    fitness = result.fitness
    rows = [
        ("fitness", "—" if fitness is None else f"{fitness:.4f}"),
        ("state", result.state.value + (f" ({result.message})" if result.message else "")),
        (
            "best / final acc",
            " / ".join(
                "—" if a is None else f"{a:.4f}" for a in (result.best_acc, result.final_acc)
            ),
        ),
        ("steps", str(result.steps)),
        ("seconds", f"{result.seconds:.2f}"),
        ("model / dataset", f"{result.metadata['model']} / {result.metadata['dataset']}"),
        ("device", result.device),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
