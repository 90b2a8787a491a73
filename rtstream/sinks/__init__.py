"""Sinks; importing this package registers the built-in ones."""

from rtstream.sinks import file, kafka, sqlite, stdout  # noqa: F401
