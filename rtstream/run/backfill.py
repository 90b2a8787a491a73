"""`rtstream backfill -c FILE --from T1 --to T2`: rebuild the windows of a past time range.

The pipeline is run as a finite job over the same sources: Kafka topics are read from the time
`--from` (offsets_for_times; from the beginning where the broker cannot say) to their current end,
without committing the group's offsets; files are read whole. Only records in the range, widened to
whole windows, are kept; the windows are written to the sinks, whose upserts replace what was there.
Progress shows as a bar on a terminal and as periodic log lines otherwise; a summary ends the run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rtstream.config.settings import Settings
from rtstream.model.errors import ConfigError
from rtstream.model.window import iso_utc
from rtstream.sources.clocked import FIXED_START
from rtstream.sources.file_positions import PositionFile
from rtstream.windows.clock import epoch_ms

log = logging.getLogger("rtstream.run.backfill")
REPLAYABLE = {"kafka", "file", "generator", "python"}  # python: its function is called for each interval


def backfill_overrides(settings: Settings, from_ms: int, to_ms: int | None = None) -> list[str]:
    """--set lines that turn each source into a finite, non-committing read of its history."""
    out: list[str] = []
    problems = []
    for comp in settings.of(settings.flow.sources):
        kind = comp.cls.type_name  # type: ignore[attr-defined]
        key = f"sources.{comp.name}"
        if kind not in REPLAYABLE:
            problems.append((f"{key}.type", f"a {kind} source has no history to backfill from"))
        elif kind == "kafka":
            group = comp.config.group_id  # type: ignore[attr-defined]
            lateness_ms = round(settings.root.window.lateness * 1000)
            out += [f"{key}.stop_at_end=true", f"{key}.commit_offsets=false",
                    f'{key}.group_id="{group}-backfill-{uuid.uuid4().hex[:8]}"',
                    f"{key}.start_at={from_ms - lateness_ms}"]
        elif kind == "file":
            out.append(f"{key}.follow=false")
        elif kind == "generator" and comp.config.count is None:  # type: ignore[attr-defined]
            replay = generator_replay(settings, comp.name, comp.config, to_ms)
            if isinstance(replay, str):
                problems.append((key, replay))
            else:
                out += [f"{key}.{k}={v}" for k, v in replay.items()]
    if problems:
        raise ConfigError(problems)
    return out


def generator_replay(settings: Settings, name: str, config: Any, to_ms: int | None) -> dict[str, Any] | str:
    """The keys that make an endless generator a finite one with the same records up to `to_ms`, or why not.

    Record i depends only on (seed, i) and its time is start + i / rate, so the live generator's start
    (kept in its position file) is all a backfill needs; the source itself begins at the range's first
    record (GeneratorSource.start reads the backfill's range)."""
    if config.start is not None:
        start_ms = epoch_ms(config.start)
    else:
        saved = PositionFile(Path(settings.root.daemon.state_dir), name).load()
        if "start_ms" in saved:
            start_ms = int(saved["start_ms"])
        elif config.realtime:
            return "this generator has not run yet (its start is kept in the state dir): there is nothing to rebuild"
        else:
            start_ms = epoch_ms(FIXED_START)
    upto = to_ms if to_ms is not None else round(time.time() * 1000)
    if config.realtime:  # never past what the live generator has released
        upto = min(upto, round(time.time() * 1000))
    count = max(0, math.ceil((upto - start_ms) * config.rate / 1000))
    return {"start": start_ms, "realtime": "false", "count": count}


def window_range(settings: Settings, t_from: str, t_to: str) -> tuple[int, int]:
    size = settings.root.window.size_ms
    now = round(time.time() * 1000)  # `--to now`, as the config import-dag writes suggests
    try:
        a, b = (now if t.strip().lower() == "now" else epoch_ms(t) for t in (t_from, t_to))
    except Exception as exc:  # noqa: BLE001 - any unreadable time is the user's to fix
        raise ConfigError.at("--from/--to", f"{exc} (expected ISO-8601, epoch seconds or milliseconds, or now)") from None
    if b <= a:
        raise ConfigError.at("--to", "must be after --from")
    return a - a % size, b + (-b) % size  # whole windows, so no window is replaced by a part of itself


async def run_backfill(settings: Settings, time_range: tuple[int, int]) -> int:
    from rtstream.runtime.supervisor import Runtime

    runtime = Runtime(settings)
    runtime.engine.time_range = time_range
    runtime.context.extra.update(run_once=True, backfill_range=time_range)  # python sources: each interval once
    runtime.context.run_tag = f"backfill-{time_range[0]}-{time_range[1]}"
    began = time.monotonic()
    progress = asyncio.create_task(_progress(runtime, began))
    try:
        code = await runtime.run()
    finally:
        progress.cancel()
    took = time.monotonic() - began
    e, f = runtime.engine, runtime.flusher
    rows = [("range", f"{iso_utc(time_range[0])} .. {iso_utc(time_range[1])}"),
            ("records read", f"{e.records_in:,}"), ("outside the range", f"{e.skipped:,}"),
            ("dead letters", f"{runtime.dead_letters.count:,}"), ("windows written", f"{f.windows_flushed:,}"),
            ("rows written", f"{f.rows_out:,}"), ("seconds", f"{took:.1f}"),
            ("records/s", f"{e.records_in / took:,.0f}" if took > 0 else "-")]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return code


async def _progress(runtime: Any, began: float) -> None:
    e, f = runtime.engine, runtime.flusher
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit=" rec", unit_scale=True, dynamic_ncols=True, file=sys.stderr)
        try:
            while True:
                await asyncio.sleep(0.2)
                bar.update(e.records_in - bar.n)
                bar.set_postfix(windows=f.windows_flushed, refresh=False)
        finally:
            bar.update(e.records_in - bar.n)
            bar.close()
    while True:
        await asyncio.sleep(5)
        took = time.monotonic() - began
        log.info("backfill: %d records, %d windows written, %.0f records/s", e.records_in, f.windows_flushed,
                 e.records_in / took if took else 0)


def prepare(config_path: str, overrides: list[str], t_from: str, t_to: str) -> tuple[Settings, tuple[int, int]]:
    from rtstream.config.load import load_settings

    base = load_settings(Path(config_path), overrides, check_paths=False)  # its state_dir is not used
    time_range = window_range(base, t_from, t_to)
    state = tempfile.mkdtemp(prefix="rtstream-backfill-")
    extra = backfill_overrides(base, *time_range) + [f'daemon.state_dir="{state}"']
    settings = load_settings(Path(config_path), overrides + extra)
    settings.root.admin = None  # the live daemon serves the admin address; a backfill beside it serves none
    return settings, time_range
