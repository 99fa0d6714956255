"""Expressions: print/parse round trips and the errors malformed text raises."""

from __future__ import annotations

import random

import pytest
from deap import gp
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_ops import random_tree

from nlfs.losses.expressions import (
    MAX_DEPTH,
    ParseError,
    canonical,
    expression_key,
    parse,
    terminals_used,
    to_latex,
    to_text,
)
from nlfs.losses.operators import primitive_set

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=200, deadline=None)
@given(seed=seeds)
def test_parse_of_print_reproduces_the_tree(seed):
    """parse(str(t)) has the same nodes as t, and printing it again gives the same text."""
    tree = random_tree(random.Random(seed))
    text = canonical(tree)
    back = parse(text)
    assert [n.name for n in back] == [n.name for n in tree]
    assert [n.format() for n in back if isinstance(n, gp.Terminal)] == [
        n.format() for n in tree if isinstance(n, gp.Terminal)
    ]
    assert canonical(back) == text
    assert expression_key(canonical(back)) == expression_key(text)


@settings(max_examples=50, deadline=None)
@given(seed=seeds)
def test_parse_ignores_whitespace_layout(seed):
    """Extra spaces and no spaces read the same as the canonical form."""
    text = canonical(random_tree(random.Random(seed)))
    assert canonical(parse(text.replace(", ", ",").replace("(", " ( "))) == text


@settings(max_examples=50, deadline=None)
@given(seed=seeds)
def test_text_and_latex_render_every_tree(seed):
    """Every tree renders to non-empty plain text and LaTeX."""
    tree = random_tree(random.Random(seed))
    assert to_text(tree) and to_latex(tree)


def test_key_is_stable_and_distinguishes_expressions():
    """The key is a pure function of the text (16 hex digits) and differs between texts."""
    a, b = "neg(mul(y, log(p)))", "mul(y, log(p))"
    assert expression_key(a) == expression_key(a)
    assert expression_key(a) != expression_key(b)
    assert len(expression_key(a)) == 16 and int(expression_key(a), 16) >= 0


def test_terminals_used_names_constants_by_value():
    """terminals_used reports y, p and the constants by their printed value."""
    assert terminals_used(parse("add(mul(y, -1), sub(p, 1))")) == {"y", "p", "1", "-1"}
    assert terminals_used(parse("log(p)")) == {"p"}


def test_constants_read_as_integers():
    """1, -1, 1.0 and -1. are the two constants; the canonical form prints them as integers."""
    assert canonical(parse("add(1.0, -1.)")) == "add(1, -1)"


def test_real_literals_print_as_their_float_repr_and_parse_back():
    """Other numbers are real literals (parametric losses' coefficients), printed as repr."""
    text = canonical(parse("add(mul(0.25, y), mul(-3, 1E-5))"))
    assert text == "add(mul(0.25, y), mul(-3.0, 1e-05))"
    assert canonical(parse(text)) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("foo(y)", "unknown operator 'foo'"),
        ("log(y, p)", "argument"),
        ("add(y)", "add takes 2 arguments, got 1"),
        ("add(y, p, p)", "got more"),
        ("mul(y, 1e999)", "not a finite number"),
        ("add(y, p", "expected ')'"),
        ("add(y, p))", "trailing text"),
        ("add(y, p) y", "trailing text"),
        ("add y, p)", "expected '('"),
        ("mul(y, $)", "unexpected text '$)'"),
        ("mul(y, )", "unexpected ')'"),
        ("q", "unknown operator 'q'"),
        ("neg(" * (MAX_DEPTH + 2) + "y" + ")" * (MAX_DEPTH + 2), "deeper"),
        ("add(" + "y, " * 20_000 + "p)", "longer"),
    ],
)
def test_malformed_expressions_raise_parse_error_naming_the_problem(text, fragment):
    """Malformed text raises ParseError whose message names the bad token, operator or arity."""
    with pytest.raises(ParseError, match=None) as info:
        parse(text)
    assert fragment in str(info.value)


def test_too_many_nodes_raise_parse_error():
    """An expression beyond the node bound is refused, not parsed."""
    text = "y"
    for _ in range(11):  # 2**11 leaves, shallow enough for the depth bound
        text = f"add({text}, {text})"
    with pytest.raises(ParseError, match="nodes|longer"):
        parse(text)


def test_operator_outside_a_restricted_vocabulary_is_named():
    """With a smaller primitive set, an existing operator outside it is 'not in this space'."""
    pset = primitive_set(("add", "mul", "log"))
    assert canonical(parse("mul(y, log(p))", pset)) == "mul(y, log(p))"
    with pytest.raises(ParseError, match="not in this search space 'exp'"):
        parse("mul(y, exp(p))", pset)


def test_parse_error_is_an_nlfs_error():
    """ParseError is a user error the CLI prints as one line (an NLFSError and a ValueError)."""
    from nlfs.errors import NLFSError

    assert issubclass(ParseError, NLFSError) and issubclass(ParseError, ValueError)
