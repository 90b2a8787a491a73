"""The one way a command says a config is refused, with the exit code that says so."""

from __future__ import annotations

import sys

from rtstream.model.errors import EXIT_CONFIG, ConfigError


def refused(title: str, exc: ConfigError) -> int:
    """Print a refused config's problems, with whatever they echo of a secret masked."""
    from rtstream.support.secrets import redact

    print(redact(title), file=sys.stderr)
    for key, reason in exc.problems:
        print(redact(f"  {key}: {reason}" if key else f"  {reason}"), file=sys.stderr)
    return EXIT_CONFIG
