"""`rtstream CMD -h` explains every command (a paragraph and an example to copy) and every option
(issue 28): the real `rtstream` process, each help page read as a user sees it."""

from __future__ import annotations

import re

import pytest

from tests.support import run_cli

COMMANDS = [("run",), ("validate",), ("runs",), ("status",), ("backfill",), ("test",), ("import-dag",),
            ("dags",), ("dags", "list"), ("dags", "test")]


def options(help_text: str) -> dict[str, str]:
    """Each option of an argparse help page with the text that explains it."""
    body = help_text.split("options:", 1)[1].split("\nexample:", 1)[0]
    found: dict[str, str] = {}
    current = None
    for line in body.splitlines():
        if line.startswith("  -"):  # `  -c FILE, --config FILE  the text`; the text may start on the next line
            names, _, explained = line.strip().partition("  ")
            current = names.split(",")[-1].split()[0]
            found[current] = explained.strip()
        elif current and line.strip():
            found[current] += " " + line.strip()
    return found


@pytest.mark.parametrize("words", COMMANDS, ids=" ".join)
def test_every_command_has_a_description_an_example_and_explained_options(words):
    res = run_cli(*words, "-h")
    assert res.returncode == 0, res.stderr
    text = res.stdout
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith(f"usage: rtstream {' '.join(words)}")
    description = rest.split("\n\n", 1)[0]
    assert len(description.split()) >= 12, f"no description for {words}: {description!r}"
    example = text.split("\nexample:\n", 1)
    assert len(example) == 2, f"no example for {words}"
    assert example[1].strip().startswith("rtstream "), example[1]
    found = options(text)
    assert "-h" not in found and "--help" in found
    for option, explained in found.items():
        assert len(explained.split()) >= 3, f"rtstream {' '.join(words)} {option} is not explained: {explained!r}"


def test_the_common_options_say_what_they_do():
    text = " ".join(run_cli("run", "-h").stdout.split())
    assert "-c FILE, --config FILE the pipeline's config file" in text
    assert "--set KEY=VALUE change one config value for this run" in text and "window.size=10s" in text
    assert set(options(run_cli("run", "-h").stdout)) == {"--help", "--config", "--set", "--dags"}
    assert set(options(run_cli("backfill", "-h").stdout)) == {"--help", "--config", "--set", "--from", "--to"}
    runs = " ".join(run_cli("runs", "-h").stdout.split())
    assert "--limit N show the newest N windows (default: 20)" in runs


def test_the_top_level_help_lists_the_commands_and_where_to_start():
    res = run_cli("-h")
    assert res.returncode == 0
    for name in ("run", "validate", "runs", "status", "backfill", "test", "import-dag", "dags"):
        assert re.search(rf"^    {name}\s+\S", res.stdout, re.M), name
    assert "rtstream validate -c config/rtstream.toml" in res.stdout
