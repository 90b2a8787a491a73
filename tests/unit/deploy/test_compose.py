"""deploy/compose.yaml runs as written: the broker and database its environment names are services
of the file, every replica has a state volume of its own, and the configs it mounts validate."""

from __future__ import annotations

import re

import yaml

from tests.support import ROOT, run_cli

COMPOSE = ROOT / "deploy" / "compose.yaml"


def test_the_services_named_in_the_environment_are_run():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    replicas = {n: s for n, s in services.items() if n.startswith("rtstream-")}
    assert len(replicas) == 2 and "producer" in services
    for name, svc in {**replicas, "producer": services["producer"]}.items():
        env = svc["environment"]
        broker = env["KAFKA_BOOTSTRAP"].split(":")[0]
        database = re.search(r"@([^:/]+)", env["DATABASE_URL"]).group(1)
        assert broker in services and database in services, name
        assert services[broker]["image"].startswith("apache/kafka") and services[database]["image"].startswith("postgres")
        assert "healthcheck" in services[broker] and "healthcheck" in services[database]
    state = [next(v for v in s["volumes"] if v.endswith(":/var/lib/rtstream")) for s in replicas.values()]
    assert len(set(state)) == len(state)  # one state volume per replica


def test_the_mounted_configs_validate(tmp_path):
    env = {"KAFKA_BOOTSTRAP": "127.0.0.1:9092", "DATABASE_URL": "postgresql://u:p@127.0.0.1/db",
           "RTSTREAM_ADMIN_TOKEN": "t"}
    for name in ("counts", "producer"):
        res = run_cli("validate", "-c", str(ROOT / "deploy" / "config" / f"{name}.toml"),
                      "--set", f"daemon.state_dir={tmp_path / name}", env=env)
        assert res.returncode == 0, res.stderr
