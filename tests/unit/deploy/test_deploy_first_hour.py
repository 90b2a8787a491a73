"""What deploy/ promises a first-time user (issue 28), checked without Docker or a cluster:

- the compose broker keeps its log (topics, offsets) in the volume mounted for it, by the settings
  the apache/kafka image documents;
- one build of the rtstream image for every compose service, which never pulls it;
- the image carries every extra but the test and dev ones, so any config the README shows runs in it;
- the Kubernetes manifests are valid against the Kubernetes schemas (kubernetes-validate, offline):
  a StatefulSet with a volume per replica, the config in a ConfigMap, the admin token from a
  Secret, probes on /healthz and /readyz, a pull policy that works with a local image, a PodMonitor.
"""

from __future__ import annotations

import copy
import re
import tomllib

import pytest
import yaml

from tests.support import ROOT, run_cli

COMPOSE = ROOT / "deploy" / "compose.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes.yaml"

# What the apache/kafka image documents (its docker/examples/README.md and Dockerfile):
# - a broker property is set by an environment variable: "." -> "_", "_" -> "__", "-" -> "___",
#   upper-cased, prefixed with KAFKA_;
# - its default server.properties (config/kraft/server.properties) keeps log.dirs at
#   /tmp/kraft-combined-logs, while the image declares VOLUME /var/lib/kafka/data (owned by its user).
IMAGE_DEFAULT_LOG_DIRS = "/tmp/kraft-combined-logs"


def kafka_env(prop: str) -> str:
    return "KAFKA_" + prop.replace("-", "___").replace("_", "__").replace(".", "_").upper()


def test_the_broker_keeps_its_log_in_its_volume():
    assert kafka_env("log.dirs") == "KAFKA_LOG_DIRS" and kafka_env("abc_def") == "KAFKA_ABC__DEF"
    doc = yaml.safe_load(COMPOSE.read_text())
    kafka = doc["services"]["kafka"]
    log_dirs = kafka["environment"][kafka_env("log.dirs")]
    mounts = {target: source for source, _, target in (v.partition(":") for v in kafka["volumes"])}
    assert log_dirs != IMAGE_DEFAULT_LOG_DIRS
    assert all(d in mounts for d in log_dirs.split(",")), (log_dirs, mounts)
    assert all(mounts[d] in doc["volumes"] for d in log_dirs.split(","))  # a named volume, kept across re-creation


def test_one_build_of_the_image_for_every_rtstream_service():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    ours = {n: s for n, s in services.items() if s.get("image", "").startswith("rtstream")}
    assert set(ours) == {"producer", "rtstream-1", "rtstream-2"}
    assert len({s["image"] for s in ours.values()}) == 1
    builders = [n for n, s in ours.items() if "build" in s]
    assert builders == ["producer"]
    for name, svc in ours.items():
        if name not in builders:
            assert svc["pull_policy"] == "never", name  # the local image, not a registry's
            assert "producer" in svc["depends_on"], name  # created after the build


def test_the_image_has_every_extra_but_test_and_dev():
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    wanted = extras - {"test", "dev", "airflow"}
    installed = re.search(r'pip install --no-cache-dir "\.\[([^\]]*)\]"', (ROOT / "Dockerfile").read_text())
    assert installed is not None
    assert set(installed.group(1).split(",")) == wanted


def test_the_readme_container_section_says_the_token_is_needed():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Container.**"):readme.index("## Guarantees")]
    assert "RTSTREAM_ADMIN_TOKEN" in section and "openssl rand -hex 32" in section and "exit 2" in section


def manifests() -> list[dict]:
    return list(yaml.safe_load_all(KUBERNETES.read_text()))


def test_the_kubernetes_manifests_validate_against_the_schemas():
    kv = pytest.importorskip("kubernetes_validate")
    kinds = []
    for doc in manifests():
        kinds.append(doc["kind"])
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD of the Prometheus operator: no schema ships with Kubernetes (checked below)
        kv.validate(doc, kv.latest_version(), strict=True)
    assert kinds == ["ConfigMap", "Service", "StatefulSet", "PodMonitor"]
    sts = next(d for d in manifests() if d["kind"] == "StatefulSet")
    broken = copy.deepcopy(sts)
    broken["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Never"  # strict: unknown keys fail
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, kv.latest_version(), strict=True)


def test_the_statefulset_runs_as_the_readme_says():
    docs = {d["kind"]: d for d in manifests()}
    sts = docs["StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["imagePullPolicy"] in ("IfNotPresent", "Never")
    assert container["image"] == "rtstream:latest"
    claims = sts["spec"]["volumeClaimTemplates"]
    state = next(m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/rtstream")
    assert state["name"] in [c["metadata"]["name"] for c in claims]  # a volume per replica
    assert state["name"] not in [v["name"] for v in pod["volumes"]]
    config = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/rtstream")
    volume = next(v for v in pod["volumes"] if v["name"] == config["name"])
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    token = next(e for e in container["env"] if e["name"] == "RTSTREAM_ADMIN_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["key"] == "token"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sts["spec"]["serviceName"] == docs["Service"]["metadata"]["name"]
    assert pod["terminationGracePeriodSeconds"] > 30  # above shutdown_grace
    monitor = docs["PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "admin"
    assert endpoint["authorization"]["credentials"] == token["valueFrom"]["secretKeyRef"]
    assert "PodMonitor" in KUBERNETES.read_text().split("apiVersion", 1)[0]  # the header names what is there
    assert "ServiceMonitor" not in KUBERNETES.read_text()


def test_the_configmap_config_validates(tmp_path):
    config = next(d for d in manifests() if d["kind"] == "ConfigMap")["data"]["rtstream.toml"]
    path = tmp_path / "rtstream.toml"
    path.write_text(config)
    env = {"KAFKA_BOOTSTRAP": "127.0.0.1:9092", "DATABASE_URL": "postgresql://u:p@127.0.0.1/db",
           "RTSTREAM_ADMIN_TOKEN": "t" * 32}
    res = run_cli("validate", "-c", str(path), "--set", f"daemon.state_dir={tmp_path / 'state'}", env=env)
    assert res.returncode == 0, res.stderr
