"""The configuration of ``nlfs run``: one TOML file naming every step's settings.

File layout (``configs/pipeline_cpu.toml`` is the embedded default)::

    [pipeline]          # name (prefix of every step's study), workers
    [search]            # the keys of a search config's [search] table; its other tables
    [search.screen]     #   nested under it, but the chosen strategy's and space's options
    [search.strategy_options]  # (a file's [strategy.<name>] and [space.<name>]) are
    [search.space_options]     # [search.strategy_options] and [search.space_options]
    [eliminate]         # an elimination protocol (configs/eliminate_*.toml keys)
    [[eliminate.stages]]
    [transfer]          # a transfer grid (configs/transfer_*.toml keys); ``baselines`` instead
    [transfer.overrides]#   of ``losses``: the finalists of the elimination are added to them
    [fidelity]          # target (a grid name or table), candidates, top, seed, seeds, enabled
    [report]            # baseline, alpha, significance_test, resamples, seed, formats

Each step table starts from a named config, ``config = "NAME"`` (``paper``, ``eliminate_paper``,
...), by default the one its own command uses (:data:`BASES`: ``default``, ``eliminate_cpu``,
``transfer_cpu``, ``fidelity_cpu``): its keys are read first and the table's own replace them (a
nested table such as ``[search.strategy.regevo]`` or ``[transfer.overrides]`` is merged key by
key; ``stages`` is replaced whole). A relative ``profile`` path is taken relative to the file that
names it. Every table is checked like the standalone configs: unknown keys are listed with the
valid ones, in one line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nlfs.config import build, deep_merge, load_toml, resolve_config
from nlfs.errors import ConfigError
from nlfs.experiments.eliminate import EliminationConfig
from nlfs.experiments.jobs import load_grid_table
from nlfs.experiments.transfer import TransferConfig
from nlfs.losses.baselines import ALIASES
from nlfs.search.config import SearchConfig, config_from_table

DEFAULT = "pipeline_cpu"
TABLES = ("pipeline", "search", "eliminate", "transfer", "fidelity", "report")
BASES = {
    "search": "default",
    "eliminate": "eliminate_cpu",
    "transfer": "transfer_cpu",
    "fidelity": "fidelity_cpu",
}
"""The config each step table starts from unless it names another (``config = "NAME"``)."""
STEPS = ("search", "eliminate", "transfer", "fidelity", "report")
"""The steps in the order they run; the studies are named ``<name>-<step>`` (not the report)."""


@dataclass(frozen=True)
class PipelineSettings:
    """The ``[pipeline]`` table.

    Attributes:
        name: prefix of the studies (``<name>-search``, ``<name>-eliminate``, ...) and of the
            default storage ``runs/<name>.journal``.
        workers: local worker processes of every step (a search's and each grid's).
    """

    name: str = "pipeline"
    workers: int = 1

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"pipeline name {self.name!r} cannot name a study file")
        if self.workers < 1:
            raise ConfigError(f"pipeline workers must be at least 1, got {self.workers}")


@dataclass(frozen=True)
class FidelitySettings:
    """The ``[fidelity]`` table: how far the surrogate's ranking carries (``nlfs fidelity``).

    Attributes:
        target: the target transfer grid, its ``losses`` unused.
        candidates: search candidates picked over the fitness range (the 3 best always).
        top: the surrogate's top candidates the report also looks at alone.
        seed: seed of the pick.
        enabled: False skips the step (the verdict then says nothing of the surrogate).
    """

    target: TransferConfig
    candidates: int = 8
    top: int = 5
    seed: int = 0
    enabled: bool = True

    def __post_init__(self) -> None:
        # The 3 best are always picked; at least one more is drawn from the rest.
        if self.candidates < 4:
            raise ConfigError(f"fidelity candidates must be at least 4, got {self.candidates}")
        if self.top < 2:
            raise ConfigError(f"fidelity top must be at least 2, got {self.top}")


@dataclass(frozen=True)
class ReportSettings:
    """The ``[report]`` table: the options of ``nlfs report`` the verdict rests on."""

    baseline: str = "ce"
    alpha: float = 0.05
    significance_test: Literal["t", "rank"] = "t"
    resamples: int = 10_000
    seed: int = 0
    formats: tuple[str, ...] = ("md", "html", "tex", "json")

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"report alpha must lie in (0, 1), got {self.alpha}")
        if self.resamples < 100:
            raise ConfigError(f"report resamples must be at least 100, got {self.resamples}")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything ``nlfs run`` does; ``transfer.losses`` holds the baselines only."""

    pipeline: PipelineSettings
    search: SearchConfig
    eliminate: EliminationConfig
    transfer: TransferConfig
    fidelity: FidelitySettings
    report: ReportSettings
    source: str = ""

    def study(self, step: str) -> str:
        """The study of ``step`` (one of :data:`STEPS` but the report)."""
        return f"{self.pipeline.name}-{step}"


