"""A small JSON file per source under state_dir that holds its committed position."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import orjson

from rtstream.model.errors import StateDirError

__all__ = ["PositionFile", "StateDirError"]


class PositionFile:
    def __init__(self, state_dir: Path, source: str):
        self.path = state_dir / "positions" / f"{source}.json"

    def load(self) -> dict[str, Any]:
        try:
            return orjson.loads(self.path.read_bytes())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}

    def save(self, doc: dict[str, Any]) -> None:
        """Atomically: a crash leaves the old position or the new one, never half of one."""
        tmp = self.path.with_suffix(f".{uuid.uuid4().hex[:12]}.tmp")  # concurrent saves must not share one
        blob = orjson.dumps(doc)  # before any file exists: a value it cannot encode leaves nothing behind
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StateDirError(f"cannot save the position in {self.path}: {exc.strerror}") from exc
