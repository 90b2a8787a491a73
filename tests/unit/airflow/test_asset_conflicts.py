"""Two assets of a DAG bag that share a name or a URI but not both: Airflow 3 activates one of them
(whichever it stores first) and fails the other's tasks; rtstream cannot know the order and refuses
the DAGs concerned, naming both assets. Airflow 2 files are not checked (a Dataset is its URI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtstream.airflow.dagbag import load

pytestmark = pytest.mark.usefixtures("stand_in")

FILE = '''
from datetime import datetime
from airflow.sdk import DAG, Asset, task

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)):
    @task(outlets=[Asset({args})])
    def t():
        pass

    t()
'''


def write(folder: Path, dag_id: str, args: str, airflow2: bool = False) -> None:
    text = FILE.format(dag_id=dag_id, args=args)
    if airflow2:
        text = text.replace("from airflow.sdk import DAG, Asset, task",
                            "from airflow import DAG, Dataset as Asset\nfrom airflow.decorators import task")
    (folder / f"{dag_id}.py").write_text(text)


def test_a_uri_with_two_names_refuses_both_dags(tmp_path: Path) -> None:
    write(tmp_path, "a", "'s3://out/1.txt'")
    write(tmp_path, "b", "name='test-asset', uri='s3://out/1.txt'")
    write(tmp_path, "c", "'s3://out/other'")
    bag = load(tmp_path)
    assert bag.refused_tasks(bag.dags["a"]) == [
        f"task t: Asset(name='s3://out/1.txt', uri='s3://out/1.txt') shares its URI with Asset(name='test-asset', "
        f"uri='s3://out/1.txt') of b.t ({tmp_path / 'b.py'}): Airflow 3 activates only one of them (whichever it "
        "stores first) and fails the tasks of the other; give each asset one name and one URI"]
    assert "shares its URI with Asset(name='s3://out/1.txt'" in bag.refused_tasks(bag.dags["b"])[0]
    assert bag.refused_tasks(bag.dags["c"]) == []
    # one file alone has nothing to conflict with (what `dags test FILE` loads)
    single = load(tmp_path / "a.py")
    assert single.refused_tasks(single.dags["a"]) == []


def test_a_name_with_two_uris_and_the_same_asset_twice(tmp_path: Path) -> None:
    write(tmp_path, "a", "name='orders', uri='s3://x'")
    write(tmp_path, "b", "name='orders', uri='s3://y'")
    write(tmp_path, "c", "name='orders', uri='s3://x'")
    bag = load(tmp_path)
    assert "shares its name with Asset(name='orders', uri='s3://y')" in bag.refused_tasks(bag.dags["a"])[0]
    assert "shares its name with Asset(name='orders', uri='s3://x')" in bag.refused_tasks(bag.dags["b"])[0]
    assert len(bag.refused_tasks(bag.dags["c"])) == 1  # c agrees with a, but b still conflicts with it


def test_airflow2_files_are_not_checked(tmp_path: Path) -> None:
    write(tmp_path, "a", "'s3://out/1.txt'", airflow2=True)
    write(tmp_path, "b", "'s3://out/1.txt', extra={'k': 1}", airflow2=True)
    bag = load(tmp_path)
    assert bag.refused_tasks(bag.dags["a"]) == bag.refused_tasks(bag.dags["b"]) == []
