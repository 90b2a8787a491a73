"""Read a config file, interpolate ${VAR}, apply --set overrides, validate everything before start."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rtstream.config.errors import problems_from
from rtstream.config.models import RootConfig
from rtstream.core.flow import Flow, parse_flow, resolve_flow
from rtstream.core.registry import Kind, known, lookup
from rtstream.errors import ConfigError

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SECTIONS: dict[str, Kind] = {"sources": "source", "stages": "stage", "sinks": "sink"}


@dataclass
class Component:
    name: str
    kind: Kind
    cls: type
    config: BaseModel


@dataclass
class Settings:
    root: RootConfig
    flow: Flow
    components: dict[str, Component]
    path: Path | None = None
    search_dirs: list[Path] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)

    def of(self, names: list[str]) -> list[Component]:
        return [self.components[n] for n in names]


def read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError.at("", f"cannot read config {str(path)!r}: {exc.strerror}") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError.at("", "YAML configs need PyYAML: pip install 'rtstream[yaml]'") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError.at("", f"{path}: invalid YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError.at("", f"{path}: the top level must be a mapping")
        return doc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.at("", f"{path}: invalid TOML: {exc}") from None


def interpolate(doc: Any, env: dict[str, str] | os._Environ[str], key: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string value; `$$` is a literal `$`."""
    if isinstance(doc, dict):
        return {k: interpolate(v, env, f"{key}.{k}" if key else str(k)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [interpolate(v, env, f"{key}[{i}]") for i, v in enumerate(doc)]
    if not isinstance(doc, str) or "$" not in doc:
        return doc

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError.at(key, f"environment variable {name} is not set (write ${{{name}:-default}} for a default)")

    return _VAR.sub(sub, doc)


def apply_overrides(doc: dict[str, Any], overrides: list[str]) -> None:
    """`window.size=10s` sets doc["window"]["size"]; values are read as TOML when they parse."""
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise ConfigError.at("--set", f"expected KEY=VALUE, e.g. window.size=10s (got {item!r})")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = doc
        parts = path.strip().split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError.at(path, f"cannot set inside {part!r}: it is not a table")
            node = nxt
        node[parts[-1]] = value


def load_settings(path: str | Path | None = None, overrides: list[str] | None = None,
                  doc: dict[str, Any] | None = None, env: Any = None) -> Settings:
    """Everything a run needs, validated; raises ConfigError listing every problem found."""
    p = Path(path) if path is not None else None
    if doc is None:
        assert p is not None
        doc = read_file(p)
    doc = interpolate(doc, os.environ if env is None else env)
    apply_overrides(doc, overrides or [])
    search_dirs = [p.resolve().parent] if p is not None else []
    search_dirs.append(Path.cwd())
    settings = validate(doc, p, search_dirs)
    settings.overrides = list(overrides or [])
    return settings


LIVE_KEYS = ("daemon.log_level", "defaults.retries", "defaults.retry_delay", "defaults.max_retry_delay",
             "defaults.timeout")


def flat(settings: Settings) -> dict[str, Any]:
    """Every setting under its dotted key, secrets as they are (for comparing two loads only)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = value

    walk("", settings.root.model_dump(exclude={"sources", "stages", "sinks"}))
    for name, comp in settings.components.items():
        walk(f"{comp.kind}s.{name}", comp.config.model_dump())
    out["pipeline.flow"] = str(settings.flow)
    return out


def reload_changes(old: Settings, new: Settings) -> tuple[dict[str, Any], list[str]]:
    """(changes that apply live, keys that changed but need a restart)."""
    a, b = flat(old), flat(new)
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    live = {k: b.get(k) for k in changed if k in LIVE_KEYS}
    return live, [k for k in changed if k not in LIVE_KEYS]


def validate(doc: dict[str, Any], path: Path | None, search_dirs: list[Path]) -> Settings:
    problems: list[tuple[str, str]] = []
    root = None
    try:
        root = RootConfig.model_validate(doc)
    except ValidationError as exc:
        problems.extend(problems_from(exc))
    components: dict[str, Component] = {}
    kinds: dict[str, str] = {}
    for section, kind in SECTIONS.items():
        bodies = doc.get(section)
        if not isinstance(bodies, dict):
            continue  # RootConfig has said what is wrong with it
        for name, body in bodies.items():
            where = f"{section}.{name}"
            if name in kinds:
                problems.append((where, f"the name {name!r} is already used by a {kinds[name]}"))
                continue
            kinds[name] = kind
            comp = _component(kind, name, body, where, problems)
            if comp is not None:
                components[name] = comp
    flow = None
    if root is not None:
        try:
            flow = resolve_flow(parse_flow(root.pipeline.flow), kinds)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if root is not None and flow is not None and not problems:
        _cross_checks(root, flow, components, search_dirs, problems)
    if problems:
        raise ConfigError(problems)
    assert root is not None and flow is not None
    return Settings(root, flow, components, path, search_dirs)


def _component(kind: Kind, name: str, body: Any, where: str, problems: list[tuple[str, str]]) -> Component | None:
    if not isinstance(body, dict):
        problems.append((where, "must be a table"))
        return None
    type_name = body.get("type")
    if type_name is None:
        problems.append((f"{where}.type", f"required key is missing (one of: {', '.join(known(kind))})"))
        return None
    cls = lookup(kind, str(type_name))
    if cls is None:
        problems.append((f"{where}.type", f"unknown {kind} type {type_name!r} (known: {', '.join(known(kind))})"))
        return None
    try:
        cfg = cls.Config.model_validate(body)  # type: ignore[attr-defined]
    except ValidationError as exc:
        problems.extend(problems_from(exc, where))
        return None
    return Component(name, kind, cls, cfg)


def _cross_checks(root: RootConfig, flow: Flow, components: dict[str, Component], search_dirs: list[Path],
                  problems: list[tuple[str, str]]) -> None:
    from rtstream.stages.base import load_callable

    if root.window.time == "source":
        for name in flow.sources:
            if not getattr(components[name].cls, "has_source_time", True):
                problems.append(("window.time", f"source {name!r} ({components[name].cls.type_name}) keeps no "  # type: ignore[attr-defined]
                                                "time of its own; use time = \"event\" with a time_field"))
    from rtstream.stages.aggregate import AggregateConfig, build_aggregator

    for name in flow.stages:
        cfg = components[name].config
        if isinstance(cfg, AggregateConfig) and any(":" in e for e in cfg.aggregates.values()):
            try:
                build_aggregator(cfg, search_dirs)
            except (ValueError, TypeError) as exc:
                problems.append((f"stages.{name}.aggregates", str(exc)))
    eos = [name for name in flow.sinks if getattr(components[name].config, "exactly_once", False)]
    not_kafka = [name for name in flow.sources if getattr(components[name].cls, "type_name", "") != "kafka"]
    for name in eos:
        if not_kafka:
            problems.append((f"sinks.{name}.exactly_once", f"needs every source to be Kafka, so their offsets can be "
                                                           f"committed in the transaction ({', '.join(not_kafka)} is not)"))
    if len(eos) > 1:
        problems.append((f"sinks.{eos[1]}.exactly_once", "only one sink can commit the offsets in its transactions"))
    for section, names in (("sources", flow.sources), ("stages", flow.stages), ("sinks", flow.sinks)):
        for name in names:
            call = getattr(components[name].config, "call", None)
            if call is not None:
                try:
                    load_callable(call, search_dirs)
                except ValueError as exc:
                    problems.append((f"{section}.{name}.call", str(exc)))
