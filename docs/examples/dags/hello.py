"""A DAG as Airflow runs it, for README's first path: `rtstream dags test docs/examples/dags/hello.py`
runs it once; `rtstream run --dags docs/examples/dags` runs it every minute."""

from datetime import datetime

from airflow.decorators import dag, task


@dag(schedule="* * * * *", start_date=datetime(2025, 1, 1), catchup=False, tags=["example"])
def hello():
    @task
    def extract(data_interval_start=None):
        return [{"user": f"u{i}", "amount": i * 10, "at": data_interval_start.isoformat()} for i in range(3)]

    @task
    def total(rows):
        return sum(r["amount"] for r in rows)

    @task
    def report(amount, ds=None):
        print(f"{ds}: {amount} in total")

    report(total(extract()))


hello()
