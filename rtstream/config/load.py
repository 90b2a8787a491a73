"""Read a config file, interpolate ${VAR}, apply --set overrides, validate everything before start."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rtstream.config.airflow_keys import bind_python_calls, take_airflow_keys
from rtstream.config.asset_sinks import asset_sink_problems
from rtstream.config.branches import branch_problems
from rtstream.config.count_checks import count_window_problems
from rtstream.config.dag_sinks import dag_sink_problems
from rtstream.config.extras import extras_problems
from rtstream.config.files import check_shape, read_file
from rtstream.config.flow import Flow
from rtstream.config.graph import flow_of, join_side_source
from rtstream.config.join_checks import join_field_problems, outer_join_problems
from rtstream.config.models import RootConfig
from rtstream.config.paths import input_problems, resolve_paths
from rtstream.config.problems import did_you_mean, problems_from, with_suggestions
from rtstream.config.settings import ComponentSettings, Settings
from rtstream.config.shared_sinks import shared_sink_problems
from rtstream.config.stage_window import renamed, stage_window_problems, with_stage_window
from rtstream.config.writable import state_path_problems
from rtstream.model.errors import ConfigError
from rtstream.model.registry import Kind, known, lookup

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SECTIONS: dict[str, Kind] = {"sources": "source", "stages": "stage", "sinks": "sink"}


def interpolate(doc: Any, env: dict[str, str] | os._Environ[str], key: str = "",
                problems: list[tuple[str, str]] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string value; `$$` is a literal `$`.

    Every variable that is not set is reported at once (in `problems`, or raised when None)."""
    own = problems is None
    found: list[tuple[str, str]] = [] if problems is None else problems
    out = _interpolate(doc, env, key, found)
    if own and found:
        raise ConfigError(found)
    return out


def _interpolate(doc: Any, env: Any, key: str, problems: list[tuple[str, str]]) -> Any:
    if isinstance(doc, dict):
        return {k: _interpolate(v, env, f"{key}.{k}" if key else str(k), problems) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_interpolate(v, env, f"{key}[{i}]", problems) for i, v in enumerate(doc)]
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
        problems.append((key, f"environment variable {name} is not set (write ${{{name}:-default}} for a default)"))
        return ""

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
        except (RecursionError, ValueError):  # nested too deeply; an integer past 4300 digits
            raise ConfigError.at(path.strip(), "the value is nested too deeply or too long to read") from None
        node = doc
        parts = path.strip().split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError.at(path, f"cannot set inside {part!r}: it is not a table")
            node = nxt
        node[parts[-1]] = value


def load_settings(path: str | Path | None = None, overrides: list[str] | None = None,
                  doc: dict[str, Any] | None = None, env: Any = None, check_paths: bool = True,
                  check_inputs: bool = False, dag_bag: Any = None) -> Settings:
    """Everything a run needs, validated; raises ConfigError listing every problem found.

    `check_paths`: refuse a state_dir (and dead-letter or checkpoint directory) that cannot be
    created or written; commands that only read the state (`runs`, `status`) pass False.
    `check_inputs`: refuse input files and folders that are not there (validate; a run finds out
    at start, from the component that needs them).
    """
    p = Path(path) if path is not None else None
    if doc is None:
        assert p is not None
        doc = read_file(p)
    check_shape(doc, str(p) if p is not None else "config")
    problems: list[tuple[str, str]] = []
    doc = interpolate(doc, os.environ if env is None else env, problems=problems)
    base = p.resolve().parent if p is not None else Path.cwd()
    resolve_paths(doc, base)  # before --set: a path typed on the command line is relative to where it is typed
    apply_overrides(doc, overrides or [])
    if overrides:
        check_shape(doc, "--set")
    pipeline = doc.get("pipeline")
    extra_dirs = pipeline.get("python_path") if isinstance(pipeline, dict) else None
    search_dirs = [*(Path(d) for d in extra_dirs if isinstance(d, str))] if isinstance(extra_dirs, list) else []
    search_dirs += [base, Path.cwd()]
    if check_inputs:
        problems += input_problems(doc)
    if check_paths:  # in the same pass as the rest, when the top-level sections read
        try:
            problems += state_path_problems(RootConfig.model_validate(doc))
        except ValidationError:
            pass  # validate reports why
    settings = validate(doc, p, search_dirs, problems, dag_bag)
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


