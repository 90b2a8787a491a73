import pytest

from rtstream.model.durations import format_duration, parse_duration, schedule_to_size


@pytest.mark.parametrize("text,seconds", [("250ms", 0.25), ("90s", 90), ("5m", 300), ("1m30s", 90), ("1h", 3600),
                                          ("1d", 86400), (0, 0), ("0", 0), ("2h30m", 9000)])
def test_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", [5, 1.5, "5", " 30 "])
def test_a_number_without_a_unit_is_refused(bad):
    with pytest.raises(ValueError, match=r"^a duration needs a unit, e.g. 5s, 5m, 1h \(got "):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["five minutes", "", "5x", "m5", "-5s", -1, True, None, "5m 3"])
def test_refused_with_hint(bad):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


@pytest.mark.parametrize("seconds", [0.25, 1, 90, 300, 3600, 86400 + 61])
def test_format_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("expr,size", [("*/5 * * * *", 300), ("* * * * *", 60), ("*/15 * * * *", 900),
                                       ("0 * * * *", 3600), ("0 */2 * * *", 7200), ("0 0 * * *", 86400),
                                       ("@hourly", 3600), ("@daily", 86400), ("*/5  *  * * *", 300)])
def test_schedule(expr, size):
    assert schedule_to_size(expr) == size


@pytest.mark.parametrize("expr", ["*/7 * * * *", "5 * * * *", "*/5 * * * 1-5", "0 9 * * *", "@weekly", "*/5 * *"])
def test_schedule_refused(expr):
    with pytest.raises(ValueError, match="unsupported schedule"):
        schedule_to_size(expr)
