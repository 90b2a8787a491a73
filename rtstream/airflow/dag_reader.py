"""Reading an Airflow DAG file as source, never running it: its tasks, their order and their keys.

rtstream.airflow.dag_import turns what is found here into a config.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from rtstream.airflow.dag_values import DagRefused, DagValues, call_name, keyword_arg

TASK_KEYS = ("op_args", "op_kwargs", "templates_dict", "params")  # carried over to the config as they are


@dataclass
class Task:
    var: str
    task_id: str
    operator: str
    callable: str | None
    line: int
    keys: dict[str, ast.AST] = field(default_factory=dict)


class DagReader(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
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
            if isinstance(item.context_expr, ast.Call) and call_name(item.context_expr).endswith("DAG"):
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
        name = call_name(call)
        if name.endswith("DAG"):
            self.dag = call
            return
        if not name.endswith("Operator") and not name.endswith("Sensor"):
            return
        tid = DagValues(self.path, self.names).of(keyword_arg(call, "task_id") or ast.Constant(var))  # the names bound so far
        if not isinstance(tid, str):
            self.unmapped.append(f"line {call.lineno}: the task_id of {var!r} is not a plain string: named {var!r}")
            tid = var
        fn = keyword_arg(call, "python_callable")
        fname = fn.id if isinstance(fn, ast.Name) else None
        keys = {k: node for k in TASK_KEYS if (node := keyword_arg(call, k)) is not None}
        self.tasks[var] = Task(var, tid, name.split(".")[-1], fname, call.lineno, keys)
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


def task_layers(tasks: dict[str, Task], edges: list[tuple[str, str]]) -> list[list[str]]:
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


def read_source(path: Path) -> ast.Module:
    try:
        source = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DagRefused(path, None, f"not valid UTF-8 (byte {exc.start})") from None
    try:
        return ast.parse(source, filename=str(path))
    except (RecursionError, MemoryError):
        raise DagRefused(path, None, "nested too deeply to read") from None
    except ValueError as exc:  # null bytes, on older Pythons
        raise DagRefused(path, None, str(exc)) from None
