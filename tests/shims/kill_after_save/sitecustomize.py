"""Test-only, loaded by a daemon started with this directory on PYTHONPATH: SIGKILL the process the
moment the first commit that carries a mark (a window written) is on disk for one source, before
anything after it runs, so a commit round of several sources is cut between two of them.

RTSTREAM_KILL_AFTER_SAVE names the sources (comma-separated) whose commit may trigger the kill: a
followed file, a generator (their position files, rtstream.sources.file_positions) or a spooled
source (http_ingest, sql: rtstream.sources.spool). Unset or empty: any source's."""

import os
import signal
from pathlib import Path
from typing import Any

from rtstream.sources.file_positions import PositionFile
from rtstream.sources.spool.spool_file import Spool

_names = {n for n in os.environ.get("RTSTREAM_KILL_AFTER_SAVE", "").split(",") if n}
_save = PositionFile.save
_commit = Spool.commit


def _chosen(name: str) -> bool:
    return not _names or name in _names


def save(self: PositionFile, doc: dict[str, Any]) -> None:
    _save(self, doc)
    if doc.get("mark") and _chosen(Path(self.path).stem):
        os.kill(os.getpid(), signal.SIGKILL)


def commit(self: Spool, position: int, mark: Any = None) -> None:
    _commit(self, position, mark)
    if mark and _chosen(Path(self.dir).name):
        os.kill(os.getpid(), signal.SIGKILL)


PositionFile.save = save  # type: ignore[method-assign]
Spool.commit = commit  # type: ignore[method-assign]
