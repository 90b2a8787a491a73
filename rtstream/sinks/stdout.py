"""Print each flushed window: a one-line summary, or every row as JSON."""

from __future__ import annotations

import sys
from typing import Any, Literal

import orjson

from rtstream.core.record import Window
from rtstream.core.registry import register
from rtstream.sinks.base import Sink, SinkConfig


class StdoutConfig(SinkConfig):
    format: Literal["summary", "json"] = "summary"


@register("sink", "stdout")
class StdoutSink(Sink):
    Config = StdoutConfig

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        if self.config.format == "json":
            sys.stdout.buffer.write(b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows))
        else:
            sys.stdout.write(f"{self.context.pipeline} window {window.start_iso} .. {window.end_iso}: "
                             f"{window.input_count} records -> {len(rows)} rows{_preview(rows)}\n")
        sys.stdout.flush()


def _preview(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    totals = {k: v for k, v in rows[0].items() if k not in ("window_start", "window_end")}
    return f", first {orjson.dumps(totals, default=str).decode()}"
