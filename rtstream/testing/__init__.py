"""Real peers for tests, demos and benchmarks (not used by the daemon itself)."""
