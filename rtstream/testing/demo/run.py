"""`make demo` (`python -m rtstream.testing.demo`): every real component, started here, no Docker.

1. Tansu (a Kafka broker), PostgreSQL and moto (an S3 server) on free loopback ports, as the test
   suite starts them (rtstream.testing.peers);
2. a producer writing a clickstream to the topic `clicks`, 20 records a second, stamped with the
   clock;
3. one daemon, `rtstream run -c demo.toml --dags dags`: the pipeline `clicks >> per_user >>
   [warehouse, lake]` (ten-second windows counted per user, upserted into PostgreSQL's
   `clicks_per_user` and written as one object per window to the bucket `rtstream-demo`) and the
   DAG `clicks_each_minute` (report_dag.py) reading that table each minute;
4. the status page on loopback, its address printed with the admin token.

Ctrl-C (or SIGTERM, or the end of `--for`) stops the producer, then the daemon (its clean stop),
then the peers, prints what reached PostgreSQL and S3, and exits 0. The daemon and the peers run in
sessions of their own, so a terminal's Ctrl-C reaches only this script, which stops them in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import orjson

from rtstream.model.durations import parse_duration
from rtstream.sources.generator import make_record
from rtstream.testing.peers.moto import MotoServer
from rtstream.testing.peers.postgres import PostgresCluster
from rtstream.testing.peers.tansu import TansuBroker, create_topic

TOPIC, TABLE, BUCKET = "clicks", "clicks_per_user", "rtstream-demo"
MARK = ".rtstream-demo"  # a folder holding it is the demo's own and is emptied at each start
RATE = 20  # records a second

CONFIG = """\
# Written by `make demo` (rtstream.testing.demo): the peers' addresses change at each start.
[pipeline]
name = "demo"
flow = "clicks >> per_user >> [warehouse, lake]"

[window]
size = "10s"
lateness = "2s"
idle_timeout = "5s"

[sources.clicks]
type = "kafka"
bootstrap_servers = "{bootstrap}"
topics = ["{topic}"]
group_id = "rtstream-demo"
start = "earliest"

[stages.per_user]
type = "aggregate"
key = "user_id"
aggregates = {{ events = "count()", spent = "sum(amount)", pages = "count_distinct(page)" }}

[sinks.warehouse]
type = "postgres"
dsn = "${{RTSTREAM_DEMO_DSN}}"
table = "{table}"

[sinks.lake]
type = "s3"
bucket = "{bucket}"
prefix = "clicks_per_user/"
endpoint_url = "{s3}"
region = "{region}"
access_key_id = "${{RTSTREAM_DEMO_S3_KEY}}"
secret_access_key = "${{RTSTREAM_DEMO_S3_SECRET}}"

[admin]
listen = "{admin}"
token = "${{RTSTREAM_ADMIN_TOKEN}}"

