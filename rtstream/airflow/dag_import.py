"""`rtstream import-dag DAG.py`: an Airflow DAG file read as source (never run) into an rtstream config.

Mapped: the DAG id, description and schedule (a minute-step cron, a timedelta, @hourly / @daily),
default_args (retries, retry_delay, depends_on_past, email_on_failure, start_date), PythonOperator
tasks (as python source, stages and sink calling the same functions) and the dependency chain
(`>>`, `<<`, set_downstream / set_upstream, lists). Everything else is reported with its line.
"""

from __future__ import annotations

import ast
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rtstream.airflow.dag_advice import Reason, advise
from rtstream.airflow.dag_reader import TASK_KEYS, DagReader, Task, read_source, task_layers
from rtstream.airflow.dag_values import DagRefused, DagValues, keyword_arg, show_value
from rtstream.model.durations import format_duration, schedule_to_size
from rtstream.support import toml_text as toml

_COMPONENT_NAME = re.compile(r"^[A-Za-z_][\w\-]*$")  # what a flow accepts (rtstream.config.flow)
_AIRFLOW_TASK_ID = re.compile(r"^[\w.-]+$", re.ASCII)  # airflow.utils.helpers.KEY_REGEX
MAX_RETRIES = 1000
MAX_WINDOW_S = 366 * 86400.0


@dataclass
class ImportResult:
    config: str
    mapped: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    run_as_is: list[Reason] = field(default_factory=list)  # non-empty: write no config (dag_advice.py)

    def report(self) -> str:
        out = ["mapped:"] + [f"  {m}" for m in self.mapped]
        if self.unmapped:
            out += ["not mapped:"] + [f"  {u}" for u in self.unmapped]
        if self.todo:
            out += ["to do:"] + [f"  {t}" for t in self.todo]
        return "\n".join(out)


def _component_names(tasks: list[Task]) -> tuple[dict[str, str], list[str]]:
    """A component name for each task (the task_id where a flow can use it), and the renames made."""
    names: dict[str, str] = {}
    used = {t.task_id for t in tasks if _COMPONENT_NAME.match(t.task_id)}  # these keep their names
    renamed = []
    for t in tasks:
        if _COMPONENT_NAME.match(t.task_id) and t.task_id not in names.values():
            names[t.var] = t.task_id
            continue
        name = re.sub(r"[^\w\-]", "_", t.task_id)
        if not _COMPONENT_NAME.match(name):
            name = f"task_{name}"
        base, n = name, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        names[t.var] = name
        renamed.append(f"line {t.line}: task {t.task_id!r} is named {name!r} (a name a flow can use)")
    return names, renamed


