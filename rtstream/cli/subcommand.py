"""How every subcommand is declared: its summary, description and example, and the shared -c / --set options."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_CONFIG = "config/rtstream.toml"


CONFIG_HELP = (f"the pipeline's config file, TOML or YAML (default: {DEFAULT_CONFIG}); relative paths in it "
               "are relative to its folder")


SET_HELP = ("change one config value for this run without editing the file: a dotted key and a TOML value, "
            'e.g. --set window.size=10s or --set \'sources.clicks.topics=["a","b"]\' (repeatable)')


STRAY = "stray_config"  # a config path given without -c: the command says how to give it


def command(sub: Any, name: str, summary: str, description: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose -h shows `description` and an example to copy."""
    return sub.add_parser(name, help=summary, description=description, epilog=f"example:\n{example}",  # type: ignore[no-any-return]
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def config_option(cmd: argparse.ArgumentParser, overrides: bool = True, default: str | None = DEFAULT_CONFIG) -> None:
    cmd.add_argument("-c", "--config", default=default, metavar="FILE", help=CONFIG_HELP)
    if overrides:
        cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    cmd.add_argument(STRAY, nargs="*", help=argparse.SUPPRESS)
