"""Which listen addresses stay on this machine."""

from __future__ import annotations


def is_loopback(host: str) -> bool:
    """Is HOST (of a HOST:PORT listen address) reachable only from this machine?"""
    import ipaddress

    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve to anything
