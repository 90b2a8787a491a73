"""`rtstream test`, the counterpart of `airflow dags test`: the pipeline once, in-process, keeping nothing.

The real engine (rtstream.runtime.supervisor.Runtime) runs the loaded config with three changes: its
state lives in a temporary folder that is removed afterwards; each source runs once (a python or
polled source fetches once for one interval, every other source reads the JSON lines of `--input`
unless it is finite on its own); and the rows go to an output sink instead of the configured sinks
(which are written too with `--sinks`). Every window is closed at the end, as in any finite run.
Retries are off: the first failure is the run's, and names its component.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rtstream.config.flow import Flow
from rtstream.config.settings import ComponentSettings, Settings
from rtstream.model.errors import ConfigError
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig

log = logging.getLogger("rtstream.test")
OUTPUT = "rtstream_test_output"  # the name of the output sink the run adds
ONCE_TYPES = ("python", "http_poll")  # sources that fetch once in a test run


@dataclass
class WindowRows:
    """One window's result: its bounds (ISO-8601 UTC), its key (sessions) and the rows written."""

    window_start: str
    window_end: str
    rows: list[dict[str, Any]]
    key: Any = None


@dataclass
class RunOnceOutcome:
    windows: list[WindowRows] = field(default_factory=list)
    exit_code: int = 0
    failures: list[str] = field(default_factory=list)  # "component: error", for each failed run
    dead_letters: int = 0
    records_in: int = 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row, in the order the windows were written."""
        return [r for w in self.windows for r in w.rows]

    @property
    def by_window(self) -> dict[str, list[dict[str, Any]]]:
        """window_start (ISO-8601 UTC) -> the rows of that window (of every session starting then)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for w in self.windows:
            out.setdefault(w.window_start, []).extend(w.rows)
        return out


class OutputConfig(SinkConfig):
    pass


class OutputSink(Sink):
    """Hands each window's rows to `on_window` (which prints them, or keeps them for a test)."""

    Config = OutputConfig
    type_name: ClassVar[str] = "test_output"

    def __init__(self, name: str, config: Any, context: Any, on_window: Callable[[WindowRows], None]):
        super().__init__(name, config, context)
        self.on_window = on_window

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        self.on_window(WindowRows(window.start_iso, window.end_iso, list(rows), window.key))

    def describe(self) -> str:
        return "test output"


def for_test(settings: Settings, state_dir: Path, input_path: Path | None, with_sinks: bool,
             on_window: Callable[[WindowRows], None]) -> Settings:
    """`settings` changed for a test run (in place): temporary state, sources run once, output sink."""
    from rtstream.sources.file import FileSource, FileSourceConfig

    root = settings.root
    root.daemon.state_dir = str(state_dir)
    root.dead_letter.path = str(state_dir / "dead_letters.jsonl")
    root.state.checkpoint_interval = None
    root.admin = None
    root.alert = None
    problems = []
    replaced = False
    for name in settings.flow.sources:
        comp = settings.components[name]
        kind = getattr(comp.cls, "type_name", "")
        if kind in ONCE_TYPES:
            continue
        if input_path is not None:
            cfg = FileSourceConfig(type="file", path=str(input_path), follow=False)
            settings.components[name] = ComponentSettings(name, "source", FileSource, cfg)
            replaced = True
        elif not _finite(kind, comp.config):
            problems.append((f"sources.{name}", f"a {kind} source needs --input FILE (JSON lines) in a test run"))
    if problems:
        raise ConfigError(problems)
    if replaced and root.window.time == "source":
        root.window.time = "event"  # lines of a file carry no time of their own: theirs is in time_field
        log.warning("the --input records are windowed by their field %r (the config's sources keep their own "
                    "time; a file has none)", root.window.time_field)
    if settings.flow.branched:  # its rows would come from several windows at once: not one run's output
        raise ConfigError.at("pipeline.flow", "a test run runs one chain; run a flow of several branches with "
                                              "`rtstream run` (or test each branch as its own chain)")
    output = ComponentSettings(OUTPUT, "sink", _output_class(on_window), OutputConfig(type="test_output"))
    settings.components[OUTPUT] = output
    sinks = [*settings.flow.sinks, OUTPUT] if with_sinks else [OUTPUT]
    settings.flow = Flow(list(settings.flow.sources), list(settings.flow.stages), sinks)
    return settings


def _finite(kind: str, config: Any) -> bool:
    """A source that ends by itself, so a test run can read it as configured."""
    return (kind == "file" and not config.follow) or (kind == "generator" and config.count is not None)


def _output_class(on_window: Callable[[WindowRows], None]) -> type:
    class BoundOutput(OutputSink):
        def __init__(self, name: str, config: Any, context: Any):
            super().__init__(name, config, context, on_window)

    return BoundOutput


async def run_once(settings: Settings, *, input_path: Path | None = None, at_ms: int | None = None,
                   with_sinks: bool = False, on_window: Callable[[WindowRows], None] | None = None) -> RunOnceOutcome:
    """Run `settings` once as `rtstream test` does; the outcome holds every window's rows."""
    from rtstream.runtime.supervisor import Runtime

    outcome = RunOnceOutcome()

    def keep(w: WindowRows) -> None:
        outcome.windows.append(w)
        if on_window is not None:
            on_window(w)

    with tempfile.TemporaryDirectory(prefix="rtstream-test-") as tmp:
        for_test(settings, Path(tmp), input_path, with_sinks, keep)
        runtime = Runtime(settings)
        runtime.context.extra.update(run_once=True, run_at_ms=at_ms)
        runtime.context.run_tag = f"test-{uuid.uuid4().hex[:8]}"  # never restarted: nothing of its own to fence
        for policy in runtime.flusher.policies.values():
            policy.retries, policy.on_failure = 0, "dead_letter"  # the first failure is the answer
        code = await runtime.run()
        outcome.records_in = sum(runtime.stats.records_in.values())
        outcome.dead_letters = runtime.dead_letters.count
        with runtime_history(runtime) as windows:
            for w in reversed(windows):
                for comp, run in w["components"].items():
                    if run["state"] in ("failed", "dead_lettered"):
                        outcome.failures.append(f"{comp} failed on window {w['window_start']}: {run['error']}")
    outcome.exit_code = code if code else (1 if outcome.failures else 0)
    return outcome


class runtime_history:  # noqa: N801 - used as a context manager, like open()
    """The run history of a finished runtime (its database is closed when the run ends)."""

    def __init__(self, runtime: Any):
        from rtstream.runtime.run_history import RunHistory

        self.history = RunHistory(runtime.state_dir / "runs.db")

    def __enter__(self) -> list[dict[str, Any]]:
        return self.history.windows()

    def __exit__(self, *exc: object) -> None:
        self.history.close()
