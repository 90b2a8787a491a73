"""The Nexmark events of the `nexmark` source, written to a JSON-lines file and/or a Kafka topic.

    python -m bench.nexmark.gen --events N [--rate R] [--seed S] [--file PATH]
                                [--bootstrap HOST:PORT --topic NAME]

Both get exactly the events a `type = "nexmark"` source of the same seed and rate hands over (one
flat JSON object per event, with its `kind`); each Kafka message's timestamp is its event's
`dateTime`, so `time = "source"` reads the generator's clock through the topic too.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from rtstream.model.nexmark import Nexmark

STEP = 50_000  # events made at a time: memory stays flat however many are written


def chunks(model: Nexmark, events: int) -> Iterator[list[dict[str, Any]]]:
    for lo in range(0, events, STEP):
        yield model.generate(lo, min(lo + STEP, events))


def write_file(path: Path, model: Nexmark, events: int) -> int:
    """Every event as one JSON line; returns the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with open(path, "wb") as fh:
        for chunk in chunks(model, events):
            blob = b"\n".join(orjson.dumps(e) for e in chunk) + b"\n"
            fh.write(blob)
            size += len(blob)
    return size


async def produce(bootstrap: str, topic: str, model: Nexmark, events: int, partitions: int = 1) -> None:
    """Every event to `topic` (created with `partitions` if missing), in order, timestamped with dateTime."""
    from aiokafka import AIOKafkaProducer

    from rtstream.testing.peers.tansu import create_topic

    await create_topic(bootstrap, topic, partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for chunk in chunks(model, events):
            futs = [await producer.send(topic, orjson.dumps(e), partition=0, timestamp_ms=e["dateTime"])
                    for e in chunk]
            await asyncio.gather(*futs)
    finally:
        await producer.stop()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.nexmark.gen")
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--rate", type=float, default=10_000.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--file", type=Path)
    ap.add_argument("--bootstrap")
    ap.add_argument("--topic")
    args = ap.parse_args()
    if args.file is None and args.topic is None:
        ap.error("give --file, or --bootstrap and --topic, or both")
    if (args.bootstrap is None) != (args.topic is None):
        ap.error("--bootstrap and --topic go together")
    model = Nexmark(seed=args.seed, rate=args.rate)
    t0 = time.perf_counter()
    if args.file is not None:
        size = write_file(args.file, model, args.events)
        print(f"{args.events:,} events, {size:,} bytes -> {args.file} ({time.perf_counter() - t0:.1f} s)")
    if args.topic is not None:
        asyncio.run(produce(args.bootstrap, args.topic, model, args.events))
        print(f"{args.events:,} events -> {args.topic} at {args.bootstrap} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
