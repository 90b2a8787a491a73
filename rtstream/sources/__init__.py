"""Sources; each built-in registers itself when a config first names its type (rtstream.model.registry)."""
