"""`validate`, `run`, `runs` and `status` of a config with several pipelines (`[pipelines.NAME]` tables or
`pipelines = "FOLDER"`): each pipeline checked as a config of its own, run in one daemon
(rtstream.run.pipelines_daemon), its runs read from its own state folder."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rtstream.cli.exits import refused
from rtstream.model.errors import EXIT_CONFIG, ConfigError


def wants_pipelines(args: argparse.Namespace) -> bool:
    if args.config is None:
        return False
    from rtstream.config.files import read_file

    try:
        return "pipelines" in read_file(Path(args.config))
    except ConfigError:
        return False  # the usual load says what is wrong with the file


def one_pipeline_only(args: argparse.Namespace) -> int | None:
    """`backfill` and `test` run one pipeline: a config of several is refused in one line (exit 2)."""
    if not wants_pipelines(args):
        return None
    print(f"rtstream {args.command}: {args.config} holds several pipelines ([pipelines]); {args.command} runs one: "
          "give it a config of that pipeline alone ([pipeline], [window], [sources.NAME] ...)", file=sys.stderr)
    return EXIT_CONFIG


def pipelines_command(args: argparse.Namespace) -> int:
    from rtstream.config.pipelines import load_pipelines

    overrides = list(getattr(args, "overrides", None) or [])
    if getattr(args, "dags", None):
        overrides.append(f"dags.path={json.dumps(os.path.abspath(args.dags))}")
    try:
        ps = load_pipelines(Path(args.config), overrides, check_paths=args.command not in ("runs", "status"),
                            check_inputs=args.command == "validate")
    except ConfigError as exc:
        if len(exc.problems) == 1 and not exc.problems[0][0]:  # the file itself: its reason names it
            return refused(f"rtstream: config refused: {exc.problems[0][1]}", ConfigError([]))
        return refused(f"rtstream: config {args.config} refused:", exc)
    if args.command == "validate":
        from rtstream.run.pipeline_text import describe

        for name, settings in ps.pipelines.items():
            print(f"== pipeline {name} (state in {settings.root.daemon.state_dir})")
            print(describe(settings))
        if ps.dags is not None:
            print(f"== DAGs of {ps.dags.path}")
        return 0
    if args.command == "runs":
        from rtstream.cli.runs import runs_command

        codes = []
        for name, settings in ps.pipelines.items():
            print(f"== pipeline {name}")
            sys.stdout.flush()
            codes.append(runs_command(settings, args.limit))
        return max(codes)
    if args.command == "status":
        return _status(ps)
    from rtstream.run.pipelines_daemon import run_pipelines_daemon

    return run_pipelines_daemon(ps)


def _status(ps: object) -> int:
    import urllib.error
    import urllib.request

    import orjson

    admin = ps.admin  # type: ignore[attr-defined]
    if admin is None:
        print("this config has no [admin] section: the daemon serves no status", file=sys.stderr)
        return EXIT_CONFIG
    host, _, port = admin.listen.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
    headers = {"Authorization": f"Bearer {admin.token.get_secret_value()}"} if admin.token else {}
    try:
        req = urllib.request.Request(f"http://{host}:{port}/api/status", headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            st = orjson.loads(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        print(f"no daemon answers at {host}:{port}: {exc}", file=sys.stderr)
        return 1
    for p in st.get("pipelines", []):
        print(f"{p['name']}: {p['state']}, windows {p['windows_flushed']:,}, open {p['open_windows']}"
              + (f", last error: {p['last_error']}" if p.get("last_error") else ""))
    for d in st.get("dags", []):
        last = d.get("last_run") or {}
        print(f"DAG {d['dag_id']}: {d['schedule']}, last run {last.get('state', '-')}")
    return 0 if st["ready"] else 1
