"""`rtstream`: read the command line, load the config where the command needs one, hand over to the command."""

from __future__ import annotations

import sys
from pathlib import Path

from rtstream.cli.backfill import backfill_command
from rtstream.cli.exits import refused
from rtstream.cli.import_dag import import_dag_command
from rtstream.cli.parser import build_parser
from rtstream.cli.runs import runs_command, status_command
from rtstream.cli.subcommand import DEFAULT_CONFIG, STRAY
from rtstream.model.errors import EXIT_CONFIG, ConfigError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, STRAY, None):  # `rtstream run base.toml`: the config is an option, say so in one line
        given = " ".join(getattr(args, STRAY))
        print(f"rtstream {args.command}: give the config with -c: rtstream {args.command} -c {given}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "run" and argv is None:  # the process is the daemon: a stop during start-up is clean
        from rtstream.support import early_signals

        early_signals.hold()
    if args.command == "import-dag":
        return import_dag_command(args)
    if args.command == "dags":
        from rtstream.cli.dags import dags_command

        return dags_command(args)
    if args.command in ("backfill", "test") and getattr(args, "config", None):
        from rtstream.cli.run_pipelines import one_pipeline_only

        if (code := one_pipeline_only(args)) is not None:
            return code
    if args.command == "backfill":
        return backfill_command(args)
    if args.command == "test":
        from rtstream.cli.oneshot import run_once_command

        return run_once_command(args)
    if args.command in ("runs", "status"):
        args.overrides = []
    if args.command == "run" and args.config is None and not args.dags:
        args.config = DEFAULT_CONFIG
    if args.command in ("run", "validate", "runs", "status"):
        from rtstream.cli.run_pipelines import pipelines_command, wants_pipelines

        if wants_pipelines(args):  # [pipelines.NAME] or pipelines = "FOLDER": several in one daemon
            return pipelines_command(args)
    if args.command == "validate":
        from rtstream.cli.validate_dags import dags_only, validate_dags_command

        if dags_only(args):
            return validate_dags_command(args)
    if args.command == "run":
        from rtstream.cli.run_dags import run_dags_command, wants_dags

        if wants_dags(args):
            return run_dags_command(args)
    from rtstream.config.load import load_settings

    try:
        # runs and status only read the state: a read-only state_dir is fine for them
        settings = load_settings(Path(args.config), args.overrides,
                                 check_paths=args.command not in ("runs", "status"),
                                 check_inputs=args.command == "validate")
    except ConfigError as exc:
        if len(exc.problems) == 1 and not exc.problems[0][0]:  # the file itself: its reason names it
            return refused(f"rtstream: config refused: {exc.problems[0][1]}", ConfigError([]))
        return refused(f"rtstream: config {args.config} refused:", exc)
    from rtstream.support.secrets import remember

    remember(settings)  # from here on every surface masks this config's secrets
    from rtstream.run.workers import split_problem

    if (why := split_problem(settings)) is not None:  # type: ignore[arg-type]
        return refused(f"rtstream: config {args.config} refused:", ConfigError.at("daemon.workers", why))
    if args.command == "validate":
        from rtstream.cli.validate_dags import refuse_dags
        from rtstream.run.pipeline_text import describe

        if settings.root.dags is not None and (code := refuse_dags(Path(args.config), settings.root.dags.path)):
            return code
        print(describe(settings))  # redacted by describe itself
        return 0
    if args.command == "runs":
        return runs_command(settings, args.limit)
    if args.command == "status":
        return status_command(settings)
    from rtstream.run.daemon import run_daemon

    return run_daemon(settings)
