"""`rtstream run --dags PATH`, and `rtstream run` of a config with `[dags]`: DAGs on their schedules
(rtstream.run.dags_daemon), beside the config's pipeline when it has one."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtstream.cli.exits import refused
from rtstream.model.errors import ConfigError


def wants_dags(args: argparse.Namespace) -> bool:
    if getattr(args, "dags", None):
        return True
    if args.config is None:
        return False
    from rtstream.config.files import read_file

    try:
        return "dags" in read_file(Path(args.config))
    except ConfigError:
        return False  # the usual load says what is wrong with the file


def run_dags_command(args: argparse.Namespace) -> int:
    from rtstream.config.dags import load_dags_settings

    # `rtstream run --dags PATH` needs no config file: only an explicit -c adds a pipeline beside the DAGs
    config = Path(args.config) if args.config is not None else None
    try:
        dags, settings = load_dags_settings(config, args.overrides, args.dags)
    except ConfigError as exc:
        if len(exc.problems) == 1 and not exc.problems[0][0]:
            return refused(f"rtstream: config refused: {exc.problems[0][1]}", ConfigError([]))
        return refused(f"rtstream: config {config or '(none, --dags)'} refused:", exc)
    if settings is not None:
        from rtstream.support.secrets import remember

        remember(settings)
    from rtstream.run.dags_daemon import run_dags_daemon

    return run_dags_daemon(dags, settings)
