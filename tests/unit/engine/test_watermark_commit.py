from rtstream.engine.commit_rule import CommitTracker, Hold, HoldKind
from rtstream.windows.watermark import NEVER, WatermarkTracker


def test_watermark_is_min_over_partitions_and_waits_for_new_ones():
    w = WatermarkTracker(lateness_ms=1000, idle_timeout_s=10)
    w.assign("p0", now=0)
    w.assign("p1", now=0)
    w.observe("p0", 50_000, now=1)
    assert w.advance(now=1, wall_ms=10**13) == NEVER  # p1 has not delivered and is not idle yet
    w.observe("p1", 20_000, now=2)
    assert w.advance(now=2, wall_ms=10**13) == 19_000
    w.observe("p1", 60_000, now=3)
    assert w.advance(now=3, wall_ms=10**13) == 49_000


def test_idle_partition_lets_the_wall_clock_close_windows():
    w = WatermarkTracker(lateness_ms=5000, idle_timeout_s=10)
    w.assign("p0", now=0)
    w.observe("p0", 100_000, now=0)
    assert w.advance(now=5, wall_ms=500_000) == 95_000
    assert w.advance(now=11, wall_ms=500_000) == 495_000


def test_watermark_never_goes_back():
    w = WatermarkTracker(0, 10)
    w.assign("p", 0)
    w.observe("p", 100, 0)
    w.advance(0, 0)
    w.forget("p")
    w.assign("q", 1)
    w.observe("q", 10, 1)
    assert w.advance(1, 0) == 100


def test_commit_is_the_low_watermark_of_unwritten_windows():
    t = CommitTracker()
    pk = ("src", 0)
    t.hold(pk, Hold(HoldKind.OPEN, 0), 0)
    t.processed(pk, 10)
    t.hold(pk, Hold(HoldKind.OPEN, 300), 7)
    assert t.safe(pk) == 0
    t.release(pk, Hold(HoldKind.OPEN, 0))  # window 0 written
    assert t.safe(pk) == 7
    t.release(pk, Hold(HoldKind.OPEN, 300))
    assert t.safe(pk) == 10
    assert t.safe_positions("src") == {0: 10}
    assert t.safe_positions("other") == {}


def test_a_later_window_finishing_first_does_not_move_the_commit():
    t = CommitTracker()
    pk = ("k", 3)
    t.hold(pk, "w1", 100)
    t.hold(pk, "w2", 150)
    t.processed(pk, 200)
    t.release(pk, "w2")
    assert t.safe(pk) == 100
