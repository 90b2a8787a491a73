"""`rtstream import-dag`: an Airflow DAG file turned into an rtstream config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtstream.cli.exits import EXIT_CONFIG


def import_dag_command(args: argparse.Namespace) -> int:
    from rtstream.airflow.dag_import import import_dag

    try:
        result = import_dag(Path(args.dag), Path(args.output).parent if args.output else None)
    except (OSError, SyntaxError) as exc:
        print(f"rtstream: cannot read {args.dag}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if result.run_as_is:  # as a pipeline it would run with another meaning: no config at all
        from rtstream.airflow.dag_advice import advice_text

        print(advice_text(args.dag, result.run_as_is), file=sys.stderr)
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
