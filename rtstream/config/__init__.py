"""Loading, interpolation, validation and error formatting of config files (see load.py)."""
