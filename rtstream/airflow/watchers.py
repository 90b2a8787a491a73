"""Airflow 3's `AssetWatcher` and the Kafka triggers it may hold, read from a DAG file (pure).

`Asset(..., watchers=[AssetWatcher(name=..., trigger=...)])` with, as the trigger, any of the forms
Airflow's docs show for Kafka:
- `MessageQueueTrigger(queue="kafka://HOST:PORT/TOPIC[,TOPIC]", apply_function=...)` (the
  common-messaging provider's URI form: topics from the path),
- `MessageQueueTrigger(scheme="kafka", topics=[...], apply_function=...)`,
- `KafkaMessageQueueTrigger(topics=[...], apply_function=...)` / `AwaitMessageTrigger(topics=...,
  apply_function=...)` (the Kafka provider's own), with `apply_function_args/kwargs`,
  `kafka_config_id` (default "kafka_default"), `poll_interval` (default 5 s), `poll_timeout`.

`kafka_watch` turns one into what rtstream's Kafka source needs (`KafkaWatch`), or says in one
sentence why it cannot: a trigger on another queue, no apply_function, no topic, no broker. The
brokers are the trigger's `bootstrap_servers`, else the queue URI's host, else the Airflow connection
`kafka_config_id` from the environment (`AIRFLOW_CONN_KAFKA_DEFAULT`: JSON with extra
`bootstrap.servers`, Airflow's environment backend). `apply_function` (a callable or Airflow's dotted
`"module.function"`, the module a DAG file's name or any importable one) is called with each message
(`value()`, `key()`, `topic()`, `partition()`, `offset()`, `timestamp()`, `headers()`, `error()` as
confluent-kafka's `Message`), and a message triggers only when it returns a true value, as in
`AwaitMessageTrigger`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_POLL_INTERVAL_S = 5.0  # AwaitMessageTrigger's poll_interval default


class _Trigger:
    """A trigger as written: its keyword arguments, kept."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


class MessageQueueTrigger(_Trigger):
    """`airflow.providers.common.messaging.triggers.msg_queue.MessageQueueTrigger`."""


class KafkaMessageQueueTrigger(_Trigger):
    """`airflow.providers.apache.kafka.triggers.msg_queue.KafkaMessageQueueTrigger`."""


class AwaitMessageTrigger(_Trigger):
    """`airflow.providers.apache.kafka.triggers.await_message.AwaitMessageTrigger`."""

    def __init__(self, topics: Any = None, apply_function: Any = None, *args: Any, **kwargs: Any):
        super().__init__(*args, topics=topics, apply_function=apply_function, **kwargs)


class AssetWatcher:
    """`airflow.sdk.AssetWatcher(name, trigger)`."""

    def __init__(self, name: str, trigger: Any):
        self.name, self.trigger = name, trigger

    def __repr__(self) -> str:
        return f"AssetWatcher(name={self.name!r}, trigger={self.trigger!r})"


NAMES: dict[str, Any] = {"AssetWatcher": AssetWatcher, "MessageQueueTrigger": MessageQueueTrigger,
                         "KafkaMessageQueueTrigger": KafkaMessageQueueTrigger,
                         "AwaitMessageTrigger": AwaitMessageTrigger}


class WatcherRefused(ValueError):
    """A watcher rtstream cannot run, and why (one sentence)."""


@dataclass
class KafkaWatch:
    watcher: str
    bootstrap_servers: str
    topics: list[str]
    apply: Callable[[Any], Any]
    poll_interval: float = DEFAULT_POLL_INTERVAL_S
    consumer: dict[str, Any] = field(default_factory=dict)


def _connection_extra(conn_id: str) -> dict[str, Any]:
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return {}
    try:
        conn = json.loads(raw)
    except ValueError:
        raise WatcherRefused(f"the connection {conn_id!r} (AIRFLOW_CONN_{conn_id.upper()}) is not JSON: rtstream "
                             "reads a Kafka connection's extra from its JSON form") from None
    extra = conn.get("extra") if isinstance(conn, dict) else None
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = None
    return extra if isinstance(extra, dict) else {}


def _function(ref: Any, fileloc: str | None) -> Callable[[Any], Any]:
    if callable(ref):
        return ref  # type: ignore[no-any-return]
    if not isinstance(ref, str) or "." not in ref:
        raise WatcherRefused(f"apply_function must be a callable or a dotted \"module.function\", not {ref!r}")
    module_name, _, name = ref.rpartition(".")
    module = None
    if fileloc is not None and Path(fileloc).stem == module_name:  # the DAG file itself, as loaded
        module = next((m for k, m in list(sys.modules.items())
                       if k.startswith("unusual_prefix_") and getattr(m, "__file__", None) == fileloc), None)
    try:
        module = module or importlib.import_module(module_name)
        fn = getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise WatcherRefused(f"apply_function {ref!r} cannot be imported: {exc}") from None
    if not callable(fn):
        raise WatcherRefused(f"apply_function {ref!r} is not callable")
    return fn  # type: ignore[no-any-return]


