"""Checking, before anything starts, that the daemon can write where its config says.

A state_dir under a file, on a read-only filesystem or on a full one used to surface as a traceback
from whichever component opened its first file. Checked at load, it is one config problem naming
the key and the path. Nothing is created here: `rtstream validate` stays free of side effects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def unusable_dir(path: Path) -> str | None:
    """Why the directory `path` cannot be used (created if missing, then written), or None."""
    target = path
    while not _exists(target):
        if target.parent == target:
            break
        target = target.parent
    missing = target != path
    if not target.is_dir():
        return f"cannot be created: {target} is a file" if missing else "is a file, not a directory"
    if not os.access(target, os.W_OK | os.X_OK):
        what = "on a read-only filesystem" if _read_only_fs(target) else "not writable by this user"
        return f"cannot be created: {target} is {what}" if missing else f"is {what}"
    try:
        st = os.statvfs(target)
    except OSError:
        return None
    if st.f_bavail == 0 or (st.f_files and st.f_favail == 0):
        return f"cannot be written: the filesystem of {target} is full"
    return None


def _exists(p: Path) -> bool:
    return os.path.lexists(p)  # a dangling symlink exists too: mkdir would fail on it


def _read_only_fs(p: Path) -> bool:
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def state_path_problems(root: Any) -> list[tuple[str, str]]:
    """`daemon.state_dir`, and the directories of `dead_letter.path` and `state.path` when set."""
    problems = []
    checks = [("daemon.state_dir", Path(root.daemon.state_dir))]
    if root.dead_letter.path:
        checks.append(("dead_letter.path", Path(root.dead_letter.path).parent))
    if root.state.path:
        checks.append(("state.path", Path(root.state.path).parent))
    for key, directory in checks:
        why = unusable_dir(directory)
        if why is not None:
            problems.append((key, f"{str(directory)!r} {why}"))
    return problems
