"""Sources; importing this package registers the built-in ones."""

from rtstream.sources import file, generator, http_ingest, http_poll, kafka, python_poll, sql  # noqa: F401
