"""Turn pydantic's errors into `dotted.key: reason` lines a user can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def problems_from(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"] if not _is_union_tag(part))
        key = ".".join(p for p in (prefix, loc) if p)
        out.append((key, _reason(err)))
    return out


def _is_union_tag(part: object) -> bool:
    # pydantic puts the union member's type name in the location ("function-before[...]"); users never wrote it
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list[str]"})


def _reason(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    for lead in ("Value error, ", "Assertion failed, "):
        if msg.startswith(lead):
            msg = msg[len(lead):]
    if kind in {"string_type", "int_type", "int_parsing", "float_type", "float_parsing", "bool_type",
                "bool_parsing", "dict_type", "list_type", "literal_error"}:
        msg = f"{msg} (got {err.get('input')!r})"
    return msg
