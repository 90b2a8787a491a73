"""Is a DAG file better run as it is (`rtstream run --dags`) than converted into a pipeline? Read as
source, never run, as import-dag reads it.

A pipeline passes each step's return value on as the next one's rows, every window, through every
stage. A DAG that does anything else would run with another meaning as a pipeline, so import-dag
writes no config for it and says why, one reason per construct with its line:
branches and short-circuits, sensors, Bash and every operator that is not a PythonOperator (it acts
by side effect; a pipeline has no step for it), XCom pushed by hand or pulled by key, a task in the
middle of the chain whose function returns nothing, trigger rules, dynamic task mapping, TaskFlow
(`@task`, `@dag`), several DAGs in one file, tasks made in a loop.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from rtstream.airflow.dag_reader import DagReader
from rtstream.airflow.dag_values import call_name, keyword_arg

_PASSES_ROWS = {"PythonOperator"}
_HARMLESS = {"EmptyOperator", "DummyOperator"}  # no side effect: skipping one keeps the meaning


@dataclass(frozen=True)
class Reason:
    line: int
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}"


def _operator_reason(name: str, task_id: str) -> str | None:
    short = name.split(".")[-1]
    who = f"task {task_id} is a {short}"
    if "Branch" in short:
        return f"{who}: a branch picks which tasks run; a pipeline runs every stage on every window"
    if "ShortCircuit" in short:
        return f"{who}: it can skip the tasks after it; a pipeline never skips a stage"
    if short.endswith("Sensor") or short.endswith("SensorAsync"):
        return f"{who}: a sensor waits for something outside; a pipeline never waits"
    if short == "BashOperator":
        return f"{who}: it runs a command; a pipeline has no step for it and would skip it"
    if short in _PASSES_ROWS or short in _HARMLESS:
        return None
    return f"{who}: it acts by side effect (not rows); a pipeline has no step for it and would skip it"


def _task_id(call: ast.Call) -> str:
    """`'the_id'` quoted, or `(id computed at run time)` where it is not a plain string."""
    node = keyword_arg(call, "task_id")
    return repr(node.value) if isinstance(node, ast.Constant) and isinstance(node.value, str) else "(computed id)"


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    parts = []
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    return ".".join(reversed(parts))


def _returns_nothing(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function with a body (not a `...` placeholder) and no `return <value>` anywhere in it."""
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    if not body or all(isinstance(s, ast.Pass) for s in body):
        return False  # a placeholder to fill in, as the README's DAG has
    for node in ast.walk(fn):
        if isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            return False
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return False
    return True


def _in_loop(tree: ast.Module) -> set[int]:
    """Lines of the operator calls made inside a `for`/`while` loop."""
    lines: set[int] = set()
    for loop in ast.walk(tree):
        if isinstance(loop, (ast.For, ast.While, ast.AsyncFor)):
            lines |= {n.lineno for n in ast.walk(loop) if isinstance(n, ast.Call)
                      and call_name(n).endswith(("Operator", "Sensor"))}
    return lines


def advise(tree: ast.Module, reader: DagReader, chain_ends: set[str]) -> list[Reason]:
    """Why the DAG is better run as it is (empty: converting it keeps its meaning). `chain_ends`: the
    variables of the tasks a pipeline would make its sinks (their return value is not passed on)."""
    reasons: list[Reason] = []
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    dags = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                name = _decorator_name(dec)
                if name in ("dag", "airflow.decorators.dag") or name.endswith(".dag"):
                    dags += 1
                    reasons.append(Reason(node.lineno, f"@dag function {node.name!r}: TaskFlow, its tasks pass "
                                                       "XComArgs that import-dag does not read"))
                elif name == "task" or name.startswith("task.") or name.endswith((".task", "task_group")):
                    reasons.append(Reason(node.lineno, f"@{name} function {node.name!r}: a TaskFlow task, "
                                                       "which import-dag does not read"))
        if not isinstance(node, ast.Call):
            continue
        name = call_name(node)
        if name.split(".")[-1] == "DAG":
            dags += 1
        elif name.endswith(("Operator", "Sensor", "SensorAsync")):
            if (why := _operator_reason(name, _task_id(node))) is not None:
                reasons.append(Reason(node.lineno, why))
            rule = keyword_arg(node, "trigger_rule")
            if rule is not None and not (isinstance(rule, ast.Constant) and rule.value == "all_success"):
                reasons.append(Reason(node.lineno, f"task {_task_id(node)} has a trigger_rule: it runs on "
                                                   "other tasks' skips or failures, which a pipeline does not have"))
        elif isinstance(node.func, ast.Attribute) and node.func.attr == "xcom_push":
            reasons.append(Reason(node.lineno, "a task pushes XCom by hand (ti.xcom_push): a pipeline passes only "
                                               "each step's return value"))
        elif isinstance(node.func, ast.Attribute) and node.func.attr == "xcom_pull" and (
                (key := keyword_arg(node, "key")) is not None
                and not (isinstance(key, ast.Constant) and key.value == "return_value")):
            reasons.append(Reason(node.lineno, "a task pulls XCom by key: a pipeline passes only each step's "
                                               "return value"))
        elif isinstance(node.func, ast.Attribute) and node.func.attr in ("expand", "expand_kwargs"):
            reasons.append(Reason(node.lineno, "dynamic task mapping (.expand): one task instance per value, "
                                               "which a pipeline's stage is not"))
    if dags > 1:
        reasons.append(Reason(1, f"{dags} DAGs in one file: a config is one pipeline"))
    for line in sorted(_in_loop(tree)):
        reasons.append(Reason(line, "tasks made in a loop: import-dag reads one task where the loop makes several"))
    for var, t in reader.tasks.items():
        fn = functions.get(t.callable or "")
        if t.operator == "PythonOperator" and var not in chain_ends and fn is not None and _returns_nothing(fn):
            reasons.append(Reason(t.line, f"task {t.task_id!r} calls {fn.name}(), which returns nothing (it acts by "
                                          "side effect): in a pipeline the steps after it would get no rows"))
    if not reasons and not any(t.operator in _PASSES_ROWS for t in reader.tasks.values()):
        reasons.append(Reason(1, "no PythonOperator task: nothing in it passes rows, which is what a pipeline does"))
    unique = {(r.line, r.text): r for r in reasons}
    return sorted(unique.values(), key=lambda r: (r.line, r.text))


def advice_text(path: str, reasons: list[Reason]) -> str:
    """What import-dag prints instead of a config."""
    lines = [f"rtstream import-dag: {path} is better run as it is: rtstream run --dags {path} "
             f"(one run to try: rtstream dags test {path}). No config written: as a pipeline it would run "
             "with another meaning, because:"]
    lines += [f"  {r}" for r in reasons]
    return "\n".join(lines)
