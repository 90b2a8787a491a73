"""One object per window in S3 or any S3-compatible store, as Parquet or JSON lines.

```toml
[sinks.lake]
type = "s3"
bucket = "lake"
prefix = "orders/dt={window_start:%Y-%m-%d}/hour={window_start:%H}/"
format = "parquet"                         # parquet (pip install 'rtstream[parquet]') | ndjson
endpoint_url = "http://127.0.0.1:9000"     # optional: MinIO, Ceph, R2, ...
region = "us-east-1"
```

Naming. The object for a window is `<prefix><window start>.parquet` (`2026-01-01T00-05-00Z.parquet`;
`.ndjson`, `.ndjson.gz`); a session window adds its key, a count window its key and first record, as
the file sink does (`<start>.<key>.parquet`, a key that is not plain becomes a readable prefix and a hash). The prefix
is a template: `{window_start:FORMAT}` and `{window_end:FORMAT}` are the bounds in UTC through
strftime (without FORMAT, ISO-8601). The name depends only on the window, so a replay writes the same
object again, whole, and at-least-once delivery leaves one copy.

Windows written in parts. With an output key (an aggregate's `key`), a window's object is upserted by
that key, as the file sink does: the sink reads the object (if any), replaces the rows of the keys it
writes, keeps the others, and writes it back on the condition that nobody changed it meanwhile
(`If-Match` its ETag, or `If-None-Match: *` when there was none). So a window written in two parts
(replicas in one Kafka group, each with its partitions' keys; a partition that moved) keeps both,
and two writers racing on one object make the loser's attempt fail and its retry merge again. A
replay finds its own rows and writes the same bytes again. `merge_by_key = false` skips the read.

Atomicity. Readers never see part of a window: a body up to `part_size` is one PUT, a larger one a
multipart upload of `part_size` parts (5 MiB at least, as S3 requires) that becomes visible only
when completed. A failed or cancelled upload is aborted; one cut by a SIGKILL is never completed,
so nothing shows, and the next run uploads the window again. (Its parts stay in the bucket, unbilled
by nothing: give the bucket a lifecycle rule `AbortIncompleteMultipartUpload`.)

Failures. The client makes one attempt per call (botocore's own retries are off): a connection
error, a timeout or a 5xx fails the write, and the sink's policy retries it, the one retry layer.
Rows that can never be written (a value Parquet or JSON cannot hold) are refused (`RowsRejected`,
to the dead letters) and the rest of the window is written.

Credentials: `access_key_id` / `secret_access_key` (/ `session_token`), secrets redacted everywhere;
without them, the usual AWS chain (environment, shared files, instance roles).
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import AsyncExitStack
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from rtstream.model.errors import RowsRejected, SinkError
from rtstream.model.registry import register
from rtstream.model.window import Window
from rtstream.sinks.base import Sink, SinkConfig
from rtstream.sinks.file import key_name, window_part
from rtstream.sinks.parquet_rows import ndjson_bytes, parquet_bytes, require_pyarrow, rows_from

log = logging.getLogger("rtstream.sinks.s3")

MiB = 1024 * 1024
MIN_PART = 5 * MiB  # S3's smallest part but the last
MAX_PARTS = 10_000  # S3's most parts in one upload
ABORT_TIMEOUT = 10.0  # seconds an abort of a failed upload may take before it is left to the lifecycle rule
_PLACEHOLDER = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}")
_BOUNDS = ("window_start", "window_end")
CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "ndjson": "application/x-ndjson",
                 "ndjson.gz": "application/gzip"}


class S3SinkConfig(SinkConfig):
    bucket: str = Field(min_length=3, max_length=63, description="the bucket written to")
    prefix: str = Field(default="", description="prepended to each window's object key")
    format: Literal["parquet", "ndjson"] = Field(default="parquet", description="one object per window in this format")
    # parquet: snappy (default), zstd, gzip or none; ndjson: none (default) or gzip
    compression: Literal["none", "snappy", "zstd", "gzip"] | None = Field(default=None,
        description="parquet: snappy (default), zstd, gzip, none; ndjson: none or gzip")
    endpoint_url: str | None = Field(default=None, description="an S3-compatible server's URL (MinIO, moto)")
    region: str | None = Field(default=None, description="the bucket's region")
    access_key_id: SecretStr | None = Field(default=None, description="default: the AWS environment and config files")
    secret_access_key: SecretStr | None = Field(default=None, description="with access_key_id")
    session_token: SecretStr | None = Field(default=None, description="temporary credentials' token")
    addressing_style: Literal["auto", "path", "virtual"] | None = Field(default=None,
        description="default: path with an endpoint_url")
    part_size: int = Field(8 * MiB, ge=MIN_PART, le=5 * 1024 * MiB, description="bytes; larger objects go up in parts")
    upload_concurrency: int = Field(4, ge=1, le=64, description="parts in flight at once")
    merge_by_key: bool = Field(default=True, description="upsert into the window's object by the output key")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to connect")
    read_timeout: float = Field(60.0, gt=0, description="seconds to wait for an answer")

    @field_validator("prefix")
    @classmethod
    def _template(cls, prefix: str) -> str:
        rest = _PLACEHOLDER.sub("", prefix)
        if "{" in rest or "}" in rest:
            raise ValueError("unbalanced { or } (placeholders are {window_start:%Y-%m-%d} and {window_end:...})")
        for m in _PLACEHOLDER.finditer(prefix):
            if m.group(1) not in _BOUNDS:
                raise ValueError(f"unknown placeholder {{{m.group(1)}}} (known: {{window_start}}, {{window_end}})")
        if prefix.startswith("/"):
            raise ValueError("an object key does not start with '/'")
        return prefix

    @model_validator(mode="after")
    def _consistent(self) -> S3SinkConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together (or neither, for the AWS chain)")
        if self.format == "ndjson" and self.compression not in (None, "none", "gzip"):
            raise ValueError(f"compression = {self.compression!r} is for parquet; ndjson takes none or gzip")
        return self


def render_prefix(template: str, window: Window) -> str:
    """The prefix for `window`: each placeholder through strftime of that bound, in UTC.

    >>> render_prefix("orders/dt={window_start:%Y-%m-%d}/hour={window_start:%H}/", Window(3_600_000, 3_900_000))
    'orders/dt=1970-01-01/hour=01/'
    """

    def fill(m: re.Match[str]) -> str:
        bound = window.start if m.group(1) == "window_start" else window.end
        fmt = m.group(2)
        if fmt is None:
            return window.start_iso if m.group(1) == "window_start" else window.end_iso
        return bound.strftime(fmt)

    return _PLACEHOLDER.sub(fill, template)


@register("sink", "s3")
class S3Sink(Sink):
    Config = S3SinkConfig

    async def start(self) -> None:
        cfg = self.config
        if cfg.format == "parquet":
            try:
                require_pyarrow()
            except ImportError as exc:
                raise SinkError(self.name, str(exc)) from None
        try:
            from aiobotocore.session import get_session
            from botocore.config import Config as BotoConfig
        except ImportError:
            raise SinkError(self.name, "the s3 sink needs aiobotocore: pip install 'rtstream[s3]'") from None
        self.compression = cfg.compression or ("snappy" if cfg.format == "parquet" else "none")
        self.suffix = ".parquet" if cfg.format == "parquet" else (
            ".ndjson.gz" if self.compression == "gzip" else ".ndjson")
        self.content_type = CONTENT_TYPES[self.suffix.lstrip(".")]
        style = cfg.addressing_style or ("path" if cfg.endpoint_url else "auto")
        boto_config = BotoConfig(
            retries={"total_max_attempts": 1},  # the sink's policy is the one retry layer
            connect_timeout=cfg.connect_timeout, read_timeout=cfg.read_timeout,
            s3={"addressing_style": style}, max_pool_connections=max(10, cfg.upload_concurrency))
        secret = cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
        self._stack = AsyncExitStack()
        self.client: Any = await self._stack.enter_async_context(get_session().create_client(
            "s3", region_name=cfg.region, endpoint_url=cfg.endpoint_url, config=boto_config,
            aws_access_key_id=cfg.access_key_id.get_secret_value() if cfg.access_key_id else None,
            aws_secret_access_key=secret,
            aws_session_token=cfg.session_token.get_secret_value() if cfg.session_token else None))
        try:
            await self.client.head_bucket(Bucket=cfg.bucket)
        except Exception as exc:
            if _code(exc) in ("403", "AccessDenied", "Forbidden"):
                # a writer's policy may grant objects only (no s3:ListBucket): the writes will tell
                log.warning("%s: not allowed to check bucket %r; going on", self.name, cfg.bucket,
                            extra={"component": self.name})
                return
            await self._stack.aclose()
            raise SinkError(self.name, f"bucket {cfg.bucket!r} cannot be reached: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        stack = getattr(self, "_stack", None)
        if stack is not None:
            await stack.aclose()

    def describe(self) -> str:
        return f"s3 s3://{self.config.bucket}/{self.config.prefix} ({self.config.format})"

    def object_key(self, window: Window) -> str:
        name = window.start_iso.replace(":", "-")
        if window.key is not None:
            name += f".{key_name(window.key)}"
        if window.ident is not None:  # a count window, named as the file sink names it
            name += f".{window_part(window.ident)}"
        return f"{render_prefix(self.config.prefix, window)}{name}{self.suffix}"

    async def write(self, window: Window, rows: list[dict[str, Any]]) -> None:
        key = self.object_key(window)
        condition: dict[str, str] = {}
        existing: list[dict[str, Any]] = []
        keys = self.context.key_fields if self.config.merge_by_key else []
        if keys:
            existing, etag = await self._existing(key)
            condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        body, kept, rejected = await asyncio.to_thread(self._encode, window, rows, existing, keys)
        if kept:
            try:
                await self._upload(key, body, kept, condition)
            except Exception as exc:
                if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise SinkError(self.name, f"{key} changed while this window was merged into it (another "
                                               "writer of the same window); the next attempt merges again") from exc
                raise
        if rejected:
            raise RowsRejected(self.name, rejected)

    async def _existing(self, key: str) -> tuple[list[dict[str, Any]], str | None]:
        """The rows already in the object and its ETag; ([], None) when there is no such object."""
        try:
            answer = await self.client.get_object(Bucket=self.config.bucket, Key=key)
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return [], None
            raise
        async with answer["Body"] as stream:
            body = await stream.read()
        try:
            rows = await asyncio.to_thread(rows_from, body, self.config.format, self.compression == "gzip")
        except Exception as exc:  # noqa: BLE001 - not an object this sink wrote: do not overwrite it blindly
            raise SinkError(self.name, f"{key} exists and cannot be read as {self.suffix[1:]} to merge this "
                                       f"window into it: {type(exc).__name__}: {str(exc)[:200]}") from exc
        return rows, answer["ETag"]

    def _encode(self, window: Window, rows: list[dict[str, Any]], existing: list[dict[str, Any]],
                keys: list[str]) -> tuple[bytes, int, Any]:
        if existing:
            rows = _upsert(existing, rows, keys)
        if self.config.format == "parquet":
            meta = {"rtstream.pipeline": self.context.pipeline, "rtstream.sink": self.name}
            return parquet_bytes(rows, window, self.compression, meta)
        return ndjson_bytes(rows, self.compression == "gzip")

    async def _upload(self, key: str, body: bytes, rows: int, condition: dict[str, str]) -> None:
        """One PUT, or a multipart upload; `condition` (If-Match / If-None-Match) applies to the step
        that makes the object visible."""
        common = {"Bucket": self.config.bucket, "Key": key}
        extra = {"ContentType": self.content_type, "Metadata": {"rtstream-rows": str(rows)}}
        part = max(self.config.part_size, -(-len(body) // MAX_PARTS))
        if len(body) <= part:
            await self.client.put_object(Body=body, **common, **extra, **condition)
            return
        upload_id = (await self.client.create_multipart_upload(**common, **extra))["UploadId"]
        try:
            parts = await self._parts(common, upload_id, body, part)
            await self.client.complete_multipart_upload(**common, UploadId=upload_id, MultipartUpload={"Parts": parts},
                                                        **condition)
        except BaseException:
            await self._abort(common, upload_id)
            raise
        log.debug("%s: uploaded %s in %d parts (%d bytes)", self.name, key, len(parts), len(body),
                  extra={"component": self.name})

    async def _parts(self, common: dict[str, str], upload_id: str, body: bytes, part: int) -> list[dict[str, Any]]:
        view = memoryview(body)
        limit = asyncio.Semaphore(self.config.upload_concurrency)

        async def send(number: int, offset: int) -> dict[str, Any]:
            async with limit:
                answer = await self.client.upload_part(**common, UploadId=upload_id, PartNumber=number,
                                                       Body=bytes(view[offset:offset + part]))
                return {"PartNumber": number, "ETag": answer["ETag"]}

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(send(n, off)) for n, off in enumerate(range(0, len(body), part), start=1)]
        return [t.result() for t in tasks]

    async def _abort(self, common: dict[str, str], upload_id: str) -> None:
        """Best effort: an upload left open is invisible anyway, and the lifecycle rule removes it."""
        try:
            async with asyncio.timeout(ABORT_TIMEOUT):
                await asyncio.shield(self.client.abort_multipart_upload(**common, UploadId=upload_id))
        except BaseException as exc:  # noqa: BLE001 - the write's own failure is the one to report
            log.warning("%s: could not abort the upload of %s: %s", self.name, common["Key"], exc,
                        extra={"component": self.name})


def _code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError (`NoSuchKey`, `PreconditionFailed`), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code"))
    return None


def _upsert(existing: list[dict[str, Any]], rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """The object's rows with those of `rows`' keys replaced in place and new keys appended: a replay
    (the same rows again) gives the same rows in the same order, hence the same bytes."""
    merged = {_row_key(r, keys): r for r in existing}
    merged.update((_row_key(r, keys), r) for r in rows)
    return list(merged.values())


def _row_key(row: dict[str, Any], keys: list[str]) -> str:
    return repr([row.get(k) for k in keys])  # any value, hashable or not; 5 and "5" differ
