"""`rtstream dags list PATH` and `rtstream dags test PATH [--dag ID] [--at DATE] [--json]`: DAG files run as
they are, one run each, like `airflow dags test` (rtstream.airflow)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from rtstream.model.errors import EXIT_CONFIG


def add_parser(sub: Any) -> None:
    from rtstream.cli.subcommand import command

    dags = command(sub, "dags", "list or test-run Airflow DAG files as they are",
                   "Load Airflow DAG files with rtstream's stand-in `airflow` modules (no Airflow needed) and\n"
                   "list them, or run each once with every task executed, like `airflow dags test`.",
                   "  rtstream dags list dags/\n  rtstream dags test dags/etl.py --at 2026-11-01")
    dsub = dags.add_subparsers(dest="dags_command", required=True, metavar="SUBCOMMAND")
    ls = command(dsub, "list", "the DAGs of a file or folder, their schedules and tasks",
                 "Each DAG with its file, schedule and start_date, then one line per task: its operator,\n"
                 "whether rtstream runs it natively (or why it refuses to), and its upstream tasks.",
                 "  rtstream dags list dags/")
    ls.add_argument("path", help="a DAG file or a folder of them")
    ls.add_argument("--debug", action="store_true", help="print the traceback of a DAG file that fails")
    tst = command(dsub, "test", "one run of each DAG, every task executed (like airflow dags test)",
                  "One run per DAG at the logical date --at: tasks in dependency order with their retries,\n"
                  "trigger rules and XComs, one line per task instance. Exits 1 when a run fails.",
                  "  rtstream dags test dags/etl.py --dag daily_orders --at 2026-11-01 --json")
    tst.add_argument("path", help="a DAG file or a folder of them")
    tst.add_argument("--dag", dest="dag_id", metavar="DAG_ID", help="run only this DAG (default: every DAG found)")
    tst.add_argument("--at", metavar="DATE", help="the run's logical date (ISO-8601; default: now, UTC)")
    tst.add_argument("--json", action="store_true", help="one JSON object per task instance on stdout, then the run")
    tst.add_argument("--debug", action="store_true", help="print the traceback of a DAG file that fails")
    from rtstream.cli.dags_trigger import add_parser as add_trigger

    add_trigger(dsub)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[IO[bytes]]:
    """Everything written to stdout (prints at import, task prints, subprocesses) goes to stderr; the
    JSON goes to what stdout was."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    out = os.fdopen(saved, "wb")
    try:
        yield out
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        out.close()


def _refuse(lines: list[str], debug: bool, files: list[str]) -> int:
    from rtstream.airflow.dagbag import last_exception

    for file in files:
        exc = last_exception(file)
        if debug and exc is not None:
            traceback.print_exception(exc, file=sys.stderr)
    for line in lines:
        print(f"rtstream: {line}", file=sys.stderr)
    return EXIT_CONFIG


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from rtstream.support.secrets import redact

        return redact(super().format(record))


def dags_command(args: argparse.Namespace) -> int:
    if args.dags_command == "trigger":
        from rtstream.cli.dags_trigger import trigger_command

        return trigger_command(args)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:  # task logs are lines rtstream writes: secrets masked
        handler.setFormatter(_Redacting("%(asctime)s %(levelname)s %(message)s"))
    if args.dags_command == "list":
        return _list(args)
    try:
        at = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError as exc:
        print(f"rtstream: --at: {exc} (expected e.g. 2024-01-31 or 2024-01-31T06:00:00+00:00)", file=sys.stderr)
        return EXIT_CONFIG
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if not args.json:
        return _test(args, at, None)
    with _stdout_to_stderr() as out:
        return _test(args, at, out)


def _load(args: argparse.Namespace) -> tuple[Any, int | None]:
    from rtstream.airflow.dagbag import load
    from rtstream.airflow.states import DagRefused

    try:
        bag = load(Path(args.path))
    except DagRefused as exc:
        return None, _refuse([str(exc)], False, [])
    wanted = getattr(args, "dag_id", None)
    if bag.import_errors and (wanted is None or wanted not in bag.dags):
        return None, _refuse([f"cannot load {line}" for line in bag.import_errors.values()], args.debug,
                             list(bag.import_errors))
    if wanted is not None and wanted not in bag.dags:
        return None, _refuse([f"no DAG {wanted!r} in {args.path} (found: {', '.join(sorted(bag.dags)) or 'none'})"],
                             False, [])
    return bag, None


