"""An asset URI as Airflow 3 accepts it (`airflow.sdk.definitions.asset._sanitize_uri` and
`_validate_identifier`): a sink's `asset` names the same assets the DAG files do."""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_LENGTH = 1500  # Airflow's column width for an asset's name and URI


def check_asset_uri(value: str) -> str:
    """The URI, stripped; ValueError with Airflow's reason when Airflow would refuse it."""
    uri = value.strip()
    if not uri:
        raise ValueError("an asset URI cannot be empty")
    if len(uri) > MAX_LENGTH:
        raise ValueError(f"an asset URI cannot exceed {MAX_LENGTH} characters")
    if not uri.isascii():
        raise ValueError("an asset URI must only consist of ASCII characters (as Airflow requires)")
    if any(ord(c) < 32 or c == "\x7f" for c in uri):
        raise ValueError("an asset URI cannot hold control characters")
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "airflow":
        raise ValueError("the asset scheme 'airflow' is reserved (by Airflow)")
    return uri
