"""Search spaces of loss genomes, by name."""

from __future__ import annotations

from nlfs.errors import ConfigError
from nlfs.spaces.base import Genome, InvalidGenome, ParamSpec, SearchSpace

__all__ = ["Genome", "InvalidGenome", "ParamSpec", "SearchSpace", "get_space", "space_names"]


def _registry() -> dict[str, type[SearchSpace]]:
    from nlfs.spaces.cell import CellSpace
    from nlfs.spaces.tree import TreeSpace

    return {cls.name: cls for cls in (CellSpace, TreeSpace)}


def space_names() -> list[str]:
    """Names of the built-in search spaces."""
    return sorted(_registry())


def get_space(name: str, **options) -> SearchSpace:
    """The search space ``name`` built with ``options``; unknown names list the known ones."""
    registry = _registry()
    if name not in registry:
        raise ConfigError(f"unknown search space {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name](**options)
