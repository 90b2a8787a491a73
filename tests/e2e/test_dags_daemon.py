"""The real `rtstream run` process scheduling DAG files: runs per interval with Airflow's logical dates
and data intervals (catchup on start), a failing DAG and a broken file beside a good one, and the
config shapes of `[dags]` / `--dags`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.dag_daemon_support import TickerSetup, check_exact
from tests.support import rtstream_cmd, run_cli, wait_until, write_config


def test_runs_happen_per_interval_with_airflows_logical_dates(tmp_path: Path) -> None:
    now = int(time.time())
    setup = TickerSetup(tmp_path, start=now - 8, end=now + 3)  # 8 missed intervals: catchup runs them first
    with setup.daemon() as d:
        wait_until(setup.all_done, 60, what="every interval of the ticker DAG done")
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 0, d.stderr
    tally = check_exact(setup, interrupted_tries_allowed=False)
    assert tally == {"runs": 12, "interrupted_tries": 0}
    # a run starts once its data interval has ended, never before
    early = [r for r in setup.lines() if r["wall"] < datetime.fromisoformat(r["end"]).timestamp()]
    assert early == []
    assert "ticker: no further scheduled run" in d.stderr  # end_date reached


def test_a_failing_dag_and_a_broken_file_leave_the_good_dag_on_schedule(tmp_path: Path) -> None:
    now = int(time.time())
    setup = TickerSetup(tmp_path, start=now - 2, end=now + 6, with_bad=True)
    with setup.daemon() as d:
        wait_until(setup.all_done, 60, what="every interval of the ticker DAG done")
        wait_until(lambda: len(setup.runs("always_fails")) >= 3, 30, what="three runs of the failing DAG")
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 0, d.stderr
    check_exact(setup, interrupted_tries_allowed=False)
    broken = [line for line in d.stderr.splitlines() if "broken_dag.py" in line]
    assert broken == [line for line in broken if "ValueError: this DAG file is broken on purpose" in line]
    assert len(broken) == 1, broken
    fails = setup.runs("always_fails")
    finished = {ld: s for ld, s in fails.items() if s != "running"}
    assert len(finished) >= 3 and set(finished.values()) == {"failed"}, fails
    # catchup=False: its first run is the latest interval at start, not its start_date's
    first = datetime.fromisoformat(min(fails))
    assert first >= datetime.fromtimestamp(now - 6, tz=UTC), fails
    lds = sorted(datetime.fromisoformat(x) for x in fails)
    assert all(b - a == timedelta(seconds=2) for a, b in zip(lds, lds[1:], strict=False)), lds
    exits = setup.runs("exits")  # sys.exit(3) in a task fails its try, never the daemon
    assert exits and {s for s in exits.values() if s != "running"} == {"failed"}, exits
    assert "Task failed due to SystemExit(3)" in d.stderr
    by_run: dict[str, dict[str, tuple[str, int]]] = {}
    for run_id, task_id, state, tries in setup.task_instances("always_fails"):
        by_run.setdefault(run_id, {})[task_id] = (state, tries)
    for ld in finished:
        assert by_run[f"scheduled__{ld}"] == {"ok": ("success", 1), "boom": ("failed", 2),
                                              "after": ("upstream_failed", 0)}, by_run[f"scheduled__{ld}"]


def test_dags_flag_needs_no_config(tmp_path: Path) -> None:
    now = int(time.time())
    setup = TickerSetup(tmp_path, start=now - 1, end=now)
    env = {**os.environ, **setup.env}
    proc = subprocess.Popen(rtstream_cmd("run", "--dags", "dags"), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = tmp_path / "var" / "rtstream" / "dag_runs.db"
    try:
        setup.db = db
        wait_until(setup.all_done, 60, what="the two runs")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_bad_dags_config_is_one_line_per_problem_exit_2(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.toml", {"dags": {"pathh": "x"}, "daemon": {"shutdown_grace": "soon"}})
    done = run_cli("run", "-c", str(bad))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "dags.path" in done.stderr and "dags.pathh" in done.stderr and "daemon.shutdown_grace" in done.stderr
    missing = run_cli("run", "--dags", str(tmp_path / "nowhere"), "--set", f"daemon.state_dir={tmp_path}/s")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("rtstream: cannot start: dags.path: ")
    assert "no such file or folder" in missing.stderr


def test_dags_beside_a_pipeline_run_in_one_daemon(tmp_path: Path) -> None:
    now = int(time.time())
    setup = TickerSetup(tmp_path, start=now - 1, end=now + 1)
    (tmp_path / "in.jsonl").write_text("")
    write_config(setup.config, {
        "pipeline": {"name": "p", "flow": "src >> out"}, "window": {"size": "1s"},
        "daemon": {"state_dir": "state", "shutdown_grace": "5s"}, "dags": {"path": "dags"},
        "sources": {"src": {"type": "file", "path": "in.jsonl", "follow": True}},
        "sinks": {"out": {"type": "file", "path": "rows"}}})
    with setup.daemon() as d:
        wait_until(setup.all_done, 60, what="the ticker's runs beside the pipeline")
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 0, d.stderr
    check_exact(setup, interrupted_tries_allowed=False)
    assert "DAGs scheduled from" in d.stderr and "Traceback" not in d.stderr


TIMEOUT_DAG = '''
import os, time
from datetime import datetime, timedelta, timezone
from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator

START = datetime.fromtimestamp(float(os.environ["RTSTREAM_TICK_START"]), tz=timezone.utc)
with DAG("too_long", start_date=START, schedule=timedelta(seconds=2), max_active_runs=1,
         dagrun_timeout=timedelta(seconds=1), catchup=True) as dag:
    BashOperator(task_id="slow", bash_command="sleep 5") >> PythonOperator(task_id="never", python_callable=print)
'''


def test_a_run_past_dagrun_timeout_fails_with_its_unfinished_tasks_skipped(tmp_path: Path) -> None:
    now = int(time.time())
    setup = TickerSetup(tmp_path, start=now - 1, end=now)
    (setup.dags / "too_long.py").write_text(TIMEOUT_DAG)
    with setup.daemon() as d:
        wait_until(lambda: sum(s == "failed" for s in setup.runs("too_long").values()) >= 2, 30,
                   what="two timed-out runs")
        d.signal(signal.SIGTERM)
        assert d.wait(20) == 0, d.stderr
    runs = setup.runs("too_long")
    lds = sorted(runs)
    assert lds[0] == datetime.fromtimestamp(now - 1, tz=UTC).isoformat()
    tis = {(run_id, task): (state, tries) for run_id, task, state, tries in setup.task_instances("too_long")}
    first = f"scheduled__{lds[0]}"
    assert tis[(first, "slow")] == ("skipped", 1) and tis[(first, "never")] == ("skipped", 0)
    assert "ran past dagrun_timeout" in d.stderr
