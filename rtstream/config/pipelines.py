"""Several pipelines in one config: `[pipelines.NAME]` tables, or `pipelines = "FOLDER"` (a file per pipeline).

Each pipeline is validated as a whole single-pipeline config would be (its flow, window, sources,
stages, sinks, dead_letter, state, defaults, alert), with the shared `[daemon]` and `[dags]` beside
it; its state goes to its own folder, STATE_DIR/pipelines/NAME. Every problem is reported under the
key the user wrote (`pipelines.orders.sources.in.topic`), all at once. `[admin]` is shared: one server
shows every pipeline and DAG (rtstream.run.pipelines_daemon).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from rtstream.config.dags import DagsSettings
from rtstream.config.files import check_shape, read_file
from rtstream.config.load import apply_overrides, interpolate, validate
from rtstream.config.models import AdminConfig, AlertConfig, DaemonConfig, DagsConfig, RetryConfig, RootConfig
from rtstream.config.paths import input_problems, resolve_paths
from rtstream.config.problems import did_you_mean, problems_from
from rtstream.config.settings import Settings
from rtstream.config.writable import state_path_problems
from rtstream.model.errors import ConfigError
from rtstream.model.strict import Strict

# the keys of a [pipelines.NAME] table (and of a pipeline file): flow and python_path are [pipeline]'s
OWN_KEYS = ("flow", "python_path", "window", "sources", "stages", "sinks", "dead_letter", "state", "defaults", "alert")
_PIPELINE_KEYS = ("flow", "python_path")
MAX_PIPELINES = 64  # each is a runtime of this one process: its loops, clients and memory
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$")  # a folder name and a metrics label
FILE_SUFFIXES = (".toml", ".yaml", ".yml")


class SharedConfig(Strict):
    """What the pipelines of one daemon share; each pipeline's own keys are checked per pipeline."""

    pipelines: str | dict[str, Any] = Field(description='[pipelines.NAME] tables, each a whole pipeline (flow, '
                                            'window, sources, stages, sinks, dead_letter, state), or a folder of '
                                            'pipeline files, e.g. "pipelines" (each file a pipeline named after it)')
    daemon: DaemonConfig = DaemonConfig()
    admin: AdminConfig | None = None
    dags: DagsConfig | None = None
    defaults: RetryConfig = RetryConfig()  # a pipeline's own [pipelines.NAME.defaults] replaces it
    alert: AlertConfig | None = None


@dataclass
class PipelinesSettings:
    pipelines: dict[str, Settings]  # by name, in the order written (a folder's: by file name)
    daemon: DaemonConfig
    admin: AdminConfig | None
    dags: DagsSettings | None
    path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    dag_bag: Any = None  # the DAGs of [dags], when a `dag` sink had them loaded: the daemon runs this bag


def has_pipelines(doc: dict[str, Any]) -> bool:
    return "pipelines" in doc


