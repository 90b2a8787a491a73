"""The marks of a commit round, journaled once before the sources commit one by one."""

import asyncio

from aiokafka import TopicPartition

from rtstream.model.positions import Mark, SourceCommit
from rtstream.runtime.written_marks import WrittenMarks


def round_of(**by_source):
    return {name: SourceCommit({p: pos for p, (pos, _) in parts.items()}, {p: m for p, (_, m) in parts.items()})
            for name, parts in by_source.items()}


def test_a_round_of_two_sources_is_journaled_before_their_commits_and_read_back_per_partition(tmp_path):
    tp = TopicPartition("orders", 3)
    j = WrittenMarks(tmp_path, "p", {"a": "a", "k": "k@group1"})
    asyncio.run(j.before_commits(round_of(a={0: (10, Mark(100, 12))}, k={tp: (5, Mark(90, 7))})))
    again = WrittenMarks(tmp_path, "p", {"a": "a", "k": "k@group1"})  # a restart reads the file
    assert again.mark("a", 0) == Mark(100, 12) and again.mark("k", tp) == Mark(90, 7)
    assert again.mark("k", TopicPartition("orders", 4)) is None and again.mark("a", 1) is None
    # a new consumer group (or a source of that name reading something else) starts over
    assert WrittenMarks(tmp_path, "p", {"k": "k@group2"}).mark("k", tp) is None
    assert WrittenMarks(tmp_path, "other", {"a": "a"}).mark("a", 0) is None  # each pipeline its own


def test_one_source_alone_writes_nothing_and_an_unchanged_round_is_not_written_again(tmp_path):
    j = WrittenMarks(tmp_path, "p", {"a": "a", "b": "b"})
    asyncio.run(j.before_commits(round_of(a={0: (10, Mark(100, 12))}, b={})))
    assert not (tmp_path / "positions").exists()  # its commit carries its mark: nothing to journal
    both = round_of(a={0: (10, Mark(100, 12))}, b={0: (4, Mark(100, 6))})
    asyncio.run(j.before_commits(both))
    [f] = (tmp_path / "positions").iterdir()
    inode = f.stat().st_ino
    asyncio.run(j.before_commits(both))
    assert f.stat().st_ino == inode  # replaced atomically only when something changed
    asyncio.run(j.before_commits(round_of(a={0: (10, Mark(160, 15))}, b={0: (4, Mark(100, 6))})))
    assert f.stat().st_ino != inode and WrittenMarks(tmp_path, "p", {"a": "a"}).mark("a", 0) == Mark(160, 15)


def test_an_unsafe_pipeline_name_stays_inside_the_state_dir(tmp_path):
    state = tmp_path / "state"
    j = WrittenMarks(state, "../../x/\x00y", {"a": "a", "b": "b"})
    asyncio.run(j.before_commits(round_of(a={0: (1, Mark(5, 2))}, b={0: (1, Mark(5, 2))})))
    [f] = (state / "positions").iterdir()
    assert f.name.startswith("written-marks.______x__y-") and [p.name for p in tmp_path.iterdir()] == ["state"]


def test_a_journal_that_cannot_be_read_is_set_aside_with_a_warning(tmp_path, caplog):
    positions = tmp_path / "positions"
    j = WrittenMarks(tmp_path, "p", {"a": "a", "b": "b"})
    asyncio.run(j.before_commits(round_of(a={0: (1, Mark(5, 2))}, b={0: (1, Mark(5, 2))})))
    [f] = positions.iterdir()
    for garbage in (b"\x00not json", b"[1, 2]", b'{"pairs": [1]}', b'{"pairs": {"a\\t0": ["a", "x", null]}}',
                    b'{"pairs": {"a\\t0": ["a", 1]}}'):
        f.write_bytes(garbage)
        again = WrittenMarks(tmp_path, "p", {"a": "a"})
        assert again.mark("a", 0) is None
    f.write_bytes(b"\x00not json")
    WrittenMarks(tmp_path, "p", {"a": "a"})
    assert "cannot be read" in caplog.text and "Traceback" not in caplog.text
    # and the next round writes it whole again
    again = WrittenMarks(tmp_path, "p", {"a": "a", "b": "b"})
    asyncio.run(again.before_commits(round_of(a={0: (1, Mark(7, 3))}, b={0: (1, Mark(7, 3))})))
    assert WrittenMarks(tmp_path, "p", {"a": "a"}).mark("a", 0) == Mark(7, 3)
