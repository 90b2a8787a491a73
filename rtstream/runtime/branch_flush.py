"""The flushers of a flow of several branches, seen as one: each closed window goes to its branch's
window stages and sinks (rtstream.runtime.flush), and the counts the status reads add up."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from typing import Any

from rtstream.engine.emission import Emission
from rtstream.model.policy import Policy
from rtstream.runtime.flush import WindowFlusher


class _Flushers:
    """Several flushers' figures seen as one flusher's (what the status and /metrics read)."""

    flushers: list[Any]

    def _sum(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.flushers)  # type: ignore[no-any-return]

    def _added(self, name: str) -> dict[str, int]:
        """Counts by component, added up: a sink several branches feed is counted by each flusher."""
        out: dict[str, int] = {}
        for f in self.flushers:
            for k, v in getattr(f, name).items():
                out[k] = out.get(k, 0) + v
        return out

    @property
    def windows_flushed(self) -> int:
        return self._sum("windows_flushed")

    @property
    def rows_out(self) -> int:
        return self._sum("rows_out")

    @property
    def rows_running(self) -> int:
        return self._sum("rows_running")

    @property
    def failing(self) -> dict[str, str]:
        return {k: v for f in self.flushers for k, v in f.failing.items()}

    @property
    def rows_by_sink(self) -> dict[str, int]:
        return self._added("rows_by_sink")

    @property
    def retries_by(self) -> dict[str, int]:
        return self._added("retries_by")

    @property
    def failures(self) -> dict[str, int]:
        return self._added("failures")

    @property
    def latencies(self) -> collections.deque[float]:
        return collections.deque((x for f in self.flushers for x in f.latencies), maxlen=10_000)


class BranchFlushers(_Flushers):
    """Duck-types `WindowFlusher` for the loops, the supervisor and the status view."""

    def __init__(self, flushers: list[WindowFlusher | FanOutFlusher], policies: dict[str, Policy]):
        self.flushers = flushers
        self.policies = policies  # one dict for every branch: a reload's new policies reach them all

    async def flush(self, em: Emission) -> None:
        await self.flushers[em.branch].flush(em)


class FanOutFlusher(_Flushers):
    """A window fan-out (`a >> per_min >> [top, bottom]`): each closed window of the aggregate goes
    through every branch after it, in turn, each on its own copy of the rows (a window stage may
    change them), and releases its holds once all of them wrote it."""

    def __init__(self, flushers: list[WindowFlusher], done: Callable[[Emission], None]):
        self.flushers = flushers
        self.done = done
        self.held: list[Emission] | None = None  # while a group's run history waits (rtstream.runtime.flush_group)

    async def flush(self, em: Emission) -> None:
        for f in self.flushers:
            await f.flush(dataclasses.replace(em, rows=[dict(r) for r in em.rows]))
        if self.held is not None:
            self.held.append(em)
        else:
            self.done(em)

    @property
    def windows_flushed(self) -> int:
        return self.flushers[0].windows_flushed  # one window, whatever the branches after it

    @property
    def latencies(self) -> collections.deque[float]:
        return self.flushers[-1].latencies  # the last branch's write ends the window


class RunsOnly:
    """The run history as a window fan-out's later branches write it: their stages' and sinks' runs,
    but not one more window flushed (the first branch counts the window once)."""

    def __init__(self, history: Any):
        self.history = history

    def note_flushed(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.history, name)
