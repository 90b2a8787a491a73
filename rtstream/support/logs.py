"""Logging: one JSON object per line for containers, or plain text for terminals."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from rtstream.support.secrets import KNOWN, Scrubber, secrets_of

__all__ = ["JsonFormatter", "Redactor", "TextFormatter", "secrets_of", "setup_logging"]
_CONTEXT = ("worker", "component", "window", "partition", "source")


MAX_MESSAGE = 4096  # a log line never carries a whole request body or response
MAX_TRACEBACK = 16384


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; every string in it is redacted (see rtstream.support.secrets)."""

    def __init__(self, pipeline: str, scrubber: Scrubber = KNOWN):
        super().__init__()
        self.pipeline = pipeline
        self.scrubber = scrubber

    def format(self, record: logging.LogRecord) -> str:
        redact = self.scrubber.redact
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pipeline": self.pipeline,
            "msg": redact(_bounded(record.getMessage(), MAX_MESSAGE)),
        }
        for key in _CONTEXT:
            if hasattr(record, key):
                value = getattr(record, key)
                doc[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            doc["exc"] = redact(_bounded(self.formatException(record.exc_info), MAX_TRACEBACK))
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time level logger: message`, the whole line (traceback included) redacted."""

    def __init__(self, scrubber: Scrubber = KNOWN, worker: bool = False) -> None:
        who = "[worker %(worker)s] " if worker else ""
        super().__init__(f"%(asctime)s %(levelname)-7s {who}%(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        self.scrubber = scrubber

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = _bounded(record.message, MAX_MESSAGE)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return _bounded(super().formatException(ei), MAX_TRACEBACK)

    def format(self, record: logging.LogRecord) -> str:
        return self.scrubber.redact(super().format(record))


class Redactor(logging.Filter):
    """Replaces every known secret in a record's message with ***, for handlers that keep records
    (the status page's recent errors); the stream handler's formatters redact whole lines."""

    def __init__(self, secrets: list[str] | Scrubber):
        super().__init__()
        self.scrubber = secrets if isinstance(secrets, Scrubber) else Scrubber(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = self.scrubber.redact(record.getMessage())
        record.msg, record.args = msg, None
        return True


class _OneLineAcceptErrors(logging.Filter):
    """asyncio logs a traceback each time a listening socket cannot accept (no file descriptor left),
    once a second per server: one line says as much."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "asyncio" and record.exc_info and "accept" in str(record.msg):
            exc = record.exc_info[1]
            record.msg, record.args, record.exc_info, record.exc_text = (
                "cannot accept a connection: %s (paused for a second; see max_connections)", (exc,), None, None)
        return True


class _Worker(logging.Filter):
    """Marks every record of a worker process with its index, so N workers' lines on one terminal
    (or in one container log) can be told apart."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def setup_logging(level: str = "info", fmt: str = "text", pipeline: str = "rtstream",
                  secrets: list[str] | None = None, worker: int | None = None) -> None:
    """Log to stderr; every line is redacted with the process's known secrets plus `secrets`; a
    worker's lines carry `worker` (text: `[worker 1]` before the logger; JSON: `"worker": 1`)."""
    KNOWN.add(secrets or [])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(pipeline) if fmt == "json" else TextFormatter(worker=worker is not None))
    handler.addFilter(_OneLineAcceptErrors())
    if worker is not None:
        handler.addFilter(_Worker(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
