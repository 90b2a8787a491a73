"""Test-only, loaded by a daemon started with this directory on PYTHONPATH: SIGKILL the process the
moment the broker has acknowledged the first Kafka commit that carries a mark (commit metadata
"rtstream/1 ..."), before anything after the commit runs. That is where a kill can land at any
time in production (the broker has the offset; the process dies before its next step); here it
lands there every time. RTSTREAM_KILL_AFTER_COMMIT=transaction does the same after the first
producer transaction that committed offsets."""

import os
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

MARK = "rtstream/1 "
_commit = AIOKafkaConsumer.commit
_send_offsets = AIOKafkaProducer.send_offsets_to_transaction
_commit_transaction = AIOKafkaProducer.commit_transaction
_pending: list[bool] = []


async def commit(self, offsets=None):  # type: ignore[no-untyped-def]
    await _commit(self, offsets)
    if offsets and any((meta.metadata or "").startswith(MARK) for meta in offsets.values()):
        os.kill(os.getpid(), signal.SIGKILL)


async def send_offsets_to_transaction(self, offsets, group_id):  # type: ignore[no-untyped-def]
    await _send_offsets(self, offsets, group_id)
    _pending.append(any((meta.metadata or "").startswith(MARK) for meta in offsets.values()))


async def commit_transaction(self):  # type: ignore[no-untyped-def]
    await _commit_transaction(self)
    if _pending and any(_pending):
        os.kill(os.getpid(), signal.SIGKILL)
    _pending.clear()


if os.environ.get("RTSTREAM_KILL_AFTER_COMMIT") == "transaction":
    import tansu_txn  # tests/shims, on PYTHONPATH after this directory (only one sitecustomize runs)

    tansu_txn.install()
    AIOKafkaProducer.send_offsets_to_transaction = send_offsets_to_transaction
    AIOKafkaProducer.commit_transaction = commit_transaction
else:
    AIOKafkaConsumer.commit = commit
