"""`rtstream dags trigger DAG_ID [--conf JSON] [--logical-date ISO] [--run-id ID] [--admin URL]`: a
triggered run of a DAG of a running daemon, through its admin API (`POST /api/dags/<id>/dagRuns`),
as `airflow dags trigger` does through Airflow's. The token comes from RTSTREAM_ADMIN_TOKEN (never a
flag: it would show in the process list and the shell's history).

Exit 0 with the run's id and state; 1 when the daemon refuses (its one line: unknown DAG, a run id or
logical date taken); 2 for a bad argument or a daemon that cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

import orjson

from rtstream.model.errors import EXIT_CONFIG

DEFAULT_ADMIN = "http://127.0.0.1:8080"
TIMEOUT_S = 30.0


def add_parser(dsub: Any) -> None:
    from rtstream.cli.subcommand import command

    cmd = command(dsub, "trigger", "start a run of a DAG of a running daemon (like airflow dags trigger)",
                  "Asks the daemon's admin server (`rtstream run --dags`) for a triggered run: run_type manual,\n"
                  "run_id manual__<logical date>, dag_run.conf from --conf (merged into params). The admin\n"
                  "token is read from RTSTREAM_ADMIN_TOKEN.",
                  "  RTSTREAM_ADMIN_TOKEN=... rtstream dags trigger reports --conf '{\"day\": \"2026-11-01\"}'")
    cmd.add_argument("dag_id", help="the DAG to run")
    cmd.add_argument("--conf", metavar="JSON", help="dag_run.conf, a JSON object (default: {})")
    cmd.add_argument("--logical-date", "-e", dest="logical_date", metavar="ISO",
                     help="the run's logical date, ISO-8601 (no offset: UTC; default: now)")
    cmd.add_argument("--run-id", "-r", dest="run_id", metavar="ID", help="the run's id (default: manual__<logical date>)")
    cmd.add_argument("--admin", metavar="URL", default=DEFAULT_ADMIN,
                     help=f"the daemon's admin server (default: {DEFAULT_ADMIN})")


def _body(args: argparse.Namespace) -> dict[str, Any] | str:
    """The request's body, or the one line saying which argument is wrong."""
    body: dict[str, Any] = {}
    if args.conf is not None:
        try:
            conf = orjson.loads(args.conf)
        except orjson.JSONDecodeError as exc:
            return f"--conf: not JSON ({exc})"
        if not isinstance(conf, dict):
            return "--conf: must be a JSON object, e.g. '{\"key\": \"value\"}'"
        body["conf"] = conf
    if args.logical_date is not None:
        try:
            at = datetime.fromisoformat(args.logical_date)
        except ValueError:
            return f"--logical-date: {args.logical_date!r} is not ISO-8601 (e.g. 2026-11-01T00:00:00+00:00)"
        body["logical_date"] = at.isoformat() if at.tzinfo else at.isoformat() + "+00:00"
    if args.run_id is not None:
        body["dag_run_id"] = args.run_id
    return body


def trigger_command(args: argparse.Namespace) -> int:
    body = _body(args)
    if isinstance(body, str):
        print(f"rtstream: {body}", file=sys.stderr)
        return EXIT_CONFIG
    base = args.admin.rstrip("/")
    if "://" not in base:
        base = "http://" + base
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        print(f"rtstream: --admin: {args.admin!r} is not an http(s) URL", file=sys.stderr)
        return EXIT_CONFIG
    url = f"{base}/api/dags/{urllib.parse.quote(args.dag_id, safe='')}/dagRuns"
    headers = {"Content-Type": "application/json"}
    token = os.environ.get("RTSTREAM_ADMIN_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=orjson.dumps(body), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            run = orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        print(f"rtstream: dags trigger {args.dag_id}: {err.code}: {_error_of(err)}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"rtstream: --admin: cannot reach the daemon's admin server at {base}: {reason}", file=sys.stderr)
        return EXIT_CONFIG
    except orjson.JSONDecodeError:
        print(f"rtstream: --admin: {base} did not answer as rtstream's admin server", file=sys.stderr)
        return EXIT_CONFIG
    print(f"triggered {run.get('dag_id')} run {run.get('dag_run_id')} (logical date {run.get('logical_date')}, "
          f"{run.get('state')})")
    return 0


def _error_of(err: urllib.error.HTTPError) -> str:
    hint = " (set RTSTREAM_ADMIN_TOKEN to the daemon's admin.token)" if err.code == 401 else ""
    try:
        doc = orjson.loads(err.read())
        return str(doc.get("error", doc)) + hint if isinstance(doc, dict) else str(doc) + hint
    except (orjson.JSONDecodeError, OSError):
        return str(err.reason) + hint