def validate(doc: dict[str, Any], path: Path | None, search_dirs: list[Path],
             problems: list[tuple[str, str]] | None = None, dag_bag: Any = None) -> Settings:
    """The settings of `doc`; every problem found (with those already in `problems`) raised at once.
    `dag_bag`: the DAGs of `[dags] path` when already loaded (not imported again)."""
    problems = [] if problems is None else problems
    root = None
    doc, window_of = with_stage_window(doc)  # a stage's own window may stand for [window]
    try:
        root = RootConfig.model_validate(doc)
    except ValidationError as exc:
        problems.extend(renamed(problems_from(exc, model=RootConfig), window_of))
    components: dict[str, ComponentSettings] = {}
    kinds: dict[str, str] = {}
    airflow_keys: dict[str, dict[str, Any]] = {}
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
            if isinstance(body, dict):
                body = dict(body)
                airflow_keys[name] = take_airflow_keys(body, where, problems)
            comp = _component(kind, name, body, where, problems)
            if comp is not None:
                components[name] = comp
    flow = None
    if root is not None:
        try:
            flow = flow_of(root.pipeline.flow, kinds, _tables(doc.get("stages")))
        except ConfigError as exc:
            problems.extend(with_suggestions(exc.problems, list(kinds)))
    elif isinstance(doc.get("pipeline"), dict) and isinstance(doc["pipeline"].get("flow"), str):
        try:  # the flow's names are worth checking even when another [pipeline] key is wrong
            flow_of(doc["pipeline"]["flow"], kinds, _tables(doc.get("stages")))
        except ConfigError as exc:
            problems.extend(with_suggestions(exc.problems, list(kinds)))
    bags = {root.dags.path: dag_bag} if root is not None and root.dags is not None and dag_bag is not None else {}
    if root is not None and flow is not None and all(n in components for n in kinds):
        _cross_checks(root, flow, components, search_dirs, problems, airflow_keys, bags)
    problems.extend(extras_problems(root, components))  # the components that read, even when another key is wrong
    if problems:
        raise ConfigError(problems)
    assert root is not None and flow is not None
    return Settings(root, flow, components, path, search_dirs, dag_bag=next(iter(bags.values()), None))


def _tables(section: Any) -> dict[str, Any]:
    return {k: v for k, v in section.items() if isinstance(v, dict)} if isinstance(section, dict) else {}


def _component(kind: Kind, name: str, body: Any, where: str, problems: list[tuple[str, str]]) -> ComponentSettings | None:
    if not isinstance(body, dict):
        problems.append((where, "must be a table"))
        return None
    type_name = body.get("type")
    if type_name is None:
        problems.append((f"{where}.type", f"required key is missing (one of: {', '.join(known(kind))})"))
        return None
    cls = lookup(kind, str(type_name))
    if cls is None:
        problems.append((f"{where}.type", f"unknown {kind} type {type_name!r}{did_you_mean(str(type_name), known(kind))} "
                                          f"(known: {', '.join(known(kind))})"))
        return None
    try:
        cfg = cls.Config.model_validate(body)  # type: ignore[attr-defined]
    except ValidationError as exc:
        problems.extend(problems_from(exc, where, cls.Config))  # type: ignore[attr-defined]
        return None
    return ComponentSettings(name, kind, cls, cfg)


def _cross_checks(root: RootConfig, flow: Flow, components: dict[str, ComponentSettings], search_dirs: list[Path],
                  problems: list[tuple[str, str]], airflow_keys: dict[str, dict[str, Any]],
                  bags: dict[str, Any]) -> None:
    problems.extend(branch_problems(root, flow, components))
    problems.extend(shared_sink_problems(root, flow, components))
    problems.extend(outer_join_problems(root, flow, components))
    problems.extend(join_field_problems(flow, components))
    problems.extend(stage_window_problems(root, flow, components))  # first: the checks below read root.window
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
    for name in flow.stages:  # a join's sides must be sources of the flow
        cfg = components[name].config
        for side in ("left", "right"):  # a side may name its source's own stage: its records keep the source's name
            if isinstance(getattr(cfg, side, None), str) and flow.graph is not None:
                setattr(cfg, side, join_side_source(flow.graph, name, getattr(cfg, side)))
        sides = getattr(cfg, "flow_problems", None)
        if sides is not None:
            problems.extend(sides(name, flow.sources, root.window.type))
    stateful = [n for n in flow.stages if getattr(components[n].cls, "stateful", False)]
    awaiting = [n for n in flow.stages if getattr(components[n].cls, "awaits_per_batch", False)]
    if stateful and awaiting:
        problems.append((f"stages.{stateful[0]}", f"keeps state in the fold, which cannot run yet beside "
                                                  f"{awaiting[0]!r} (a stage that awaits per batch)"))
    eos = [name for name in flow.sinks if getattr(components[name].config, "exactly_once", False)]
    not_kafka = [name for name in flow.sources if getattr(components[name].cls, "type_name", "") != "kafka"]
    for name in eos:
        if not_kafka:
            problems.append((f"sinks.{name}.exactly_once", f"needs every source to be Kafka, so their offsets can be "
                                                           f"committed in the transaction ({', '.join(not_kafka)} is not)"))
    if len(eos) > 1:
        problems.append((f"sinks.{eos[1]}.exactly_once", "only one sink can commit the offsets in its transactions"))
    bind_python_calls(root, flow, components, search_dirs, problems, airflow_keys)
    problems.extend(dag_sink_problems(root, flow.sinks, components, bags))
    problems.extend(count_window_problems(root, flow, components))
    problems.extend(asset_sink_problems(root, flow.sinks, components))