def kafka_watch(watcher: Any, fileloc: str | None = None) -> KafkaWatch:
    """What rtstream's Kafka source needs to run this watcher; WatcherRefused when it cannot."""
    name = getattr(watcher, "name", None)
    trigger = getattr(watcher, "trigger", None)
    if not isinstance(watcher, AssetWatcher) or not isinstance(name, str) or not name:
        raise WatcherRefused(f"{watcher!r} is not an AssetWatcher(name=..., trigger=...)")
    if not isinstance(trigger, _Trigger):
        raise WatcherRefused(f"watcher {name!r}: its trigger {type(trigger).__name__} is not run by rtstream "
                             "(Kafka's MessageQueueTrigger, KafkaMessageQueueTrigger or AwaitMessageTrigger only)")
    kw = dict(trigger.kwargs)
    queue, scheme = kw.pop("queue", None), kw.pop("scheme", None)
    topics = kw.pop("topics", None)
    brokers = kw.pop("bootstrap_servers", None)
    if isinstance(trigger, MessageQueueTrigger):
        if queue is not None:
            if not isinstance(queue, str) or not queue.startswith("kafka://"):
                raise WatcherRefused(f"watcher {name!r}: queue {queue!r} is not a Kafka queue (kafka://HOST:PORT/TOPIC); "
                                     "rtstream runs Kafka watchers only")
            parts = urlsplit(queue)
            from_uri = [t for t in parts.path.lstrip("/").split(",") if t]
            topics = from_uri or topics
            brokers = brokers or parts.netloc or None
        elif scheme != "kafka":
            raise WatcherRefused(f"watcher {name!r}: a MessageQueueTrigger needs queue=\"kafka://...\" or "
                                 f"scheme=\"kafka\" here (got scheme={scheme!r})")
    if isinstance(topics, str):
        topics = [topics]
    topics = [t.strip() for t in topics or [] if isinstance(t, str) and t.strip()]
    if not topics:
        raise WatcherRefused(f"watcher {name!r}: no topic (give topics=[...] or kafka://HOST:PORT/TOPIC)")
    ref = kw.pop("apply_function", None)
    if ref is None:
        raise WatcherRefused(f"watcher {name!r}: apply_function is required (as Airflow's Kafka provider requires it)")
    fn = _function(ref, fileloc)
    args, kwargs = list(kw.pop("apply_function_args", None) or []), dict(kw.pop("apply_function_kwargs", None) or {})
    extra = _connection_extra(str(kw.pop("kafka_config_id", "kafka_default")))
    brokers = brokers or extra.get("bootstrap.servers")
    if not brokers:
        raise WatcherRefused(f"watcher {name!r}: no Kafka broker: give bootstrap_servers=, a kafka://HOST:PORT/ queue, "
                             "or the connection AIRFLOW_CONN_KAFKA_DEFAULT with extra bootstrap.servers")
    interval = kw.pop("poll_interval", DEFAULT_POLL_INTERVAL_S)
    if not isinstance(interval, (int, float)) or interval <= 0:
        raise WatcherRefused(f"watcher {name!r}: poll_interval must be a positive number of seconds, not {interval!r}")

    def apply(message: Any) -> Any:
        return fn(message, *args, **kwargs)

    return KafkaWatch(name, str(brokers), topics, apply, float(interval))


class KafkaMessage:
    """A message as `apply_function` gets it: confluent-kafka's `Message` methods over a raw row."""

    def __init__(self, row: dict[str, Any], topic: str | None):
        self._row, self._topic = row, topic

    def value(self) -> bytes | None:
        v = self._row.get("value")
        return v.encode() if isinstance(v, str) else v

    def key(self) -> bytes | None:
        k = self._row.get("key")
        return k.encode() if isinstance(k, str) else k

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int | None:
        return None  # not carried by rtstream's raw rows

    def offset(self) -> int | None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, -1)  # TIMESTAMP_NOT_AVAILABLE

    def headers(self) -> None:
        return None

    def error(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self.value() or b"")


def watched_assets(dag: Any) -> list[Any]:
    """The assets of the DAG's schedule that have watchers (a schedule `Asset(...)`, `[Asset(...)]`, or
    combined with others: the caller refuses that)."""
    from rtstream.airflow.asset_schedule import condition_of
    from rtstream.airflow.assets import Asset, AssetAll, AssetAny

    cond = condition_of(dag)
    out: list[Any] = []

    def walk(c: Any) -> None:
        if isinstance(c, (AssetAll, AssetAny)):
            for o in c.objects:
                walk(o)
        elif isinstance(c, Asset) and c.watchers:
            out.append(c)

    walk(cond)
    return out


def trigger_events(asset: Any, conf: dict[str, Any]) -> list[Any]:
    """The asset events of a watcher's window run, one per message that triggered, as Airflow's
    `Trigger.submit_event` writes them: extra `{"from_trigger": True, "payload": ...}`, no source task."""
    from datetime import UTC, datetime

    from rtstream.airflow.asset_event_values import AssetEventValue, AssetRefValue

    start = conf.get("window_start")
    at = datetime.fromisoformat(start.replace("Z", "+00:00")) if isinstance(start, str) else datetime.now(UTC)
    ref = AssetRefValue(asset.name, asset.uri, dict(asset.extra))
    return [AssetEventValue(ref, {"from_trigger": True, "payload": row.get("payload")}, None, None, None, -1, at)
            for row in conf.get("rows", []) if isinstance(row, dict)]

