"""What a run wrote, brought to the reference's form (tests/nexmark_reference.py) and digested in one
pass: files of JSON lines (rtstream's file sink, Flink's filesystem sink), a topic, a null sink's count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from tests.nexmark_reference import TIMES, canonical_row, digest


def _utc(row: dict[str, Any]) -> dict[str, Any]:
    """Flink writes TIMESTAMP(3) without a zone; its jobs run with table.local-time-zone = UTC."""
    for c in TIMES:
        v = row.get(c)
        if isinstance(v, str) and not v.endswith("Z") and "+" not in v:
            row[c] = v + "Z"
    return row


def _file_rows(out: Path) -> Iterator[dict[str, Any]]:
    for f in sorted(out.rglob("*")):
        if f.is_file() and not f.name.endswith(".crc"):
            with open(f, "rb") as fh:
                for line in fh:
                    if line.strip():
                        yield _utc(orjson.loads(line))


def file_digest(out: Path, query: str) -> tuple[int, str]:
    return digest(canonical_row(query, r) for r in _file_rows(out))


def null_count(workdir: Path) -> int:
    path = workdir / "count"
    return sum(int(line) for line in path.read_text().split()) if path.exists() else 0


async def topic_digest(bootstrap: str, topic: str, query: str, expect: int, idle_s: float = 5.0) -> tuple[int, str]:
    """The topic's rows, read until `expect` arrived or nothing came for idle_s, digested as they come."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, fetch_max_wait_ms=50)
    await consumer.start()
    rows = []
    loop = asyncio.get_running_loop()
    last = loop.time()
    try:
        while len(rows) < expect and loop.time() - last < idle_s:
            batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
            for msgs in batch.values():
                rows += [canonical_row(query, orjson.loads(m.value)) for m in msgs]
                last = loop.time()
    finally:
        await consumer.stop()
    return digest(rows)