def load_pipelines(path: Path, overrides: list[str] | None = None, env: Any = None, check_paths: bool = True,
                   check_inputs: bool = False, doc: dict[str, Any] | None = None) -> PipelinesSettings:
    """Every pipeline of the config at `path`, validated; ConfigError listing every problem otherwise."""
    overrides = list(overrides or [])
    doc = read_file(path) if doc is None else doc
    check_shape(doc, str(path))
    env = os.environ if env is None else env
    problems: list[tuple[str, str]] = []
    doc = interpolate(doc, env, problems=problems)
    base = path.resolve().parent
    shared = {k: v for k, v in doc.items() if k != "pipelines"}
    resolve_paths(shared, base)  # daemon.state_dir, dags.path beside the config file
    mine = [o.strip() for o in overrides if o.partition("=")[0].strip().split(".")[0] == "pipelines"]
    apply_overrides(shared, [o for o in overrides if o.strip() not in mine])
    check_shape(shared, "--set")
    for key in ("pipeline", "window", "sources", "stages", "sinks", "dead_letter", "state"):
        if key in shared:
            problems.append((key, f"with [pipelines], each pipeline's {key} goes in its own table "
                                  f"([pipelines.NAME.{key}] or NAME's file), not at the top"))
    cfg = None
    try:
        cfg = SharedConfig.model_validate({**shared, "pipelines": doc.get("pipelines")})
    except ValidationError as exc:
        problems.extend(p for p in problems_from(exc, model=SharedConfig) if p[0].split(".")[0] not in
                        ("window", "sources", "stages", "sinks", "dead_letter", "state", "pipeline", "pipelines"))
    if not isinstance(doc.get("pipelines"), (str, dict)):
        problems.append(("pipelines", f"must be a folder of pipeline files (a string) or [pipelines.NAME] tables "
                                      f"(got {type(doc.get('pipelines')).__name__})"))
    tables = _tables(doc.get("pipelines"), base, env, problems)
    for item in mine:  # each reaches one pipeline: `pipelines.NAME.KEY=VALUE`
        parts = item.partition("=")[0].strip().split(".")
        if len(parts) < 3 or (tables and parts[1] not in tables):
            why = f"no pipeline {parts[1]!r} (pipelines: {', '.join(tables)})" if len(parts) >= 3 else \
                "set one pipeline's key: pipelines.NAME.KEY=VALUE"
            problems.append(("--set", f"{item.partition('=')[0].strip()}: {why}"))
    workers = shared["daemon"].get("workers") if isinstance(shared.get("daemon"), dict) else None
    if isinstance(workers, int) and workers > 1:
        problems.append(("daemon.workers", "worker processes are for a config of one pipeline; with several "
                                           "pipelines each runs in this one process"))
    out: dict[str, Settings] = {}
    bag = _dag_bag(cfg, tables)  # imported once for every pipeline's `dag` sinks and the daemon
    for name, (table, table_base) in tables.items():
        sub = _sub_doc(name, table, shared, table_base, [o for o in mine if o.startswith(f"pipelines.{name}.")],
                       problems)
        if sub is None:
            continue
        found: list[tuple[str, str]] = []
        if check_inputs:
            found += input_problems(sub)
        if check_paths and cfg is not None:
            try:
                found += state_path_problems(RootConfig.model_validate(sub))
            except ValidationError:
                pass  # validate reports why
        search = [*(Path(d) for d in sub["pipeline"].get("python_path", []) if isinstance(d, str)), table_base,
                  Path.cwd()] if isinstance(sub["pipeline"].get("python_path", []), list) else [table_base, Path.cwd()]
        try:
            settings = validate(sub, path, search, found, bag)
        except ConfigError as exc:
            found = exc.problems
            settings = None
        own = set(table) if isinstance(table, dict) else set()
        problems.extend(p for p in (_outer(name, k, r, own) for k, r in found) if p not in problems)
        if settings is not None:
            settings.overrides = list(overrides)
            out[name] = settings
    problems += _shared_resources(out, cfg)
    if problems:
        raise ConfigError(problems)
    assert cfg is not None
    dags = None if cfg.dags is None else DagsSettings(Path(cfg.dags.path), cfg.daemon, cfg.admin)
    return PipelinesSettings(out, cfg.daemon, cfg.admin, dags, path, overrides, bag)


def _shared_resources(pipelines: dict[str, Settings], cfg: SharedConfig | None) -> list[tuple[str, str]]:
    """What two pipelines of one process cannot share: a Kafka consumer group (the group would split the
    partitions between them, each reading part of the input) and a listen address."""
    problems: list[tuple[str, str]] = []
    groups: dict[str, str] = {}
    listens: dict[str, str] = {"admin.listen": cfg.admin.listen} if cfg is not None and cfg.admin else {}
    owner = {v: k for k, v in listens.items()}
    for name, settings in pipelines.items():
        for comp in settings.components.values():
            where = f"pipelines.{name}.{comp.kind}s.{comp.name}"
            group = getattr(comp.config, "group_id", None)
            if comp.kind == "source" and isinstance(group, str):
                first = groups.setdefault(group, where)
                if first != where and not first.startswith(f"pipelines.{name}."):
                    problems.append((f"{where}.group_id", f"the consumer group {group!r} is {first}'s too: two "
                                                          "pipelines in one group would each read part of the "
                                                          "partitions; give each its own group_id"))
            listen = getattr(comp.config, "listen", None)
            if isinstance(listen, str):
                first = owner.setdefault(listen, f"{where}.listen")
                if first != f"{where}.listen":
                    problems.append((f"{where}.listen", f"{listen} is {first} already: give each its own address"))
    return problems


def _dag_bag(cfg: SharedConfig | None, tables: dict[str, tuple[Any, Path]]) -> Any:
    """The DagBag of `[dags] path` when a pipeline has a `dag` sink (None otherwise, or when it cannot load:
    the daemon's start says why)."""
    sinks = [s for t, _ in tables.values() if isinstance(t, dict) and isinstance(t.get("sinks"), dict)
             for s in t["sinks"].values()]
    if cfg is None or cfg.dags is None or not any(isinstance(s, dict) and s.get("type") == "dag" for s in sinks):
        return None
    from rtstream.airflow.dagbag import load
    from rtstream.airflow.states import DagRefused

    try:
        return load(Path(cfg.dags.path))
    except DagRefused:
        return None


