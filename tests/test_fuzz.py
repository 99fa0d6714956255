"""Random input to the three readers of user text: only their documented errors come out.

The expression parser raises :class:`ParseError`, every config loader :class:`ConfigError`,
the CSV reader :class:`RecordError` (all :class:`NLFSError`, printed by the CLI as one line);
any other exception is a crash that would reach the user as a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nlfs.errors import ConfigError
from nlfs.evaluation.profiles import Profile, load_profile
from nlfs.experiments.eliminate import EliminationConfig, Stage, load_elimination_config
from nlfs.experiments.pipeline_config import TABLES, load_pipeline_config
from nlfs.experiments.transfer import TransferConfig, load_transfer_config
from nlfs.losses.expressions import ParseError, canonical, parse
from nlfs.losses.operators import OPERATORS
from nlfs.search.config import ScreenConfig, SearchConfig, load_search_config
from nlfs.stats.records import COLUMNS, RecordError, read_csv

# ------------------------------------------------------------------ expressions

_WORDS = sorted(OPERATORS) + ["y", "p", "1", "-1", "0.5", "1e-05", "(", ")", ",", " "]


def _text_of_parts():
    """Texts built from the parser's own words: they reach deep into it, unlike random text."""
    return st.lists(st.sampled_from(_WORDS) | st.text(max_size=3), max_size=40).map("".join)


@settings(max_examples=400)
@given(text=st.text(max_size=200) | _text_of_parts())
def test_parse_raises_only_parse_errors(text):
    try:
        tree = parse(text)
    except ParseError as err:
        assert "\n" not in str(err)
        return
    assert canonical(parse(canonical(tree))) == canonical(tree)


@given(data=st.binary(max_size=200))
def test_parse_of_any_bytes_raises_only_parse_errors(data):
    try:
        parse(data.decode("utf-8", errors="surrogateescape"))
    except ParseError:
        pass


# ---------------------------------------------------------------------- configs


def _fields(*classes) -> list[str]:
    return sorted({f.name for cls in classes for f in dataclasses.fields(cls)})


_KEYS = st.sampled_from(
    [*_fields(SearchConfig, ScreenConfig, Profile, TransferConfig, EliminationConfig, Stage)]
    + [*TABLES, "screen", "pruning", "strategy", "space", "regevo", "cell", "tree"]
) | st.text(max_size=6)
_NAMES = st.sampled_from(
    ["regevo", "random", "tpe", "cell", "tree", "micro", "quick", "cpu", "auto", "none",
     "fashion-mnist", "tiny_cnn", "cross_entropy", "micro.toml", "../x.toml", ""]
)  # fmt: skip
_SCALARS = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from([0, 1, 2, -1, 3, 100])
    | st.floats()
    | _NAMES
    | st.text(max_size=10).filter(lambda s: "\x7f" not in s)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_DOCUMENTS = st.dictionaries(_KEYS, _VALUES, max_size=6)


def _toml_value(value) -> str:
    """TOML for a value (tables inline, so a document is one ``key = value`` per line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # its escapes are TOML's too
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(table) -> str:
    return "".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in table.items())


def test_the_toml_writer_writes_toml():
    """The generator's writer, checked against tomllib (the loaders' own reader)."""
    import tomllib

    table = {"a b": [1, 2.5, 'x\n"y"'], "t": {"u": {"v": True}}, "f": float("inf")}
    assert tomllib.loads(toml_document(table)) == table


LOADERS = {
    "search": load_search_config,
    "profile": load_profile,
    "transfer": load_transfer_config,
    "eliminate": load_elimination_config,
    "pipeline": load_pipeline_config,
}


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _load_all(path: Path) -> None:
    for loader in LOADERS.values():
        with contextlib.suppress(ConfigError):
            loader(path)


@settings(max_examples=150)
@example(table={"search": "regevo"})  # a table given as a value: once a ValueError
@example(table={"search": False})  # once a TypeError
@given(table=_DOCUMENTS)
def test_config_loaders_raise_only_config_errors_on_random_toml(folder, table):
    path = folder / "fuzz.toml"
    path.write_text(toml_document(table), encoding="utf-8")
    _load_all(path)


@settings(max_examples=150)
@example(data=b"\x80")  # not UTF-8: tomllib's own decoding error once came out as is
@given(data=st.binary(max_size=300) | _DOCUMENTS.map(lambda t: toml_document(t).encode()[:-3]))
def test_config_loaders_raise_only_config_errors_on_random_bytes(folder, data):
    path = folder / "fuzz.toml"
    path.write_bytes(data)
    _load_all(path)


# -------------------------------------------------------------------------- csv

_CELLS = st.sampled_from(["1", "0.5", "-3", "nan", "inf", "x", "", " ", '"', "1e400", "\x00"])


@settings(max_examples=200)
@example(data=b"\x80")  # not UTF-8: once a UnicodeDecodeError
@example(data=b"x" * 200_000)  # over the csv module's field size limit: once a csv.Error
@given(
    data=st.binary(max_size=300)
    | st.lists(st.lists(_CELLS | st.text(max_size=4), min_size=0, max_size=9), max_size=5).map(
        lambda rows: "\n".join([",".join(COLUMNS), *map(",".join, rows)]).encode()
    )
)
def test_read_csv_raises_only_record_errors(folder, data):
    path = folder / "fuzz.csv"
    path.write_bytes(data)
    try:
        records = read_csv(path)
    except RecordError:
        return
    assert records and all(math.isfinite(r.value) for r in records)