def import_dag(path: Path, config_dir: Path | None = None) -> ImportResult:
    """The config for the DAG file at `path`, read as source and never run; `config_dir` is where the
    config will be written (default: the working directory), so it can find the DAG's module.

    Raises OSError (unreadable), SyntaxError (does not parse) or DagRefused (a SyntaxError: a
    self-referencing name, a value out of range), each naming the line where it can.
    """
    tree = read_source(path)
    reader = DagReader(path)
    for stmt in tree.body:
        try:
            reader.visit(stmt)
        except RecursionError:
            raise DagRefused(path, stmt.lineno, "nested too deeply to read") from None
    values = DagValues(path, reader.names)
    module = path.stem
    mapped: list[str] = []
    todo: list[str] = []
    unmapped = list(reader.unmapped)
    dag = reader.dag
    dag_id = "imported"
    dag_params: Any = None
    description = None
    schedule: Any = None
    defaults: dict[str, Any] = {}
    if dag is None:
        unmapped.append("no DAG(...) found: pipeline name and window left as placeholders")
    else:
        found = values.of(keyword_arg(dag, "dag_id", 0))
        if isinstance(found, str) and found:
            dag_id = found
        else:
            unmapped.append(f"line {dag.lineno}: the dag_id is not a plain string: pipeline.name left as {dag_id!r}")
        description = values.of(keyword_arg(dag, "description"))
        dag_params = _plain(values, keyword_arg(dag, "params"), "the DAG's params", unmapped)
        schedule = values.of(keyword_arg(dag, "schedule_interval") or keyword_arg(dag, "schedule"))
        da = values.of(keyword_arg(dag, "default_args"))
        for k, v in (da if isinstance(da, dict) else {}).items():
            defaults[k] = (values.of(v) if isinstance(v, ast.AST) else v, getattr(v, "lineno", dag.lineno))
        mapped.append(f"DAG {dag_id!r} (line {dag.lineno}) -> pipeline.name")

    lines = [toml.comment(f"Imported from {path.name} by `rtstream import-dag`.")]
    if description:
        lines += [toml.comment(line) for line in str(description).splitlines()[:10]]
    header_end = len(lines)
    lines += ["", "[pipeline]", f"name = {toml.string(dag_id)}"]
    if config_dir is not None:
        dag_dir, where = os.path.relpath(path.resolve().parent, config_dir.resolve()), "from this file"
    else:  # printed: wherever it is saved, this still finds the DAG
        dag_dir, where = str(path.resolve().parent), "(absolute: import-dag -o writes it relative)"
    lines.append(f"python_path = [{toml.string(dag_dir)}]   {toml.comment('the DAG file folder, ' + where)}")
    layers = task_layers(reader.tasks, reader.edges)
    python_tasks = {v for v, t in reader.tasks.items() if t.operator == "PythonOperator" and t.callable}
    chain = [[v for v in layer if v in python_tasks] for layer in layers]
    chain = [layer for layer in chain if layer]
    names, renamed = _component_names([reader.tasks[v] for layer in chain for v in layer])
    mapped += renamed
    flow = ""
    if len(chain) >= 2 and all(len(layer) == 1 for layer in chain[:-1]):
        steps = [[names[v] for v in layer] for layer in chain]
        flow = " >> ".join(n[0] if len(n) == 1 else "[" + ", ".join(n) + "]" for n in steps)
        mapped.append(f"dependencies -> flow = {flow!r}")
    else:
        todo.append("the tasks do not form a chain rtstream can run (sources >> stages >> sinks): write `flow` by hand")
        flow = "FILL_ME_source >> FILL_ME_sink"
    lines += [f"flow = {toml.string(flow)}", ""]

    lines += ["[window]", 'type = "tumbling"']
    size = None
    if isinstance(schedule, timedelta):
        size = schedule.total_seconds()
    elif isinstance(schedule, str):
        try:
            size = schedule_to_size(schedule)
        except ValueError:
            size = None
    if size is not None and not 0.001 <= size <= MAX_WINDOW_S:
        todo.append(f"schedule {schedule!r} is {format_duration(size) if size > 0 else 'not positive'}: "
                    "not a window size rtstream can use (1ms to 366 days): set window.size")
        size = None
    if size:
        lines.append(f"size = {toml.string(format_duration(size))}   {toml.comment(f'from schedule {schedule!r}')}")
        mapped.append(f"schedule {schedule!r} -> window.size = {format_duration(size)!r}")
    else:
        lines.append('size = "FILL_ME"   # e.g. "5m"')
        if not any("window size" in t for t in todo):
            todo.append(f"schedule {schedule!r} has no fixed window size: set window.size")
    lines += ['time = "source"              # the interval each record was fetched for; use "event" + time_field '
              "if records carry one",
              'lateness = "0s"', 'idle_timeout = "1s"          # a window is written 1s after the fetch that ends it', ""]

    lines += _retry_defaults(path, defaults, mapped, todo)
    if _value(defaults, "depends_on_past"):
        mapped.append("depends_on_past -> always true in rtstream: each sink writes windows in order, a failed one blocks")
    if _value(defaults, "email_on_failure") or _value(defaults, "email"):
        todo.append("email_on_failure / email: rtstream alerts by webhook; point an alert at your mail or chat relay")
    start = _value(defaults, "start_date")
    if start:
        lines.insert(header_end, toml.comment(f"backfill from the DAG's start_date: rtstream backfill -c THIS_FILE "
                                              f"--from {start} --to now"))
        mapped.append(f"start_date -> the default backfill start ({start})")

    if chain and not module.isidentifier():
        todo.append(f"{path.name!r} is not an importable module name: rename the file (e.g. "
                    f"{re.sub(r'[^0-9A-Za-z_]', '_', module)!r}.py) and the calls with it")
    first = chain[0][0] if chain else None
    last = chain[-1] if len(chain) >= 2 else []
    interval = format_duration(size) if size else "5m"
    for layer in chain:
        for var in layer:
            t, name = reader.tasks[var], names[var]
            ref = f"{module}:{t.callable}"
            if var == first:
                lines += [toml.table("sources", name), 'type = "python"            # calls the function every interval; '
                          "its return value is the input. Swap in kafka, http_poll, file ... when you can",
                          f"call = {toml.string(ref)}", f"interval = {toml.string(interval)}", ""]
                mapped.append(f"line {t.line}: {name} -> source slot (python source calling {ref})")
            elif var in last:
                lines += [toml.table("sinks", name), 'type = "python"            # gets each window\'s rows; '
                          "swap in postgres, kafka, http ... when you can", f"call = {toml.string(ref)}", ""]
                mapped.append(f"line {t.line}: {name} -> sink slot (python sink calling {ref})")
            else:
                lines += [toml.table("stages", name), 'type = "python"', f"call = {toml.string(ref)}", ""]
                mapped.append(f"line {t.line}: {name} -> python stage calling {ref}")
            lines[-1:-1] = _task_keys(values, t, name, dag_params, unmapped, mapped)
    if first is not None or last:
        todo.append("the first task is a python source and the last a python sink: pick the real source and sink "
                    "types (kafka, http_poll, postgres, ...) when you are ready")
    lines += ["[daemon]", f"state_dir = {toml.string('var/' + _path_part(dag_id))}", ""]
    for t in reader.tasks.values():
        if t.operator == "PythonOperator" and not t.callable:
            unmapped.append(f"line {t.line}: task {t.task_id!r} has no python_callable by name")
    text = "\n".join(lines) + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    _check_written(text, dag_id, chain, names)
    return ImportResult(text, mapped, unmapped, todo, advise(tree, reader, set(chain[-1]) if len(chain) >= 2 else set()))


