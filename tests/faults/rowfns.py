"""Window stages for the sink tests: rows that some sinks can never write."""

from __future__ import annotations

import base64
import random


def one_huge_int(records):
    """Every row gets `big`; the row of user u7 an int beyond 64 bits, which no JSON writer takes."""
    for r in records:
        r["big"] = 2**70 if r["user_id"] == "u7" else 1
    return records


def one_oversized_row(records):
    """The row of user u7 carries 2 MiB of text no codec shrinks below 1 MiB: more than a Kafka
    sink's max_request_size (1 MiB), compressed or not."""
    for r in records:
        if r["user_id"] == "u7":
            r["blob"] = base64.b64encode(random.Random(7).randbytes(3 << 19)).decode()
    return records


def one_row_off_schema(records):
    """Every row gets `flag`: an integer, but a string for user u7, which the topic's schema refuses."""
    for r in records:
        r["flag"] = "seven" if r["user_id"] == "u7" else 1
    return records


def every_row_off_schema(records):
    for r in records:
        r["flag"] = "none"
    return records
