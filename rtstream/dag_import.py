"""`rtstream import-dag DAG.py`: an Airflow DAG file read as source (never run) into an rtstream config.

Mapped: the DAG id, description and schedule (a minute-step cron, a timedelta, @hourly / @daily),
default_args (retries, retry_delay, depends_on_past, email_on_failure, start_date), PythonOperator
tasks (as python source, stages and sink calling the same functions) and the dependency chain
(`>>`, `<<`, set_downstream / set_upstream, lists). Everything else is reported with its line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rtstream.config.durations import format_duration, schedule_to_size


@dataclass
class Task:
    var: str
    task_id: str
    operator: str
    callable: str | None
    line: int


@dataclass
class ImportResult:
    config: str
    mapped: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    def report(self) -> str:
        out = ["mapped:"] + [f"  {m}" for m in self.mapped]
        if self.unmapped:
            out += ["not mapped:"] + [f"  {u}" for u in self.unmapped]
        if self.todo:
            out += ["to do:"] + [f"  {t}" for t in self.todo]
        return "\n".join(out)


def _const(node: ast.AST, names: dict[str, ast.AST]) -> Any:
    """The value of a literal, a timedelta(...)/datetime(...) call, or a name bound to one."""
    if isinstance(node, ast.Name) and node.id in names:
        return _const(names[node.id], names)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Dict):
        return {_const(k, names): v for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_const(e, names) for e in node.elts]
    if isinstance(node, ast.Call):
        fname = _call_name(node)
        if fname in ("timedelta", "datetime.timedelta"):
            kwargs = {k.arg: _const(k.value, names) for k in node.keywords if k.arg}
            args = [_const(a, names) for a in node.args]
            return timedelta(*args, **kwargs)
        if fname in ("datetime", "datetime.datetime", "pendulum.datetime"):
            parts = [_const(a, names) for a in node.args][:6]
            parts += [0] * (6 - len(parts))
            return "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*parts)
    return None


def _call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        base = f.value.id if isinstance(f.value, ast.Name) else "?"
        return f"{base}.{f.attr}"
    return "?"


def _kw(call: ast.Call, name: str, pos: int | None = None) -> ast.AST | None:
    for k in call.keywords:
        if k.arg == name:
            return k.value
    if pos is not None and len(call.args) > pos:
        return call.args[pos]
    return None


class _Reader(ast.NodeVisitor):
    def __init__(self) -> None:
        self.names: dict[str, ast.AST] = {}
        self.dag: ast.Call | None = None
        self.tasks: dict[str, Task] = {}
        self.edges: list[tuple[str, str]] = []
        self.unmapped: list[str] = []
        self.functions: set[str] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.functions.add(node.name)

    def visit_Assign(self, node: ast.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            self.names[node.targets[0].id] = node.value
            if isinstance(node.value, ast.Call):
                self._call(node.value, node.targets[0].id)
        self.generic_visit(node)

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            if isinstance(item.context_expr, ast.Call) and _call_name(item.context_expr).endswith("DAG"):
                self.dag = item.context_expr
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.BinOp):
            self._chain(node.value)
        elif isinstance(node.value, ast.Call):
            c = node.value
            if isinstance(c.func, ast.Attribute) and c.func.attr in ("set_downstream", "set_upstream") and c.args:
                a, b = self._refs(c.func.value), self._refs(c.args[0])
                if c.func.attr == "set_upstream":
                    a, b = b, a
                self.edges += [(x, y) for x in a for y in b]
        self.generic_visit(node)

    def _call(self, call: ast.Call, var: str) -> None:
        name = _call_name(call)
        if name.endswith("DAG"):
            self.dag = call
            return
        if not name.endswith("Operator") and not name.endswith("Sensor"):
            return
        tid = _const(_kw(call, "task_id") or ast.Constant(var), self.names)
        fn = _kw(call, "python_callable")
        fname = fn.id if isinstance(fn, ast.Name) else None
        self.tasks[var] = Task(var, str(tid), name.split(".")[-1], fname, call.lineno)
        if name.split(".")[-1] != "PythonOperator":
            self.unmapped.append(f"line {call.lineno}: task {tid!r} is a {name.split('.')[-1]}; only PythonOperator maps")

    def _refs(self, node: ast.AST) -> list[str]:
        if isinstance(node, ast.Name):
            return [node.id]
        if isinstance(node, (ast.List, ast.Tuple)):
            return [r for e in node.elts for r in self._refs(e)]
        if isinstance(node, ast.BinOp):
            return self._chain(node)
        return []

    def _chain(self, node: ast.BinOp) -> list[str]:
        """Record the edges of `a >> b` / `a << b`; returns the right-hand side (what a chain continues from)."""
        if not isinstance(node.op, (ast.RShift, ast.LShift)):
            return []
        left = self._refs(node.left)
        right = self._refs(node.right)
        if isinstance(node.op, ast.RShift):
            self.edges += [(a, b) for a in left for b in right]
        else:
            self.edges += [(b, a) for a in left for b in right]
        return right


def _order(tasks: dict[str, Task], edges: list[tuple[str, str]]) -> list[list[str]]:
    """Tasks in dependency layers: [[first], [second], ..., [last a, last b]]."""
    nodes = [v for v in tasks]
    indeg = {n: 0 for n in nodes}
    for a, b in edges:
        if a in indeg and b in indeg:
            indeg[b] += 1
    layers = []
    ready = [n for n in nodes if indeg[n] == 0]
    seen: set[str] = set()
    while ready:
        layers.append(ready)
        seen.update(ready)
        nxt = []
        for a, b in edges:
            if a in ready and b in indeg:
                indeg[b] -= 1
                if indeg[b] == 0 and b not in seen and b not in nxt:
                    nxt.append(b)
        ready = nxt
    return layers


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def import_dag(path: Path) -> ImportResult:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    reader = _Reader()
    reader.visit(tree)
    module = path.stem
    mapped: list[str] = []
    todo: list[str] = []
    unmapped = list(reader.unmapped)
    dag = reader.dag
    dag_id = "imported"
    description = None
    schedule: Any = None
    defaults: dict[str, Any] = {}
    if dag is None:
        unmapped.append("no DAG(...) found: pipeline name and window left as placeholders")
    else:
        dag_id = str(_const(_kw(dag, "dag_id", 0) or ast.Constant("imported"), reader.names))
        description = _const(_kw(dag, "description") or ast.Constant(None), reader.names)
        sched_node = _kw(dag, "schedule_interval") or _kw(dag, "schedule")
        schedule = _const(sched_node, reader.names) if sched_node is not None else None
        da = _kw(dag, "default_args")
        defaults = _const(da, reader.names) if da is not None else {}
        defaults = {k: _const(v, reader.names) if isinstance(v, ast.AST) else v for k, v in (defaults or {}).items()}
        mapped.append(f"DAG {dag_id!r} (line {dag.lineno}) -> pipeline.name")

    lines = [f"# Imported from {path.name} by `rtstream import-dag`.", f"# {description}" if description else "", ""]
    lines += ["[pipeline]", f"name = {_toml_str(dag_id)}"]
    layers = _order(reader.tasks, reader.edges)
    python_tasks = {v for v, t in reader.tasks.items() if t.operator == "PythonOperator" and t.callable}
    chain = [[v for v in layer if v in python_tasks] for layer in layers]
    chain = [layer for layer in chain if layer]
    flow = ""
    if len(chain) >= 2 and all(len(layer) == 1 for layer in chain[:-1]):
        names = [[reader.tasks[v].task_id for v in layer] for layer in chain]
        flow = " >> ".join(n[0] if len(n) == 1 else "[" + ", ".join(n) + "]" for n in names)
        mapped.append(f"dependencies -> flow = {flow!r}")
    else:
        todo.append("the tasks do not form a chain rtstream can run (sources >> stages >> sinks): write `flow` by hand")
        flow = "FILL_ME_source >> FILL_ME_sink"
    lines += [f"flow = {_toml_str(flow)}", ""]

    lines += ["[window]", 'type = "tumbling"']
    size = None
    if isinstance(schedule, timedelta):
        size = schedule.total_seconds()
    elif isinstance(schedule, str):
        try:
            size = schedule_to_size(schedule)
        except ValueError:
            size = None
    if size:
        lines.append(f"size = {_toml_str(format_duration(size))}   # from schedule {schedule!r}")
        mapped.append(f"schedule {schedule!r} -> window.size = {format_duration(size)!r}")
    else:
        lines.append('size = "FILL_ME"   # e.g. "5m"')
        todo.append(f"schedule {schedule!r} has no fixed window size: set window.size")
    lines += ['time = "source"              # the time each record was fetched; use "event" + time_field if records carry one',
              'lateness = "0s"', ""]

    if "retries" in defaults or "retry_delay" in defaults:
        lines.append("[defaults]")
        if isinstance(defaults.get("retries"), int):
            lines.append(f"retries = {defaults['retries']}")
        if isinstance(defaults.get("retry_delay"), timedelta):
            lines.append(f"retry_delay = {_toml_str(format_duration(defaults['retry_delay'].total_seconds()))}")
        lines.append("")
        mapped.append("default_args retries / retry_delay -> [defaults]")
    if defaults.get("depends_on_past"):
        mapped.append("depends_on_past -> always true in rtstream: each sink writes windows in order, a failed one blocks")
    if defaults.get("email_on_failure") or defaults.get("email"):
        todo.append("email_on_failure / email: rtstream alerts by webhook; point an alert at your mail or chat relay")
    start = defaults.get("start_date")
    if start:
        lines.insert(2, f"# backfill from the DAG's start_date: rtstream backfill -c THIS_FILE --from {start} --to <now>")
        mapped.append(f"start_date -> the default backfill start ({start})")

    first = chain[0][0] if chain else None
    last = chain[-1] if len(chain) >= 2 else []
    for layer in chain:
        for var in layer:
            t = reader.tasks[var]
            ref = f"{module}:{t.callable}"
            if var == first:
                lines += [f"[sources.{t.task_id}]", 'type = "python"            # calls the function every interval; '
                          "its return value is the input. Swap in kafka, http_poll, file ... when you can",
                          f"call = {_toml_str(ref)}", f'interval = "{format_duration(size) if size else "5m"}"', ""]
                mapped.append(f"line {t.line}: {t.task_id} -> source slot (python source calling {ref})")
            elif var in last:
                lines += [f"[sinks.{t.task_id}]", 'type = "python"            # gets each window\'s rows; '
                          "swap in postgres, kafka, http ... when you can", f"call = {_toml_str(ref)}", ""]
                mapped.append(f"line {t.line}: {t.task_id} -> sink slot (python sink calling {ref})")
            else:
                lines += [f"[stages.{t.task_id}]", 'type = "python"', f"call = {_toml_str(ref)}", ""]
                mapped.append(f"line {t.line}: {t.task_id} -> python stage calling {ref}")
    if first is not None or last:
        todo.append("the first task is a python source and the last a python sink: pick the real source and sink "
                    "types (kafka, http_poll, postgres, ...) when you are ready")
    lines += ["[daemon]", f'state_dir = "var/{dag_id}"', ""]
    for t in reader.tasks.values():
        if t.operator == "PythonOperator" and not t.callable:
            unmapped.append(f"line {t.line}: task {t.task_id!r} has no python_callable by name")
    text = "\n".join(line for line in lines if line is not None) + "\n"
    return ImportResult(text.replace("\n\n\n", "\n\n"), mapped, unmapped, todo)
