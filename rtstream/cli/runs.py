"""`rtstream runs` and `rtstream status`: the run history as Airflow's grid, and a running daemon's status."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rtstream.cli.exits import EXIT_CONFIG


def grid_text(windows: list[dict[str, Any]], components: list[str]) -> str:
    """The grid for a terminal: one line per window, one column per component."""
    mark = {"success": "ok", "running": "..", "retrying": "RETRY", "failed": "FAILED", "dead_lettered": "DEAD"}
    width = max([len(c) for c in components] + [6])
    head = f"{'window':<22}" + "".join(f"{c:>{width + 2}}" for c in components)
    lines = [head]
    for w in windows:
        cells = []
        for c in components:
            run = w["components"].get(c)
            cells.append(f"{mark.get(run['state'], run['state']) if run else '-':>{width + 2}}")
        lines.append(f"{w['window_start']:<22}" + "".join(cells))
    return "\n".join(lines)


def runs_command(settings: object, limit: int) -> int:
    from rtstream.runtime.run_history import RunHistory

    root = settings.root  # type: ignore[attr-defined]
    path = Path(root.daemon.state_dir) / "runs.db"
    if not path.exists():
        print(f"no run history yet at {path}", file=sys.stderr)
        return 1
    flow = settings.flow  # type: ignore[attr-defined]
    print(grid_text(RunHistory(path).windows(limit), [*flow.stages, *flow.sinks]))
    return 0


def status_command(settings: object) -> int:
    import urllib.error
    import urllib.request

    import orjson

    root = settings.root  # type: ignore[attr-defined]
    if root.admin is None:
        print("this config has no [admin] section: the daemon serves no status", file=sys.stderr)
        return EXIT_CONFIG
    host, _, port = root.admin.listen.rpartition(":")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
    headers = {"Authorization": f"Bearer {root.admin.token.get_secret_value()}"} if root.admin.token else {}
    try:
        req = urllib.request.Request(f"http://{host}:{port}/api/status", headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            st = orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        print(f"the daemon at {host}:{port} answered HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}",
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"no daemon answers at {host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(f"{st['pipeline']}: {'ready' if st['ready'] else 'NOT READY'}, up {st['uptime_s']:.0f}s")
    print(f"  records in {st['records_in']:,}, rows out {st['rows_out']:,}, windows {st['windows_flushed']:,}, "
          f"dead letters {st['dead_letters']:,}, open windows {st['open_windows']}, watermark {st['watermark']}")
    for comp, why in st["problems"].items():
        print(f"  {comp}: {why}")
    return 0 if st["ready"] else 1
