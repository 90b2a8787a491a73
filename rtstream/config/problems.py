"""Turn pydantic's errors into `dotted.key: reason` lines a user can act on.

A reason never shows the value of a secret: a SecretStr field, or any key whose name says it holds
a credential (token, password, secret, dsn, ...), even when the value has the wrong type (a token
written as a number is still the token). A password inside a URL is masked in every reason.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

# header values are secrets too: `headers = { Authorization = "..." }` is how many APIs are called
_SECRET_NAME = re.compile(r"token|passw|secret|dsn|credential|api[_-]?key|auth|private[_-]?key|cookie|^headers$", re.I)
_URL_PASSWORD = re.compile(r"(://[^/\s:@'\"]*):[^\s@'\"]*@")  # a password may hold a raw /
HIDDEN = "a secret: its value is not shown"


def problems_from(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors():
        parts = [part for part in err["loc"] if not _is_union_tag(part)]
        loc = ".".join(str(part) for part in parts)
        key = ".".join(p for p in (prefix, loc) if p)
        secret = is_secret_key(parts, model)
        reason = _reason(err, secret)
        if err["type"] == "extra_forbidden" and parts:
            reason += did_you_mean(str(parts[-1]), _field_names(model, parts[:-1]))
        out.append((key, mask_url_passwords(reason)))
    return out


def did_you_mean(word: str, known: list[str]) -> str:
    """` (did you mean 'follow'?)` for the known name nearest to `word`, or nothing."""
    near = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def with_suggestions(problems: list[tuple[str, str]], names: list[str]) -> list[tuple[str, str]]:
    """The flow's "'x' is not defined" problems, each with the nearest defined name."""
    out = []
    for key, reason in problems:
        m = re.match(r"^'([^']*)' is not defined", reason)
        out.append((key, reason + did_you_mean(m.group(1), names) if m else reason))
    return out


def import_hint(reason: str, call: object, search_dirs: list[Any]) -> str:
    """A module that cannot be imported: say where rtstream looked and which folder to add."""
    if not reason.startswith("cannot import module") or not isinstance(call, str):
        return reason
    module = call.partition(":")[0]
    looked = ", ".join(str(d) for d in search_dirs)
    return (f"{reason}; looked in {looked} and the installed packages: add the folder holding "
            f"{module.replace('.', '/')}.py to [pipeline] python_path (relative to this config file), "
            f"e.g. python_path = [\"../dags\"]")


def _field_names(model: type[BaseModel] | None, parts: list[Any]) -> list[str]:
    """The keys the model accepts at `parts` (a nested table), for suggesting the nearest one."""
    cls: Any = model
    for part in parts:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or not isinstance(part, str):
            return []
        field = cls.model_fields.get(part)
        if field is None:
            return []
        cls = next((m for m in _members(field.annotation) if isinstance(m, type) and issubclass(m, BaseModel)), None)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return list(cls.model_fields)
    return []


def mask_url_passwords(text: str) -> str:
    """`postgresql://app:hunter2@db/x` -> `postgresql://app:***@db/x`."""
    return _URL_PASSWORD.sub(r"\1:***@", text) if "://" in text else text


def is_secret_key(loc: list[Any], model: type[BaseModel] | None = None) -> bool:
    """Whether the value at `loc` is a secret: by its key's name, or a SecretStr field of `model`."""
    if any(isinstance(part, str) and _SECRET_NAME.search(part) for part in loc):
        return True
    cls: Any = model
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or not isinstance(part, str):
            return False
        field = cls.model_fields.get(part)
        if field is None:
            return False
        members = _members(field.annotation)
        if SecretStr in members:
            return True
        cls = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None)
    return False


def _members(annotation: Any) -> list[Any]:
    """The types a field may hold: Optional/Union members, Annotated unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _is_union_tag(part: object) -> bool:
    # pydantic puts the union member's type name in the location ("function-before[...]"); users never wrote it
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list[str]"})


def _reason(err: Any, secret: bool = False) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    for lead in ("Value error, ", "Assertion failed, "):
        if msg.startswith(lead):
            msg = msg[len(lead):]
    if secret:
        value = err.get("input")
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            text = value if isinstance(value, str) else _shown(value)
            if len(text) >= 3:
                msg = msg.replace(text, "***")  # a validator may have quoted it
        return f"{msg} ({HIDDEN})"
    if kind in {"string_type", "int_type", "int_parsing", "float_type", "float_parsing", "bool_type",
                "bool_parsing", "dict_type", "list_type", "literal_error"}:
        msg = f"{msg} (got {_shown(err.get('input'))})"
    return msg


def _shown(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer past the 4300-digit printing limit
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else "an unprintable value"
    return text if len(text) <= 120 else text[:117] + "..."
