"""BashOperator as an asyncio subprocess: `env` / `append_env`, `cwd`, a templated command (or a `.sh`
template file), a non-zero exit fails the try, `skip_on_exit_code` (99 by default) skips it, and the
last line of output is the XCom, as Airflow's BashOperator does.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, ClassVar

from rtstream.airflow.operator_base import BaseOperator
from rtstream.airflow.run_support import run_on_loop
from rtstream.airflow.states import AirflowException, AirflowSkipException


class BashOperator(BaseOperator):
    template_fields: ClassVar[tuple[str, ...]] = ("bash_command", "env", "cwd")
    template_ext: ClassVar[tuple[str, ...]] = (".sh", ".bash")
    ui_color = "#f0ede4"

    def __init__(self, *, bash_command: str, env: dict[str, str] | None = None, append_env: bool = False,
                 output_encoding: str = "utf-8", skip_exit_code: int | None = None,
                 skip_on_exit_code: int | list[int] | None = 99, cwd: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.bash_command, self.env, self.append_env, self.cwd = bash_command, env, append_env, cwd
        self.output_encoding = output_encoding
        codes = skip_exit_code if skip_exit_code is not None else skip_on_exit_code
        self.skip_on_exit_code = [] if codes is None else ([codes] if isinstance(codes, int) else list(codes))

    def execute(self, context: dict[str, Any]) -> Any:  # a subclass calling it from its own execute (a thread)
        return run_on_loop(self.async_execute(context))

    async def async_execute(self, context: dict[str, Any]) -> Any:
        """What the run awaits on its loop (so an execution_timeout kills the command)."""
        return await self.run_command(context)

    def subprocess_env(self, context: dict[str, Any]) -> dict[str, str]:
        env = dict(self.env) if self.env is not None else dict(os.environ)
        if self.env is not None and self.append_env:
            env = {**os.environ, **env}
        dag_run, ti = context["dag_run"], context["ti"]
        # the AIRFLOW_CTX_* variables Airflow exports to the command
        env.update({"AIRFLOW_CTX_DAG_ID": ti.dag_id, "AIRFLOW_CTX_TASK_ID": ti.task_id,
                    "AIRFLOW_CTX_EXECUTION_DATE": context["ts"], "AIRFLOW_CTX_DAG_RUN_ID": dag_run.run_id,
                    "AIRFLOW_CTX_TRY_NUMBER": str(ti.try_number)})
        return {str(k): str(v) for k, v in env.items()}

    async def run_command(self, context: dict[str, Any]) -> Any:
        if self.cwd is not None and not os.path.isdir(self.cwd):
            raise AirflowException(f"Can not find the cwd: {self.cwd}")
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", self.bash_command, cwd=self.cwd, env=self.subprocess_env(context),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
        last = ""
        try:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode(self.output_encoding, errors="backslashreplace").rstrip("\n")
                print(line, file=sys.stderr, flush=True)  # the task's log
                last = line
            code = await proc.wait()
        except BaseException:  # a timeout or a cancelled run: the command does not outlive its task
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if code in self.skip_on_exit_code:
            raise AirflowSkipException(f"Bash command returned exit code {code}. Skipping.")
        if code != 0:
            raise AirflowException(f"Bash command failed. The command returned a non-zero exit code {code}.")
        return last
