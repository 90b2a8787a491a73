"""The `rtstream test` command: load, run once (rtstream.run.oneshot), print the rows and a summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import IO

import orjson

from rtstream.cli.exits import EXIT_CONFIG, refused
from rtstream.model.errors import ConfigError
from rtstream.run.oneshot import WindowRows, run_once


def run_once_command(args: argparse.Namespace) -> int:
    from rtstream.config.load import load_settings
    from rtstream.run.process_setup import start_logging
    from rtstream.windows.clock import epoch_ms

    try:
        at_ms = epoch_ms(args.at) if args.at else None
    except Exception as exc:  # noqa: BLE001 - any unreadable time is the user's to fix
        print(f"rtstream: --at: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    input_path = Path(args.input) if args.input else None
    if input_path is not None and not input_path.is_file():
        print(f"rtstream: --input: no such file {args.input!r}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_settings(Path(args.config), args.overrides, check_paths=False)
    except ConfigError as exc:
        return refused(f"rtstream: config {args.config} refused:", exc)
    start_logging(settings, "text")
    try:
        out: IO[bytes] = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    except OSError as exc:
        print(f"rtstream: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    rows_out = 0

    def emit(w: WindowRows) -> None:
        nonlocal rows_out
        for row in w.rows:
            out.write(orjson.dumps({"window_start": w.window_start, "window_end": w.window_end, **row},
                                   default=str) + b"\n")
        out.flush()
        rows_out += len(w.rows)

    try:
        outcome = asyncio.run(run_once(settings, input_path=input_path, at_ms=at_ms, with_sinks=args.sinks,
                                       on_window=emit))
    except ConfigError as exc:
        return refused(f"rtstream: cannot test {args.config}:", exc)
    finally:
        if args.output:
            out.close()
    where = f"written to {args.output}" if args.output else "printed"
    sinks = "configured sinks written too" if args.sinks else "configured sinks not written (--sinks writes them)"
    print(f"rtstream test: {outcome.records_in} records in, {len(outcome.windows)} windows, {rows_out} rows "
          f"{where}, {outcome.dead_letters} dead letters; {sinks}; no state kept", file=sys.stderr)
    for failure in outcome.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    if outcome.exit_code and not outcome.failures:
        print("FAILED: see the log above for the component that stopped the run", file=sys.stderr)
    return outcome.exit_code
