"""TOML configuration: loading, validation into frozen dataclasses, and hashing.

Every number a run uses comes from a file under ``configs/`` (or one the user names), read with
``tomllib`` and checked here: a misspelled key fails at load time with the valid keys listed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from nlfs.errors import ConfigError

CONFIG_DIR = Path(os.environ.get("NLFS_CONFIG_DIR", Path(__file__).resolve().parent / "configs"))
"""Where named configurations live: ``nlfs/configs``, which in the checkout is a link to the
top-level ``configs/`` and in an installed package a copy of it (override: NLFS_CONFIG_DIR)."""

T = TypeVar("T")


def resolve_config(name_or_path: str | os.PathLike, subdir: str = "") -> Path:
    """Find a config by name (``micro`` -> ``configs/<subdir>/micro.toml``) or by path.

    Raises:
        ConfigError: when neither a file of that path nor a named config exists; the message
            lists the named configs available.
    """
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        path = path.resolve()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    folder = CONFIG_DIR / subdir
    named = folder / f"{name_or_path}.toml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in folder.glob("*.toml"))
    raise ConfigError(
        f"no config named {str(name_or_path)!r} in {folder}; known: {', '.join(known)}"
    )


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML file, turning I/O and syntax errors into :class:`ConfigError`."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    except UnicodeDecodeError as err:  # tomllib reads bytes and decodes them itself
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {err.start}: {err.reason})"
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(hint):
            if arm is type(None) and value is None:
                return None
            try:
                return _check_type(value, arm, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {hint}")
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def build(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build frozen dataclass ``cls`` from a TOML table, checking keys and value types.

    Unknown keys raise :class:`ConfigError` listing the valid ones; missing keys take the
    dataclass defaults (or raise when there is none); nested dataclasses are built recursively.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _check_type(data[name], hints[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {name!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s values; tables merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_hash(data: Any) -> str:
    """A stable hash of a configuration (dataclass or plain data) for refusing mixed resumes."""
    if dataclasses.is_dataclass(data):
        data = dataclasses.asdict(data)
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
