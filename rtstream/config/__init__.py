"""Loading, interpolation, validation and error formatting of config files."""

from rtstream.config.load import Settings, load_settings

__all__ = ["Settings", "load_settings"]
