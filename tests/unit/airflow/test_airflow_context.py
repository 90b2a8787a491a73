"""The Airflow task context of a window: what a PythonOperator's callable receives, and XCom."""

from __future__ import annotations

import pytest

from rtstream.airflow.task_context import AirflowTask, XComStore, render, template_problems
from rtstream.model.window import Window

START, END = 1_764_000_000_000 - 1_764_000_000_000 % 300_000, 1_764_000_000_000 - 1_764_000_000_000 % 300_000 + 300_000


def task(fn, store, name="t", upstream=("up",), seeds=(), **keys):
    return AirflowTask(fn, f"m:{fn.__name__}", dag_id="d", task_id=name, store=store, upstream=list(upstream),
                       seeds=list(seeds), **keys)


def test_context_names_op_kwargs_and_templates_per_window():
    seen = {}

    def fn(a, ds, data_interval_end, templates_dict, label, **rest):
        seen.update(a=a, ds=ds, end=data_interval_end, td=templates_dict, label=label, ts=rest["ts"],
                    run_id=rest["run_id"], p=rest["params"])

    t = task(fn, XComStore(), op_args=[1], op_kwargs={"label": "day {{ ds_nodash }} {{ params.team }}"},
             templates_dict={"q": "SELECT * WHERE d = '{{ ds }}' AND t < '{{ data_interval_end }}'"},
             params={"team": "ops"})
    t(Window(START, END, [{"x": 1}]))
    assert seen["a"] == 1 and seen["ds"] == "2025-11-24" and seen["end"].timestamp() * 1000 == END
    assert seen["label"] == "day 20251124 ops" and seen["p"] == {"team": "ops"}
    assert seen["td"] == {"q": "SELECT * WHERE d = '2025-11-24' AND t < '2025-11-24 16:05:00+00:00'"}
    assert seen["ts"] == "2025-11-24T16:00:00+00:00" and seen["run_id"] == "scheduled__2025-11-24T16:00:00+00:00"


def test_xcom_is_per_window_and_the_first_task_stands_in_for_the_source():
    store = XComStore()

    def process(ti, **_):
        ti.xcom_push(key="n", value=len(ti.xcom_pull(task_ids="fetch")))
        return [{"v": r["v"] * 2} for r in ti.xcom_pull(task_ids="fetch")]

    def store_data(ti, **_):
        return (ti.xcom_pull(task_ids="process"), ti.xcom_pull(), ti.xcom_pull(task_ids="process", key="n"),
                ti.xcom_pull(task_ids=["process", "nobody"]))

    p = task(process, store, "process", upstream=("fetch",), seeds=("fetch",))
    s = task(store_data, store, "store", upstream=("process",))
    assert p(Window(START, END, [{"v": 1}, {"v": 2}])) == [{"v": 2}, {"v": 4}]
    assert p(Window(END, END + 300_000, [{"v": 5}])) == [{"v": 10}]
    got = s(Window(START, END, []))
    assert got is None  # not rows: passes the rows on
    assert store.of((START, END, None))[("store", "return_value")] == (
        [{"v": 2}, {"v": 4}], [{"v": 2}, {"v": 4}], 2, [[{"v": 2}, {"v": 4}], None])


def test_unsupported_templates_are_named():
    assert template_problems({"a": ["{{ ds }}", "{{ macros.ds_add(ds, 1) }}", "{{ ds | upper }}"]}) == [
        "{{ macros.ds_add(ds, 1) }}", "{{ ds | upper }}"]
    assert render("{{ dag.dag_id }}/{{ task.task_id }}", {"dag": type("D", (), {"dag_id": "x"}),
                                                         "task": type("T", (), {"task_id": "y"})}) == "x/y"


@pytest.mark.parametrize("ref", ["m:f"])
def test_async_functions_run_in_the_worker_thread(ref):
    async def fn(ds):
        return {"ds": ds}

    assert task(fn, XComStore())(Window(START, END, [])) == {"ds": "2025-11-24"}
