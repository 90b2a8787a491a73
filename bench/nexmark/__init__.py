"""Nexmark in rtstream and Flink SQL (issue #27): bench/nexmark/README.md."""
