"""The partition of a message key, as the Java client (and aiokafka's DefaultPartitioner) picks it."""

from __future__ import annotations

import struct

_CACHED_KEY_BYTES = 128
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_BLOCKS = [struct.Struct(f"<{n}I") for n in range(64)]


class KeyPartitioner:
    """The partition of a key as the Java client (and aiokafka's DefaultPartitioner) chooses it:
    murmur2 of the key bytes. aiokafka's murmur2 handles a byte at a time; this one unpacks the
    key's 4-byte blocks at once (about half the cost) and keeps the hashes of recent keys, as
    running results and replays write the same keys again. Keys are never None here."""

    def __init__(self, max_keys: int = 100_000):
        self.max_keys = max_keys
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes, partitions: list[int]) -> int:
        """`partitions`: every partition of the topic, sorted."""
        h = self._hashes.get(key)
        if h is None:
            h = murmur2(key) & 0x7FFFFFFF
            if len(key) <= _CACHED_KEY_BYTES:  # bounded in bytes too: long keys are hashed each time
                if len(self._hashes) >= self.max_keys:
                    self._hashes.clear()  # O(1) and bounded; the next keys fill it again
                self._hashes[key] = h
        return partitions[h % len(partitions)]



def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), equal to aiokafka's."""
    length = len(data)
    h = 0x9747B28C ^ length
    n = length >> 2
    blocks = _BLOCKS[n].unpack_from(data) if n < 64 else struct.unpack_from(f"<{n}I", data)
    for k in blocks:
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ (((k ^ (k >> 24)) * _M) & _MASK)
    extra = length & 3
    if extra:
        tail = n << 2
        if extra == 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)
