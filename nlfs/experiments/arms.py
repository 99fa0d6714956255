"""The arms of a comparison: search strategies (``nlfs compare``) or space variants (``ablate``).

An arm is a name, a one-line description and a complete search config. Strategy arms are the
base config with another strategy. A space variant is a partial search config in TOML, the same
layout as ``configs/default.toml`` plus a top-level ``description``, deep-merged over the base
config's tables. Variants live in ``configs/ablations/<name>.toml`` or in the user's ``--config``
file as ``[variants.<name>]`` tables (the file's own variants win over shipped ones of the same
name), so users add their own.

Every arm must share the profile, seed profile and evaluation seed: a comparison measures the
strategy or the space, never a different yardstick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlfs.config import CONFIG_DIR, deep_merge, load_toml, resolve_config
from nlfs.errors import ConfigError
from nlfs.search.config import SearchConfig, config_from_table
from nlfs.search.runner import check_config

ABLATIONS = "ablations"
"""Folder of the shipped variants under ``configs/``."""
DEFAULT_VARIANTS = ("cell", "cell_hidden2", "cell_no_trig", "cell_yp", "cell_nodedupe", "tree")
"""What ``nlfs ablate`` compares without ``--spaces``: one variant per question of the ablation
(node count, an operator group, constants, the duplicate check, the space's form)."""
_SHARED = ("profile", "seed_profile", "eval_seed")


@dataclass(frozen=True)
class Arm:
    """One side of a comparison.

    Attributes:
        name: what the report calls it (a strategy or variant name).
        description: one line for the report.
        config: the search config of its studies (the search seed is set per study).
    """

    name: str
    description: str
    config: SearchConfig


def split_names(text: str | Sequence[str], what: str) -> list[str]:
    """``"a,b"`` (or a list) as distinct names in order; an empty or repeated list is an error."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else list(text)
    names = [n for n in names if n]
    if not names:
        raise ConfigError(f"name at least one {what}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{what}s named twice: {', '.join(repeated)}")
    return names


def base_table(config: str | Path | None) -> tuple[dict[str, Any], str]:
    """The base config's tables (``default`` when None) and the file's name."""
    path = resolve_config(config if config is not None else "default")
    return load_toml(path), path.name


def strategy_arms(
    strategies: Sequence[str], table: Mapping[str, Any], where: str, overrides: Mapping[str, Any]
) -> list[Arm]:
    """One arm per strategy on the base config (``overrides``: ``[search]`` values)."""
    own = {k: v for k, v in table.items() if k != "variants"}
    arms = []
    for name in strategies:
        config = config_from_table(own, {**overrides, "strategy": name}, where=where)
        arms.append(Arm(name, f"strategy {name} on the {config.space} space", config))
    return _check_shared(arms)


def variant_table(name: str, table: Mapping[str, Any], where: str) -> tuple[dict[str, Any], str]:
    """A variant's partial config: the ``--config`` file's ``[variants.<name>]`` table, else
    ``configs/ablations/<name>.toml``; returns it and where it was found."""
    own = table.get("variants", {})
    if not isinstance(own, Mapping):
        raise ConfigError(f"{where}: [variants] must only hold [variants.<name>] tables")
    if name in own:
        return dict(own[name]), f"{where} [variants.{name}]"
    path = CONFIG_DIR / ABLATIONS / f"{name}.toml"
    if not path.is_file():
        known = sorted({p.stem for p in (CONFIG_DIR / ABLATIONS).glob("*.toml")} | set(own))
        raise ConfigError(f"unknown space variant {name!r}; known: {', '.join(known)}")
    return load_toml(path), path.name


def variant_arms(
    variants: Sequence[str], table: Mapping[str, Any], where: str, overrides: Mapping[str, Any]
) -> list[Arm]:
    """One arm per space variant, each merged over the base config, then ``overrides``."""
    own = {k: v for k, v in table.items() if k != "variants"}
    arms = []
    for name in variants:
        variant, found = variant_table(name, table, where)
        description = variant.pop("description", None)
        if not isinstance(description, str) or not description.strip():
            raise ConfigError(f'{found}: a variant needs a one-line description = "..."')
        config = config_from_table(deep_merge(own, variant), overrides, where=found)
        arms.append(Arm(name, description.strip(), config))
    return _check_shared(arms)


def _check_shared(arms: list[Arm]) -> list[Arm]:
    """Every arm builds (strategy, space, options) and is scored like the first; fails before
    any study is opened or trained."""
    for arm in arms:
        check_config(arm.config)
    first = arms[0].config
    for arm in arms[1:]:
        for field in _SHARED:
            if getattr(arm.config, field) != getattr(first, field):
                raise ConfigError(
                    f"arm {arm.name!r} sets {field} = {getattr(arm.config, field)!r} but "
                    f"{arms[0].name!r} has {getattr(first, field)!r}; every arm of a comparison "
                    "must be scored the same way"
                )
    return arms


def study_name(prefix: str, arm: Arm, seed: int) -> str:
    """The study of one arm and search seed, e.g. ``compare-regevo-s0``."""
    return f"{prefix}-{arm.name}-s{seed}"


def with_seed(arm: Arm, seed: int, budget: int, time_budget_s: float | None) -> SearchConfig:
    """The arm's config for one search seed and the comparison's budget."""
    return dataclasses.replace(arm.config, seed=seed, budget=budget, time_budget_s=time_budget_s)
