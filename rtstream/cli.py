"""Command-line parsing only; the work is done by rtstream.config and rtstream.core."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from rtstream import __version__
from rtstream.errors import ConfigError

DEFAULT_CONFIG = "config/rtstream.toml"
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtstream", description="A stream processor for jobs that outgrew a cron DAG.")
    p.add_argument("--version", action="version", version=f"rtstream {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "run the daemon"), ("validate", "check a config and print the pipeline")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
        cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config value, e.g. --set window.size=10s (repeatable)")
    runs = sub.add_parser("runs", help="print the window-run grid kept under state_dir")
    runs.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    runs.add_argument("--limit", type=int, default=20)
    st = sub.add_parser("status", help="ask a running daemon (its [admin] server) how it is")
    st.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    bf = sub.add_parser("backfill", help="rebuild the windows of a past time range")
    bf.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    bf.add_argument("--from", dest="t_from", required=True, help="start time (ISO-8601 or epoch)")
    bf.add_argument("--to", dest="t_to", required=True, help="end time (ISO-8601 or epoch)")
    bf.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    tst = sub.add_parser("test", help="run the pipeline once, in-process, keeping nothing (like airflow dags test)")
    tst.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    tst.add_argument("--input", help="JSON lines read by every source that does not fetch by itself")
    tst.add_argument("--output", help="write the rows here (default: stdout), one JSON object per line")
    tst.add_argument("--at", help="the logical date (start of the interval a python or polled source "
                                  "fetches for, as in airflow dags test DAG DATE); default: the latest interval")
    tst.add_argument("--sinks", action="store_true", help="write to the configured sinks too")
    tst.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    imp = sub.add_parser("import-dag", help="turn an Airflow DAG file into an rtstream config")
    imp.add_argument("dag", help="the DAG file (read as source, never run)")
    imp.add_argument("-o", "--output", help="write the config here (default: print it)")
    return p


def refused(title: str, exc: ConfigError) -> int:
    """Print a refused config's problems, with whatever they echo of a secret masked."""
    from rtstream.secrets import redact

    print(redact(title), file=sys.stderr)
    for key, reason in exc.problems:
        print(redact(f"  {key}: {reason}" if key else f"  {reason}"), file=sys.stderr)
    return EXIT_CONFIG


def backfill_command(args: argparse.Namespace) -> int:
    from rtstream.backfill import prepare, run_backfill
    from rtstream.logs import setup_logging
    from rtstream.secrets import remember

    try:
        settings, time_range = prepare(args.config, args.overrides, args.t_from, args.t_to)
    except ConfigError as exc:
        return refused("rtstream: backfill refused:", exc)
    root = settings.root
    setup_logging(root.daemon.log_level, root.daemon.log_format, root.pipeline.name, remember(settings))
    return asyncio.run(run_backfill(settings, time_range))


def import_dag_command(args: argparse.Namespace) -> int:
    from rtstream.dag_import import import_dag

    try:
        result = import_dag(Path(args.dag), Path(args.output).parent if args.output else None)
    except (OSError, SyntaxError) as exc:
        print(f"rtstream: cannot read {args.dag}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.output:
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(result.config)
        except OSError as exc:
            print(f"rtstream: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(result.config)
    print(result.report(), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run" and argv is None:  # the process is the daemon: a stop during start-up is clean
        from rtstream import early_signals

        early_signals.hold()
    if args.command == "import-dag":
        return import_dag_command(args)
    if args.command == "backfill":
        return backfill_command(args)
    if args.command == "test":
        from rtstream.test_command import test_command

        return test_command(args)
    if args.command in ("runs", "status"):
        args.overrides = []
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
    from rtstream.secrets import remember

    remember(settings)  # from here on every surface masks this config's secrets
    from rtstream.workers import split_problem

    if (why := split_problem(settings)) is not None:  # type: ignore[arg-type]
        return refused(f"rtstream: config {args.config} refused:", ConfigError.at("daemon.workers", why))
    if args.command == "validate":
        from rtstream.describe import describe

        print(describe(settings))  # redacted by describe itself
        return 0
    if args.command == "runs":
        return runs_command(settings, args.limit)
    if args.command == "status":
        return status_command(settings)
    return run(settings)


def runs_command(settings: object, limit: int) -> int:
    from rtstream.admin.history import RunHistory, grid_text

    root = settings.root  # type: ignore[attr-defined]
    path = Path(root.daemon.state_dir) / "runs.db"
    if not path.exists():
        print(f"no run history yet at {path}", file=sys.stderr)
        return 1
    flow = settings.flow  # type: ignore[attr-defined]
    print(grid_text(RunHistory(path).windows(limit), [*flow.stages, *flow.sinks]))
    return 0


def status_command(settings: object) -> int:
    import urllib.error
    import urllib.request

    import orjson

    root = settings.root  # type: ignore[attr-defined]
    if root.admin is None:
        print("this config has no [admin] section: the daemon serves no status", file=sys.stderr)
        return EXIT_CONFIG
    host, _, port = root.admin.listen.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
    headers = {"Authorization": f"Bearer {root.admin.token.get_secret_value()}"} if root.admin.token else {}
    try:
        req = urllib.request.Request(f"http://{host}:{port}/api/status", headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            st = orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        print(f"the daemon at {host}:{port} answered HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}",
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"no daemon answers at {host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(f"{st['pipeline']}: {'ready' if st['ready'] else 'NOT READY'}, up {st['uptime_s']:.0f}s")
    print(f"  records in {st['records_in']:,}, rows out {st['rows_out']:,}, windows {st['windows_flushed']:,}, "
          f"dead letters {st['dead_letters']:,}, open windows {st['open_windows']}, watermark {st['watermark']}")
    for comp, why in st["problems"].items():
        print(f"  {comp}: {why}")
    return 0 if st["ready"] else 1


def run(settings: object) -> int:
    from rtstream.core.runtime import Runtime
    from rtstream.logs import setup_logging
    from rtstream.secrets import remember

    root = settings.root  # type: ignore[attr-defined]
    setup_logging(root.daemon.log_level, root.daemon.log_format, root.pipeline.name, remember(settings))
    try:
        import uvloop  # optional: pip install 'rtstream[fast]'

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    from rtstream.describe import first_window_note
    from rtstream.gc_tuning import tune_for_streaming

    logging.getLogger("rtstream").info(first_window_note(settings))  # type: ignore[arg-type]
    tune_for_streaming()
    if root.daemon.workers > 1:
        from rtstream.workers import WorkerSupervisor

        return runner(WorkerSupervisor(settings).run())  # type: ignore[arg-type, no-any-return]
    try:
        runtime = Runtime(settings)  # type: ignore[arg-type]
    except OSError as exc:  # the state_dir checked at load went away or filled up since
        print(f"rtstream: cannot start: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    return runner(runtime.run())  # type: ignore[no-any-return]
