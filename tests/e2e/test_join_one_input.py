"""A window join of one input's two kinds of rows (`left = right`, told apart by `left_where` and
`right_where`), as a topic carrying orders and payments is joined: the real daemon writes the same
rows as the join of two sources each reading its kind, and refuses a half-given split (exit 2)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.data import BASE_MS, write_lines
from tests.support import run_cli, window_files, write_config

MIN = 60_000


def events(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(600):
        ts = BASE_MS + i * 500 + rnd.randrange(400)
        kind = rnd.choice(["order", "payment", "payment", "click"])  # clicks are no side
        row = {"kind": kind, "id": rnd.randrange(40), "ts": ts, "n": i}
        if kind == "payment":
            row["paid"] = rnd.randrange(1, 100)
        out.append(row)
    return out


def config(tmp: Path, name: str, how: str, one_input: bool) -> Path:
    data = str(tmp / "events.jsonl")
    match: dict[str, Any] = {"type": "join", "on": "id", "how": how, "right_fields": ["paid", "n"]}
    if one_input:
        sources = {"events": {"type": "file", "path": data, "where": "kind in ['order', 'payment']"}}
        flow = "events >> match >> out"
        match |= {"left": "events", "right": "events", "left_where": "kind = 'order'",
                  "right_where": "kind = 'payment'"}
    else:
        sources = {"orders": {"type": "file", "path": data, "where": "kind = 'order'"},
                   "payments": {"type": "file", "path": data, "where": "kind = 'payment'"}}
        flow = "[orders, payments] >> match >> out"
        match |= {"left": "orders", "right": "payments"}
    doc = {"pipeline": {"name": name, "flow": flow}, "window": {"size": "1m"}, "sources": sources,
           "stages": {"match": match}, "sinks": {"out": {"type": "file", "path": str(tmp / name)}},
           "dead_letter": {"path": str(tmp / f"dead-{name}.jsonl")}, "daemon": {"state_dir": str(tmp / f"st-{name}")}}
    return write_config(tmp / f"{name}.toml", doc)


def written(folder: Path) -> dict[str, list[bytes]]:
    return {w: sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in rows)
            for w, rows in window_files(folder).items()}


@pytest.mark.parametrize("how", ["inner", "left"])
def test_one_input_split_in_two_joins_as_two_sources_do(tmp_path: Path, how: str) -> None:
    write_lines(tmp_path / "events.jsonl", events(3))
    for name, one in (("two", False), ("one", True)):
        res = run_cli("run", "-c", str(config(tmp_path, name, how, one)))
        assert res.returncode == 0, res.stderr[-3000:]
    two, one = written(tmp_path / "two"), written(tmp_path / "one")
    assert sum(map(len, two.values())) > 100 and one == two


def test_a_row_both_sides_hold_for_waits_on_both_and_one_neither_holds_for_passes_through(tmp_path: Path) -> None:
    rows = [{"kind": "order", "id": 1, "ts": BASE_MS + 1000, "paid": 5},   # both: an order that paid
            {"kind": "payment", "id": 1, "ts": BASE_MS + 2000, "paid": 7},
            {"kind": "click", "id": 1, "ts": BASE_MS + 3000}]
    write_lines(tmp_path / "events.jsonl", rows)
    doc = {"pipeline": {"name": "p", "flow": "events >> match >> out"}, "window": {"size": "1m"},
           "sources": {"events": {"type": "file", "path": str(tmp_path / "events.jsonl")}},
           "stages": {"match": {"type": "join", "on": "id", "left": "events", "right": "events",
                                "left_where": "kind = 'order'", "right_where": "paid > 0"}},
           "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}},
           "daemon": {"state_dir": str(tmp_path / "st")}}
    res = run_cli("run", "-c", str(write_config(tmp_path / "p.toml", doc)))
    assert res.returncode == 0, res.stderr[-3000:]
    (got,) = window_files(tmp_path / "out").values()
    pairs = sorted((r.get("left_kind"), r.get("right_kind")) for r in got if "left_kind" in r)
    assert pairs == [("order", "order"), ("order", "payment")]
    through = [{k: v for k, v in r.items() if not k.startswith("window_")} for r in got if r.get("kind") == "click"]
    assert through == [rows[2]]  # no side: through as it came (with its window's bounds, as every row)


@pytest.mark.parametrize(("stage", "said"), [
    ({"left": "events", "right": "events"}, "left and right name the same source 'events'; a window join of two "
     "kinds of one input's rows tells them apart with left_where and right_where"),
    ({"left": "events", "right": "events", "left_where": "kind = 'order'"}, "tells them apart with left_where "
     "and right_where"),
    ({"left": "events", "right": "other", "left_where": "kind = 'order'", "right_where": "kind = 'payment'"},
     "left_where and right_where split one input: left and right must name the same source"),
])
def test_a_split_half_given_is_refused_with_the_reason(tmp_path: Path, stage: dict[str, Any], said: str) -> None:
    doc = {"pipeline": {"name": "p", "flow": "[events, other] >> match >> out"}, "window": {"size": "1m"},
           "sources": {"events": {"type": "file", "path": str(tmp_path / "e.jsonl")},
                       "other": {"type": "file", "path": str(tmp_path / "o.jsonl")}},
           "stages": {"match": {"type": "join", "on": "id", **stage}},
           "sinks": {"out": {"type": "file", "path": str(tmp_path / "out")}}}
    res = run_cli("validate", "-c", str(write_config(tmp_path / "p.toml", doc)))
    assert res.returncode == 2 and said in res.stderr and "Traceback" not in res.stderr, res.stderr
