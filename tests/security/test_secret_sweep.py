"""A distinct secret in every secret field of every component type, and every surface swept for each.

One daemon runs with an HTTP ingest (token), two HTTP polls (password in the URL, an API key in the
query and in a header; basic auth), two HTTP sinks that fail (password and token in the URL, a key
header; a bearer token and a token in the query), a Postgres sink (password in the DSN), the admin
server (token) and an alert webhook (bearer token, signature in the query). The sinks fail so that
their errors, which quote their URLs, reach the logs, the dead letters, the run history, /readyz,
/api/status, /api/runs, /metrics and the alerts. `rtstream validate` adds the Kafka source and sink
(SASL and SSL passwords), and a config with secrets written as numbers is refused.
"""

from __future__ import annotations

import secrets as pysecrets
import signal
import time
from pathlib import Path

import orjson
import pytest

from rtstream.testing.peers.ports import free_port
from tests.http_peers import ThreadedServer
from tests.security.peers import Recorder, get, post
from tests.support import Daemon, read_jsonl, run_cli, wait_until, write_config

FIELDS = ["ingest_token", "admin_token", "alert_token", "alert_sig", "poll1_url_password", "poll1_query_key",
          "poll1_header_key", "poll2_password", "hook_url_password", "hook_query_token", "hook_header_key",
          "hook2_query_token", "hook2_bearer", "pg_password", "kafka_src_sasl", "kafka_src_ssl", "kafka_sink_sasl",
          "sql_password", "lookup_password", "lookup_bearer", "s3_key_id", "s3_secret"]
SECRETS = {f: f"{f.replace('_', '')}{pysecrets.token_hex(4)}" for f in FIELDS}


