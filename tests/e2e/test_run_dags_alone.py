"""`rtstream run --dags DIR` without -c runs the DAGs alone, even where the default config file exists."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support import wait_until

DAG = '''
from datetime import datetime, timedelta
from airflow import DAG
from airflow.operators.python import PythonOperator

with DAG("alone", start_date=datetime(2026, 1, 1), schedule=timedelta(days=1), catchup=False) as dag:
    PythonOperator(task_id="hello", python_callable=lambda: "hi")
'''


def test_dags_without_c_ignore_the_default_config(tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "alone.py").write_text(DAG)
    (tmp_path / "config").mkdir()  # the default -c exists here, and must not be read: it is broken on purpose
    (tmp_path / "config" / "rtstream.toml").write_text("this is not = = toml")
    proc = subprocess.Popen([sys.executable, "-m", "rtstream", "run", "--dags", "dags", "--set", "daemon.state_dir=state"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        db = tmp_path / "state" / "dag_runs.db"
        wait_until(lambda: db.exists() or proc.poll() is not None, 60, what="the DAG store")
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "alone" in err and "clickstream" not in err and "config refused" not in err