def _tables(value: Any, base: Path, env: Any, problems: list[tuple[str, str]]) -> dict[str, tuple[Any, Path]]:
    """NAME -> (its table, the folder its relative paths are relative to)."""
    if isinstance(value, dict):
        if not value:
            problems.append(("pipelines", "no pipeline: add a [pipelines.NAME] table"))
        if len(value) > MAX_PIPELINES:
            problems.append(("pipelines", f"{len(value)} pipelines: one daemon runs at most {MAX_PIPELINES}"))
            return {}
        return {str(k): (v, base) for k, v in value.items() if _name_ok(str(k), problems)}
    if not isinstance(value, str):
        return {}  # SharedConfig said what is wrong with it
    folder = Path(value) if os.path.isabs(value) else base / value
    if not folder.is_dir():
        problems.append(("pipelines", f"{str(folder)!r} is not a folder of pipeline files"))
        return {}
    out: dict[str, tuple[Any, Path]] = {}
    files = sorted(f for f in folder.iterdir() if f.suffix in FILE_SUFFIXES and not f.name.startswith("."))
    if len(files) > MAX_PIPELINES:
        problems.append(("pipelines", f"{len(files)} pipeline files in {str(folder)!r}: one daemon runs at most "
                                      f"{MAX_PIPELINES}"))
        return {}
    for file in files:
        if file.suffix not in FILE_SUFFIXES or not file.is_file() or file.name.startswith("."):
            continue
        if file.stem in out:
            problems.append((f"pipelines.{file.stem}", f"two files name this pipeline ({file.name} and another)"))
            continue
        if not _name_ok(file.stem, problems):
            continue
        try:
            body = read_file(file)
            check_shape(body, str(file))
        except ConfigError as exc:
            problems.extend((f"pipelines.{file.stem}", r) for _, r in exc.problems)
            continue
        out[file.stem] = (interpolate(body, env, f"pipelines.{file.stem}", problems), file.parent)
    if not out and not problems:
        problems.append(("pipelines", f"no pipeline file (*.toml, *.yaml) in {str(folder)!r}"))
    return out


def _name_ok(name: str, problems: list[tuple[str, str]]) -> bool:
    if SAFE_NAME.match(name):
        return True
    problems.append((f"pipelines.{name!r}", "a pipeline's name must be letters, digits, _ and - (at most 63): it "
                                           "names its state folder and its metrics"))
    return False


def _sub_doc(name: str, table: Any, shared: dict[str, Any], base: Path, overrides: list[str],
             problems: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The pipeline `name` as a single-pipeline config, its state in a folder of its own."""
    where = f"pipelines.{name}"
    if not isinstance(table, dict):
        problems.append((where, "must be a table (its flow, window, sources, sinks ...)"))
        return None
    bad = [k for k in table if k not in OWN_KEYS]
    for key in bad:
        problems.append((f"{where}.{key}", f"unknown key{did_you_mean(str(key), list(OWN_KEYS))} (a pipeline's "
                                           f"keys: {', '.join(OWN_KEYS)}; daemon, admin and dags are shared)"))
    sub: dict[str, Any] = {k: v for k, v in table.items() if k in OWN_KEYS and k not in _PIPELINE_KEYS}
    sub["pipeline"] = {"name": name, **{k: table[k] for k in _PIPELINE_KEYS if k in table}}
    resolve_paths(sub, base)
    sub.pop("daemon")  # resolve_paths' default state_dir; the shared one is what counts
    try:
        apply_overrides(sub, [_inner(name, o) for o in overrides])
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    daemon = dict(shared.get("daemon") or {}) if isinstance(shared.get("daemon"), dict) else {}
    daemon["state_dir"] = str(Path(str(daemon.get("state_dir", base / "var/rtstream"))) / "pipelines" / name)
    sub["daemon"] = daemon
    for key in ("dags", "defaults", "alert"):
        if key in shared and key not in sub:
            sub[key] = shared[key]
    return None if bad else sub


def _inner(name: str, override: str) -> str:
    """`pipelines.orders.flow=...` -> `pipeline.flow=...`; `pipelines.orders.window.size=1m` -> `window.size=1m`."""
    rest = override.removeprefix(f"pipelines.{name}.")
    return f"pipeline.{rest}" if rest.split("=")[0].split(".")[0].strip() in _PIPELINE_KEYS else rest


def _outer(name: str, key: str, reason: str, own: set[str]) -> tuple[str, str]:
    """A problem of the pipeline's single-pipeline config, under the key the user wrote."""
    reason = reason.replace("pipeline.flow", f"pipelines.{name}.flow")
    head = key.split(".")[0].split("[")[0]
    if head in ("daemon", "dags", "admin") or key.startswith("--set") or not key:
        return key, reason
    if key.startswith("pipeline."):
        key = key.removeprefix("pipeline.")
    elif key == "pipeline":
        key = ""
    if head in ("defaults", "alert") and head not in own:  # the shared table's problem
        return key, reason
    return (f"pipelines.{name}.{key}" if key else f"pipelines.{name}"), reason
