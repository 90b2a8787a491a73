"""BashOperator: last line of stdout is the XCom; exit 99 skips (the default skip_on_exit_code);
a custom skip_on_exit_code; a non-zero exit fails; env, append_env, cwd and templated commands."""

from __future__ import annotations

import pendulum

from airflow.models.dag import DAG
from airflow.operators.bash import BashOperator
from airflow.operators.empty import EmptyOperator

with DAG(
    dag_id="compat_bash_exit_codes",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"greeting": "hello"},
) as dag:
    last_line = BashOperator(task_id="last_line", bash_command="echo first; echo second; echo last")
    templated = BashOperator(task_id="templated", bash_command="echo {{ params.greeting }} {{ ds }} {{ ds_nodash }}")
    skip_99 = BashOperator(task_id="skip_99", bash_command="echo before; exit 99")
    skip_custom = BashOperator(task_id="skip_custom", bash_command="exit 3", skip_on_exit_code=[3, 4])
    not_skip = BashOperator(task_id="exit_99_not_skipped", bash_command="exit 99", skip_on_exit_code=None)
    fails = BashOperator(task_id="exit_1_fails", bash_command="echo partial; exit 1")
    env_only = BashOperator(task_id="env_only", bash_command='echo "${ONLY:-unset} ${HOME:-nohome}"',
                            env={"ONLY": "set"})
    env_append = BashOperator(task_id="env_append", bash_command='echo "${EXTRA}"', env={"EXTRA": "extra"},
                              append_env=True)
    cwd = BashOperator(task_id="cwd", bash_command="pwd", cwd="/")
    no_push = BashOperator(task_id="no_push", bash_command="echo hidden", do_xcom_push=False)
    after_skip = EmptyOperator(task_id="after_skip")
    after_fail = EmptyOperator(task_id="after_fail")

    skip_99 >> after_skip
    fails >> after_fail