def _list(args: argparse.Namespace) -> int:
    from rtstream.airflow.timetable import describe

    bag, code = _load(args)
    if code is not None:
        return code
    from rtstream.airflow.bridge import how_it_runs

    for dag in bag.dags.values():
        print(f"{dag.dag_id}  ({dag.fileloc})  schedule: {describe(dag)}  start_date: {dag.start_date}")
        for task in dag.tasks:
            kind = task.cls.__name__ + ".expand" if task.is_mapped else type(task).__name__
            ups = ", ".join(sorted(task.upstream_task_ids)) or "-"
            print(f"  {task.task_id:<30} {kind:<28} {how_it_runs(task):<10} after: {ups}")
    sys.stdout.flush()
    # listed, and refused as `dags test` and the daemon would refuse them (exit 2)
    refused = [f"DAG {d.dag_id} refused: {why}" for d in bag.dags.values() for why in bag.refused_tasks(d)]
    return _refuse(refused, False, []) if refused else 0


def _dag_folder(path: str, bag: Any) -> Callable[[str], bool]:
    """Whether a DAG id is in the DAG folder (the file's folder, as Airflow's dags_folder): the bag's
    own first, the folder loaded only when a TriggerDagRunOperator names another DAG (once)."""
    folder: list[set[str]] = []

    def known(dag_id: str) -> bool:
        if dag_id in bag.dags:
            return True
        if not folder:
            from rtstream.airflow.dagbag import load

            here = Path(path)
            folder.append(set(load(here.parent if here.is_file() else here).dags))
        return dag_id in folder[0]
    return known


def _test(args: argparse.Namespace, at: datetime, out: IO[bytes] | None) -> int:
    from rtstream.airflow.airflow3 import stored_xcoms
    from rtstream.airflow.dag_run import DagRun

    bag, code = _load(args)
    if code is not None:
        return code
    dags = [bag.dags[args.dag_id]] if args.dag_id else list(bag.dags.values())
    from rtstream.airflow.external_sensors import ExternalTaskSensor

    refused = [f"DAG {d.dag_id} refused: {why}" for d in dags for why in bag.refused_tasks(d)]
    # a sensor on another DAG's runs: dags test keeps no runs (Airflow's answer depends on its metadata DB)
    refused += [f"DAG {d.dag_id} refused: task {t.task_id}: ExternalTaskSensor waits on runs of DAG "
                f"{t.external_dag_id}, which `dags test` does not keep; run the DAGs with `rtstream run --dags`"
                for d in dags for t in d.tasks if isinstance(t, ExternalTaskSensor)]
    if refused:
        return _refuse(refused, False, [])
    from rtstream.airflow.trigger_operators import BagRuns, use_triggerer

    use_triggerer(BagRuns(_dag_folder(args.path, bag)))  # TriggerDagRunOperator: a queued run nothing runs
    failed = []
    for dag in dags:
        result = asyncio.run(_run_and_call_back(DagRun(dag, at)))
        for ti in result.task_instances:
            row = {"dag_id": dag.dag_id, "task_id": ti.task_id, "map_index": ti.map_index, "state": ti.state,
                   "tries": ti.try_number, "xcom": stored_xcoms(dag, result.xcoms.of(ti.task_id, ti.map_index))}
            if out is not None:
                out.write(orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n")
            else:
                index = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
                print(f"{dag.dag_id}  {ti.task_id}{index}  {ti.state}  tries={ti.try_number}")
        if out is not None:
            out.write(orjson.dumps({"dag_id": dag.dag_id, "run_state": result.run_state}) + b"\n")
            out.flush()
        else:
            print(f"{dag.dag_id}: run {result.run_state}")
        if result.run_state != "success":
            failed.append(f"{dag.dag_id} (failed tasks: {', '.join(result.failed_tasks) or 'none, deadlocked'})")
    for line in failed:
        print(f"rtstream dags test: FAILED: {line}", file=sys.stderr)
    return 1 if failed else 0


async def _run_and_call_back(run: Any) -> Any:
    """One run, then the DAG's success or failure callbacks, as Airflow's `dag.test()` (update_state) calls them."""
    result = await run.run()
    await run.call_back(result)
    return result
