"""The admin server is never open to the network without a token: a non-loopback listen address
without one refuses to start (exit 2, one line saying why) unless the config says so explicitly, and
the deploy files take the token from a secret."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from rtstream.testing.peers.ports import free_port
from tests.support import ROOT, Daemon, run_cli, write_config


def admin_doc(tmp_path: Path, **admin) -> dict:
    return {
        "pipeline": {"name": "exposed", "flow": "gen >> out"},
        "window": {"size": "1m"},
        "sources": {"gen": {"type": "generator", "rate": 5}},
        "sinks": {"out": {"type": "stdout"}},
        "admin": admin,
        "daemon": {"state_dir": str(tmp_path / "state")},
    }


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "192.0.2.10", "example.com"])
def test_a_non_loopback_listen_without_a_token_refuses_to_start(tmp_path, host):
    cfg = write_config(tmp_path / "a.toml", admin_doc(tmp_path, listen=f"{host}:{free_port()}"))
    with Daemon(cfg, tmp_path) as d:
        assert d.wait(30) == 2
    lines = d.stderr.splitlines()
    assert lines[0] == f"rtstream: config {cfg} refused:"
    assert len(lines) == 2 and lines[1].startswith(f"  admin.listen: '{host}:") and \
        "reachable from other machines and there is no token" in lines[1]
    assert not (tmp_path / "state").exists()  # refused before anything was opened or bound


def test_loopback_without_a_token_and_an_explicit_opt_out_are_accepted(tmp_path):
    for listen in ("127.0.0.1:8080", "[::1]:8080", "localhost:8080"):
        res = run_cli("validate", "-c", str(write_config(tmp_path / "l.toml", admin_doc(tmp_path, listen=listen))))
        assert res.returncode == 0 and "no token (loopback only)" in res.stdout, res.stderr
    res = run_cli("validate", "-c", str(write_config(tmp_path / "o.toml", admin_doc(
        tmp_path, listen="0.0.0.0:8080", allow_unauthenticated=True))))
    assert res.returncode == 0 and "NO TOKEN (allow_unauthenticated)" in res.stdout


def test_a_token_from_the_environment(tmp_path):
    cfg = write_config(tmp_path / "e.toml", admin_doc(tmp_path, listen="0.0.0.0:8080", token="${ADMIN_TOKEN:-}"))
    env = {k: v for k, v in os.environ.items() if k != "ADMIN_TOKEN"}
    unset = run_cli("validate", "-c", str(cfg), env=env)
    assert unset.returncode == 2 and "admin.listen" in unset.stderr  # an unset secret does not open the server
    res = run_cli("validate", "-c", str(cfg), env={"ADMIN_TOKEN": "from-a-secret-123"})
    assert res.returncode == 0 and "bearer token" in res.stdout and "from-a-secret-123" not in res.stdout


def test_the_container_config_needs_its_token():
    """The Dockerfile runs config/rtstream.toml with RTSTREAM_ADMIN=0.0.0.0:8080: no token, no start."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RTSTREAM_ADMIN=0.0.0.0:8080" in dockerfile and "RTSTREAM_ADMIN_TOKEN" in dockerfile
    assert not re.search(r"RTSTREAM_ADMIN_TOKEN=\S", dockerfile.split("ENV", 1)[1])  # never baked into the image
    env = {k: v for k, v in os.environ.items() if k != "RTSTREAM_ADMIN_TOKEN"}
    res = run_cli("validate", "-c", str(ROOT / "config" / "rtstream.toml"), env={**env, "RTSTREAM_ADMIN": "0.0.0.0:8080"})
    assert res.returncode == 2 and "admin.listen" in res.stderr


def test_kubernetes_and_compose_take_the_token_from_a_secret(tmp_path):
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()) if d]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["rtstream.toml"]
    container = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["RTSTREAM_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "rtstream-admin"
    assert 'token = "${RTSTREAM_ADMIN_TOKEN}"' in config
    cfg = tmp_path / "k8s.toml"
    cfg.write_text(config)
    base = {"KAFKA_BOOTSTRAP": "kafka:9092", "DATABASE_URL": "postgresql://u:db-pass-42@db/app"}
    res = run_cli("validate", "-c", str(cfg), env={**base, "RTSTREAM_ADMIN_TOKEN": "k8s-secret-token"})
    assert res.returncode == 0, res.stderr
    assert "k8s-secret-token" not in res.stdout and "db-pass-42" not in res.stdout
    clean = {k: v for k, v in os.environ.items() if k != "RTSTREAM_ADMIN_TOKEN"}
    missing = run_cli("validate", "-c", str(cfg), env={**clean, **base})
    assert missing.returncode == 2 and "RTSTREAM_ADMIN_TOKEN" in missing.stderr
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]["rtstream-1"]
    assert compose["environment"]["RTSTREAM_ADMIN_TOKEN"].startswith("${RTSTREAM_ADMIN_TOKEN:?")
    assert all(p.startswith("127.0.0.1:") for p in compose["ports"])
