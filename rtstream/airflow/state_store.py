"""Airflow 3.3's task and asset state stores (`context["task_state_store"]`, `context["asset_state_store"]`,
task SDK `airflow.sdk.execution_time.context`): small JSON values a task keeps across its tries (a
submitted job's id to reattach to), or per asset across runs (a watermark).

- `task_state_store` is scoped to (dag_id, run_id, task_id, map_index): every try of that task instance
  sees what an earlier try set; `get(key, default=None)`, `set(key, value, *, retention=None)` (a value
  must not be None and must be JSON; `retention` a timedelta, `NEVER_EXPIRE`, or None for the default 30
  days), `delete`, `clear` (no async methods: Airflow 3.3 has none here). Kept after success
  (`[state_store] clear_on_success` is False by default).
- `asset_state_store` is there for a task with asset inlets or outlets: `[asset]` gives the asset's
  accessor (KeyError for an asset not among them); with exactly one asset the accessor's methods work
  on the mapping itself; `aget`/`aset`/`adelete`/`aclear` too.

Both exist only for a DAG file written for Airflow 3 (airflow/airflow3.py): Airflow 2.10 has neither.
Values are kept as JSON text, as Airflow's metastore backend keeps them, so a task reads back what
JSON gives (a tuple comes back a list). Where they are kept is the run's backend: `dags test` keeps
them in memory for the process; the daemon in STATE_DIR/dag_runs.db (dags/state_tables.py).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from rtstream.airflow.airflow3 import is_airflow3
from rtstream.airflow.assets import Asset, AssetRef

NEVER_EXPIRE: timedelta = timedelta.max
DEFAULT_RETENTION = timedelta(days=30)  # [state_store] default_retention_days
MAX_VALUE_BYTES = 65535  # [state_store] max_value_storage_bytes
log = logging.getLogger("rtstream.airflow")

Scope = tuple[Any, ...]  # ("task", dag_id, run_id, task_id, map_index) or ("asset", "name"|"uri", value)


class StateBackend(Protocol):
    def get(self, scope: Scope, key: str) -> str | None: ...
    def set(self, scope: Scope, key: str, value: str, expires_at: datetime | None) -> None: ...
    def delete(self, scope: Scope, key: str) -> None: ...
    def clear(self, scope: Scope) -> None: ...


class MemoryStateBackend:
    """The process's stores (`dags test`): nothing is kept once the command ends."""

    def __init__(self) -> None:
        self._rows: dict[Scope, dict[str, str]] = {}
        self._lock = threading.Lock()  # sync tasks call it from their threads

    def get(self, scope: Scope, key: str) -> str | None:
        with self._lock:
            return self._rows.get(scope, {}).get(key)

    def set(self, scope: Scope, key: str, value: str, expires_at: datetime | None) -> None:
        with self._lock:
            self._rows.setdefault(scope, {})[key] = value

    def delete(self, scope: Scope, key: str) -> None:
        with self._lock:
            self._rows.get(scope, {}).pop(key, None)

    def clear(self, scope: Scope) -> None:
        with self._lock:
            self._rows.pop(scope, None)


PROCESS_BACKEND = MemoryStateBackend()


def _json(key: str, value: Any) -> str:
    if value is None:
        raise ValueError("Cannot set value as None")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"state store key {key!r}: the value must be JSON (str, int, float, bool, list, dict): "
                        f"{exc}") from None
    if len(text) > MAX_VALUE_BYTES:  # Airflow warns and writes it anyway: a task is never stopped for it
        log.warning("Task store value for key %r is %d bytes, which exceeds max_value_storage_bytes=%d",
                    key, len(text), MAX_VALUE_BYTES)
    return text


class _Accessor:
    def __init__(self, backend: StateBackend, scope: Scope):
        self._backend, self._scope = backend, scope

    def get(self, key: str, default: Any = None) -> Any:
        stored = self._backend.get(self._scope, key)
        return default if stored is None else json.loads(stored)

    def delete(self, key: str) -> None:
        self._backend.delete(self._scope, key)

    def clear(self) -> None:
        self._backend.clear(self._scope)