def sweep_config(tmp_path: Path, ports: dict[str, int], pg_dsn: str) -> dict:
    s = SECRETS
    pg = pg_dsn.replace("postgres@", f"postgres:{s['pg_password']}@")
    return {
        "pipeline": {"name": "sweep", "flow": "[ingest, poll1, poll2] >> per_user >> [hook, hook2, pg]"},
        "window": {"size": "1s", "lateness": "200ms", "idle_timeout": "300ms"},
        "sources": {
            "ingest": {"type": "http_ingest", "listen": f"127.0.0.1:{ports['ingest']}", "token": s["ingest_token"]},
            "poll1": {"type": "http_poll", "interval": "1s", "max_attempts": 2, "retry_delay": "50ms",
                      "url": f"http://poller:{s['poll1_url_password']}@127.0.0.1:{ports['api']}/events"
                             f"?api_key={s['poll1_query_key']}",
                      "headers": {"X-Api-Key": s["poll1_header_key"]}},
            "poll2": {"type": "http_poll", "interval": "1s", "max_attempts": 2, "retry_delay": "50ms",
                      "url": f"http://127.0.0.1:{ports['api']}/other", "username": "basic",
                      "password": s["poll2_password"]},
        },
        "stages": {"per_user": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
        "sinks": {
            "hook": {"type": "http", "max_retries": 0,
                     "url": f"http://hooker:{s['hook_url_password']}@127.0.0.1:{ports['hook']}/hook"
                            f"?token={s['hook_query_token']}",
                     "headers": {"X-Api-Key": s["hook_header_key"]}},
            "hook2": {"type": "http", "max_retries": 0, "on_failure": "dead_letter", "retries": 1,
                      "url": f"http://127.0.0.1:{ports['hook']}/hook2?access_token={s['hook2_query_token']}",
                      "bearer_token": s["hook2_bearer"]},
            "pg": {"type": "postgres", "dsn": pg, "table": "sweep_totals"},
        },
        "defaults": {"retries": 1, "retry_delay": "50ms", "max_retry_delay": "200ms"},
        "admin": {"listen": f"127.0.0.1:{ports['admin']}", "token": s["admin_token"]},
        "alert": {"url": f"http://127.0.0.1:{ports['alert']}/alert?sig={s['alert_sig']}",
                  "bearer_token": s["alert_token"]},
        "dead_letter": {"path": str(tmp_path / "dead.jsonl")},
        "daemon": {"state_dir": str(tmp_path / "state"), "log_format": "json", "shutdown_grace": "1s",
                   "commit_interval": "100ms"},
    }


def kafka_parts(doc: dict) -> dict:
    """The same config with a Kafka source and sink, an sql source, lookups and an s3 sink beside: for
    validate, which connects to nothing."""
    s = SECRETS
    doc = orjson.loads(orjson.dumps(doc))
    doc["pipeline"]["flow"] = ("[ingest, poll1, poll2, kin, db] >> look >> look2 >> per_user "
                               ">> [hook, hook2, pg, kout, lake]")
    doc["sources"]["db"] = {"type": "sql", "dsn": f"postgresql://app:{s['sql_password']}@127.0.0.1:1/db",
                            "query": "SELECT id FROM t WHERE id > :cursor", "cursor_field": "id"}
    doc["stages"]["look"] = {"type": "lookup", "key": "user_id", "from": "postgres",
                             "dsn": f"postgresql://app:{s['lookup_password']}@127.0.0.1:1/db",
                             "query": "SELECT region FROM users WHERE id = :key"}
    doc["stages"]["look2"] = {"type": "lookup", "key": "user_id", "from": "http",
                              "url": "http://127.0.0.1:1/users/{key}", "bearer_token": s["lookup_bearer"]}
    doc["sinks"]["lake"] = {"type": "s3", "bucket": "lake", "format": "ndjson", "endpoint_url": "http://127.0.0.1:1",
                            "access_key_id": s["s3_key_id"], "secret_access_key": s["s3_secret"]}
    kafka = {"bootstrap_servers": "127.0.0.1:1", "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
             "sasl_plain_username": "k"}
    doc["sources"]["kin"] = {"type": "kafka", "topics": ["t"], "group_id": "g", **kafka,
                             "sasl_plain_password": s["kafka_src_sasl"], "ssl_password": s["kafka_src_ssl"]}
    doc["sinks"]["kout"] = {"type": "kafka", "topic": "out", **kafka, "sasl_plain_password": s["kafka_sink_sasl"]}
    return doc


def leaks(text: str) -> list[str]:
    return [f for f, v in SECRETS.items() if v in text]


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory, postgres):
    """Run the daemon until every failure has happened, and collect what each surface shows."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    ports = {k: free_port() for k in ("ingest", "admin")}
    hook, api, alert = Recorder(500), Recorder(500), Recorder(204)
    got: dict[str, str] = {}
    with ThreadedServer(hook.app) as hook_srv, ThreadedServer(api.app) as api_srv, \
            ThreadedServer(alert.app) as alert_srv:
        ports |= {"hook": hook_srv.port, "api": api_srv.port, "alert": alert_srv.port}
        doc = sweep_config(tmp_path, ports, postgres)
        cfg = write_config(tmp_path / "sweep.toml", doc)
        admin = f"http://127.0.0.1:{ports['admin']}"
        tok = SECRETS["admin_token"]
        with Daemon(cfg, tmp_path) as d:
            wait_until(lambda: "accepting POST" in d.stderr, 30, what="the ingest server")
            now = int(time.time() * 1000)
            rows = b"\n".join(orjson.dumps({"user_id": f"u{i}", "ts": now}) for i in range(3))
            status, _, _ = post(f"http://127.0.0.1:{ports['ingest']}/ingest", rows,
                                {"Authorization": f"Bearer {SECRETS['ingest_token']}",
                                 "Content-Type": "application/x-ndjson"})
            assert status == 202
            wait_until(lambda: get(admin + "/readyz", tok)[0] == 503 and b"hook" in get(admin + "/readyz", tok)[1],
                       30, what="the hook sink to halt")
            wait_until(lambda: read_jsonl(tmp_path / "dead.jsonl"), 30, what="hook2's rows dead-lettered")
            wait_until(lambda: len(alert.requests) >= 2, 30, what="alerts for both sinks")
            wait_until(lambda: len(api.requests) >= 4, 30, what="both polls to fail")
            for path in ("/healthz", "/readyz", "/api/status", "/api/runs", "/api/runs?limit=5", "/metrics", "/"):
                for who, token in (("anyone", None), ("token", tok)):
                    status, body, _ = get(admin + path, token)
                    got[f"GET {path} ({who}, {status})"] = body.decode(errors="replace")
            d.signal(signal.SIGTERM)
            d.wait(30)
            got["daemon stderr"], got["daemon stdout"] = d.stderr, d.stdout
        for path in sorted((tmp_path / "state").rglob("*")):
            if path.is_file() and "spool" not in path.parts:
                got[f"state file {path.relative_to(tmp_path)}"] = path.read_bytes().decode(errors="replace")
        got["dead letters"] = (tmp_path / "dead.jsonl").read_text()
        for i, (_, _, body) in enumerate(alert.requests):
            got[f"alert payload {i}"] = body.decode()
        assert alert.requests[0][1]["Authorization"] == f"Bearer {SECRETS['alert_token']}"  # the alert did use it
        for what, d_ in (("validate", doc), ("validate with kafka", kafka_parts(doc))):
            res = run_cli("validate", "-c", str(write_config(tmp_path / f"{what}.toml", d_)))
            assert res.returncode == 0, res.stderr
            got[what] = res.stdout + res.stderr
    return got


def test_the_sweep_saw_what_it_should(surfaces):
    """The surfaces hold the failures (redacted), so the sweep below looked at something."""
    readyz = orjson.loads(surfaces[next(k for k in surfaces if k.startswith("GET /readyz (token"))])
    assert "http://hooker:***@127.0.0.1" in readyz["problems"]["hook"] and "token=***" in readyz["problems"]["hook"]
    assert "sink_failed" in surfaces["dead letters"] and "hook2" in surfaces["dead letters"]
    assert "http://poller:***@127.0.0.1" in surfaces["daemon stderr"] and "api_key=***" in surfaces["daemon stderr"]
    assert any("hook" in v and "***" in v for k, v in surfaces.items() if k.startswith("alert payload"))
    for part in ("kafka", "sql", "lookup", "s3"):
        assert part in surfaces["validate with kafka"], part
    assert any("hooker:***@" in v for k, v in surfaces.items() if k.startswith("state file state/runs.db"))
    assert "Traceback" not in surfaces["daemon stderr"]


def test_probes_without_the_token_show_no_detail(surfaces):
    readyz = next(v for k, v in surfaces.items() if k.startswith("GET /readyz (anyone"))
    assert orjson.loads(readyz) == {"ready": False}
    assert orjson.loads(next(v for k, v in surfaces.items() if k.startswith("GET /healthz (anyone"))) == {
        "status": "ok"}
    for path in ("/api/status", "/api/runs", "/metrics"):
        assert any(k.startswith(f"GET {path} (anyone, 401)") for k in surfaces), path


@pytest.mark.parametrize("surface", ["logs", "admin", "history", "validate", "alerts"])
def test_no_secret_leaves_by_any_surface(surfaces, surface):
    picked = {
        "logs": lambda k: k.startswith("daemon"),
        "admin": lambda k: k.startswith("GET "),
        "history": lambda k: k.startswith("state file"),
        "validate": lambda k: k.startswith("validate"),
        "alerts": lambda k: k.startswith("alert payload"),
    }[surface]
    found = {k: leaks(v) for k, v in surfaces.items() if picked(k) and leaks(v)}
    assert found == {}
    assert any(picked(k) for k in surfaces)


def test_no_secret_in_dead_letters(surfaces):
    assert leaks(surfaces["dead letters"]) == []


def test_a_secret_written_as_a_number_is_not_echoed(tmp_path):
    doc = sweep_config(tmp_path, {k: free_port() for k in ("ingest", "admin", "hook", "api", "alert")},
                       "postgresql://postgres@127.0.0.1:5432/postgres")
    doc["admin"]["token"] = 99999999
    doc["sinks"]["pg"]["dsn"] = 88888888
    doc["sources"]["poll2"]["password"] = 77777777
    doc["alert"]["bearer_token"] = 66666666
    cfg = write_config(tmp_path / "numbers.toml", doc)
    res = run_cli("validate", "-c", str(cfg))
    assert res.returncode == 2
    out = res.stdout + res.stderr
    assert "admin.token" in out and "sinks.pg.dsn" in out and "sources.poll2.password" in out
    for number in ("99999999", "88888888", "77777777", "66666666"):
        assert number not in out
    assert "Traceback" not in out
    res = run_cli("validate", "-c", str(write_config(tmp_path / "ok.toml", sweep_config(
        tmp_path, {k: free_port() for k in ("ingest", "admin", "hook", "api", "alert")},
        "postgresql://postgres@127.0.0.1:5432/postgres"))), "--set", "admin.token=12345678")
    assert res.returncode == 2 and "12345678" not in res.stdout + res.stderr


def test_a_poll_never_sends_its_credentials_to_another_origin(tmp_path):
    """An API whose next page points at another host would hand it the poll's token and key."""
    thief = Recorder(200, {"data": []})
    with ThreadedServer(thief.app) as thief_srv:
        api = Recorder(200, {"data": [{"user_id": "a", "ts": 1}], "next": f"{thief_srv.url}/steal"})
        with ThreadedServer(api.app) as api_srv:
            doc = sweep_config(tmp_path, {k: free_port() for k in ("ingest", "admin", "hook", "alert")} |
                               {"api": api_srv.port}, "postgresql://postgres@127.0.0.1:5432/postgres")
            doc["pipeline"]["flow"] = "poll2 >> per_user >> hook"
            doc["sources"] = {"poll2": {"type": "http_poll", "interval": "1s", "url": f"{api_srv.url}/events",
                                        "records": "/data", "next": "/next", "bearer_token": SECRETS["hook2_bearer"]}}
            doc["sinks"] = {"hook": {"type": "stdout"}}
            del doc["alert"]
            with Daemon(write_config(tmp_path / "origin.toml", doc), tmp_path) as d:
                wait_until(lambda: "is not on" in d.stderr, 30, what="the foreign next page refused")
                d.signal(signal.SIGTERM)
                d.wait(30)
    assert api.requests and api.requests[0][1]["Authorization"] == f"Bearer {SECRETS['hook2_bearer']}"
    assert thief.requests == []
    assert leaks(d.stderr) == []
