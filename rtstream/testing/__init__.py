"""Real peers for tests, demos and benchmarks (not used by the daemon itself), and `run` for your own tests:
`rtstream.testing.run(config_or_pipeline, records)` runs a pipeline once and returns each window's rows
(see rtstream.testing.runner)."""

from __future__ import annotations

from typing import Any


def run(config_or_pipeline: Any, records: Any = None, **kwargs: Any) -> Any:
    """rtstream.testing.runner.run: imported on first use, so the peers stay cheap to import."""
    from rtstream.testing.runner import run as run_once

    return run_once(config_or_pipeline, records, **kwargs)
