"""The DAG side of a daemon, built one way for `run --dags`, a pipeline beside `[dags]` and several
pipelines: the scheduler, the grid the admin server shows, the runs that pipelines' `dag` sinks,
Kafka AssetWatchers and sinks' `asset` events start, and who answers triggers and external sensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rtstream.airflow.dag_model import DAG
    from rtstream.dags.pipeline_assets import DaemonDags
    from rtstream.dags.scheduler import DagScheduler
    from rtstream.dags.store import RunStore
    from rtstream.dags.window_links import LinkedGrid
    from rtstream.run.watchers import WatcherPipeline, Watching


@dataclass
class DagServices:
    scheduler: DagScheduler
    grid: LinkedGrid
    runs: DaemonDags  # what `dag` sinks, watchers and sinks' asset events call (a pipeline's context.dags)
    watching: Watching


def dag_services(found: list[DAG], not_scheduled: list[dict[str, str]], store: RunStore, grace: float,
                 watchers: list[WatcherPipeline]) -> DagServices:
    from rtstream.airflow.external_sensors import use_states
    from rtstream.airflow.trigger_operators import use_triggerer
    from rtstream.dags.external_states import StoredStates
    from rtstream.dags.pipeline_assets import DaemonDags
    from rtstream.dags.scheduler import DagScheduler
    from rtstream.dags.tries import TryRecorder
    from rtstream.dags.triggering import DagTriggers
    from rtstream.dags.window_links import LinkedGrid
    from rtstream.run.watchers import Watching

    tries = TryRecorder(store)
    scheduler = DagScheduler(found, store, grace, tries)
    grid = LinkedGrid(found, not_scheduled, store, scheduler, tries)
    grid.triggers = DagTriggers(scheduler, store)  # the admin API's and TriggerDagRunOperator's runs
    use_triggerer(grid.triggers)
    use_states(StoredStates(found, store))  # ExternalTaskSensor reads the runs of the daemon's DAGs
    runs = DaemonDags(scheduler, store)
    return DagServices(scheduler, grid, runs, Watching(watchers, runs, scheduler))


def exit_past_running_tries(code: int) -> int:
    """The daemon's exit code; a sync task still running in its thread after the grace cannot be stopped
    by Python, so then the process exits at once rather than wait for it."""
    import logging
    import os
    import sys
    import threading

    if any(t.name.startswith("dag-") and t.is_alive() for t in threading.enumerate()):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
