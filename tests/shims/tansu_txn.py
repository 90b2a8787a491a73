"""Test-only: aiokafka asks for a producer id with InitProducerId v0; Tansu needs v3 (flexible).

A real Kafka cluster answers v0, so the product needs nothing of this: the tests load it (directly,
or into a daemon through `sitecustomize` on PYTHONPATH) to drive the transactional producer
against Tansu. Nothing else about the protocol is changed.
"""

from __future__ import annotations

from typing import Any

import aiokafka.producer.sender as sender
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.transaction import InitProducerIdRequest_v0
from aiokafka.protocol.types import CompactString, Int16, Int32, Int64, Schema, TaggedFields


class InitProducerIdResponse_v3(Response):  # noqa: N801 - aiokafka's naming
    API_KEY = 22
    API_VERSION = 3
    SCHEMA = Schema(("throttle_time_ms", Int32), ("error_code", Int16), ("producer_id", Int64),
                    ("producer_epoch", Int16), ("tags", TaggedFields))


class InitProducerIdRequest_v3(RequestStruct):  # noqa: N801
    FLEXIBLE_VERSION = True
    API_KEY = 22
    API_VERSION = 3
    RESPONSE_TYPE = InitProducerIdResponse_v3
    SCHEMA = Schema(("transactional_id", CompactString("utf-8")), ("transaction_timeout_ms", Int32),
                    ("producer_id", Int64), ("producer_epoch", Int16), ("tags", TaggedFields))


class InitProducerIdRequest(Request[InitProducerIdRequest_v0 | InitProducerIdRequest_v3]):
    API_KEY = 22

    def __init__(self, transactional_id: str | None, transaction_timeout_ms: int):
        self._tid = transactional_id
        self._timeout = transaction_timeout_ms

    def build(self, request_struct_class: Any) -> Any:
        if request_struct_class.API_VERSION >= 3:
            return request_struct_class(self._tid, self._timeout, -1, -1, {})
        return request_struct_class(self._tid, self._timeout)


def install() -> None:
    sender.InitProducerIdRequest = InitProducerIdRequest  # type: ignore[misc]
