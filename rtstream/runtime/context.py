"""What every component is given at construction: where to keep state, and whom to tell."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtstream.model.dag_trigger import DagTrigger
from rtstream.model.positions import NoPartitionEvents, PartitionEvents
from rtstream.model.worker import WorkerShare


@dataclass
class Context:
    pipeline: str
    state_dir: Path
    time_mode: str = "event"
    key_fields: list[str] = field(default_factory=list)  # the output key, for upserting sinks
    # the row fields that tell one window from another (count windows add `window_id`): a sink
    # replaces a window's rows by them when the rows have no key (rtstream.sinks.row_keys)
    window_fields: list[str] = field(default_factory=lambda: ["window_start"])
    partitions: PartitionEvents = field(default_factory=NoPartitionEvents)  # sources whose partitions come and go
    extra: dict[str, Any] = field(default_factory=dict)
    worker: WorkerShare = field(default_factory=WorkerShare)  # which of `[daemon] workers` this process is
    # what kind of run this is, for names that must differ between a daemon and a backfill or a test
    # run of the same pipeline beside it (Kafka transactional ids): "" for the daemon
    run_tag: str = ""
    # the DAG scheduler of the daemon, for `dag` sinks; None where no DAGs run (rtstream.run.dags_daemon)
    dags: DagTrigger | None = None