class TaskStateStoreAccessor(_Accessor):
    """Sync methods only: Airflow 3.3's TaskStateStoreAccessor has no aget/aset (its own
    example_task_state_store_async fails on `aget`, and so it does here)."""

    def __repr__(self) -> str:
        return f"<TaskStateStoreAccessor {'/'.join(str(p) for p in self._scope[1:])}>"

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        text = _json(key, value)
        now = datetime.now(UTC)
        if retention is NEVER_EXPIRE:
            expires_at = None
        else:
            expires_at = now + (retention if retention is not None else DEFAULT_RETENTION)
        self._backend.set(self._scope, key, text, expires_at)


class _AsyncForms:
    """aget/aset/adelete/aclear as the asset state store has them: the sync forms, awaitable."""

    if TYPE_CHECKING:  # the class it is mixed into has these
        def get(self, key: str, default: Any = None) -> Any: ...
        def set(self, key: str, value: Any) -> None: ...
        def delete(self, key: str) -> None: ...
        def clear(self) -> None: ...

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.set(key, value)

    async def adelete(self, key: str) -> None:
        self.delete(key)

    async def aclear(self) -> None:
        self.clear()


class AssetStateStoreAccessor(_Accessor, _AsyncForms):
    def __repr__(self) -> str:
        return f"<AssetStateStoreAccessor {self._scope[1]}={self._scope[2]!r}>"

    def set(self, key: str, value: Any) -> None:
        self._backend.set(self._scope, key, _json(key, value), None)  # asset state does not expire


class AssetStateStoreAccessors(_AsyncForms):
    """`context["asset_state_store"]`: an accessor per concrete inlet and outlet of the task."""

    def __init__(self, backend: StateBackend, inlets: list[Any], outlets: list[Any]):
        self._by: dict[tuple[str, str], AssetStateStoreAccessor] = {}
        for asset in [*inlets, *outlets]:  # aliases are for events, not state (skipped, as in Airflow)
            if (where := _where(asset)) is not None and where not in self._by:
                self._by[where] = AssetStateStoreAccessor(backend, ("asset", *where))

    def __getitem__(self, asset: Any) -> AssetStateStoreAccessor:
        where = _where(asset)
        if where is None:
            raise TypeError(f"Expected Asset, AssetNameRef, or AssetUriRef; got {type(asset).__name__}")
        if where not in self._by:
            raise KeyError(f"{asset!r} is not in this task's inlets or outlets")
        return self._by[where]

    def _single(self) -> AssetStateStoreAccessor:
        if len(self._by) != 1:
            raise ValueError(f"Task has {len(self._by)} concrete inlets and outlets — use "
                             "context['asset_state_store'][MY_ASSET] to specify which")
        return next(iter(self._by.values()))

    def get(self, key: str, default: Any = None) -> Any:
        return self._single().get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._single().set(key, value)

    def delete(self, key: str) -> None:
        self._single().delete(key)

    def clear(self) -> None:
        self._single().clear()


def _where(asset: Any) -> tuple[str, str] | None:
    if isinstance(asset, Asset):
        return ("name", asset.name)
    if isinstance(asset, AssetRef):
        return ("name", asset.name) if asset.name is not None else ("uri", str(asset.uri))
    return None


def store_context(dag: Any, task: Any, ti: Any, backend: StateBackend) -> dict[str, Any]:
    """The state store keys of a task's context (Airflow 3 only), as the task runner adds them."""
    if not is_airflow3(dag):
        return {}
    out: dict[str, Any] = {"task_state_store": TaskStateStoreAccessor(
        backend, ("task", ti.dag_id, ti.run_id, ti.task_id, ti.map_index))}
    inlets, outlets = list(getattr(task, "inlets", []) or []), list(getattr(task, "outlets", []) or [])
    if any(_where(a) is not None for a in [*inlets, *outlets]):
        out["asset_state_store"] = AssetStateStoreAccessors(backend, inlets, outlets)
    return out
