"""The config's alert webhook (`[alert]`, rtstream.runtime.alert) told of each failed DAG run, as a
pipeline's is told of a window that fails for good: one JSON document per failed run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rtstream.runtime.alert import AlertWebhook

if TYPE_CHECKING:
    from rtstream.config.models import AlertConfig
    from rtstream.dags.scheduler import DagScheduler
    from rtstream.dags.store import StoredRun


class DagRunAlerts:
    def __init__(self, config: AlertConfig):
        token = config.bearer_token.get_secret_value() if config.bearer_token else None
        self.webhook = AlertWebhook(config.url, "", token, config.timeout)

    async def start(self, scheduler: DagScheduler) -> None:
        await self.webhook.start()
        scheduler.on_failed = self.failed

    async def failed(self, dag: Any, stored: StoredRun, reason: str, failed_tasks: list[str]) -> None:
        """Never raises (AlertWebhook.post): an alert that cannot be delivered is logged."""
        await self.webhook.post({
            "event": "dag_run_failed", "dag_id": dag.dag_id, "run_id": stored.run_id,
            "logical_date": stored.logical_date.isoformat(), "data_interval_start": stored.interval_start.isoformat(),
            "data_interval_end": stored.interval_end.isoformat(), "reason": reason, "failed_tasks": failed_tasks,
            "error": f"DAG {dag.dag_id} run {stored.run_id} failed: {reason}"
                     + (f" (failed tasks: {', '.join(failed_tasks)})" if failed_tasks else ""),
            "at": time.time()})

    async def close(self) -> None:
        await self.webhook.close()
