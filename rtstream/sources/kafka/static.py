"""`assignment = "static"`: a Kafka source that reads its partitions without joining its group.

Joining a consumer group costs seconds before the first fetch (the join and sync rounds, and on a
real cluster `group.initial.rebalance.delay.ms`), paid again by every finite run. A static source
instead lists the partitions of its topics from the broker's metadata at start and assigns them to
itself, as Flink's KafkaSource and Bytewax do. Offsets are still committed under `group_id`, as a
consumer outside the group (generation -1), which Kafka accepts only while the group has no
members: so one process, or the workers of one supervisor, reads a group statically, and a start is
refused while group-mode members are in the group.

With `[daemon] workers = N`, each worker reads a share fixed by the partition alone, so a restarted
worker gets the same share, and partitions added to a topic (read after a restart) never move an
existing partition to another worker, which would then be read by two workers at once. Two rules:

- partition p of a topic a join reads (`daemon.worker.co_partitioned`, decided by the supervisor from
  the config: rtstream.run.join_inputs) goes to worker p mod N, the same worker for partition p of
  every such topic (Kafka Streams' co-partitioning): with both topics partitioned alike by the key,
  a key's rows of both sides meet in one worker. So such topics must have as many partitions each:
  a start with `workers` > 1 is refused otherwise (StartRefused; one process reads them all).
- partition p of any other topic t goes to worker (p + crc32(t)) mod N: the topic's offset spreads
  topics of one partition over the workers instead of giving every partition 0 to worker 0. It stays
  the rule for them, since changing it would move partitions between the workers of running
  pipelines on their next restart. (A pipeline whose join ran under that rule moves its join's
  partitions once, on the first start with this one: the workers all stop and start together, and
  the new owner of a partition resumes from its committed offset, as after a rebalance.)
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from rtstream.model.errors import SourceError, StartRefused
from rtstream.model.worker import WorkerShare
from rtstream.support.backoff import backoff_delay

log = logging.getLogger("rtstream.source.kafka")


def share_of(partitions: list[TopicPartition], worker: WorkerShare) -> list[TopicPartition]:
    """The partitions worker `index` of `count` reads, sorted, each once."""
    aligned = worker.co_partitioned_topics()
    return sorted({tp for tp in partitions if _worker_of(tp, worker.count, aligned) == worker.index})


def _worker_of(tp: TopicPartition, count: int, aligned: set[str]) -> int:
    if tp.topic in aligned:
        return tp.partition % count
    return (tp.partition + zlib.crc32(tp.topic.encode())) % count


def unalike_problem(partitions: list[TopicPartition], worker: WorkerShare, topics: list[str]) -> str | None:
    """Why these co-partitioned groups touching `topics` cannot be split over the workers, or None."""
    if worker.count == 1:
        return None  # one process reads every partition of both sides: any counts work
    counts: dict[str, int] = {}
    for tp in partitions:
        counts[tp.topic] = max(counts.get(tp.topic, 0), tp.partition + 1)
    for group in worker.co_partitioned:
        if set(group) & set(topics) and len({counts[t] for t in group}) > 1:
            said = " and ".join(f"{t} has {counts[t]} partitions" for t in group)
            return (f'assignment = "static" with {worker.count} workers refused: the topics of one join must be '
                    f"partitioned alike (as many partitions each, keyed by the join key), and {said}; partition p "
                    f"of each is read by worker p mod {worker.count}, so a key's rows of the two sides would land in "
                    "different workers. Give the topics the same partition count, or run workers = 1")
    return None


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
            # the other side's topics too: their partition counts must match this source's
            joined = [t for group in worker.co_partitioned if set(group) & set(config.topics) for t in group]
            listed = await _wait_for_partitions(admin, list(dict.fromkeys([*config.topics, *joined])), source)
            if (problem := unalike_problem(listed, worker, config.topics)) is not None:
                raise StartRefused(source, problem)
            partitions = [tp for tp in listed if tp.topic in config.topics]
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
