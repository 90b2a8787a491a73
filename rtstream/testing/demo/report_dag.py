"""The demo's DAG: each minute, what the pipeline wrote to PostgreSQL in that minute.

An ordinary Airflow DAG, run by `rtstream run --dags` beside the pipeline: the minute's windows
read from the aggregate table (the sink's upserts keep one row per window and user), summed, and
handed on by XCom to a task that logs the summary.
"""
import asyncio
import os
from datetime import UTC, datetime, timedelta

from airflow import DAG
from airflow.operators.python import PythonOperator

DSN = os.environ["RTSTREAM_DEMO_DSN"]
STARTED = datetime.fromtimestamp(float(os.environ.get("RTSTREAM_DEMO_STARTED", "0")), tz=UTC)


async def _minute(start, end):
    import asyncpg

    conn = await asyncpg.connect(DSN)
    try:
        if await conn.fetchval("SELECT to_regclass('public.clicks_per_user')") is None:
            return {"windows": 0, "users": 0, "events": 0}  # no window has been written yet
        row = await conn.fetchrow(
            "SELECT count(DISTINCT window_start) AS windows, count(DISTINCT user_id) AS users, "
            "coalesce(sum(events), 0) AS events FROM clicks_per_user "
            "WHERE window_start::timestamptz >= $1 AND window_start::timestamptz < $2", start, end)
        return dict(row)
    finally:
        await conn.close()


def read_minute(**context):
    return asyncio.run(_minute(context["data_interval_start"], context["data_interval_end"]))


def report(**context):
    got = context["ti"].xcom_pull(task_ids="read_minute")
    print(f"{context['data_interval_start']:%H:%M}: {got['events']} clicks by {got['users']} users "
          f"in {got['windows']} windows")
    return got


with DAG("clicks_each_minute", start_date=STARTED - timedelta(minutes=2), schedule="* * * * *", catchup=False,
         default_args={"retries": 2, "retry_delay": timedelta(seconds=5)}) as dag:
    PythonOperator(task_id="read_minute", python_callable=read_minute) >> PythonOperator(
        task_id="report", python_callable=report)
