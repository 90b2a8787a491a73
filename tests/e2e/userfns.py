"""Functions that test configs name as python and map stages."""

from __future__ import annotations


def top_spenders(window):
    rows = sorted(window.records, key=lambda r: (-r["spent"], r["user_id"]))[:3]
    return [{"user_id": r["user_id"], "spent": r["spent"], "rank": i + 1} for i, r in enumerate(rows)]


def only_purchases(record):
    return record if record.get("kind") == "purchase" else None


def explode_on_boom(record):
    if record.get("page") == "/boom":
        raise RuntimeError("boom page")
    return record


async def count_records(records):
    return [{"records": len(records)}]


def purchases_tallied(record):
    """only_purchases, and a line per call in $RTSTREAM_TALLY: a stage before a fan-out runs once per record."""
    import os

    path = os.environ.get("RTSTREAM_TALLY")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{record.get('user_id')}\n")
    return only_purchases(record)
