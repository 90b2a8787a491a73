"""A static Kafka reader's watch for other readers of its partitions, through Kafka itself.

A static reader joins no group, so Kafka alone would let a second one (a re-run, a copy started by
hand) read the same partitions and write every result twice, and would only refuse its commits once
a group-mode reader joined. So each static reader:

- is a member of the lease group `GROUP.rtstream-static`, joined before reading starts (after a kill,
  once the dead predecessor's session, the source's `session_timeout_ms`, has run out), with every
  partition of it paused: the group's member list is the list of
  live static readers, each named by its client id (`rtstream-static I/N STARTED TOKEN HOST`). Kafka
  drops a member that stops heartbeating, as it does for any consumer.
- checks every CHECK_INTERVAL that list and the members of `GROUP` itself (one DescribeGroups).

A group-mode member of `GROUP` stops the static reader (Kafka refuses its commits from then on). Of
two static readers whose shares overlap, the one that started later takes over and the earlier one
stops, as a newer transactional producer fences an older one: so a restart after a kill (whose
member lingers until its session times out) is never refused by its own dead predecessor. Workers
of one supervisor read disjoint shares and leave each other alone.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from rtstream.model.worker import WorkerShare
from rtstream.sources.kafka.static import share_of

log = logging.getLogger("rtstream.source.kafka")
CHECK_INTERVAL = 1.0
LEASE_SUFFIX = ".rtstream-static"
NAME_PREFIX = "rtstream-static"


class _PauseAll(ConsumerRebalanceListener):  # type: ignore[misc]
    """The lease consumer is there to be a member, never to fetch."""

    def __init__(self, consumer: AIOKafkaConsumer):
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.consumer.pause(*assigned)


class StaticGuard:
    def __init__(self, config: Any, source: str, worker: WorkerShare, partitions: list[TopicPartition]):
        self.config = config
        self.source = source
        self.partitions = partitions
        self.worker = worker
        self.share = set(share_of(partitions, worker))
        self.started_ms = int(time.time() * 1000)
        self.token = uuid.uuid4().hex[:8]
        self.me = (self.started_ms, self.token)
        self.client_id = f"{NAME_PREFIX} {worker.index}/{worker.count} {self.started_ms} {self.token} " \
                         f"{socket.gethostname()}"
        self.lease_group = f"{config.group_id}{LEASE_SUFFIX}"
        self.admin: AIOKafkaAdminClient | None = None
        self.lease: AIOKafkaConsumer | None = None
        self.stopped: str | None = None  # why this reader must stop, once it must
        self._next = 0.0
        self._told: set[str] = set()

    async def start(self) -> None:
        c = self.config
        self.admin = AIOKafkaAdminClient(**c.client_kwargs(f"rtstream-{self.source}-guard"))
        await self.admin.start()
        # the source's own session timeout: after a kill, start() waits for the lease group's join, and
        # so for the dead predecessor's session to run out (with the 10 s default: 18 s on Tansu)
        session_ms = int(c.consumer.get("session_timeout_ms", 10_000))
        heartbeat_ms = int(c.consumer.get("heartbeat_interval_ms", min(1000, session_ms // 3)))
        self.lease = AIOKafkaConsumer(**c.client_kwargs(self.client_id), group_id=self.lease_group,
                                      enable_auto_commit=False, session_timeout_ms=session_ms,
                                      heartbeat_interval_ms=heartbeat_ms)
        self.lease.subscribe(topics=c.topics, listener=_PauseAll(self.lease))
        await self.lease.start()  # the join itself runs in the background

    async def due(self) -> str | None:
        """Check when CHECK_INTERVAL has passed since the last check; why to stop, or None."""
        now = time.monotonic()
        if self.stopped is None and now >= self._next:
            self._next = now + CHECK_INTERVAL
            try:
                await self._check()
            except Exception as exc:  # noqa: BLE001 - a broker restarting: the next check looks again
                log.debug("%s: static guard check failed: %s", self.source, exc)
        return self.stopped

    def refused(self, exc: BaseException) -> None:
        """Kafka refused a commit of this outside reader: a group-mode member is in the group."""
        self.stopped = self.stopped or (
            f'assignment = "static": consumer group {self.config.group_id!r} refused this reader\'s commit '
            f"({type(exc).__name__}): a group-mode reader joined it and reads the same partitions; this one stops. "
            "Run one kind of reader per group_id")

    async def _check(self) -> None:
        assert self.admin is not None and self.lease is not None
        await self.lease.getmany(timeout_ms=0)  # polled, so the group keeps it past max_poll_interval_ms
        # one group per request: some brokers (Tansu) drop the connection on a request for several
        responses = [r for g in (self.config.group_id, self.lease_group)
                     for r in await self.admin.describe_consumer_groups([g])]
        for response in responses:
            for error_code, group, state, _ptype, _protocol, members, *_ in response.groups:
                if error_code != 0 or not members:
                    continue
                if group == self.config.group_id:
                    self.stopped = (
                        f'assignment = "static": consumer group {group!r} now has {len(members)} active member(s) '
                        f"(state {state}): a group-mode reader joined it and reads the same partitions; this one "
                        "stops. Run one kind of reader per group_id")
                    return
                for member_id, client_id, host, *_ in members:
                    # Kafka names a member CLIENT_ID-UUID; some brokers (Tansu) leave client_id empty
                    self._other(str(client_id or str(member_id)[:-37]), str(host))

    def _other(self, client_id: str, host: str) -> None:
        parts = client_id.split()
        if len(parts) < 5 or parts[0] != NAME_PREFIX or parts[3] == self.token:
            return
        try:
            index, count = (int(x) for x in parts[1].split("/"))
            theirs = (int(parts[2]), parts[3])
            # read by the same rule as this reader's (a worker of the same config): co-partitioned or not
            other = WorkerShare(index=index, count=count, co_partitioned=self.worker.co_partitioned)
            overlap = self.share & set(share_of(self.partitions, other))
        except ValueError:
            return
        if not overlap:
            return  # another worker of the same supervisor, or of a differently split run: disjoint
        address = host.strip("/")
        where = f"{parts[4]}{f' ({address})' if address else ''}, worker {index} of {count}"
        if theirs > self.me:
            self.stopped = (
                f'assignment = "static": another static reader of group {self.config.group_id!r} started later on '
                f"{where} and reads {len(overlap)} of this one's partitions: it takes over and this one stops. "
                "Run one static reader per share of a group")
        elif parts[3] not in self._told:
            self._told.add(parts[3])
            log.warning("%s: another static reader of group %r (%s) started before this one and reads %d of its "
                        "partitions: this one takes over, that one stops within seconds", self.source,
                        self.config.group_id, where, len(overlap), extra={"component": self.source})

    async def close(self) -> None:
        if self.lease is not None:
            await self.lease.stop()
            self.lease = None
        if self.admin is not None:
            await self.admin.close()
            self.admin = None
