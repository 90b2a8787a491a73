"""The command line's grammar: every command, option and its help."""

from __future__ import annotations

import argparse

from rtstream import __version__

DEFAULT_CONFIG = "config/rtstream.toml"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rtstream", description="A stream processor for jobs that outgrew a cron DAG.")
    p.add_argument("--version", action="version", version=f"rtstream {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "run the daemon"), ("validate", "check a config and print the pipeline")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
        cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config value, e.g. --set window.size=10s (repeatable)")
        if name == "run":
            cmd.add_argument("--dags", metavar="PATH", help="run every DAG of this file or folder on its schedule "
                             "(sets dags.path; no config file needed)")
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
    from rtstream.cli.dags import add_parser as add_dags

    add_dags(sub)
    return p
