"""Refused requests and dropped connections of rtstream's HTTP servers, logged without flooding."""

from __future__ import annotations

import asyncio
import collections
import logging

from aiohttp.http_exceptions import HttpProcessingError

SUMMARY_EVERY = 10.0  # seconds between two summary lines of refused requests


MAX_DETAIL = 200  # characters of a refused request's detail that reach the log


class RejectLog:
    """Refused requests and dropped connections, logged without flooding: the first of each reason
    at once, later ones counted and summed up in one line per `every` seconds."""

    def __init__(self, log: logging.Logger, server: str, every: float = SUMMARY_EVERY):
        self.log = log
        self.server = server
        self.every = every
        self.totals: collections.Counter[str] = collections.Counter()
        self._pending: collections.Counter[str] = collections.Counter()
        self._handle: asyncio.TimerHandle | None = None

    def note(self, reason: str, detail: str = "") -> None:
        first = reason not in self.totals
        self.totals[reason] += 1
        if first:
            detail = " ".join(detail.split())[:MAX_DETAIL]
            self.log.warning("%s: %s%s (more of these are summed up every %.0fs)", self.server, reason,
                             f": {detail}" if detail else "", self.every)
            return
        self._pending[reason] += 1
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.every, self.flush)

    def flush(self) -> None:
        self._handle = None
        if self._pending:
            parts = ", ".join(f"{n} {reason}" for reason, n in self._pending.most_common())
            self.log.warning("%s: in the last %.0fs: %s", self.server, self.every, parts)
            self._pending.clear()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.flush()


class ProtocolLog(logging.Handler):
    """aiohttp logs each malformed request with a traceback: turn those into RejectLog notes."""

    def __init__(self, rejects: RejectLog):
        super().__init__()
        self.rejects = rejects

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):  # aiohttp's parser refused the request: it answered 400
            self.rejects.note("malformed requests (400)", str(exc).replace("\n", " "))
        elif exc is not None:  # a handler raised: a bug, answered 500; the first one with its traceback
            if "internal errors (500)" not in self.rejects.totals:
                self.rejects.log.error("%s: %s", self.rejects.server, record.getMessage(), exc_info=record.exc_info)
            self.rejects.note("internal errors (500)", f"{type(exc).__name__}: {exc}")
