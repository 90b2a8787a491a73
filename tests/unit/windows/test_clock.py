import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtstream.model.errors import DecodeError
from rtstream.windows.assign import TumblingAssigner
from rtstream.windows.clock import epoch_ms

T = 1_700_000_000_123


@pytest.mark.parametrize("value", [T, T / 1000, T * 1000, T * 1_000_000, str(T), "2023-11-14T22:13:20.123Z",
                                   "2023-11-14T22:13:20.123+00:00", "2023-11-14T23:13:20.123+01:00",
                                   "2023-11-14T22:13:20.123"])
def test_all_spellings_agree(value):
    assert epoch_ms(value) == T


@pytest.mark.parametrize("bad", [None, True, "yesterday", float("nan"), float("inf"), [1], {"a": 1}])
def test_unusable_time(bad):
    with pytest.raises(DecodeError):
        epoch_ms(bad)


@given(st.integers(min_value=0, max_value=2**45), st.sampled_from([1000, 60_000, 300_000, 3_600_000]))
def test_tumbling_contains_its_time(ts, size):
    a = TumblingAssigner(size)
    start = a.start(ts)
    assert start <= ts < a.end(start)
    assert start % size == 0


def test_windows_align_to_the_clock_like_cron():
    a = TumblingAssigner(300_000)
    assert a.start(epoch_ms("2026-11-24T12:07:31Z")) == epoch_ms("2026-11-24T12:05:00Z")
