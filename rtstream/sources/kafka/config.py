"""The Kafka source's settings: what to read, from where, and how it shares partitions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rtstream.connect.kafka_settings import KafkaConnection
from rtstream.model.durations import Duration
from rtstream.sources.base import SourceConfig


class KafkaSourceConfig(SourceConfig, KafkaConnection):
    topics: list[str] | None = Field(default=None, description="the topics read (or give pattern)")
    pattern: str | None = Field(default=None, description="a regular expression of topic names")
    group_id: str = Field(description="the consumer group whose committed offsets say where to resume")
    format: Literal["json", "raw"] = Field(default="json",
        description="\"json\": each message a JSON object; \"raw\": the bytes as \"value\"")
    key_field: str | None = Field(default=None, description="the record key is this JSON field, not the Kafka "
                                  "message key (sessions without an aggregate key group by it)")
    start: Literal["committed", "earliest", "latest"] = Field(default="committed",
        description="where a partition without a committed offset starts")
    stop_at_end: bool = Field(default=False, description="a finite run: end at the topics' end offsets")
    max_batch: int = Field(default=5000, ge=1, description="records per getmany at most")
    fetch_timeout: Duration = Field(default=0.2, description="longest wait of one fetch")
    lag_log_interval: Duration = Field(default=60.0, description="how often the consumer lag is logged")
    start_at: str | int | None = Field(default=None, description="seek to this time on first assignment "
                                       "(offsets_for_times; the beginning where the broker cannot say)")
    commit_offsets: bool = Field(default=True, description="false for backfills: the group's offsets stay as they were")
    assignment: Literal["group", "static"] = Field(default="group", description="static: read the topics' partitions "
                                                   "without joining the group (rtstream.sources.kafka.static)")
    consumer: dict[str, Any] = Field(default={}, description="extra aiokafka consumer settings")

    @model_validator(mode="after")
    def _topics_or_pattern(self) -> KafkaSourceConfig:
        if bool(self.topics) == bool(self.pattern):
            raise ValueError("give either topics = [...] or pattern = \"...\"")
        if self.assignment == "static" and self.pattern:
            raise ValueError('assignment = "static" reads the partitions of named topics: give topics = [...], not pattern')
        return self
