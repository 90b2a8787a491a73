"""The `rtstream` command line: one module per command, `main` dispatching to them."""

from rtstream.cli.main import main

__all__ = ["main"]
