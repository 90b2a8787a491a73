"""Reading a config file into a document: TOML or YAML, bounded in size, depth and values.

A config is a few kB; everything here only stops what is not one (/dev/zero, an alias bomb, a NUL in
a string) with a ConfigError that names the file, before anything else reads the document.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from rtstream.model.errors import ConfigError

MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a config is a few kB; this only stops /dev/zero and the like
MAX_DEPTH = 32  # tables and lists inside each other; real configs use 3 or 4
MAX_VALUES = 100_000  # values in the whole document, YAML aliases expanded


def read_file(path: Path) -> dict[str, Any]:
    """The document in a TOML or YAML config file; any malformed file is a ConfigError naming it."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError.at("", f"cannot read config {str(path)!r}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError.at("", f"{path}: larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MB: not a config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError.at("", f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} on line {line})") from None
    return _read_yaml(path, text) if path.suffix in (".yaml", ".yml") else _read_toml(path, text)


def _read_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer past Python's 4300-digit limit
        raise ConfigError.at("", f"{path}: invalid TOML: {_short(exc)}") from None
    except RecursionError:  # tomllib reads nested arrays and inline tables recursively
        raise ConfigError.at("", f"{path}: invalid TOML: nested too deeply") from None


def _read_yaml(path: Path, text: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        from rtstream.config.extras import install_hint

        raise ConfigError.at("", f"{path}: a YAML config needs PyYAML, which is not installed: "
                                 f"{install_hint('yaml')}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError.at("", f"{path}: invalid YAML{where}: {exc.problem or exc.context or 'malformed'}") from None
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer past Python's 4300-digit limit
        raise ConfigError.at("", f"{path}: invalid YAML: {_short(exc)}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError.at("", f"{path}: invalid YAML: nested too deeply") from None
    if not isinstance(doc, dict):
        raise ConfigError.at("", f"{path}: the top level must be a mapping")
    return doc


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if text.startswith("Exceeds the limit"):
        return "an integer of more than 4300 digits"
    return text if len(text) <= 200 else text[:197] + "..."


def check_shape(doc: Any, source: str = "config") -> None:
    """Refuse a document nested deeper than MAX_DEPTH, larger than MAX_VALUES once YAML aliases are
    expanded, holding itself (a YAML alias inside its own anchor), holding an integer past 64 bits
    or a string with a NUL character (no setting needs either, and every place that prints, stores
    or opens them would have to cope).

    YAML aliases are allowed (`<<: *kafka_defaults` is how YAML configs share settings), but PyYAML
    hands them over as one object reachable from many places, and everything after loading
    (interpolation, validation) walks the expanded tree. So the expanded tree is what is bounded:
    a "billion laughs" is refused after MAX_VALUES steps, in milliseconds, instead of growing
    to gigabytes. The walk is iterative, so the check itself cannot overflow the stack.
    """
    budget = MAX_VALUES
    # (value, dotted key, depth, ids of the containers above it)
    stack: list[tuple[Any, str, int, frozenset[int]]] = [(doc, "", 0, frozenset())]
    while stack:
        value, key, depth, above = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError.at("", f"{source}: more than {MAX_VALUES:,} values once YAML aliases are expanded "
                                     "(an alias bomb?)")
        if not isinstance(value, (dict, list)):
            if value.__class__ is int and not -(2**63) <= value < 2**64:
                raise ConfigError.at("", f"{source}: {key}: an integer of {value.bit_length()} bits is out of "
                                         "range (64 bits at most)")
            if value.__class__ is str and "\0" in value:  # no path, URL or name can hold one
                raise ConfigError.at("", f"{source}: {key}: a string holding a NUL character")
            continue
        if id(value) in above:
            raise ConfigError.at("", f"{source}: {key} holds itself (a YAML alias inside its own anchor)")
        if depth >= MAX_DEPTH:
            raise ConfigError.at("", f"{source}: nested deeper than {MAX_DEPTH} levels (at {key})")
        inner = above | {id(value)}
        if isinstance(value, dict):
            for k, v in value.items():
                stack.append((v, f"{key}.{k}" if key else str(k), depth + 1, inner))
        else:
            for i, v in enumerate(value):
                stack.append((v, f"{key}[{i}]", depth + 1, inner))
