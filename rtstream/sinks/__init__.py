"""Sinks; importing this package registers the built-in ones."""

from rtstream.sinks import file, http, kafka, postgres, python, s3, sqlite, stdout  # noqa: F401
