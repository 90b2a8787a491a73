"""Kafka messages as aiokafka parses them, without a ConsumerRecord built per message.

aiokafka's fetcher parses each record batch into record objects (its C extension's, holding
offset, timestamp, key, value and headers) and then copies every one into a ConsumerRecord
dataclass. That copy cost about 0.8 us per message on W1, more than decoding the JSON, and the
engine reads nothing from it that the parsed record lacks (`SourceRecord`: value, offset, timestamp,
key). So a consumer built with `value_deserializer=as_parsed` gets the parsed records as they are.
Everything else stays aiokafka's own: fetching, CRC checks, control and aborted-transaction batches,
positions and highwaters.

The hook is the fetcher's per-record conversion, `PartitionRecords._consumer_record`, which the
fetcher looks up by name in its module; the subclass installed there changes nothing for any other
consumer. It is installed only for the aiokafka versions it was checked against
(`tests/integration/test_kafka_records.py` fails when an upgrade moves the hook: it checks that
the records read through it are not ConsumerRecords); with any other version
`as_parsed` is an ordinary identity deserializer and records come as ConsumerRecords, which have
the same attributes.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from aiokafka.consumer import fetcher

from rtstream.model.record import Record

CHECKED_VERSIONS = ("0.14.",)


def as_parsed(value: bytes | None) -> bytes | None:
    """Marks a consumer whose messages come as parsed; called (as the identity) only without the hook."""
    return value


class _ParsedPartitionRecords(fetcher.PartitionRecords):  # type: ignore[misc]
    def _consumer_record(self, tp: Any, record: Any) -> Any:
        if self._value_deserializer is as_parsed:
            return record
        return super()._consumer_record(tp, record)


def install() -> bool:
    """Put the hook in place (once); False where this aiokafka version was not checked."""
    if not aiokafka.__version__.startswith(CHECKED_VERSIONS):
        return False
    if fetcher.PartitionRecords is not _ParsedPartitionRecords:
        fetcher.PartitionRecords = _ParsedPartitionRecords
    return True


def as_raw_records(msgs: list[Any]) -> list[Record]:
    """`format = "raw"`: each message as `{"key": text, "value": text}` (bytes decoded, bad ones replaced)."""
    return [Record({"key": _text(m.key), "value": _text(m.value)}, m.offset, m.timestamp, m.key) for m in msgs]


def _text(b: bytes | None) -> str | None:
    return None if b is None else b.decode("utf-8", errors="replace")
