"""Writers for the `sql` source's fault scenarios: rows inserted by concurrent PostgreSQL
transactions that share cursor values and commit in another order than they took their ids.

A fault harness can run `concurrent_inserts` while a daemon polls the table, and compare what the
sinks got with the ids it returns (every one exactly once).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg


async def concurrent_inserts(dsn: str, table: str, transactions: int, rows_each: int, seed: int,
                             ts: str | None = None, columns: str = "(ts, v)",
                             pause: float = 0.0) -> list[int]:
    """Open `transactions` transactions at once; each inserts `rows_each` rows into `table` (an
    identity `id`, a `ts timestamptz`, an int `v`), all with the same `ts` (`now()` when None, the
    transaction start, as a bulk insert gets it), interleaved so their ids mix; then commit them in a
    random order (`pause` seconds apart) and return every id committed."""
    rnd = random.Random(seed)
    conns = [await asyncpg.connect(dsn) for _ in range(transactions)]
    txs: list[Any] = []
    try:
        for c in conns:
            tx = c.transaction()
            await tx.start()
            txs.append(tx)
        value = f"'{ts}'::timestamptz" if ts is not None else "now()"
        ids: list[int] = []
        for i in range(rows_each):
            for c in rnd.sample(conns, len(conns)):  # each round in another order: ids interleave
                ids.append(await c.fetchval(f"insert into {table} {columns} values ({value}, {i}) returning id"))
        order = list(range(transactions))
        rnd.shuffle(order)
        for k in order:
            await txs[k].commit()
            if pause:
                await asyncio.sleep(pause)
        return ids
    finally:
        for c in conns:
            await c.close()
