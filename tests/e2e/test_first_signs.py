"""What a newcomer sees first: `make run` says when the first window closes and shows running results
within a minute; the Python API logs like the CLI."""

from __future__ import annotations

import signal
import subprocess
import sys

from rtstream.testing.peers.ports import free_port
from tests.support import ROOT, Daemon, wait_until


def test_the_default_config_shows_signs_of_life_within_a_minute(tmp_path):
    env = {"RTSTREAM_VAR": str(tmp_path), "RTSTREAM_ADMIN": f"127.0.0.1:{free_port()}"}
    with Daemon(ROOT / "config" / "rtstream.toml", tmp_path, env=env) as d:
        wait_until(lambda: "the first closes at" in d.stderr, 30, what="the first window's closing time")
        assert "running results every 15s until then" in d.stderr
        line = wait_until(lambda: next((x for x in d.stdout.splitlines() if "clickstream window" in x), None), 40,
                          what="a running result on stdout")
        assert '"final":false' in line
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0, d.stderr
    assert (tmp_path / "clickstream.db").exists()


def test_the_python_api_logs_like_the_cli(tmp_path):
    script = (
        "from rtstream import Pipeline, SinkNode, SourceNode, StageNode\n"
        "flow = SourceNode('fetch', 'generator', rate=50, count=300, realtime=False) >> "
        "StageNode('process', 'aggregate', key='user_id', aggregates={'events': 'count()'}) >> SinkNode('store', 'stdout')\n"
        f"code = Pipeline(flow, name='api-demo', daemon={{'state_dir': {str(tmp_path / 's')!r}}}).run()\n"
        "print('exit', code)\n")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "exit 0" in res.stdout
    assert "rtstream.runtime: pipeline api-demo running: fetch >> process >> store" in res.stderr
    assert "all sources finished: 300 records read" in res.stderr
