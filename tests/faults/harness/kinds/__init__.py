"""Scenario kinds at the newer edges (issue #24): the sql source, the lookup stage with its store
going down, the s3 sink with rows Parquet finds odd, exactly_once with workers or with two static
readers. Like the original kinds, each is a pure function of its seed: `pick` decides from the seed
whether it is one of these (a share of EDGE_SHARE, from a draw of its own, so the seeds that stay
with the original kinds keep the scenario they always had) and `params` draws the rest."""

from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import Any

EDGE_KINDS = ("sql", "lookup", "s3", "eos")
EDGE_SHARE = 0.25  # of the seeds: the rest keep the Kafka/file/ingest scenarios, unchanged


def pick(seed: int, only: frozenset[str] = frozenset()) -> str | None:
    """The edge kind of `seed`, or None for an original one; `only` (e.g. --kinds sql,eos) makes
    every seed one of those."""
    rnd = random.Random(f"edge-kind:{seed}")
    share, kind = rnd.random(), rnd.choice(EDGE_KINDS)
    if only:
        return kind if kind in only else rnd.choice(sorted(only))
    return kind if share < EDGE_SHARE else None


def module(kind: str) -> Any:
    return importlib.import_module(f"tests.faults.harness.kinds.{kind}")


def params(kind: str, seed: int, fast: bool) -> dict[str, Any]:
    return module(kind).generate(random.Random(f"{kind}:{seed}"), seed, fast)  # type: ignore[no-any-return]


def play(kind: str, seed: int, p: dict[str, Any], workdir: Path) -> Any:
    """Run it; an EdgeRun with failures, faults, skipped and figures."""
    return module(kind).play(seed, p, workdir)
