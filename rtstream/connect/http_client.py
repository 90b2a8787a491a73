"""What the HTTP source and sink share: auth settings, the statuses worth another try, and Retry-After.

The poll source retries a request itself (a poll has no policy around it); the sink never does: it
raises, and its failure policy retries (see rtstream.runtime.flush).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from pydantic import BaseModel, Field, SecretStr

from rtstream.model.durations import Duration

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HttpAuth(BaseModel):
    bearer_token: SecretStr | None = Field(default=None, description="sent as Authorization: Bearer")
    username: str | None = Field(default=None, description="HTTP basic auth")
    password: SecretStr | None = Field(default=None, description="HTTP basic auth")
    headers: dict[str, str] = Field(default={}, description="extra request headers")
    request_timeout: Duration = Field(default=10.0, description="per request")

    def request_headers(self) -> dict[str, str]:
        h = dict(self.headers)
        if self.bearer_token is not None:
            h["Authorization"] = f"Bearer {self.bearer_token.get_secret_value()}"
        return h

    def basic_auth(self) -> aiohttp.BasicAuth | None:
        if self.username is None:
            return None
        return aiohttp.BasicAuth(self.username, self.password.get_secret_value() if self.password else "")

    def session(self) -> aiohttp.ClientSession:
        """One connection pool for the component's whole life."""
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout), auth=self.basic_auth(),
                                     headers=self.request_headers())


def retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
