"""The settings of `rtstream run --dags PATH` and of a config with `[dags] path = "..."`.

Two shapes, told apart by `[pipeline]`:
- beside a pipeline: the whole config is validated as usual (`[dags]` is a table of RootConfig) and
  both run in one daemon;
- alone: only `[dags]`, `[daemon]` (its state_dir, shutdown_grace, log_level and log_format) and
  `[admin]` (the status page with the DAGs' grid), validated by `DagsOnlyConfig` with the same dotted-key errors.
`--dags PATH` (relative to where it is typed) sets `dags.path`; without `-c` and with no config file
at the default place, it needs no config at all (the state then goes to ./var/rtstream).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rtstream.config.files import check_shape, read_file
from rtstream.config.load import apply_overrides, interpolate, load_settings
from rtstream.config.models import AdminConfig, AlertConfig, DaemonConfig, DagsConfig
from rtstream.config.paths import resolve_paths
from rtstream.config.problems import problems_from
from rtstream.config.settings import Settings
from rtstream.model.errors import ConfigError
from rtstream.model.strict import Strict

PIPELINE_KEYS = ("pipeline", "window", "sources", "stages", "sinks")


class DagsOnlyConfig(Strict):
    """A config that runs DAGs and no pipeline."""

    dags: DagsConfig
    daemon: DaemonConfig = DaemonConfig()
    admin: AdminConfig | None = None  # the status page with the DAGs' grid, /api/dags, /metrics
    alert: AlertConfig | None = None  # a webhook told of each failed DAG run


@dataclass(frozen=True)
class DagsSettings:
    path: Path
    daemon: DaemonConfig
    admin: AdminConfig | None = None
    watcher_window: float | None = None  # seconds; None: each AssetWatcher's trigger's poll_interval
    alert: AlertConfig | None = None  # the config's [alert]: told of each failed DAG run

    @property
    def store_path(self) -> Path:
        return Path(self.daemon.state_dir) / "dag_runs.db"


def load_dags_settings(config: Path | None, overrides: list[str], dags_path: str | None,
                       env: Any = None) -> tuple[DagsSettings, Settings | None]:
    """(the DAG settings, the pipeline's settings when the config has a pipeline); ConfigError otherwise."""
    overrides = list(overrides)
    if dags_path is not None:
        overrides.append(f"dags.path={json.dumps(os.path.abspath(dags_path))}")
    doc = read_file(config) if config is not None else {}
    if any(key in doc for key in PIPELINE_KEYS):
        assert config is not None
        settings = load_settings(config, overrides)
        if settings.root.dags is None:
            raise ConfigError.at("dags.path", "required: the DAG file or folder to run (or give --dags PATH)")
        return DagsSettings(Path(settings.root.dags.path), settings.root.daemon, settings.root.admin,
                            settings.root.dags.watcher_window, settings.root.alert), settings
    check_shape(doc, str(config) if config is not None else "config")
    problems: list[tuple[str, str]] = []
    doc = interpolate(doc, os.environ if env is None else env, problems=problems)
    resolve_paths(doc, config.resolve().parent if config is not None else Path.cwd())
    apply_overrides(doc, overrides)
    check_shape(doc, "--set")
    if "dags" not in doc:
        problems.append(("dags.path", "required: the DAG file or folder to run (give --dags PATH or a [dags] table "
                                      "with path = \"...\"), or a [pipeline] to run a pipeline"))
    try:
        cfg = DagsOnlyConfig.model_validate(doc)
    except ValidationError as exc:
        problems.extend(p for p in problems_from(exc, model=DagsOnlyConfig) if not p[0].startswith("dags") or
                        "dags" in doc)
        cfg = None
    if problems:
        raise ConfigError(problems)
    assert cfg is not None
    return DagsSettings(Path(cfg.dags.path), cfg.daemon, cfg.admin, cfg.dags.watcher_window, cfg.alert), None
