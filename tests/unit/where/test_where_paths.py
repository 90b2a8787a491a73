"""`where` paths whose names need backquotes, at any depth of a nested object."""

from __future__ import annotations

import pytest

from rtstream.where.language import WhereError, compile_where

ROW = {"customer": {"home address": {"city": "Lyon"}, "id": 7}, "a.b": 1, "x y": {"z": 3, "and": True}}


@pytest.mark.parametrize("text, expected", [
    ("customer.`home address`.city = 'Lyon'", True),
    ("customer.`home address`.city = 'Paris'", False),
    ("`customer`.`home address`.`city` = 'Lyon'", True),
    ("`x y`.z > 2", True),
    ("`x y`.`and`", True),  # a keyword backquoted is a name
    ("`a.b` = 1", True),  # a dot inside backquotes is part of the name, as before
    ("customer.`home address` is not null", True),
    ("customer.`no such`.city is null", True),
    ("not (customer.`home address`.city = 'Lyon')", False),
])
def test_backquoted_names_in_a_dotted_path(text: str, expected: bool) -> None:
    assert compile_where(text).matches(ROW) is expected


@pytest.mark.parametrize("text, message", [
    ("customer.``.city = 1", "empty `quoted field` at column 10"),
    ("customer.`home = 1", "unexpected '.' at column 9"),
])
def test_bad_paths_are_refused_with_the_column(text: str, message: str) -> None:
    with pytest.raises(WhereError) as err:
        compile_where(text)
    assert str(err.value) == message
