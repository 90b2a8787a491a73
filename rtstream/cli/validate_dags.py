"""`rtstream validate -c CONFIG` of a config with `[dags]`: the config as `rtstream run` reads it, and
every DAG of `dags.path` loaded as the daemon would load it. A DAG file that does not load, or a DAG
with a task rtstream cannot run (an operator neither native nor runnable through the installed
Airflow, with the pip command that fixes it), refuses the config: one line each, exit 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtstream.cli.exits import refused
from rtstream.model.errors import EXIT_CONFIG, ConfigError


def dags_problems(path: Path) -> tuple[list[str], list[str]]:
    """(the DAG ids that can run, one line per problem) of the DAGs under `path`."""
    from rtstream.airflow.dagbag import load
    from rtstream.airflow.states import DagRefused

    try:
        bag = load(path)
    except DagRefused as exc:
        return [], [str(exc)]
    lines = [f"cannot load {line}" for line in bag.import_errors.values()]
    ok = []
    for dag in bag.dags.values():
        why = bag.refused_tasks(dag)
        lines += [f"DAG {dag.dag_id} refused: {w}" for w in why]
        if not why:
            ok.append(dag.dag_id)
    return ok, lines


def validate_dags_command(args: argparse.Namespace) -> int:
    from rtstream.config.dags import load_dags_settings

    config = Path(args.config)
    try:
        dags, settings = load_dags_settings(config, args.overrides, None)
    except ConfigError as exc:
        return refused(f"rtstream: config {config} refused:", exc)
    ok, lines = dags_problems(dags.path)
    if lines:
        from rtstream.support.secrets import redact

        for line in lines:
            print(redact(f"rtstream: config {config} refused: dags.path: {line}"), file=sys.stderr)
        return EXIT_CONFIG
    if settings is not None:
        from rtstream.run.pipeline_text import describe

        print(describe(settings))
    print(f"DAGs of {dags.path}: {', '.join(sorted(ok)) or 'none'}")
    return 0
