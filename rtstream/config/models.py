"""The typed shape of a config file: everything but the components' own keys.

Each component module holds its own model next to its code (see rtstream.model.registry).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from rtstream.connect.addresses import is_loopback
from rtstream.connect.http_limits import HttpLimits
from rtstream.model.durations import Duration, schedule_to_size
from rtstream.model.strict import Strict
from rtstream.model.worker import WorkerShare


class PipelineConfig(Strict):
    name: str = Field(default="rtstream", description="shown on the status page, in logs and metrics")
    flow: str = Field(description='e.g. "fetch >> process >> [store, show]"')
    python_path: list[str] = Field(default=[], description="folders to import `call` modules from, relative to "
                                   'the config file (e.g. ["../dags"]); the config\'s own folder is always searched')


class WindowConfig(Strict):
    type: Literal["tumbling", "hopping", "session", "count"] = Field(
        default="tumbling", description="tumbling: back to back; hopping: overlapping, one every hop; session: per "
        "key, closed after gap without a record; count: per key, closed at its size-th record (size = N)")
    size: Duration | None = Field(default=None, description="a window's length, e.g. \"5m\" (or give schedule)")
    hop: Duration | None = Field(default=None, description="hopping: a window starts every hop; size is a multiple")
    gap: Duration | None = Field(default=None, description="session: records of one key less than gap apart share a session")
    emit_empty: bool = Field(default=False, description="a run for every window of the schedule, even with no record")
    emit: Literal["final", "updates"] = Field(default="final", description='"updates": running results of open '
                                              'windows too, each row with "final": false, then the final row')
    update_interval: Duration = Field(default=10.0, gt=0, description='emit = "updates": how often a running '
                                      "result of each changed open window goes out")
    schedule: str | None = Field(default=None, description='a fixed-step cron schedule instead of size, e.g. '
                                 '"*/5 * * * *" (windows aligned to it)')
    time: Literal["event", "source"] = Field(default="event", description="event: a record's window comes from its "
                                             "time_field (a replay rebuilds it); source: from its arrival")
    time_field: str = Field(default="ts", description="the field holding event time: epoch s, epoch ms or ISO-8601")
    lateness: Duration = Field(default=5.0, description="how long to wait for stragglers past a window's end; "
                               "later records are dead-lettered as late")
    idle_timeout: Duration = Field(default=10.0, description="after this long with no input, the wall clock "
                                   "advances the watermark and closes windows")

    records: int | None = Field(default=None, ge=1, description='count: records a window closes at; written '
                               "as size = N (rtstream.windows.counts)")

    @model_validator(mode="before")
    @classmethod
    def _count_size(cls, data: Any) -> Any:
        from rtstream.windows.counts import count_size  # a count window's size is records, not a duration

        return count_size(data)

    @model_validator(mode="after")
    def _size_or_schedule(self) -> WindowConfig:
        if self.type == "count":
            from rtstream.windows.counts import check_count_window

            return check_count_window(self)  # type: ignore[no-any-return]
        if self.records is not None:
            raise ValueError('records is for type = "count"')
        if self.type == "session":
            return self._session()
        if self.gap is not None:
            raise ValueError('gap is for type = "session"')
        if self.size is not None and self.schedule is not None:
            raise ValueError("give either size or schedule, not both")
        if self.schedule is not None:
            self.size = schedule_to_size(self.schedule)
        if self.size is None:
            raise ValueError("window needs a size (e.g. size = \"5m\") or a schedule (e.g. \"*/5 * * * *\")")
        if self.size < 0.001:
            raise ValueError(f"size must be at least 1ms (got {self.size}s)")
        if self.type == "hopping":
            if self.hop is None:
                raise ValueError('a hopping window needs a hop, e.g. hop = "1m"')
            hop_ms, size_ms = round(self.hop * 1000), round(self.size * 1000)
            if hop_ms <= 0 or size_ms % hop_ms:
                raise ValueError(f"size ({self.size:g}s) must be a multiple of hop ({self.hop:g}s)")
        elif self.hop is not None:
            raise ValueError('hop is for type = "hopping"')
        return self

    def _session(self) -> WindowConfig:
        if self.gap is None:
            raise ValueError('a session window needs a gap, e.g. gap = "30m"')
        if self.gap < 0.001:
            raise ValueError(f"gap must be at least 1ms (got {self.gap}s)")
        for key in ("size", "schedule", "hop"):
            if getattr(self, key) is not None:
                raise ValueError(f"{key} is not for sessions: a session lasts while records keep coming within gap")
        if self.emit_empty:
            raise ValueError("emit_empty needs a schedule of windows; sessions have none")
        if self.emit == "updates":
            raise ValueError('emit = "updates" is for tumbling and hopping windows: a session\'s bounds move as it '
                             "grows, so its running rows could not be replaced by its final one")
        self.size = self.gap  # what is sized by the window (a backfill's edges, a late record's reach)
        return self

    @property
    def gap_ms(self) -> int | None:
        return round(self.gap * 1000) if self.gap is not None else None

    @property
    def hop_ms(self) -> int:
        return round(self.hop * 1000) if self.hop is not None else self.size_ms

    @property
    def size_ms(self) -> int:
        assert self.size is not None
        return round(self.size * 1000)


class DaemonConfig(Strict):
    state_dir: str = Field(default="var/rtstream", description="positions, checkpoints, the run history and "
                           "DAG runs, relative to the config file")
    shutdown_grace: Duration = Field(default=30.0, description="on SIGTERM: time to flush and commit before exiting")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="the lowest level logged")
    log_format: Literal["json", "text"] = Field(default="text", description='"json": one JSON object a line '
                                                '(for a log collector)')
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(default="auto", description='"auto": uvloop when it is '
                                                             "installed; \"uvloop\" refuses to start without it")
    queue_size: int = Field(default=64, ge=1, description="batches between the sources and the windows")
    flush_queue_size: int = Field(default=8, ge=1, description="closed windows waiting for the sinks")
    commit_interval: Duration = Field(default=5.0, description="how often the sources' safe positions are committed")
    max_window_records: int = Field(default=1_000_000, ge=1, description="records one open window may hold; "
                                    "more are dead-lettered (keeps memory bounded)")
    workers: int = Field(default=1, ge=1, le=64, description="worker processes in the sources' consumer group "
                         "(every source must be kafka); one admin server for all")
    worker: WorkerShare = Field(default_factory=WorkerShare, description="set by the workers supervisor for "
                                "each worker, not by hand")


class StateConfig(Strict):
    checkpoint_interval: Duration | None = Field(default=None, gt=0, description="snapshot open windows with "
                                                 "their positions this often, so a restart reads on from there")
    path: str | None = Field(default=None, description="default: STATE_DIR/checkpoints.db")


class DeadLetterConfig(Strict):
    type: Literal["file"] = Field(default="file", description="dead letters go to a JSON-lines file")
    path: str | None = Field(default=None, description="default: STATE_DIR/dead_letters.jsonl")


class RetryConfig(Strict):
    """Like Airflow's default_args: how often a window stage is tried before its window is
    dead-lettered, and the capped backoff between attempts (sinks keep retrying: never skip data)."""

    retries: int = Field(default=2, ge=0, description="retries of a window stage after the first attempt")
    retry_delay: Duration = Field(default=1.0, description="the first backoff; doubled each retry")
    max_retry_delay: Duration = Field(default=60.0, description="cap of the backoff")
    timeout: Duration | None = Field(default=None, description="per stage call and sink write; none by default")


class AlertConfig(Strict):
    url: str = Field(description="a webhook POSTed a JSON alert when a window fails for good or a sink halts")
    bearer_token: SecretStr | None = Field(default=None, description="sent as Authorization: Bearer")
    timeout: Duration = Field(default=10.0, description="per alert request")


class AdminConfig(Strict, HttpLimits):
    # token and allow_unauthenticated come first: listen is checked against them
    token: SecretStr | None = Field(default=None, description='needed for /api, /metrics and the details of '
                                    '/readyz; e.g. "${RTSTREAM_ADMIN_TOKEN}"')
    allow_unauthenticated: bool = Field(default=False, description="serve a non-loopback listen address without a "
                                        "token (only behind something that authenticates)")
    listen: str = Field(default="127.0.0.1:8080", description="HOST:PORT of the status page, probes and metrics")
    history: int = Field(default=100, ge=1, description="windows kept in the run history")
    max_connections: int = Field(default=64, ge=1, description="open connections at once; more are answered 503")

    @field_validator("token")
    @classmethod
    def _empty_is_none(cls, v: SecretStr | None) -> SecretStr | None:
        # `token = "${RTSTREAM_ADMIN_TOKEN:-}"` with the variable unset is no token: then the listen
        # address must be loopback, so an unset secret cannot open the server to the network
        return v if v is not None and v.get_secret_value().strip() else None

    @field_validator("listen")
    @classmethod
    def _token_unless_loopback(cls, v: str, info: ValidationInfo) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8080 (got {v!r})")
        if not is_loopback(host) and info.data.get("token") is None and not info.data.get("allow_unauthenticated"):
            if "token" not in info.data:
                return v  # the token was refused itself: that is the problem to report
            raise ValueError(f"{v!r} is reachable from other machines and there is no token: set admin.token "
                             "(e.g. \"${RTSTREAM_ADMIN_TOKEN}\"), listen on 127.0.0.1, or set "
                             "admin.allow_unauthenticated = true")
        return v


class DagsConfig(Strict):
    path: str = Field(description="a DAG file or a folder of them (relative to the config file), each DAG run "
                      "on its schedule with its runs kept in STATE_DIR/dag_runs.db")
    # a Kafka AssetWatcher's DAG runs once per window of messages (rtstream.run.watchers)
    watcher_window: Duration | None = Field(default=None, gt=0, description="the window of messages one run of an "
                                            "AssetWatcher's DAG gets; default: its trigger's poll_interval (5s)")


class RootConfig(Strict):
    pipeline: PipelineConfig
    window: WindowConfig
    daemon: DaemonConfig = DaemonConfig()
    state: StateConfig = StateConfig()
    dead_letter: DeadLetterConfig = DeadLetterConfig()
    defaults: RetryConfig = RetryConfig()
    admin: AdminConfig | None = None
    alert: AlertConfig | None = None
    dags: DagsConfig | None = None
    sources: dict[str, dict[str, Any]] = Field(min_length=1, description="[sources.NAME]: where records come from")
    stages: dict[str, dict[str, Any]] = Field(default={}, description="[stages.NAME]: what is done to records "
                                              "and windows")
    sinks: dict[str, dict[str, Any]] = Field(min_length=1, description="[sinks.NAME]: where window rows go")
