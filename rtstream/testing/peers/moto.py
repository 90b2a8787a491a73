"""An S3-compatible server on loopback: moto's server mode (`moto[server]`, in the test extra).

Only for tests and demos: users point the s3 sink at S3 or their own S3-compatible store. Moto keeps
everything in memory, so each server starts empty.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from typing import Any

from rtstream.testing.peers.ports import free_port, terminate, wait_for_port

ACCESS_KEY_ID = "rtstream-test-key"  # moto accepts any credentials
SECRET_ACCESS_KEY = "rtstream-test-secret-0123456789"
REGION = "us-east-1"


class MotoServer:
    """moto_server on a free loopback port: start(), .endpoint, client(), stop()."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)  # a terminal's Ctrl-C is for the demo, which stops it last
        wait_for_port(self.port, timeout=30)
        return self

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None

    def client(self) -> Any:
        """A plain (synchronous) boto3 S3 client of this server, for setting up and checking."""
        import boto3  # moto depends on it

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY_ID,
                            aws_secret_access_key=SECRET_ACCESS_KEY)

    def sink_config(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """An s3 sink's config table for this server."""
        return {"type": "s3", "bucket": bucket, "endpoint_url": self.endpoint, "region": REGION,
                "access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY, **extra}

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
