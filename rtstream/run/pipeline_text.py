"""The resolved pipeline as text, for `rtstream validate`."""

from __future__ import annotations

from typing import Any

from rtstream.config.settings import Settings
from rtstream.model.durations import format_duration
from rtstream.runtime.context import Context


def describe(settings: Settings) -> str:
    """The pipeline as `rtstream validate` prints it, every secret of the config masked."""
    from rtstream.support.secrets import Scrubber, secrets_of

    return Scrubber(secrets_of(settings)).redact(_describe(settings))


def _describe(settings: Settings) -> str:
    root = settings.root
    w = root.window
    ctx = Context(pipeline=root.pipeline.name, state_dir=root.daemon.state_dir,  # type: ignore[arg-type]
                  extra={"search_dirs": settings.search_dirs})
    lines = [
        f"pipeline   {root.pipeline.name}",
        f"flow       {settings.flow}",
        *([settings.flow.graph.draw()] if settings.flow.graph else []),
        f"window     {_window_text(w)}",
    ]
    if settings.flow.branched:  # each branch's own window (its windowed aggregate's, or the one above)
        from rtstream.config.stage_window import branch_windows

        for stages, bw in branch_windows(root, settings.flow, settings.components):
            lines.append(f"  {' >> '.join(stages) or '(no stage)'}: {_window_text(bw)}")
    for title, names in (("sources", settings.flow.sources), ("stages", settings.flow.stages),
                         ("sinks", settings.flow.sinks)):
        lines.append(title)
        width = max((len(n) for n in names), default=0)
        for comp in settings.of(names):
            obj = comp.cls(comp.name, comp.config, ctx)
            if callable(getattr(comp.config, "call", None)) and not hasattr(obj, "fn"):
                obj.fn = comp.config.call  # type: ignore[attr-defined]  # a sink loads it at start; describe() reads it
            lines.append(f"  {comp.name:<{width}}  {obj.describe()}")
    dl = root.dead_letter.path or f"{root.daemon.state_dir}/dead_letters.jsonl"
    lines.append(f"dead letters  {dl}")
    lines.append(f"state dir     {root.daemon.state_dir} (commit every {format_duration(root.daemon.commit_interval)}, "
                 f"shutdown grace {format_duration(root.daemon.shutdown_grace)})")
    cp = root.state.checkpoint_interval
    if cp is not None:
        lines.append(f"checkpoints   {root.state.path or f'{root.daemon.state_dir}/checkpoints.db'} "
                     f"every {format_duration(cp)}")
    if root.admin is not None:
        a = root.admin
        auth = "bearer token" if a.token else "NO TOKEN (allow_unauthenticated)" if a.allow_unauthenticated else \
            "no token (loopback only)"
        lines.append(f"admin         http://{a.listen} ({auth}; header timeout {format_duration(a.header_timeout)}, "
                     f"max {a.max_connections} connections)")
    return "\n".join(lines)


def _window_text(w: Any) -> str:
    assert w.size is not None
    time_from = f"event time from field {w.time_field!r}" if w.time == "event" else "the sources' own timestamps"
    return (f"{w.type} "
            + (f"gap {format_duration(w.gap)}" if w.gap is not None else f"of {w.records} records per key"
               if w.records is not None else format_duration(w.size))
            + (f" every {format_duration(w.hop)}" if w.hop else "")
            + (f" (schedule {w.schedule!r})" if w.schedule else "")
            + f", {time_from}, lateness {format_duration(w.lateness)}, idle timeout {format_duration(w.idle_timeout)}"
            + (f", running results every {format_duration(w.update_interval)}" if w.emit == "updates" else ""))


def source_parts(settings: Settings) -> list[Any]:
    """The config's sources as objects, not started (for what they say about themselves)."""
    ctx = Context(pipeline=settings.root.pipeline.name, state_dir=settings.root.daemon.state_dir,  # type: ignore[arg-type]
                  extra={"search_dirs": settings.search_dirs})
    return [c.cls(c.name, c.config, ctx) for c in settings.of(settings.flow.sources)]


def first_window_note(settings: Settings, sources: list[Any], now: float | None = None) -> str | None:
    """When a newcomer will first see a result: the first window's close for records arriving now;
    None when every source is finite and not paced by the clock, so the windows close as it reads."""
    import time

    from rtstream.model.window import iso_utc

    if sources and all(s.finite and not getattr(s.config, "realtime", False) for s in sources):
        return None
    w = settings.root.window
    now = time.time() if now is None else now
    if w.type == "session":
        return (f"sessions close {format_duration(w.gap or 0)} after their key's last record "
                f"(+ lateness {format_duration(w.lateness)})")
    step_ms = w.hop_ms
    now_ms = int(now * 1000)
    end_ms = (now_ms // step_ms) * step_ms + w.size_ms  # the first window holding a record of now
    while end_ms - step_ms > now_ms:
        end_ms -= step_ms
    close_ms = end_ms + round(w.lateness * 1000)
    note = (f"windows of {format_duration(w.size or 0)}: for records arriving now, the first closes at "
            f"{iso_utc(close_ms)} (in {format_duration(max(0, round((close_ms - now_ms) / 1000)))}, its end + lateness)")
    if w.emit == "updates":
        note += f"; running results every {format_duration(w.update_interval)} until then"
    return note
