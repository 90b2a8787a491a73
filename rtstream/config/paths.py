"""Relative paths in a config file mean "next to this file", wherever the daemon is started from.

A config that says `path = "data/in.jsonl"` used to read `./data/in.jsonl` of whatever folder the
command ran in, and to create its state there; it now reads the file beside the config. Values given
with `--set` stay relative to the working directory, as anything typed on a command line does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT_PATHS = (("daemon", "state_dir"), ("dead_letter", "path"), ("state", "path"), ("dags", "path"))
# component keys that name files, by component type ("*": any type)
COMPONENT_PATHS: dict[str, tuple[str, ...]] = {"file": ("path",), "sqlite": ("path",),
                                                "*": ("ssl_cafile", "ssl_certfile", "ssl_keyfile")}
DEFAULT_STATE_DIR = "var/rtstream"  # rtstream.config.models.DaemonConfig.state_dir


def _resolved(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value and not os.path.isabs(value) and "://" not in value:
        return str(base / value)
    return value


def _resolved_dsn(value: Any, base: Path) -> Any:
    """`sqlite:///relative.db` is a file beside the config too (`sqlite:////abs.db` stays as it is)."""
    if isinstance(value, str) and value.startswith("sqlite:///"):
        return "sqlite:///" + str(_resolved(value.removeprefix("sqlite:///"), base))
    return value


def resolve_paths(doc: dict[str, Any], base: Path) -> None:
    """Make every relative path in `doc` (before --set) relative to `base`, the config's folder."""
    for section, key in ROOT_PATHS:
        table = doc.get(section)
        if isinstance(table, dict) and key in table:
            table[key] = _resolved(table[key], base)
    daemon = doc.setdefault("daemon", {}) if isinstance(doc.get("daemon", {}), dict) else None
    if daemon is not None and "state_dir" not in daemon:
        daemon["state_dir"] = str(base / DEFAULT_STATE_DIR)
    pipeline = doc.get("pipeline")
    if isinstance(pipeline, dict) and isinstance(pipeline.get("python_path"), list):
        pipeline["python_path"] = [_resolved(p, base) for p in pipeline["python_path"]]
    for section in ("sources", "sinks"):
        bodies = doc.get(section)
        if not isinstance(bodies, dict):
            continue
        for body in bodies.values():
            if not isinstance(body, dict):
                continue
            for key in (*COMPONENT_PATHS.get(str(body.get("type")), ()), *COMPONENT_PATHS["*"]):
                if key in body:
                    body[key] = _resolved(body[key], base)
    for section in ("sources", "stages"):  # the sql source and the lookup stage read SQLite files
        bodies = doc.get(section)
        for body in bodies.values() if isinstance(bodies, dict) else ():
            if isinstance(body, dict) and "dsn" in body:
                body["dsn"] = _resolved_dsn(body["dsn"], base)


def input_problems(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Inputs that are not there: a file source's file (or, when it follows, its folder), a TLS file,
    a python_path folder. Checked by validate, so a typo is found before a run, not during it."""
    problems = []
    pipeline = doc.get("pipeline")
    for i, folder in enumerate(pipeline.get("python_path", []) if isinstance(pipeline, dict) else []):
        if isinstance(folder, str) and not os.path.isdir(folder):
            problems.append((f"pipeline.python_path[{i}]", f"no such folder {folder!r}"))
    for section in ("sources", "sinks"):
        bodies = doc.get(section)
        for name, body in (bodies.items() if isinstance(bodies, dict) else []):
            if not isinstance(body, dict):
                continue
            for key in COMPONENT_PATHS["*"]:
                if isinstance(body.get(key), str) and not os.path.isfile(body[key]):
                    problems.append((f"{section}.{name}.{key}", f"no such file {body[key]!r}"))
            path = body.get("path")
            if section == "sources" and body.get("type") == "file" and isinstance(path, str):
                if body.get("follow"):
                    if not os.path.isdir(os.path.dirname(path) or "."):
                        problems.append((f"sources.{name}.path", f"no such folder {os.path.dirname(path)!r} "
                                                                 "(a followed file may appear later, its folder must exist)"))
                elif not os.path.isfile(path):
                    problems.append((f"sources.{name}.path", f"no such file {path!r}"))
    return problems
