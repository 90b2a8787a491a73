"""The limits of rtstream's HTTP servers as config; the servers that apply them are in rtstream.connect.http_guard.

A model of its own, so loading a config does not import the HTTP stack.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from rtstream.model.durations import Duration


class HttpLimits(BaseModel):
    """The limits of an HTTP server: defaults a slow client cannot outlast and a real one never meets."""

    header_timeout: Duration = Field(default=10.0, gt=0, description="a request's headers must be complete this "
                                     "long after its first byte (or after the connection opened)")
    body_timeout: Duration = Field(default=60.0, gt=0, description="a request's body must be complete this long "
                                   "after its headers (10 MiB in 60s is 175 KB/s)")
    keepalive_timeout: Duration = Field(default=15.0, gt=0, description="an idle keep-alive connection is closed "
                                        "after this long")
    max_connections: int = Field(default=256, ge=1, description="open connections at once; more are answered 503")
