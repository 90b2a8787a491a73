"""Windowing in separate pieces: time extraction, assignment, watermark, aggregation, state."""
