"""What is run-dependent in a task instance's XCom, replaced by a placeholder on both sides of the
comparison (the recorded Airflow run and rtstream's run), so that a recording is stable across runs.

Standard library only: tests/compat/oracle.py runs before any venv exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Described in every expected file, so a reader knows what a placeholder stands for.
RULES = {
    "<AIRFLOW_HOME>": "the throwaway AIRFLOW_HOME (a temporary directory) of the run",
    "<WORKDIR>": "the empty temporary directory the DAG ran in (its cwd)",
    "<REPO>": "the checkout's root directory",
    "<VOLATILE>": "a value that changes on every run (wall clock, process ids); listed per DAG under "
                  "'volatile' in corpus.toml and not compared",
    "skipmixin_key": "the lists in Airflow's skipmixin_key bookkeeping XCom are sorted (Airflow writes them "
                     "in set order)",
}

def replace_paths(value: Any, paths: dict[str, str]) -> Any:
    """Every occurrence of each path (longest first, so a path inside another is not half replaced)
    in every string of the value, keys of dicts included."""
    ordered = sorted(((p, tag) for p, tag in paths.items() if p), key=lambda pt: -len(pt[0]))

    def fix(text: str) -> str:
        for path, tag in ordered:
            text = text.replace(path, tag)
        return text

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return fix(v)
        if isinstance(v, dict):
            return {fix(str(k)): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)


def mask_volatile(records: list[dict[str, Any]], volatile: dict[str, str]) -> list[dict[str, Any]]:
    """Each XCom of a task listed as volatile becomes "<VOLATILE>" (the key stays: its presence is
    still compared)."""
    out = []
    for rec in records:
        if rec.get("task_id") in volatile and "xcom" in rec:
            rec = {**rec, "xcom": {k: "<VOLATILE>" for k in rec["xcom"]}}
        out.append(rec)
    return out


def sort_bookkeeping(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Airflow's skipmixin_key lists the tasks it skipped in set order, which changes from run to run:
    sorted, so a recording is stable (the key is Airflow's bookkeeping and is not compared)."""
    out = []
    for rec in records:
        book = rec.get("xcom", {}).get("skipmixin_key")
        if isinstance(book, dict):
            book = {k: sorted(v) if isinstance(v, list) else v for k, v in book.items()}
            rec = {**rec, "xcom": {**rec["xcom"], "skipmixin_key": book}}
        out.append(rec)
    return out


CALLBACKS_FILE = "callbacks.jsonl"
# Added to a recording's `normalised` only when the DAG wrote callback lines (the other recordings stay
# byte for byte as they were).
CALLBACKS_RULE = ("the lines the DAG's callbacks wrote (callbacks.jsonl in the cwd), grouped by task "
                  "instance with each one's own order kept, DAG callbacks last: the order across tasks "
                  "is not compared")


def read_callbacks(workdir: Any) -> list[dict[str, Any]] | None:
    """The lines a corpus DAG's callbacks appended to callbacks.jsonl in the run's cwd (see
    dags/constructs/callbacks.py), grouped by task instance with each one's own order kept: Airflow's
    `dags test` runs one task at a time, rtstream runs independent ones at once, so only the order
    of one task instance's callbacks is comparable; a DAG callback (it has `reason`) comes last.
    None when the DAG wrote no such file (every recording made before callbacks were recorded)."""
    path = Path(workdir) / CALLBACKS_FILE
    if not path.exists():
        return None
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(lines, key=lambda c: ("reason" in c, c.get("task_id", ""), c.get("map_index", -1)))
