"""Cross-checks of `type = "dag"` sinks at load: the daemon must run DAGs (`[dags] path`), the DAG must
be one of them and runnable, and the pipeline's name (the task id the window's rows are the XCom of)
must not be one of its tasks. Loading the DAG files here is what `rtstream validate` needs too; the bag
loaded is kept on the settings (`Settings.dag_bag`) and the daemon runs it as it is: a DAG file's
top-level code runs once per start, and a reload (SIGHUP) checks against the same bag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtstream.config.models import RootConfig
from rtstream.config.settings import ComponentSettings


def dag_sink_problems(root: RootConfig, sinks: list[str], components: dict[str, ComponentSettings],
                      bags: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """The problems of the `dag` sinks; `bags` (dags.path -> its DagBag): the bag already loaded is used,
    one loaded here is added."""
    dag_sinks: list[tuple[str, str]] = [
        (n, str(components[n].config.dag))  # type: ignore[attr-defined]
        for n in sinks if getattr(components[n].cls, "type_name", "") == "dag"]
    if not dag_sinks:
        return []
    if root.dags is None:
        return [(f"sinks.{n}.dag", "a dag sink needs the DAGs of this daemon: add [dags] path = \"...\"")
                for n, _ in dag_sinks]
    from rtstream.airflow.dagbag import load
    from rtstream.airflow.states import DagRefused

    bags = {} if bags is None else bags
    try:
        bag: Any = bags.get(root.dags.path) or load(Path(root.dags.path))
    except DagRefused:
        return []  # said as dags.path by the daemon's start; nothing to add per sink
    bags[root.dags.path] = bag
    problems = []
    for name, dag_id in dag_sinks:
        where = f"sinks.{name}.dag"
        dag = bag.dags.get(dag_id)
        if dag is None:
            files = f"; files not loaded: {'; '.join(bag.import_errors.values())}" if bag.import_errors else ""
            problems.append((where, f"no DAG {dag_id!r} in {root.dags.path} (DAGs: "
                                    f"{', '.join(sorted(bag.dags)) or 'none'}){files}"))
        elif refused := bag.refused_tasks(dag):
            problems.append((where, f"DAG {dag_id!r} cannot run here: {'; '.join(refused)}"))
        elif root.pipeline.name in dag.task_dict:
            problems.append((where, f"DAG {dag_id!r} has a task {root.pipeline.name!r}, the task id the window's "
                                    "rows are the XCom of (the pipeline's name): rename one of them"))
    return problems