def _plain(values: DagValues, node: ast.AST | None, what: str, unmapped: list[str]) -> Any:
    if node is None:
        return None
    try:
        value = values.plain(node)
    except ValueError:
        value = None
    if toml.inline(value) is None:
        unmapped.append(f"line {getattr(node, 'lineno', '?')}: {what} are not constants: left out")
        return None
    return value


def _task_keys(values: DagValues, t: Task, name: str, dag_params: Any, unmapped: list[str],
               mapped: list[str]) -> list[str]:
    """op_args, op_kwargs, templates_dict and params (the DAG's, then the task's), and the Airflow
    task_id where the component was renamed (what xcom_pull(task_ids=...) asks for)."""
    out = []
    found = {k: _plain(values, node, f"the {k} of task {t.task_id!r}", unmapped) for k, node in t.keys.items()}
    if isinstance(dag_params, dict):
        found["params"] = {**dag_params, **(found.get("params") or {})}
    for k in TASK_KEYS:
        if found.get(k) is not None:
            out.append(f"{k} = {toml.inline(found[k])}")
            mapped.append(f"line {t.line}: {k} of {t.task_id!r} -> {name}.{k}")
    if name != t.task_id and _AIRFLOW_TASK_ID.match(t.task_id):  # ids Airflow itself refuses are not kept
        out.append(f"task_id = {toml.string(t.task_id)}   # what xcom_pull(task_ids=...) asks for")
    return out


def _value(defaults: dict[str, tuple[Any, int]], key: str) -> Any:
    return defaults[key][0] if key in defaults else None


def _retry_defaults(path: Path, defaults: dict[str, tuple[Any, int]], mapped: list[str], todo: list[str]) -> list[str]:
    if "retries" not in defaults and "retry_delay" not in defaults:
        return []
    out = ["[defaults]"]
    retries, line = defaults.get("retries", (None, 0))
    if isinstance(retries, int) and not isinstance(retries, bool):
        if not 0 <= retries <= MAX_RETRIES:
            raise DagRefused(path, line, f"retries = {show_value(retries)} is out of range (0 to {MAX_RETRIES})")
        out.append(f"retries = {retries}")
    elif "retries" in defaults:
        todo.append(f"line {line}: retries {show_value(retries)} is not a whole number: set defaults.retries")
    delay, line = defaults.get("retry_delay", (None, 0))
    if isinstance(delay, timedelta):
        if delay < timedelta(0):
            raise DagRefused(path, line, f"retry_delay = {delay} is negative")
        out.append(f"retry_delay = {toml.string(format_duration(delay.total_seconds()))}")
    elif isinstance(delay, (int, float)) and not isinstance(delay, bool) and 0 <= delay < timedelta.max.total_seconds():
        out.append(f"retry_delay = {toml.string(format_duration(delay))}")  # Airflow reads a number as seconds
    elif "retry_delay" in defaults:
        todo.append(f"line {line}: retry_delay {show_value(delay)} is not a duration: set defaults.retry_delay")
    mapped.append("default_args retries / retry_delay -> [defaults]")
    return [*out, ""]


def _path_part(name: str) -> str:
    """`name` as one safe directory name: no separators, no `..`."""
    part = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".")
    return part or "imported"


def _check_written(text: str, dag_id: str, chain: list[list[str]], names: dict[str, str]) -> None:
    """The config parses to exactly the tables written: a guard against any escaping slip."""
    doc = tomllib.loads(text)
    want = [names[v] for layer in chain for v in layer]
    got = [n for section in ("sources", "stages", "sinks") for n in doc.get(section, {})]
    if doc["pipeline"]["name"] != dag_id or sorted(got) != sorted(want):
        raise AssertionError(f"import-dag wrote a config that reads back differently: {got} != {want}")
