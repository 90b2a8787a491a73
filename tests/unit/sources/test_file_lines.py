"""The file source's lines: one split per read, records at their byte offsets, blank lines skipped,
batches of at most batch_size, each batch's end the position to resume from."""

import asyncio
import random
from pathlib import Path

import pytest

from rtstream.runtime.context import Context
from rtstream.sources.file import FileSource, FileSourceConfig, _split


def _reference(buf: bytes, base: int) -> list[tuple[bytes, int]]:
    """Every non-blank line and its offset, one find at a time (the loop the split replaced)."""
    out, start = [], 0
    while (nl := buf.find(b"\n", start)) >= 0:
        if buf[start:nl].strip():
            out.append((buf[start:nl], base + start))
        start = nl + 1
    return out


def _random_buffer(rnd: random.Random) -> bytes:
    shapes = [b'{"a":1}', b"", b" ", b"\t", b"\r", b" {\"b\":2} ", b'{"c":"\xc3\xa9"}\r', b"x" * 300, b"\x0b\x0c",
              b"not json", b'  {"d":3}']
    return b"".join(rnd.choice(shapes) + b"\n" for _ in range(rnd.randrange(1, 80)))


@pytest.mark.parametrize("limit", [1, 3, 5000])
def test_split_agrees_with_a_line_by_line_reading_on_random_buffers(limit: int) -> None:
    for _ in range(300):
        seed = random.randrange(1 << 30)
        rnd = random.Random(seed)
        buf, base = _random_buffer(rnd), rnd.randrange(10_000)
        batches = list(_split(buf, base, limit))
        got = [(r.value, r.offset) for records, _ in batches for r in records]
        assert got == _reference(buf, base), f"seed {seed}"
        assert all(len(records) <= limit for records, _ in batches)
        assert batches[-1][1] == base + len(buf), f"seed {seed}"  # the last batch takes in every line
        for records, end in batches[:-1]:  # the others resume right after their last record
            assert records and end == records[-1].offset + len(records[-1].value) + 1, f"seed {seed}"
        ends = [end for _, end in batches]
        assert ends == sorted(set(ends))


def test_a_buffer_of_blank_lines_only_gives_one_empty_batch_to_its_end() -> None:
    assert [(r, end) for r, end in _split(b"\n \n\t\r\n", 7, 10)] == [([], 13)]


def _read_all(path: Path, batch_size: int) -> list[tuple[list[tuple[bytes, int]], int]]:
    cfg = FileSourceConfig(type="file", path=str(path), batch_size=batch_size)
    src = FileSource("events", cfg, Context("p", path.parent / "state"))

    async def go() -> list[tuple[list[tuple[bytes, int]], int]]:
        await src.start()
        return [([(r.value, r.offset) for r in b.records], b.end) async for b in src.batches()]

    return asyncio.run(go())


def test_the_source_reads_a_file_across_reads_with_blank_lines_and_a_last_line_without_newline(tmp_path: Path) -> None:
    rnd = random.Random(7)
    lines = [b'{"i":%d,"pad":"%s"}' % (i, b"p" * rnd.randrange(0, 3000)) for i in range(2500)]
    body = b"".join(line + (b"\n\n" if i % 97 == 0 else b"\r\n" if i % 89 == 0 else b"\n")
                    for i, line in enumerate(lines))
    path = tmp_path / "in.jsonl"
    path.write_bytes(body + b'{"last":1}')  # more than one 1 MiB read, and a last line with no newline
    batches = _read_all(path, 100)
    records = [r for recs, _ in batches for r in recs]
    assert records == _reference(body + b'{"last":1}\n', 0)
    assert all(len(recs) <= 100 for recs, _ in batches)
    assert batches[-1][1] == len(body) + len(b'{"last":1}')
    assert [end for _, end in batches] == sorted({end for _, end in batches})
