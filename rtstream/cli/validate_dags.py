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


def dags_only(args: argparse.Namespace) -> bool:
    """A config with `[dags]` and no pipeline (the pipeline's configs go the usual way, then refuse_dags)."""
    from rtstream.config.dags import PIPELINE_KEYS
    from rtstream.config.files import read_file

    try:
        doc = read_file(Path(args.config))
    except ConfigError:
        return False  # the usual load says what is wrong with the file
    return "dags" in doc and not any(key in doc for key in PIPELINE_KEYS)


def refuse_dags(config: Path, path: str | Path, problems: tuple[list[str], list[str]] | None = None) -> int:
    """EXIT_CONFIG with a line per problem of the DAGs under `path`, or 0."""
    _, lines = problems or dags_problems(Path(path))
    if not lines:
        return 0
    from rtstream.support.secrets import redact

    for line in lines:
        print(redact(f"rtstream: config {config} refused: dags.path: {line}"), file=sys.stderr)
    return EXIT_CONFIG


def validate_dags_command(args: argparse.Namespace) -> int:
    from rtstream.config.dags import load_dags_settings

    config = Path(args.config)
    try:
        dags, _ = load_dags_settings(config, args.overrides, None)
    except ConfigError as exc:
        return refused(f"rtstream: config {config} refused:", exc)
    ok, lines = found = dags_problems(dags.path)
    if code := refuse_dags(config, dags.path, found):
        return code
    print(f"DAGs of {dags.path}: {', '.join(sorted(ok)) or 'none'}")
    return 0
