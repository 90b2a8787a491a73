"""`rtstream backfill`: rebuild the windows of a past time range."""

from __future__ import annotations

import argparse
import asyncio

from rtstream.cli.exits import refused
from rtstream.model.errors import ConfigError


def backfill_command(args: argparse.Namespace) -> int:
    from rtstream.run.backfill import prepare, run_backfill
    from rtstream.run.process_setup import start_logging

    try:
        settings, time_range = prepare(args.config, args.overrides, args.t_from, args.t_to)
    except ConfigError as exc:
        return refused("rtstream: backfill refused:", exc)
    start_logging(settings)
    return asyncio.run(run_backfill(settings, time_range))
