"""Which task instances a branch or short-circuit decision skips (Airflow's `SkipMixin.skip_all_except`
and `ShortCircuitOperator`), apart from applying it: the run applies it when the deciding try succeeds,
and an Airflow 3 task needs it earlier, to know whether its return value is kept (airflow/airflow3.py)."""

from __future__ import annotations

from typing import Any

from rtstream.airflow.dag_model import DAG, TaskGroup


def descendants(dag: DAG, task_id: str) -> set[str]:
    out: set[str] = set()
    todo = list(dag.task_dict[task_id].downstream_task_ids)
    while todo:
        tid = todo.pop()
        if tid not in out:
            out.add(tid)
            todo.extend(dag.task_dict[tid].downstream_task_ids)
    return out


def groups_of(group: TaskGroup) -> dict[str, TaskGroup]:
    out = {group.group_id: group} if group.group_id else {}
    for child in group.children:
        if isinstance(child, TaskGroup):
            out.update(groups_of(child))
    return out


def tasks_to_skip(dag: DAG, ti: Any, groups: dict[str, TaskGroup] | None = None) -> set[str]:
    """The task ids `ti`'s branch (followed ids, a group standing for its roots) or short-circuit skips."""
    task = dag.task_dict[ti.task_id]
    if ti.branch is not None:
        groups = groups_of(dag.task_group) if groups is None else groups
        followed: set[str] = set()
        for tid in ti.branch:
            if tid in groups:
                followed |= {t.task_id for t in groups[tid].dep_roots()}
            else:
                followed.add(tid)
        for tid in list(followed):  # a task downstream of a followed one is followed too (Airflow's join case)
            followed |= descendants(dag, tid)
        return set(task.downstream_task_ids) - followed
    if ti.short_circuit is not None:
        return descendants(dag, ti.task_id) if ti.short_circuit else set(task.downstream_task_ids)
    return set()
