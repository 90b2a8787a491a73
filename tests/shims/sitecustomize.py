"""Loaded by a daemon started with this directory on PYTHONPATH: see tansu_txn."""

import tansu_txn

tansu_txn.install()
