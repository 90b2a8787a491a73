"""Operating rtstream: the admin HTTP server, metrics, the window-run history and the status page."""
