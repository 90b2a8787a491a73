"""`type = "asset_watcher"`: the sink of the pipeline rtstream builds for a Kafka `AssetWatcher` of a DAG
file (rtstream.run.watchers): a window of messages is one run of the watching DAG, and its offsets
are committed only once that run has succeeded, as the `dag` sink does (whose runs it shares).

Each message of the window goes through the trigger's `apply_function` (in a thread: it is the
user's code) as a confluent-kafka-like `Message`; those for which it returns a true value trigger,
as in Airflow's `AwaitMessageTrigger`, and become the run's rows (`dag_run.conf["rows"]`, each
`{"key", "value", "payload"}` with `payload` the function's return value) and its
`triggering_asset_events` (extra `{"from_trigger": true, "payload": ...}`, as Airflow's
`Trigger.submit_event` writes). A window where none does starts no run. A message whose
apply_function raises is dead-lettered with the reason; the others run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from pydantic import Field

from rtstream.airflow.watchers import KafkaMessage, KafkaWatch
from rtstream.model.errors import RowsRejected, SinkError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.dag import DagSink, DagSinkConfig


class AssetWatcherConfig(DagSinkConfig):
    watcher: str = Field(description="the AssetWatcher's name (set by rtstream for the watcher's pipeline)")


def _payload(value: Any) -> Any:
    """A trigger event's payload is JSON in Airflow: a value that is not is kept as its repr."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        return repr(value)


@register("sink", "asset_watcher")
class AssetWatcherSink(DagSink):
    Config = AssetWatcherConfig  # type: ignore[assignment]

    async def start(self) -> None:
        await super().start()  # the dag sink's checks: the daemon runs that DAG
        watch = self.context.extra.get("asset_watcher")
        if not isinstance(watch, KafkaWatch):
            raise SinkError(self.name, "an asset_watcher sink is built by rtstream for a DAG's AssetWatcher")
        self.watch = watch

    def _apply(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[list[dict[str, Any]], str]]]:
        topic = self.watch.topics[0] if len(self.watch.topics) == 1 else None
        accepted, rejected = [], []
        for row in rows:
            try:
                result = self.watch.apply(KafkaMessage(row, topic))
            except BaseException as exc:  # noqa: BLE001 - user code, sys.exit too: it fails this message only
                rejected.append(([row], f"apply_function of watcher {self.watch.watcher!r}: "
                                        f"{type(exc).__name__}: {exc}"[:1000]))
                continue
            if result:
                accepted.append({"key": row.get("key"), "value": row.get("value"), "payload": _payload(result)})
        return accepted, rejected

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        bare = [{"key": r.get("key"), "value": r.get("value")} for r in rows]  # without window_start/end
        accepted, rejected = await asyncio.to_thread(self._apply, bare)
        if accepted:
            conf = {"rows": accepted, "window_start": window.start_iso, "window_end": window.end_iso}
            state = await self.trigger.run_for_window(self.config.dag, window.start, (window.start, window.end), conf,
                                                      self.context.pipeline, accepted)
            if state != "success":
                why = "the daemon stopped before it ended" if state == "running" else state
                raise SinkError(self.name, f"DAG {self.config.dag!r} run of window {window.start_iso}: {why}")
        if rejected:
            raise RowsRejected(self.name, rejected)

    def describe(self) -> str:
        return f"asset watcher {self.config.watcher} -> dag {self.config.dag}"
