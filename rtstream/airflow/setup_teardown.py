"""Setup and teardown tasks, as Airflow 2.7+ has them (`airflow.models.abstractoperator`,
`airflow.utils.setup_teardown`, `TriggerRuleDep._evaluate_setup_constraint`, `DagRun._tis_for_dagrun_state`).

- `op.as_setup()`, `op.as_teardown(setups=...)` (also on an XComArg), `@setup` / `@teardown`: a
  teardown gets the trigger rule `all_done_setup_success` and its setups upstream.
- A task that is not a teardown, with a *relevant* setup further upstream (one whose teardown is
  downstream of the task, or that has no teardown) that failed or was skipped, is upstream_failed
  or skipped, as Airflow's setup constraint decides.
- `with teardown_task:` (or `with teardown(setup()):`): the tasks made in the block run between
  the teardown's setups and the teardown.
- The run's state ignores teardowns (unless `on_failure_fail_dagrun`) and the tasks whose only
  downstream are such teardowns.
"""

from __future__ import annotations

from typing import Any

from rtstream.airflow.dag_model import NOTSET, DependencyMixin, current_dag

ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"


def mark_setup(op: Any) -> None:
    op.is_setup = True


def mark_teardown(op: Any, setups: Any = NOTSET, on_failure_fail_dagrun: Any = NOTSET) -> None:
    op.is_teardown = True
    op.trigger_rule = ALL_DONE_SETUP_SUCCESS
    if on_failure_fail_dagrun is not NOTSET:
        op.on_failure_fail_dagrun = bool(on_failure_fail_dagrun)
    if setups is not NOTSET:
        for s in [setups] if isinstance(setups, DependencyMixin) else list(setups):
            for setup_op in s.dep_roots():
                setup_op.is_setup = True
            s >> op


def _relatives(dag: Any, task: Any, upstream: bool) -> list[Any]:
    out: dict[str, Any] = {}
    todo = list(task.upstream_task_ids if upstream else task.downstream_task_ids)
    while todo:
        tid = todo.pop()
        if tid not in out:
            out[tid] = dag.task_dict[tid]
            todo.extend(out[tid].upstream_task_ids if upstream else out[tid].downstream_task_ids)
    return list(out.values())


def relevant_setups(dag: Any, task: Any) -> list[Any]:
    """AbstractOperator.get_upstreams_only_setups: the setups upstream whose teardown is downstream of
    `task`, or that have no teardown."""
    downstream_teardowns = {t.task_id for t in _relatives(dag, task, upstream=False) if getattr(t, "is_teardown", False)}
    out = []
    for up in _relatives(dag, task, upstream=True):
        if not getattr(up, "is_setup", False):
            continue
        has_teardowns = any(getattr(dag.task_dict[d], "is_teardown", False) for d in up.downstream_task_ids)
        if not has_teardowns or up.downstream_task_ids & downstream_teardowns:
            out.append(up)
    return out


def setup_constraint(dag: Any, task: Any, states: dict[str, list[str | None]]) -> str | None:
    """The state the setup constraint sets (upstream_failed, skipped), or None; `states` by task id."""
    if getattr(task, "is_teardown", False):
        return None  # a teardown has no indirect setups
    indirect = [s.task_id for s in relevant_setups(dag, task) if s.task_id not in task.upstream_task_ids]
    found = [st for tid in indirect for st in states[tid]]
    if any(st in ("failed", "upstream_failed") for st in found):
        return "upstream_failed"
    if any(st == "skipped" for st in found):
        return "skipped"
    return None


def effective_leaves(dag: Any) -> list[Any]:
    """DagRun._tis_for_dagrun_state: the leaves that decide the run's state, teardowns left out."""
    def ignorable(t: Any) -> bool:
        return bool(getattr(t, "is_teardown", False)) and not getattr(t, "on_failure_fail_dagrun", False)

    leaves = [t for t in dag.tasks if all(ignorable(dag.task_dict[d]) for d in t.downstream_task_ids)
              and not ignorable(t)]
    return leaves or [t for t in dag.tasks if not t.downstream_task_ids]


class SetupTeardownScope:
    """`with teardown_task:`: the tasks made inside run after its setups and before it."""

    def __init__(self, teardowns: list[Any]):
        self.teardowns = teardowns
        self.dag = current_dag() or (teardowns[0].dag if teardowns else None)
        self.before: set[str] = set()

    def __enter__(self) -> SetupTeardownScope:
        self.before = set(self.dag.task_dict) if self.dag is not None else set()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.dag is None or exc[0] is not None:
            return
        setups = {tid: self.dag.task_dict[tid] for td in self.teardowns for tid in td.upstream_task_ids
                  if getattr(self.dag.task_dict[tid], "is_setup", False)}
        mine = {t.task_id for t in self.teardowns} | set(setups)
        new = {tid: t for tid, t in self.dag.task_dict.items() if tid not in self.before and tid not in mine}
        for t in new.values():
            if not t.upstream_task_ids & set(new):
                for s in setups.values():
                    s.add_edge_to(t)
            if not t.downstream_task_ids & set(new):
                for td in self.teardowns:
                    t.add_edge_to(td)
