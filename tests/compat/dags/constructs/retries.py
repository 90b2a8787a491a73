"""Retries: a task that fails twice then succeeds on its third try; one that fails every try;
exponential backoff with a short delay."""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow.decorators import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def compat_retries():
    @task(retries=3, retry_delay=timedelta(seconds=1))
    def flaky(ti=None) -> str:
        if ti.try_number < 3:
            raise RuntimeError(f"try {ti.try_number} fails on purpose")
        return f"succeeded on try {ti.try_number}"

    @task(retries=1, retry_delay=timedelta(seconds=1))
    def always_fails() -> None:
        raise RuntimeError("fails every try")

    @task(retries=2, retry_delay=timedelta(seconds=1), retry_exponential_backoff=True,
          max_retry_delay=timedelta(seconds=2))
    def backoff(ti=None) -> int:
        if ti.try_number < 2:
            raise RuntimeError("first try fails")
        return ti.try_number

    @task
    def after_flaky(value: str) -> str:
        return value + "!"

    @task
    def after_always(value) -> str:
        return "never runs"

    after_flaky(flaky())
    after_always(always_fails())
    backoff()


compat_retries()
