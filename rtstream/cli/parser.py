"""The command line's grammar: every command, option and its help, each command with an example.

`rtstream CMD -h` is where a newcomer looks first: each command says what it does, in a paragraph,
and shows a command line to copy (argparse's `description` and `epilog`, kept as written by
RawDescriptionHelpFormatter).
"""

from __future__ import annotations

import argparse
from typing import Any

from rtstream import __version__
from rtstream.cli.subcommand import command, config_option


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtstream", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A stream processor for jobs that outgrew a cron DAG: records from Kafka, files, HTTP or SQL\n"
                    "are cut into time windows, aggregated and written to sinks, continuously.",
        epilog="start here:\n  rtstream validate -c config/rtstream.toml   check a config, print the pipeline\n"
               "  rtstream run -c config/rtstream.toml        run it (status page on its [admin] address)\n"
               "  rtstream dags test dags/                    run Airflow DAG files once, as they are\n"
               "`rtstream COMMAND -h` explains a command and shows an example.")
    p.add_argument("--version", action="version", version=f"rtstream {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run(sub)
    _validate(sub)
    _runs(sub)
    _status(sub)
    _backfill(sub)
    _test(sub)
    _import_dag(sub)
    from rtstream.cli.dags import add_parser as add_dags

    add_dags(sub)
    return p


def _run(sub: Any) -> None:
    cmd = command(sub, "run", "run the pipeline as a daemon until SIGTERM (or until finite sources end)",
                  "Load and check the config, start every component (sinks first), then read, window and write\n"
                  "until SIGTERM or Ctrl-C: in-flight windows are finished within [daemon] shutdown_grace, what\n"
                  "is written is committed, and the exit code is 0. A pipeline whose sources all end (a file\n"
                  "without follow, a generator with a count) stops by itself once its last window is written.\n"
                  "Exit codes: 0 clean stop, 1 a component failed (the log names it), 2 the config is refused.",
                  "  rtstream run -c config/rtstream.toml\n"
                  "  rtstream run -c config/rtstream.toml --set window.size=1m --set daemon.log_format=json\n"
                  "  rtstream run --dags dags/                  every DAG of dags/ on its schedule, no config file")
    config_option(cmd, default=None)  # with --dags and no -c, no config file at all (not the default one)
    cmd.add_argument("--dags", metavar="PATH", help="run every DAG of this file or folder on its schedule, durably "
                     "(sets dags.path; with no -c, no config file is needed)")


def _validate(sub: Any) -> None:
    cmd = command(sub, "validate", "check a config (keys, flow, optional packages) and print the pipeline",
                  "Check everything `run` would refuse at start-up, all at once, each problem as `dotted.key:\n"
                  "reason`: unknown keys, durations without a unit, the flow's names, input files, a writable\n"
                  "state_dir, and the optional packages the components need (asyncpg, pyarrow, aiobotocore,\n"
                  "PyYAML, uvloop). Prints the resolved pipeline (secrets masked) and exits 0, or exits 2.",
                  "  rtstream validate -c config/rtstream.toml\n"
                  "  rtstream validate -c orders.toml --set sinks.db.dsn=postgresql://localhost/app")
    config_option(cmd)


def _runs(sub: Any) -> None:
    cmd = command(sub, "runs", "print the window-run grid kept under state_dir (like Airflow's grid)",
                  "One line per window, newest first, one column per stage and sink: ok, .. (running),\n"
                  "RETRY, FAILED or DEAD (dead-lettered). Reads STATE_DIR/runs.db; the daemon may be running.",
                  "  rtstream runs -c config/rtstream.toml --limit 50")
    config_option(cmd, overrides=False)
    cmd.add_argument("--limit", type=int, default=20, metavar="N", help="show the newest N windows (default: 20)")


def _status(sub: Any) -> None:
    cmd = command(sub, "status", "ask the running daemon (its [admin] server) how it is",
                  "Read /api/status from the admin server the config names ([admin] listen, with its token):\n"
                  "ready or not, counts, the watermark and the components' problems. Exits 0 when ready,\n"
                  "1 when not ready or no daemon answers.",
                  "  rtstream status -c config/rtstream.toml")
    config_option(cmd, overrides=False)


def _backfill(sub: Any) -> None:
    cmd = command(sub, "backfill", "rebuild the windows of a past time range",
                  "Run the pipeline as a finite job over the range, widened to whole windows: Kafka topics are\n"
                  "read from --from without committing the group's offsets, files are read whole, a python\n"
                  "source is called for each interval. The windows are written to the sinks, whose upserts\n"
                  "replace what was there. Runs beside the live daemon (no admin server, its own state).",
                  "  rtstream backfill -c config/orders.toml --from 2026-11-01T00:00:00Z --to now")
    config_option(cmd)
    times = "ISO-8601 (UTC when no offset is given), epoch seconds or milliseconds, or `now`"
    cmd.add_argument("--from", dest="t_from", required=True, metavar="TIME", help=f"start of the range: {times}")
    cmd.add_argument("--to", dest="t_to", required=True, metavar="TIME", help=f"end of the range: {times}")


def _test(sub: Any) -> None:
    cmd = command(sub, "test", "run the pipeline once, in-process, and print its rows (like airflow dags test)",
                  "Run once and keep nothing: no state, no commits, the configured sinks not written unless\n"
                  "--sinks. Sources read --input (JSON lines) when given; python and polled sources fetch one\n"
                  "interval (--at). Rows go to stdout as JSON lines, a summary to stderr; exits 1 if a\n"
                  "component failed.",
                  "  rtstream test -c config/orders.toml --input sample.jsonl\n"
                  "  rtstream test -c dags/etl.toml --at 2026-11-01T06:00:00Z --sinks")
    config_option(cmd)
    cmd.add_argument("--input", metavar="FILE", help="JSON lines read by every source that does not fetch by itself")
    cmd.add_argument("--output", metavar="FILE", help="write the rows here (default: stdout), one JSON object per line")
    cmd.add_argument("--at", metavar="TIME", help="the logical date: the start of the interval a python or polled "
                                                  "source fetches for, as in `airflow dags test DAG DATE` (default: "
                                                  "the latest interval)")
    cmd.add_argument("--sinks", action="store_true", help="write to the configured sinks too")


def _import_dag(sub: Any) -> None:
    cmd = command(sub, "import-dag", "turn an Airflow DAG file into an rtstream config",
                  "Read the DAG file as source (it is never run) and write a config: its schedule becomes the\n"
                  "window, its tasks the flow, its python callables the `call` of each component. A report on\n"
                  "stderr says what was mapped and what is left to fill in.",
                  "  rtstream import-dag dags/etl.py -o config/etl.toml && rtstream validate -c config/etl.toml")
    cmd.add_argument("dag", metavar="DAG_FILE", help="the DAG file (read as source, never run)")
    cmd.add_argument("-o", "--output", metavar="FILE", help="write the config here (default: print it)")