def load_pipeline_config(
    name_or_path: str | os.PathLike | None = None, *, workers: int | None = None
) -> PipelineConfig:
    """Read a pipeline config by name (``pipeline_cpu``) or path; ``workers`` overrides
    ``[pipeline] workers`` and reaches every step.

    Raises:
        ConfigError: an unknown table or key (the valid ones listed), a wrong value, a named
            config that does not exist, or a report baseline the transfer grid does not train.
    """
    path = resolve_config(name_or_path if name_or_path is not None else DEFAULT)
    table = load_toml(path)
    where = path.name
    unknown = sorted(set(table) - set(TABLES))
    if unknown:
        raise ConfigError(
            f"{where}: unknown table(s) {', '.join(unknown)}; valid: {', '.join(TABLES)}"
        )
    for name in TABLES:
        if not isinstance(table.get(name, {}), Mapping):
            raise ConfigError(f"{where}: {name} must be a table ([{name}])")
    settings = build(PipelineSettings, table.get("pipeline", {}), where=f"{where} [pipeline]")
    if workers is not None:
        settings = dataclasses.replace(settings, workers=workers)
    folder = path.parent
    search = _search(table.get("search", {}), folder, where, settings.workers)
    eliminate = build(
        EliminationConfig,
        _with_base(table.get("eliminate", {}), folder, BASES["eliminate"], grid=True),
        where=f"{where} [eliminate]",
    )
    transfer = _transfer(table.get("transfer", {}), folder, where, settings.workers)
    fidelity = _fidelity(table.get("fidelity", {}), folder, where, settings.workers)
    report = build(ReportSettings, table.get("report", {}), where=f"{where} [report]")
    baseline = ALIASES.get(report.baseline, report.baseline)
    if baseline not in {ALIASES.get(b, b) for b in transfer.losses}:
        raise ConfigError(
            f"{where}: the report's baseline {report.baseline!r} is not among the transfer "
            f"baselines ({', '.join(transfer.losses)})"
        )
    return PipelineConfig(settings, search, eliminate, transfer, fidelity, report, str(path))


def _relative_profile(table: dict[str, Any], folder: Path) -> dict[str, Any]:
    profile = table.get("profile")
    if isinstance(profile, str) and profile.endswith(".toml") and not Path(profile).is_absolute():
        table["profile"] = str(folder / profile)
    return table


def _with_base(raw: Mapping[str, Any], folder: Path, default: str, *, grid: bool) -> dict[str, Any]:
    """A step table over the named config of its ``config`` key (else ``default``)."""
    own = _relative_profile(dict(raw), folder)
    base_name = own.pop("config", default)
    if not isinstance(base_name, str):
        raise ConfigError(f"config = {base_name!r}: give the name or path of a config file")
    base_path = resolve_config(base_name)
    base = load_grid_table(base_path) if grid else dict(load_toml(base_path))
    return deep_merge(base, own)


def _search(raw: Mapping[str, Any], folder: Path, where: str, workers: int) -> SearchConfig:
    own = _relative_profile(dict(raw), folder)
    tables = dict(load_toml(resolve_config(str(own.pop("config", BASES["search"])))))
    # TOML cannot hold both `strategy = "regevo"` and a [search.strategy.regevo] table, so the
    # chosen strategy's and space's options are [search.strategy_options] and
    # [search.space_options]; other nested tables ([search.screen], ...) are the search config
    # file's own tables, and config_from_table names any it does not know.
    nested = {k: own.pop(k) for k in list(own) if isinstance(own[k], Mapping)}
    options = {k: nested.pop(f"{k}_options", None) for k in ("strategy", "space")}
    tables = deep_merge(tables, {**nested, "search": own})
    chosen = tables.get("search", {})
    for kind, values in options.items():
        if values is not None:
            name = chosen.get(kind, getattr(SearchConfig, kind))
            tables = deep_merge(tables, {kind: {name: values}})
    return config_from_table(tables, {"workers": workers}, where=f"{where} search")


def _transfer(raw: Mapping[str, Any], folder: Path, where: str, workers: int) -> TransferConfig:
    table = _with_base(raw, folder, BASES["transfer"], grid=True)
    if "losses" in raw:
        raise ConfigError(
            f"{where} [transfer]: name the losses to beat as baselines = [...]; the finalists "
            "of the elimination are added to them"
        )
    table.pop("losses", None)  # a base grid's own losses are replaced by the baselines
    if "baselines" in table:
        table["losses"] = table.pop("baselines")
    return build(TransferConfig, {**table, "workers": workers}, where=f"{where} [transfer]")


def _fidelity(raw: Mapping[str, Any], folder: Path, where: str, workers: int) -> FidelitySettings:
    from nlfs.experiments.fidelity import load_target

    table = dict(raw)
    target = table.pop("target", BASES["fidelity"])
    seeds = table.pop("seeds", None)
    if isinstance(target, Mapping):
        grid = build(
            TransferConfig,
            _with_base({**target, "workers": workers}, folder, BASES["fidelity"], grid=True),
            where=f"{where} [fidelity.target]",
        )
    elif isinstance(target, str):
        grid = dataclasses.replace(load_target(target), workers=workers)
    else:
        raise ConfigError(f"{where} [fidelity]: target must be a config name or a table")
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"{where} [fidelity]: seeds must be a positive integer")
        grid = dataclasses.replace(grid, seeds=seeds)
    settings = build(FidelitySettings, {**table, "target": {}}, where=f"{where} [fidelity]")
    return dataclasses.replace(settings, target=grid)
