"""`rtstream.testing.run`: a pipeline once, in your own pytest, with the rows of each window returned.

    import rtstream.testing

    def test_totals_per_user():
        result = rtstream.testing.run("config/orders.toml", [{"user": "u1", "amount": 5, "ts": "2026-11-24T12:01:00Z"},
                                            {"user": "u1", "amount": 7, "ts": "2026-11-24T12:03:00Z"}])
        assert result.by_window["2026-11-24T12:00:00Z"] == [
            {"window_start": "2026-11-24T12:00:00Z", "window_end": "2026-11-24T12:05:00Z", "user": "u1", "total": 12}]

It is `rtstream test` without the process: the same engine, state in a temporary folder, sources
run once (`records` stand in for every source that does not fetch by itself), configured sinks left
alone unless `sinks=True`, retries off.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from rtstream.run.oneshot import RunOnceOutcome, run_once
from rtstream.windows.clock import epoch_ms


async def run_async(config_or_pipeline: Any, records: Iterable[dict[str, Any]] | None = None, *,
                    at: Any = None, sinks: bool = False, overrides: list[str] | None = None) -> RunOnceOutcome:
    """As `run`, inside a running event loop (pytest-asyncio and the like)."""
    from rtstream.config.load import load_settings

    if isinstance(config_or_pipeline, (str, Path)):
        settings = load_settings(Path(config_or_pipeline), overrides, check_paths=False)
    elif isinstance(config_or_pipeline, dict):
        settings = load_settings(doc=config_or_pipeline, overrides=overrides, check_paths=False)
    else:  # a rtstream.Pipeline
        settings = load_settings(doc=config_or_pipeline.config(), overrides=overrides, check_paths=False)
    at_ms = epoch_ms(at) if at is not None else None
    if records is None:
        return await run_once(settings, at_ms=at_ms, with_sinks=sinks)
    with tempfile.TemporaryDirectory(prefix="rtstream-input-") as tmp:
        path = Path(tmp) / "input.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r, default=str) + b"\n" for r in records))
        return await run_once(settings, input_path=path, at_ms=at_ms, with_sinks=sinks)


def run(config_or_pipeline: Any, records: Iterable[dict[str, Any]] | None = None, *, at: Any = None,
        sinks: bool = False, overrides: list[str] | None = None) -> RunOnceOutcome:
    """Run a config file (path), a config document (dict) or a `rtstream.Pipeline` once over `records`.

    Returns a RunOnceOutcome: `by_window` maps each window's start (ISO-8601 UTC) to its rows, `windows`
    lists (window_start, window_end, rows, key) in the order written, `rows` is every row,
    `exit_code` is 0 or 1 and `failures` names each failed component with its error.
    `at` is the logical date a python source fetches for (as in `airflow dags test`).
    """
    return asyncio.run(run_async(config_or_pipeline, records, at=at, sinks=sinks, overrides=overrides))
