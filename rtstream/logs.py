"""Logging: one JSON object per line for containers, or plain text for terminals."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_CONTEXT = ("component", "window", "partition", "source")


class JsonFormatter(logging.Formatter):
    def __init__(self, pipeline: str):
        super().__init__()
        self.pipeline = pipeline

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pipeline": self.pipeline,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT:
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")


class Redactor(logging.Filter):
    """Replaces every known secret (tokens, passwords, credentials in URLs) in a log line with ***."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({x for x in secrets if len(x) >= 3}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            for secret in self.secrets:
                if secret in msg:
                    msg = msg.replace(secret, "***")
            record.msg, record.args = msg, None
        return True


def secrets_of(settings: Any) -> list[str]:
    """Every SecretStr in the config, and the password of any URL with credentials."""
    from urllib.parse import urlsplit

    from pydantic import BaseModel, SecretStr

    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
            walk(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, str) and "://" in value and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.append(password)

    walk(settings.root)
    for comp in settings.components.values():
        walk(comp.config)
    return found


def setup_logging(level: str = "info", fmt: str = "text", pipeline: str = "rtstream",
                  secrets: list[str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(pipeline) if fmt == "json" else TextFormatter())
    handler.addFilter(Redactor(secrets or []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
