"""Sources; importing this package registers the built-in ones."""

from rtstream.sources import file, generator, kafka  # noqa: F401
