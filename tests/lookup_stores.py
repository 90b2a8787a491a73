"""Reference stores for the `lookup` stage that a test (or the randomized fault harness) can take
down and bring back on the same address: a PostgreSQL cluster and an aiohttp API.

    with LookupPostgres(rows) as store:        # or LookupApi(rows)
        cfg = {"type": "lookup", **store.lookup_config("store")}
        store.down(); ...; store.up()
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import uuid
from typing import Any

from aiohttp import web

from rtstream.testing.peers.ports import wait_for_port
from rtstream.testing.peers.postgres import PostgresCluster
from tests.http_peers import ThreadedServer


class LookupPostgres(PostgresCluster):
    """A PostgreSQL cluster holding `rows` (key -> {column: text}) in a table of its own; `down()`
    stops the server (connections refused), `up()` starts it again with its data."""

    def __init__(self, rows: dict[str, dict[str, str]]):
        super().__init__()
        self.rows = rows
        self.table = f"ref_{uuid.uuid4().hex[:8]}"
        self.columns = sorted({c for r in rows.values() for c in r})

    def start(self) -> LookupPostgres:
        super().start()

        async def load() -> None:
            import asyncpg

            conn = await asyncpg.connect(self.dsn)
            cols = ", ".join(f"{c} text" for c in self.columns)
            await conn.execute(f"create table {self.table} (k text primary key, {cols})")
            await conn.executemany(f"insert into {self.table} values ({', '.join(f'${i + 1}' for i in range(len(self.columns) + 1))})",
                                   [(k, *(r.get(c) for c in self.columns)) for k, r in self.rows.items()])
            await conn.close()

        asyncio.run(load())
        return self

    def lookup_config(self, key: str) -> dict[str, Any]:
        return {"key": key, "from": "postgres", "dsn": self.dsn,
                "query": f"SELECT {', '.join(self.columns)} FROM {self.table} WHERE k = :key"}

    def down(self) -> None:
        subprocess.run(self._as_owner(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
                       check=True, capture_output=True)

    def up(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(self._as_owner(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                                      str(self.dir / "log"), "-w", "start"), check=True, capture_output=True)
        wait_for_port(self.port)


class LookupApi:
    """`GET /ref/{key}` answers `rows[key]` as JSON, 404 for another key; `down()` closes the port
    (connections refused), `up()` listens on it again. `requests` lists every key asked."""

    def __init__(self, rows: dict[str, dict[str, str]]):
        self.rows = rows
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadedServer(self._app)
        self.port = self._server.port

    def _app(self) -> web.Application:
        async def ref(request: web.Request) -> web.Response:
            key = request.match_info["key"]
            with self._lock:
                self.requests.append(key)
            if key not in self.rows:
                return web.Response(status=404)
            return web.json_response(self.rows[key])

        app = web.Application()
        app.router.add_get("/ref/{key}", ref)
        return app

    def lookup_config(self, key: str) -> dict[str, Any]:
        return {"key": key, "from": "http", "url": f"http://127.0.0.1:{self.port}/ref/{{key}}"}

    def up(self) -> None:
        self._server = ThreadedServer(self._app, port=self.port).start()

    def down(self) -> None:
        self._server.stop()

    def __enter__(self) -> LookupApi:
        self._server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.stop()
