"""The Kafka sink's partition choice: the same partition as aiokafka's DefaultPartitioner (and the
Java client) for every key, with its cache cold, warm and after it filled up."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from rtstream.sinks.kafka.partitioner import KeyPartitioner, murmur2


def some_keys(n: int, seed: int = 5) -> list[bytes]:
    rnd = random.Random(seed)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"\xff\xfe\xfd\x80\x00"]
    keys += [f"2026-01-01T00:{m:02d}:00+00:00|u{rnd.randrange(10_000)}".encode() for m in range(60) for _ in range(n // 120)]
    keys += [rnd.randbytes(rnd.randrange(0, 300)) for _ in range(n // 2)]  # past 64 blocks too
    return keys


def test_murmur2_equals_aiokafkas():
    for key in some_keys(4000):
        assert murmur2(key) == aiokafka_murmur2(key), key


@given(st.binary(max_size=600))
def test_murmur2_equals_aiokafkas_for_any_bytes(key):
    assert murmur2(key) == aiokafka_murmur2(key)


def test_partition_equals_default_partitioner_cold_warm_and_after_the_cache_fills():
    default = DefaultPartitioner()
    keys = some_keys(2000)
    ours = KeyPartitioner(max_keys=97)  # far fewer than the keys: it fills and starts over many times
    for partitions in ([0], [0, 1, 2], [0, 1, 2, 3], list(range(12))):
        for _ in range(2):  # the second round meets keys the cache has seen, or has dropped
            for key in keys:
                assert ours(key, partitions) == default(key, partitions, partitions), (key, partitions)
    assert len(ours._hashes) <= 97


def test_cache_is_bounded():
    ours = KeyPartitioner(max_keys=10)
    for i in range(1000):
        ours(str(i).encode(), [0, 1, 2, 3])
        assert len(ours._hashes) <= 10
