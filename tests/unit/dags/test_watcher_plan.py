"""Which AssetWatcher DAGs the daemon runs on a pipeline of their own, and the one line for those it
cannot: a watched asset combined with others, a watcher that is not Kafka."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from rtstream.airflow.assets import Asset
from rtstream.airflow.dag_model import DAG
from rtstream.airflow.operators import EmptyOperator
from rtstream.airflow.watchers import AssetWatcher, MessageQueueTrigger
from rtstream.config.dags import DagsSettings
from rtstream.config.models import DaemonConfig
from rtstream.run.watchers import plan


def apply(message):
    return True


def dag(dag_id: str, schedule) -> DAG:
    with DAG(dag_id, schedule=schedule, start_date=datetime(2026, 1, 1)) as d:
        EmptyOperator(task_id="t")
    return d


def watched(name: str = "q", queue: str = "kafka://127.0.0.1:9/topic") -> Asset:
    return Asset(name, watchers=[AssetWatcher(f"{name}_w", MessageQueueTrigger(queue=queue, apply_function=apply))])


def test_plan(tmp_path: Path, caplog):
    settings = DagsSettings(tmp_path / "dags", DaemonConfig(state_dir=str(tmp_path / "state")), None, 2.5)
    dags = [dag("alone", [watched()]), dag("bare", watched("b")), dag("plain", [Asset("x")]),
            dag("combined", [watched("c"), Asset("x")]), dag("either", watched("e") | Asset("x")),
            dag("sqs", [watched("s", "https://sqs.us-east-1.amazonaws.com/1/q")])]
    not_scheduled: list[dict[str, str]] = []
    with caplog.at_level(logging.ERROR, "rtstream.dags"):
        keep, pipelines = plan(dags, not_scheduled, settings)
    assert [d.dag_id for d in keep] == ["alone", "bare", "plain"]
    reasons = {n["dag_id"]: n["reason"] for n in not_scheduled}
    assert sorted(reasons) == ["combined", "either", "sqs"]
    assert "scheduled on that one asset" in reasons["combined"] and "scheduled on that one asset" in reasons["either"]
    assert "not a Kafka queue" in reasons["sqs"]
    assert sum("not scheduled" in r.message for r in caplog.records) == 3
    p = {x.dag_id: x for x in pipelines}["alone"]
    root = p.settings.root
    assert (p.watch.watcher, root.window.size, root.window.time) == ("q_w", 2.5, "source")  # [dags] watcher_window
    src = p.settings.components["messages"].config
    assert (src.group_id, src.topics, src.bootstrap_servers, src.format) == (
        "rtstream.alone.q_w", ["topic"], "127.0.0.1:9", "raw")
    assert Path(root.daemon.state_dir) == tmp_path / "state" / "watchers" / "alone.q_w"
    default = plan([dag("d", [watched("d")])], [], DagsSettings(tmp_path, DaemonConfig(state_dir=str(tmp_path)), None))
    assert default[1][0].settings.root.window.size == 5.0  # the trigger's poll_interval
