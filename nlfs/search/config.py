"""The configuration of a search, read from TOML (``configs/default.toml`` and friends).

File layout::

    [search]              # SearchConfig fields (strategy, space, profile, budget, seed, ...)
    [screen]              # ScreenConfig: tolerance and dedupe of the pre-training screen
    [pruning]             # PruningConfig: early stopping of candidates (nlfs.search.pruning)
    [strategy.<name>]     # options of strategy <name>; only the chosen strategy's table is used
    [space.<name>]        # options of search space <name>; only the chosen space's table is used

Command-line flags override values of the file. The study remembers ``config_hash``, a hash of
everything that changes which candidates are proposed or how they are scored. Left out of the
hash, so they may change between runs of one study: ``budget`` and ``time_budget_s`` (raise
them to extend a finished search), ``workers``, ``group``, ``device`` and ``data_dir`` (where
and how fast it runs, not what it computes). A ``[pruning]`` table with rule ``none`` is also
left out, so studies stored before pruning existed keep their hash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlfs.config import build, config_hash, load_toml, resolve_config
from nlfs.errors import ConfigError
from nlfs.search.pruning import PruningConfig

NOT_HASHED = ("budget", "time_budget_s", "workers", "group", "device", "data_dir")
"""SearchConfig fields that may differ between runs of one study (see the module docstring)."""


@dataclass(frozen=True)
class ScreenConfig:
    """Screening before training.

    Attributes:
        tolerance: probe-curve distance under which two candidates count as duplicates.
        dedupe: reject duplicates (same canonical string or probe fingerprint).
    """

    tolerance: float = 0.01
    dedupe: bool = True


@dataclass(frozen=True)
class SearchConfig:
    """Everything one search needs.

    Attributes:
        strategy: registered strategy name (``regevo``, ``random``, ``tpe``, plugins).
        space: search space name (``cell``, ``tree``).
        profile: evaluator profile name or path of a profile TOML file.
        seed_profile: cheaper profile for candidates of phase ``seed`` (regevo's initial pool);
            None: the main profile.
        budget: finished trials (ok or failed) the study should reach, shared by all workers.
        time_budget_s: also stop once the finished trials' training seconds reach this many
            (None: no time limit); equal wall time instead of equal evaluations.
        seed: seed of the strategy's proposals (the k-th ask draws from (seed, k)).
        eval_seed: training seed of every evaluation. Fixed per config, not per trial, so
            every candidate is trained from the same initial weights and data order and fitness
            differences come from the loss, not from the draw.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        data_dir: dataset folder (None: the profile dataset's default location).
        workers: local worker processes sharing the study.
        group: trials each worker keeps in flight and trains together (None: the evaluator's
            default for the device, :data:`nlfs.evaluation.evaluator.DEFAULT_GROUP`).
        screen: screening settings.
        pruning: early stopping of candidates below their peers (rule ``none`` by default).
        strategy_options: keyword options of the chosen strategy (``[strategy.<name>]``).
        space_options: keyword options of the chosen space (``[space.<name>]``).
    """

    strategy: str = "regevo"
    space: str = "cell"
    profile: str = "micro"
    seed_profile: str | None = None
    budget: int = 200
    time_budget_s: float | None = None
    seed: int = 0
    eval_seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    workers: int = 1
    group: int | None = None
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    strategy_options: dict = field(default_factory=dict)
    space_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.budget < 0:
            raise ConfigError(f"budget must be at least 0, got {self.budget}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"time budget must be positive seconds, got {self.time_budget_s}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.group is not None and self.group < 1:
            raise ConfigError(f"group must be at least 1, got {self.group}")
        if self.screen.tolerance < 0:
            raise ConfigError(f"screen tolerance must be >= 0, got {self.screen.tolerance}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the study's ``config`` attribute and the hash)."""
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """The study's ``config_hash``: everything except :data:`NOT_HASHED` fields."""
        return config_hash(self.hashed_dict())

    def hashed_dict(self) -> dict[str, Any]:
        """The values the hash covers (stored so a refused resume can say what differs)."""
        data = {k: v for k, v in self.to_dict().items() if k not in NOT_HASHED}
        if self.pruning.rule == "none":
            del data["pruning"]  # no pruning scores as before pruning existed
        return data

    def profile_label(self) -> str:
        """The profile as a short name (a path's stem)."""
        return Path(self.profile).stem if self.profile.endswith(".toml") else self.profile

    def default_study_name(self) -> str:
        """``<strategy>-<space>-<profile>-s<seed>``, e.g. ``regevo-cell-micro-s0``."""
        return f"{self.strategy}-{self.space}-{self.profile_label()}-s{self.seed}"


_TOP_KEYS = ("search", "screen", "pruning", "strategy", "space")


def load_search_config(
    config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> SearchConfig:
    """Read a search config file and apply command-line overrides.

    Args:
        config: a config name under ``configs/`` or a TOML path; None: ``default``.
        overrides: ``[search]`` keys to replace (None values are ignored, so unset CLI flags
            keep the file's values).

    Raises:
        ConfigError: unknown keys (the valid ones are listed), wrong types or values.
    """
    path = resolve_config(config if config is not None else "default")
    return config_from_table(load_toml(path), overrides, where=path.name)


def config_from_table(
    table: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, where: str
) -> SearchConfig:
    """A SearchConfig from a config file's tables (as read, or merged from several files).

    Args:
        table: the file layout of the module docstring.
        overrides: ``[search]`` keys to replace (None values are ignored).
        where: what to name in error messages (a file name).

    Raises:
        ConfigError: unknown keys (the valid ones are listed), wrong types or values.
    """
    unknown = sorted(set(table) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown table(s) {', '.join(unknown)}; valid: {', '.join(_TOP_KEYS)}"
        )
    for key in _TOP_KEYS:
        if not isinstance(table.get(key, {}), Mapping):
            raise ConfigError(f"{where}: {key} must be a table ([{key}]), not {table[key]!r}")
    search = dict(table.get("search", {}))
    for key in ("screen", "pruning", "strategy_options", "space_options"):
        if key in search:
            raise ConfigError(f"{where}: [search] cannot set {key!r}; use its own table")
    search.update({k: v for k, v in (overrides or {}).items() if v is not None})
    search["screen"] = table.get("screen", {})
    search["pruning"] = table.get("pruning", {})
    strategy = search.get("strategy", SearchConfig.strategy)
    space = search.get("space", SearchConfig.space)
    search["strategy_options"] = _named_table(table, "strategy", strategy, where)
    search["space_options"] = _named_table(table, "space", space, where)
    return build(SearchConfig, search, where=f"{where} [search]")


def _named_table(table: Mapping[str, Any], kind: str, name: Any, where: str) -> dict[str, Any]:
    tables = table.get(kind, {})
    if not isinstance(tables, Mapping) or not all(isinstance(v, Mapping) for v in tables.values()):
        raise ConfigError(f"{where}: [{kind}] must only hold [{kind}.<name>] tables")
    return dict(tables.get(name, {}))


def config_from_dict(data: Mapping[str, Any]) -> SearchConfig:
    """Rebuild a SearchConfig from :meth:`SearchConfig.to_dict` (as stored in a study)."""
    return build(SearchConfig, data, where="stored search config")