[daemon]
state_dir = "state"
shutdown_grace = "10s"
"""


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rtstream.testing.demo", description=__doc__.split("\n\n")[0],
                                     epilog="example: python -m rtstream.testing.demo --admin 127.0.0.1:8090")
    parser.add_argument("--admin", default="127.0.0.1:8080", help="the status page's loopback HOST:PORT")
    parser.add_argument("--dir", default="var/demo", help="the demo's config, DAG and state (emptied at start)")
    parser.add_argument("--for", dest="run_for", default=None, metavar="DURATION",
                        help="stop by itself after this long, e.g. 20s (default: until Ctrl-C)")
    parser.add_argument("--token", default=None, help="the admin token (default: a random one, printed)")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def _fresh(folder: Path) -> None:
    if folder.exists():
        if not (folder / MARK).exists() and any(folder.iterdir()):
            raise SystemExit(f"demo: {folder} is not empty and not a demo folder; give another --dir")
        shutil.rmtree(folder)
    (folder / "dags").mkdir(parents=True)
    (folder / MARK).touch()


async def _produce(bootstrap: str, stop: asyncio.Event, sent: list[int]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    rng = random.Random(42)
    try:
        while not stop.is_set():
            now = int(time.time() * 1000)
            for _ in range(RATE // 10):
                await producer.send(TOPIC, orjson.dumps(make_record(50, now, rng)))
                sent[0] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
        await producer.flush()
    finally:
        await producer.stop()


async def _counts(dsn: str, s3: MotoServer) -> tuple[int, int]:
    """(rows in the PostgreSQL table, objects in the bucket), as the user would look."""
    import asyncpg

    rows = 0
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetchval(f"SELECT count(*) FROM {TABLE}")
        finally:
            await conn.close()
    listed = await asyncio.to_thread(s3.client().list_objects_v2, Bucket=BUCKET)
    return int(rows or 0), int(listed.get("KeyCount", 0))


async def _daemon_stopped(proc: subprocess.Popen[bytes], timeout: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if proc.poll() is None:
        say(f"the daemon did not stop within {timeout:.0f}s: killed")
        proc.kill()
    return proc.wait()


async def demo(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    folder = Path(args.dir).resolve()
    _fresh(folder)
    token = args.token or secrets.token_urlsafe(12)
    say("starting Kafka (Tansu), PostgreSQL and S3 (moto) on loopback ...")
    broker, pg, s3 = TansuBroker(), PostgresCluster(), MotoServer()
    with contextlib.ExitStack() as peers:
        for peer in (broker, pg, s3):
            peers.callback(peer.stop)  # each stops, last, whatever happened
        await asyncio.gather(*(asyncio.to_thread(peer.start) for peer in (broker, pg, s3)))
        await create_topic(broker.bootstrap, TOPIC, partitions=2)
        await asyncio.to_thread(s3.client().create_bucket, Bucket=BUCKET)
        say(f"Kafka on {broker.bootstrap}, PostgreSQL on {pg.dsn}, S3 on {s3.endpoint}")
        from rtstream.testing.peers.moto import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

        (folder / "demo.toml").write_text(CONFIG.format(bootstrap=broker.bootstrap, topic=TOPIC, table=TABLE,
                                                        bucket=BUCKET, s3=s3.endpoint, region=REGION,
                                                        admin=args.admin))
        dag = resources.files("rtstream.testing.demo").joinpath("report_dag.py").read_text(encoding="utf-8")
        (folder / "dags" / "report_dag.py").write_text(dag)
        env = {**os.environ, "RTSTREAM_DEMO_DSN": pg.dsn, "RTSTREAM_DEMO_S3_KEY": ACCESS_KEY_ID,
               "RTSTREAM_DEMO_S3_SECRET": SECRET_ACCESS_KEY, "RTSTREAM_ADMIN_TOKEN": token,
               "RTSTREAM_DEMO_STARTED": str(time.time())}
        sent = [0]
        producer = asyncio.create_task(_produce(broker.bootstrap, stop, sent), name="demo-producer")
        daemon = subprocess.Popen([sys.executable, "-m", "rtstream", "run", "-c", "demo.toml", "--dags", "dags"],
                                  cwd=folder, env=env, start_new_session=True)
        say(f"producing {RATE} clicks/s to topic {TOPIC!r}; pipeline clicks >> per_user >> [warehouse, lake] "
            f"in 10 s windows; DAG clicks_each_minute reads {TABLE} each minute")
        say(f"status page: http://{args.admin}/?token={token}")
        say("Ctrl-C stops everything" + (f" (or it stops by itself after {args.run_for})" if args.run_for else ""))
        deadline = time.monotonic() + parse_duration(args.run_for) if args.run_for else float("inf")
        while not stop.is_set() and daemon.poll() is None and not producer.done() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(0.5, max(0.0, deadline - time.monotonic())))
        stop.set()
        say("stopping: the producer, then the daemon, then the peers")
        with contextlib.suppress(Exception):
            await producer
        code = await _daemon_stopped(daemon, 30)
        rows, objects = await _counts(pg.dsn, s3)
        say(f"{sent[0]} clicks produced; {rows} rows in PostgreSQL's {TABLE}, {objects} objects in "
            f"s3://{BUCKET}; the daemon exited {code}")
    return 0 if code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.run_for is not None:
        try:
            parse_duration(args.run_for)
        except ValueError as exc:
            print(f"demo: --for: {exc}", file=sys.stderr)
            return 2
    return asyncio.run(demo(args))
