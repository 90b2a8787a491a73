"""One query config (bench/nexmark/qN.toml) run three ways: its nexmark source straight in (the
generator), a JSON-lines file of the same events, or a Kafka topic of them; and its sink as written,
a Kafka topic, or nothing (a python sink that drops the rows, Nexmark's "null" output).

The swapped-in sources keep the query's kinds with `where` on `kind`, since only the nexmark
source can skip making the others.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUERIES = ("q0", "q1", "q2", "q3_keyed", "q4", "q5", "q7", "q8", "q8_join", "q11", "q12")


def load(query: str) -> dict[str, Any]:
    return tomllib.loads((HERE / f"{query}.toml").read_text())


def _where(src: dict[str, Any]) -> str | None:
    only = src.get("only")
    if not only:
        return None
    return "kind in [" + ", ".join(f"'{k}'" for k in only) + "]"


def derive(query: str, workdir: Path, *, events: int | None = None, rate: float | None = None,
           source: str = "nexmark", sink: str = "file", file: Path | None = None, bootstrap: str | None = None,
           in_topic: str | None = None, out_topic: str | None = None) -> dict[str, Any]:
    """The query's config with absolute paths under workdir and the chosen source and sink."""
    doc = load(query)
    doc["pipeline"]["python_path"] = [str(HERE)]
    for name, src in list(doc["sources"].items()):  # a join's query has two (each a kind of the events)
        if events is not None:
            src["events"] = events
        if rate is not None:
            src["rate"] = rate
        where = _where(src)
        if src.get("where") is not None:
            where = f"({where}) and ({src['where']})" if where else src["where"]
        if source == "file":
            doc["sources"][name] = {"type": "file", "path": str(file), "batch_size": 5000}
        elif source == "kafka":
            doc["sources"][name] = {"type": "kafka", "bootstrap_servers": bootstrap, "topics": [in_topic],
                                    "group_id": f"nexmark-{query}-{name}-{workdir.name}", "start": "earliest",
                                    "stop_at_end": True, "assignment": "static"}
        if source != "nexmark" and where is not None:
            doc["sources"][name]["where"] = where
    if source in ("file", "kafka"):
        _one_input(doc)
    if source == "file" and doc["window"].get("time") == "source":
        # a file has no clock of its own: q2 reads the window's time from dateTime, which its map keeps
        doc["window"].pop("time")
        doc["window"]["time_field"] = "dateTime"
        if "select" in doc["stages"]:  # q12 counts whole bids: dateTime is there
            doc["stages"]["select"]["call"] = "nexmark_udf:q2_with_time"
    if sink == "kafka":
        doc["sinks"]["out"] = {"type": "kafka", "bootstrap_servers": bootstrap, "topic": out_topic}
    elif sink == "null":
        doc["sinks"]["out"] = {"type": "python", "call": "nexmark_udf:discard",
                               "op_kwargs": {"count_file": str(workdir / "count")}}
    else:
        doc["sinks"]["out"]["path"] = str(workdir / "out")
    doc["daemon"] = {"state_dir": str(workdir / "state"), "log_format": "json"}
    doc["dead_letter"] = {"path": str(workdir / "dead.jsonl")}
    return doc


def _one_input(doc: dict[str, Any]) -> None:
    """A join of two kinds of the same events read once, as Flink scans its one table for both views:
    one source of both kinds, the join's sides told apart by `left_where` / `right_where` (two sources
    of one file each read and decoded every line of it to keep a twelfth of them)."""
    for stage in doc.get("stages", {}).values():
        sides = (stage.get("left"), stage.get("right"))
        if stage.get("type") != "join" or not all(s in doc["sources"] for s in sides):
            continue
        wheres = [doc["sources"][s]["where"] for s in sides]
        events = doc["sources"].pop(sides[0])  # both read the same events: one source keeps both kinds
        del doc["sources"][sides[1]]
        events["where"] = f"({wheres[0]}) or ({wheres[1]})"
        doc["sources"]["events"] = events
        stage.update(left="events", right="events", left_where=wheres[0], right_where=wheres[1])
        doc["pipeline"]["flow"] = doc["pipeline"]["flow"].replace(f"[{sides[0]}, {sides[1]}]", "events")
