"""The one notion of a secret (rtstream.support.secrets), on its own: what counts, and how it is masked."""

from __future__ import annotations

import logging

from rtstream.config.load import load_settings
from rtstream.support.logs import JsonFormatter, TextFormatter
from rtstream.support.secrets import Scrubber, secrets_of


def settings_with_secrets():
    doc = {
        "pipeline": {"flow": "poll >> [hook, pg]"},
        "window": {"size": "1m"},
        "sources": {"poll": {"type": "http_poll", "url": "https://bob:p%40ss-word@api.example/x?api_key=qkey-1&page=2",
                             "headers": {"X-Api-Key": "hkey-2", "Accept": "application/json"},
                             "params": {"access_token": "ptok-3", "limit": 100}}},
        "sinks": {"hook": {"type": "http", "url": "https://hooks.example/in", "bearer_token": "btok-4"},
                  "pg": {"type": "postgres", "dsn": "host=db user=app password='kw pass 5'", "table": "t"}},
        "admin": {"listen": "127.0.0.1:8080", "token": "atok-6"},
    }
    return load_settings(doc=doc, env={})


def test_what_counts_as_a_secret():
    found = set(secrets_of(settings_with_secrets()))
    assert {"p%40ss-word", "p@ss-word", "qkey-1", "hkey-2", "ptok-3", "btok-4", "kw pass 5", "atok-6"} <= found
    assert not found & {"application/json", "100", "2", "bob", "app"}  # names and ordinary values are not


def test_masks_known_values_and_patterns_alike():
    s = Scrubber(secrets_of(settings_with_secrets()))
    assert s.redact("GET https://bob:p%40ss-word@api.example/x?api_key=qkey-1&page=2 failed") == \
        "GET https://bob:***@api.example/x?api_key=***&page=2 failed"
    unknown = Scrubber()  # a URL never seen in a config: its password and credential parameters still go
    assert unknown.redact("to postgres://u:hunter2@db/x and https://h/p?token=abc&sig=def&n=1") == \
        "to postgres://u:***@db/x and https://h/p?token=***&sig=***&n=1"
    assert unknown.redact("admin.token: Input should be a valid string (got 99999999)") == \
        "admin.token: Input should be a valid string (got ***)"
    assert unknown.redact("reload refused; running on as before: sinks.pg.dsn: Input should be a valid "
                          "string (got 1234)\nwindow.size: bad (got 'x')") == \
        "reload refused; running on as before: sinks.pg.dsn: Input should be a valid string (got ***)\n" \
        "window.size: bad (got 'x')"
    assert s.redact_doc({"problems": {"hook": "Bearer btok-4 refused", "n": 3}, "list": ["atok-6"]}) == \
        {"problems": {"hook": "Bearer *** refused", "n": 3}, "list": ["***"]}


def test_log_lines_are_redacted_whole_and_bounded():
    s = Scrubber(["atok-6"])
    try:
        raise RuntimeError("connect to https://u:pw-7@h/ with atok-6")
    except RuntimeError as exc:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", (exc,), (type(exc), exc, None))
    for formatter in (JsonFormatter("p", s), TextFormatter(s)):
        line = formatter.format(record)
        assert "pw-7" not in line and "atok-6" not in line and "u:***@h" in line
    long = logging.LogRecord("x", logging.INFO, __file__, 1, "x" * 100_000, None, None)
    assert len(TextFormatter(s).format(long)) < 5000
