"""A server that cannot listen on its address, said as one sentence a user can act on.

asyncio's own text ("error while attempting to bind on address ('127.0.0.1', 8080): address already
in use") is what a start-up failure printed before; the HTTP servers (the admin server, an
http_ingest source) raise this instead, and the supervisor logs it as it is, after the component's name.
"""

from __future__ import annotations

import errno


class ListenError(OSError):
    """A server's address cannot be listened on, said as one sentence: "cannot listen on HOST:PORT: ..."."""

    def __init__(self, listen: str, cause: OSError):
        why = {errno.EADDRINUSE: "the address is already in use (another process listens there)",
               errno.EADDRNOTAVAIL: "no interface of this machine has that address",
               errno.EACCES: "permission denied (ports below 1024 need privileges)"}.get(
                   cause.errno or 0, cause.strerror or str(cause))
        super().__init__(cause.errno, f"cannot listen on {listen}: {why}")

    def __str__(self) -> str:
        return str(self.strerror)
