"""`assignment = "static"`: a Kafka source that reads its partitions without joining its group.

Joining a consumer group costs seconds before the first fetch (the join and sync rounds, and on a
real cluster `group.initial.rebalance.delay.ms`), paid again by every finite run. A static source
instead lists the partitions of its topics from the broker's metadata at start and assigns them to
itself, as Flink's KafkaSource and Bytewax do. Offsets are still committed under `group_id`, as a
consumer outside the group (generation -1), which Kafka accepts only while the group has no
members: so one process, or the workers of one supervisor, reads a group statically, and a start is
refused while group-mode members are in the group.

With `[daemon] workers = N`, partition p of topic t goes to worker (p + crc32(t)) mod N: a function
of the partition alone, so a restarted worker gets the same share, and partitions added to any
topic (read after a restart) never move an existing partition to another worker, which would then
be read by two workers at once. The topic's offset spreads topics of one partition over the workers.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from rtstream.model.errors import SourceError
from rtstream.model.worker import WorkerShare
from rtstream.support.backoff import backoff_delay

log = logging.getLogger("rtstream.source.kafka")


def share_of(partitions: list[TopicPartition], worker: WorkerShare) -> list[TopicPartition]:
    """The partitions worker `index` of `count` reads, sorted, each once."""
    return sorted({tp for tp in partitions
                   if (tp.partition + zlib.crc32(tp.topic.encode())) % worker.count == worker.index})


async def static_share(config: Any, source: str, worker: WorkerShare) -> tuple[list[TopicPartition], list[TopicPartition]]:
    """Every partition of `config.topics` and this process's share of them, once every topic exists
    and the group has no members (a group-mode replica reading it would be read twice, and would fail
    our commits). A broker that cannot answer (down, restarting) is asked again with backoff, until
    it answers or the daemon is stopped: a static start is as patient as a group-mode one."""
    attempt = 0
    while True:
        admin = AIOKafkaAdminClient(**config.client_kwargs(f"rtstream-{source}-static"))
        try:
            await admin.start()
            partitions = await _wait_for_partitions(admin, config.topics, source)
            await _refuse_active_group(admin, config.group_id, source)
            break
        except (KafkaError, OSError) as exc:
            attempt += 1
            delay = backoff_delay(attempt, 0.5, 10.0)
            log.warning("%s: listing the partitions of %s failed (%s: %s); trying again in %.1fs", source,
                        ", ".join(config.topics), type(exc).__name__, str(exc)[:200], delay, extra={"component": source})
        finally:
            await admin.close()
        await asyncio.sleep(delay)
    share = share_of(partitions, worker)
    of_workers = f" (worker {worker.index} of {worker.count})" if worker.count > 1 else ""
    log.info("%s: static assignment%s: %d of the %d partitions [%s], committed under group %r; partitions "
             "added later are read after a restart", source, of_workers, len(share), len(partitions),
             ", ".join(f"{tp.topic}:{tp.partition}" for tp in share), config.group_id, extra={"component": source})
    if not share:
        log.warning("%s: this worker has no partition to read: %d workers, %d partitions", source, worker.count,
                    len(partitions), extra={"component": source})
    return partitions, share


async def _wait_for_partitions(admin: AIOKafkaAdminClient, topics: list[str], source: str) -> list[TopicPartition]:
    """Every partition of `topics`, waiting (with backoff) for a topic that does not exist yet."""
    attempt = 0
    while True:
        # every topic's metadata: asking for named topics would let the broker auto-create them
        found = {t["topic"]: t["partitions"] for t in await admin.describe_topics() if t["error_code"] == 0}
        missing = [t for t in topics if not found.get(t)]
        if not missing:
            return [TopicPartition(t, p["partition"]) for t in dict.fromkeys(topics) for p in found[t]]
        attempt += 1
        delay = backoff_delay(attempt, 0.5, 10.0)
        log.warning("%s: topic(s) %s do not exist yet; looking again in %.1fs", source, ", ".join(missing), delay,
                    extra={"component": source})
        await asyncio.sleep(delay)


async def _refuse_active_group(admin: AIOKafkaAdminClient, group_id: str, source: str) -> None:
    (response,) = await admin.describe_consumer_groups([group_id])
    for error_code, _group, state, _protocol_type, _protocol, members, *_ in response.groups:
        if error_code != 0:  # a coordinator still loading, or not allowed to look: the check is skipped, said once
            log.warning("%s: could not check consumer group %r for active members (error %d); the commits of "
                        "this static reader would be refused while it has any", source, group_id, error_code,
                        extra={"component": source})
        elif members:
            raise SourceError(source, (
                f'assignment = "static" refused: consumer group {group_id!r} has {len(members)} active member(s) '
                f"(state {state}); a group-mode reader of it would read the same partitions and the group would "
                "refuse this process's commits. Stop them, or give this source a group_id of its own"))
