"""An example test of a pipeline, as in docs/TESTING.md: no broker, no database, nothing kept."""

from pathlib import Path

import rtstream.testing

CONFIG = Path(__file__).parent / "orders.toml"


def test_revenue_per_customer_and_window():
    result = rtstream.testing.run(CONFIG, [
        {"customer_id": "c1", "total": 20.0, "ts": "2026-11-24T12:01:00Z"},
        {"customer_id": "c1", "total": 5.5, "ts": "2026-11-24T12:04:59Z"},
        {"customer_id": "test-bot", "total": 999.0, "ts": "2026-11-24T12:02:00Z"},   # dropped by the map stage
        {"customer_id": "c2", "total": 7.0, "ts": "2026-11-24T12:06:00Z"},
    ])
    assert result.exit_code == 0, result.failures
    assert result.by_window == {
        "2026-11-24T12:00:00Z": [{"window_start": "2026-11-24T12:00:00Z", "window_end": "2026-11-24T12:05:00Z",
                                  "customer_id": "c1", "orders": 2, "revenue": 25.5}],
        "2026-11-24T12:05:00Z": [{"window_start": "2026-11-24T12:05:00Z", "window_end": "2026-11-24T12:10:00Z",
                                  "customer_id": "c2", "orders": 1, "revenue": 7.0}],
    }
