"""docs/CONFIG.md is the config models written out: a field added without regenerating it fails here."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel, Field, create_model

from rtstream.config import reference
from rtstream.config.models import RootConfig
from rtstream.model.registry import _BUILTINS, lookup
from tests.support import ROOT

DOC = ROOT / "docs" / "CONFIG.md"


def _rows_by_heading(text: str) -> dict[str, set[str]]:
    rows: dict[str, set[str]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif m := re.match(r"^\| `([^`]+)` \|", line):
            rows.setdefault(heading, set()).add(m.group(1))
    return rows


def _expected() -> dict[str, set[str]]:
    """Walked here, not through the generator: every field of every model, where the file must list it."""
    want: dict[str, set[str]] = {}

    def walk(heading: str, prefix: str, model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            want.setdefault(heading, set()).add(prefix + (field.alias or name))
            for inner in (field.annotation, *typing.get_args(field.annotation)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    walk(f"[{prefix}{name}]", f"{prefix}{name}.", inner)

    walk("The top-level tables", "", RootConfig)
    for kind, table in (("source", "sources"), ("stage", "stages"), ("sink", "sinks")):
        for type_name in _BUILTINS[kind]:
            cls = lookup(kind, type_name)
            assert cls is not None
            walk(f'[{table}.NAME] type = "{type_name}"', f"{table}.NAME.", cls.Config)
    return want


def test_the_file_is_what_the_models_generate():
    assert DOC.read_text(encoding="utf-8") == reference.render(), \
        "docs/CONFIG.md is out of date: run `make docs` (python -m rtstream.config.reference docs/CONFIG.md)"


def test_every_field_of_every_model_has_a_line():
    have = _rows_by_heading(DOC.read_text(encoding="utf-8"))
    missing = [(h, k) for h, keys in _expected().items() for k in sorted(keys - have.get(h, set()))]
    assert not missing
    # the top table, ten tables (daemon.worker among them), a section per component type
    assert len(_expected()) == 11 + sum(len(v) for v in _BUILTINS.values())
    # the aliases users write, not the attribute names
    assert "stages.NAME.from" in have['[stages.NAME] type = "lookup"']
    assert "sinks.NAME.schema" in have['[sinks.NAME] type = "postgres"']


def test_a_field_added_without_regenerating_fails_the_check(tmp_path, monkeypatch, capsys):
    path = tmp_path / "CONFIG.md"
    assert reference.main([str(path)]) == 0 and reference.main(["--check", str(path)]) == 0
    cls = lookup("sink", "stdout")
    assert cls is not None
    grown = create_model("Grown", __base__=cls.Config, colour=(str, Field(default="blue", description="a new key")))
    monkeypatch.setattr(cls, "Config", grown)
    assert reference.main(["--check", str(path)]) == 1
    assert "out of date: run `make docs`" in capsys.readouterr().err
    assert reference.main([str(path)]) == 0
    assert '| `sinks.NAME.colour` | string | `"blue"` | a new key |' in path.read_text()


def test_types_and_defaults_read_as_a_config_author_writes_them():
    text = DOC.read_text(encoding="utf-8")
    assert '| `window.lateness` | duration | `"5s"` |' in text
    assert '| `window.size` | duration | none |' in text
    assert '| `pipeline.flow` | string | required |' in text
    assert '| `sinks.NAME.dsn` | secret string | required |' in text
    assert '| `sources.NAME.start` | "committed" &#124; "earliest" &#124; "latest" | `"committed"` |' in text
