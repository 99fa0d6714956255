"""Config validation: misspelled keys and wrong types fail at load time, naming what is valid."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from nlfs.config import build, config_hash, load_toml, resolve_config
from nlfs.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    steps: int = 10
    lr: float = 1e-3


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)
    mode: str | None = None


def test_build_fills_defaults_and_nested_tables():
    cfg = build(Outer, {"name": "a", "inner": {"steps": 5}, "sizes": [3, 4]})
    assert cfg == Outer(name="a", inner=Inner(steps=5), sizes=(3, 4))


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) stpes; valid keys: steps, lr"):
        build(Outer, {"name": "a", "inner": {"stpes": 5}})


def test_missing_required_key_is_named():
    with pytest.raises(ConfigError, match="missing required key 'name'"):
        build(Outer, {})


@pytest.mark.parametrize(
    "table",
    [
        {"name": "a", "inner": {"steps": "ten"}},
        {"name": "a", "inner": {"steps": True}},
        {"name": "a", "inner": {"lr": "fast"}},
        {"name": "a", "sizes": 3},
        {"name": 3},
    ],
)
def test_wrong_types_are_refused(table):
    with pytest.raises(ConfigError):
        build(Outer, table)


def test_int_is_accepted_where_float_is_expected():
    assert build(Inner, {"lr": 1}).lr == 1.0


def test_load_toml_reports_syntax_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("x = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")


def test_resolve_config_unknown_name_lists_known(tmp_path):
    with pytest.raises(ConfigError, match="no config named 'nope'"):
        resolve_config("nope")
    good = tmp_path / "x.toml"
    good.write_text("a = 1\n")
    assert resolve_config(str(good)) == good.resolve()


def test_config_hash_is_stable_and_sensitive():
    a = Outer(name="a")
    assert config_hash(a) == config_hash(Outer(name="a"))
    assert config_hash(a) != config_hash(Outer(name="b"))
    assert config_hash({"x": 1, "y": 2}) == config_hash({"y": 2, "x": 1})
