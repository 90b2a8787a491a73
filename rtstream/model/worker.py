"""Which share of a pipeline's work one worker process takes."""

from __future__ import annotations

from pydantic import Field, model_validator

from rtstream.model.strict import Strict


class WorkerShare(Strict):
    """Which of the `[daemon] workers` this process is: the supervisor sets it on each worker's
    command line (`--set daemon.worker=...`); sources it splits itself read every `count`-th item."""

    index: int = Field(default=0, ge=0, description="this worker's number, from 0")
    count: int = Field(default=1, ge=1, le=64, description="how many workers share the work")
    co_partitioned: list[list[str]] = Field(
        default=[], description="the Kafka topics of each join's sides (join, interval_join, table_join): partition "
        "p of every one of them is read by worker p mod count, so a key's rows of both sides meet in one worker")

    @model_validator(mode="after")
    def _index_below_count(self) -> WorkerShare:
        if self.index >= self.count:
            raise ValueError(f"index {self.index} is not below count {self.count}")
        return self

    def co_partitioned_topics(self) -> set[str]:
        return {t for topics in self.co_partitioned for t in topics}
