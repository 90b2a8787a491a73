"""Print each flushed window: a one-line summary, or every row as JSON.

With `format = "json"`, a row that cannot be encoded as JSON (an int beyond 64 bits, nesting past
254 levels) is refused on its own (to the dead letters) and the others are printed. The summary
quotes at most `PREVIEW_CHARS` of the first row.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import orjson
from pydantic import Field

from rtstream.engine.dead_letter import excerpt
from rtstream.model.errors import RowsRejected
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig
from rtstream.sinks.rows import encode_row

PREVIEW_CHARS = 200


class StdoutConfig(SinkConfig):
    format: Literal["summary", "json"] = Field(default="summary",
        description="\"summary\": one line per window; \"json\": every row")


@register("sink", "stdout")
class StdoutSink(Sink):
    Config = StdoutConfig

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        rejected: list[tuple[list[dict[str, Any]], str]] = []
        if self.config.format == "json":
            lines = []
            for r in rows:
                line = encode_row(r)
                if isinstance(line, str):
                    rejected.append(([r], line))
                else:
                    lines.append(line + b"\n")
            sys.stdout.buffer.write(b"".join(lines))
        else:
            sys.stdout.write(f"{self.context.pipeline} window {window.start_iso} .. {window.end_iso}: "
                             f"{_count(window.input_count, 'record')} -> {_count(len(rows), 'row')}{_preview(rows)}\n")
        sys.stdout.flush()
        if rejected:
            raise RowsRejected(self.name, rejected)


def _preview(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    # 862.45, not 862.4499999999999: the summary is for reading; the json format keeps every digit
    totals = {k: _readable(v) for k, v in rows[0].items() if k not in ("window_start", "window_end")}
    shown, cut = excerpt(totals, PREVIEW_CHARS)  # bounded, whatever the row holds
    return f", first {shown if cut else orjson.dumps(shown).decode()}"


def _readable(value: Any) -> Any:
    return float(f"{value:.10g}") if isinstance(value, float) else value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
