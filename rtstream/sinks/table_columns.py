"""Which of a window's fields a table sink (sqlite, postgres) adds as columns, and which rows it
refuses because a field of theirs can never be a column.

Records evolve: a producer adds a field and the table must take it, as Kafka Connect's JDBC sink
(`auto.evolve`) and dlt do. A field with no column becomes a new nullable column, typed by the
first non-null value the window holds for it (old rows read NULL). A field whose name cannot be a
column (not a plain identifier, or one the database would confuse with another) is never spelled
into SQL: each row with a value for it goes to the dead letters with why, and the rest is written;
a null there is written as what it is, nothing. A field null in every row can wait for a value to
type its column by (`defer_nulls`): its rows read back the same without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Rejected = list[tuple[list[dict[str, Any]], str]]  # (rows, why), as RowsRejected takes them

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def not_an_identifier(name: str) -> str | None:
    """Why `name` cannot be a column, or None: the rule both sinks create tables by."""
    if IDENTIFIER.match(name):
        return None
    return f"field {name[:200]!r} is not a usable column name (letters, digits and _, not starting with a digit)"


def fields_of(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every field of the rows, in the order they first appear (one C-level update a row)."""
    seen: dict[str, Any] = {}
    for row in rows:
        seen.update(row)
    return list(seen)


@dataclass
class ColumnPlan:
    rows: list[dict[str, Any]]                                 # the rows to write
    rejected: Rejected = field(default_factory=list)           # rows refused for a field's name
    added: dict[str, Any] = field(default_factory=dict)        # new column -> the value to type it by


def plan_columns(rows: list[dict[str, Any]], columns: Iterable[str], why_unusable: Callable[[str], str | None],
                 fold: Callable[[str], str] = str, defer_nulls: bool = True) -> ColumnPlan:
    """The columns to add for `rows` to a table of `columns`, and the rows refused because a field
    can never be one. `fold` spells a name as the database compares it (SQLite ignores ASCII case):
    a field equal to a column or to another new field only under it is refused, the first of the
    new ones in name order kept."""
    existing = set(columns)
    folded = {fold(c): c for c in existing}
    new = [f for f in fields_of(rows) if f not in existing]
    refused: dict[str, str] = {}
    for name in sorted(new):
        why = why_unusable(name)
        twin = folded.get(fold(name))
        if why is None and twin is not None:
            why = f"field {name!r} and {'column' if twin in existing else 'field'} {twin!r} differ only in the " \
                  "case of their letters, which the database does not tell apart"
        if why is None:
            folded[fold(name)] = name
        else:
            refused[name] = why
    plan = ColumnPlan(rows=rows)
    if refused:
        plan.rows = []
        for row in rows:
            why = next((refused[f] for f, v in row.items() if v is not None and f in refused), None)
            if why is None:
                plan.rows.append(row)
            else:
                plan.rejected.append(([row], why))
    wanted = [f for f in fields_of(plan.rows) if f not in existing and f not in refused] if refused else new
    for name in wanted:
        value = next((v for r in plan.rows if (v := r.get(name)) is not None), None)
        if value is not None or not defer_nulls:
            plan.added[name] = value
    return plan
