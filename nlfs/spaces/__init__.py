"""Search spaces of loss genomes, by name."""

from __future__ import annotations

import inspect

from nlfs.errors import ConfigError
from nlfs.spaces.base import Genome, InvalidGenome, ParamSpec, SearchSpace

__all__ = [
    "Genome",
    "InvalidGenome",
    "ParamSpec",
    "SearchSpace",
    "get_space",
    "space_names",
    "space_options",
]


def _registry() -> dict[str, type[SearchSpace]]:
    from nlfs.spaces.cell import CellSpace
    from nlfs.spaces.taylor import TaylorSpace
    from nlfs.spaces.tree import TreeSpace

    return {cls.name: cls for cls in (CellSpace, TreeSpace, TaylorSpace)}


def space_names() -> list[str]:
    """Names of the built-in search spaces."""
    return sorted(_registry())


def space_options(name: str) -> list[str]:
    """The option names search space ``name`` accepts (its constructor's keyword arguments)."""
    registry = _registry()
    if name not in registry:
        raise ConfigError(f"unknown search space {name!r}; known: {', '.join(sorted(registry))}")
    parameters = inspect.signature(registry[name]).parameters
    return [p for p in parameters if parameters[p].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def get_space(name: str, **options) -> SearchSpace:
    """The search space ``name`` built with ``options`` (a config's ``[space.<name>]`` table).

    Raises:
        ConfigError: for an unknown space or option name (the valid ones are listed) or an
            option value the space refuses.
    """
    valid = space_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} of search space {name!r}; "
            f"valid: {', '.join(valid)}"
        )
    return _registry()[name](**options)
