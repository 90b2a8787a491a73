import logging

from rtstream.config.load import load_settings
from rtstream.support.logs import JsonFormatter, Redactor, secrets_of


def test_no_secret_reaches_a_log_line():
    doc = {
        "pipeline": {"flow": "hook >> out"},
        "window": {"size": "1m"},
        "sources": {"hook": {"type": "http_poll", "url": "https://bob:pa55word@api.example/x", "bearer_token": "tok-123"}},
        "sinks": {"out": {"type": "postgres", "dsn": "postgresql://app:db-secret@db/app", "table": "t"}},
    }
    secrets = secrets_of(load_settings(doc=doc, env={}))
    assert {"pa55word", "tok-123", "db-secret"} <= set(secrets)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s with %s", ("https://bob:pa55word@api", "tok-123"), None)
    Redactor(secrets).filter(record)
    line = JsonFormatter("p").format(record)
    assert "pa55word" not in line and "tok-123" not in line and "https://bob:***@api" in line
