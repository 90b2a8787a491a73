"""`PythonVirtualenvOperator` (and `@task.virtualenv`, the branch forms, `@task.external_python`'s
decorated class): the virtualenv made for the task as Airflow 2.10 makes it (utils/python_virtualenv.py);
the run of the callable in it is airflow/venv_operators.py's."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from rtstream.airflow.operators import BranchMixIn, PythonOperator
from rtstream.airflow.states import AirflowException
from rtstream.airflow.venv_check import is_venv_installed
from rtstream.airflow.venv_operators import (
    AIRFLOW_KEYS,
    BASE_KEYS,
    PENDULUM_KEYS,
    BranchExternalPythonOperator,
    ExternalPythonOperator,
    VirtualenvBase,
    source_without_task_decorator,
)


def _run_tool(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise AirflowException(f"{what} failed (exit {done.returncode}): {tail}")


class PythonVirtualenvOperator(VirtualenvBase):
    template_fields: ClassVar[tuple[str, ...]] = ("requirements", "index_urls", "venv_cache_path",
                                                  *PythonOperator.template_fields)
    template_ext: ClassVar[tuple[str, ...]] = (".txt",)

    def __init__(self, *, python_callable: Callable[..., Any], requirements: None | Iterable[str] | str = None,
                 python_version: str | None = None, system_site_packages: bool = True,
                 pip_install_options: list[str] | None = None, index_urls: None | Iterable[str] | str = None,
                 venv_cache_path: Any = None, **kwargs: Any):
        if python_version is not None and not isinstance(python_version, str):
            raise AirflowException("Passing non-string types (e.g. int or float) as python_version not supported")
        if not is_venv_installed():
            raise AirflowException("PythonVirtualenvOperator requires virtualenv, please install it.")
        super().__init__(python_callable=python_callable, **kwargs)
        self.requirements = [] if not requirements else [requirements] if isinstance(requirements, str) \
            else list(requirements)
        self.python_version, self.system_site_packages = python_version, system_site_packages
        self.pip_install_options = list(pip_install_options or [])
        self.index_urls = [index_urls] if isinstance(index_urls, str) else list(index_urls) if index_urls else None
        self.venv_cache_path = venv_cache_path

    def context_keys(self) -> set[str]:
        keys = set(BASE_KEYS)
        if self.system_site_packages or "apache-airflow" in self.requirements:
            keys |= AIRFLOW_KEYS | PENDULUM_KEYS
        elif "pendulum" in self.requirements:
            keys |= PENDULUM_KEYS
        return keys

    def requirements_list(self) -> list[str]:
        reqs = [str(r) for r in self.requirements]
        if not self.system_site_packages and self.serializer in ("cloudpickle", "dill") and self.serializer not in reqs:
            reqs.append(self.serializer)
        return sorted(reqs)

    def prepare_venv(self, venv: Path) -> None:
        (venv / "requirements.txt").write_text("\n".join(self.requirements_list()))
        if self.index_urls is not None:  # Airflow's _generate_pip_conf
            conf = f"index-url = {self.index_urls[0]}" if self.index_urls else "no-index = true"
            if len(self.index_urls) > 1:
                conf += f"\nextra-index-url = {' '.join(self.index_urls[1:])}"
            (venv / "pip.conf").write_text(f"[global]\n{conf}")
        cmd = [sys.executable, "-m", "virtualenv", str(venv)] + (["--system-site-packages"] if self.system_site_packages
                                                                 else [])
        _run_tool(cmd + [f"--python=python{self.python_version or ''}"], "creating the task's virtualenv")
        if self.requirements_list():
            _run_tool([str(venv / "bin" / "pip"), "install", *self.pip_install_options, "-r",
                       str(venv / "requirements.txt")],
                      f"pip installing the task's requirements ({', '.join(self.requirements_list())}), with pip's "
                      "configuration and cache on this machine,")

    def python_path(self, tmp: Path) -> Path:
        if not self.venv_cache_path:
            self.prepare_venv(tmp)
            return tmp / "bin" / "python"
        digest_of = {"requirements_list": self.requirements_list(), "pip_install_options": self.pip_install_options,
                     "index_urls": self.index_urls, "cache_key": "", "python_version": self.python_version,
                     "system_site_packages": self.system_site_packages}
        text = json.dumps(digest_of, sort_keys=True)
        venv = Path(self.venv_cache_path) / f"venv-{hashlib.md5(text.encode()).hexdigest()[:8]}"  # noqa: S324 - Airflow's name
        marker = venv / "install_complete_marker.json"
        venv.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{venv}.lock", "w") as lock:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
            if marker.exists() and marker.read_text(encoding="utf8") == text:
                return venv / "bin" / "python"
            shutil.rmtree(venv, ignore_errors=True)
            venv.mkdir(parents=True)
            try:
                self.prepare_venv(venv)
            except Exception:
                shutil.rmtree(venv, ignore_errors=True)
                raise
            marker.write_text(text, encoding="utf8")
        return venv / "bin" / "python"


class BranchPythonVirtualenvOperator(PythonVirtualenvOperator, BranchMixIn):
    def execute(self, context: dict[str, Any]) -> Any:
        return self.do_branch(context, super().execute(context))



class _Decorated:
    """`@task.virtualenv` / `@task.external_python`: the source without its decorator; multiple_outputs."""

    python_callable: Callable[..., Any]
    multiple_outputs: bool

    def python_source(self) -> str:
        return source_without_task_decorator(self.python_callable)

    def execute(self, context: dict[str, Any]) -> Any:
        result = super().execute(context)  # type: ignore[misc]
        if self.multiple_outputs and result is not None:
            if not isinstance(result, dict):
                raise AirflowException(f"Returned output was type {type(result)} expected dictionary for "
                                       "multiple_outputs")
            for key, value in result.items():
                context["ti"].xcom_push(key=str(key), value=value)
        return result


class DecoratedVirtualenvOperator(_Decorated, PythonVirtualenvOperator):
    pass


class DecoratedExternalPythonOperator(_Decorated, ExternalPythonOperator):
    pass


class DecoratedBranchVirtualenvOperator(_Decorated, BranchPythonVirtualenvOperator):
    pass


class DecoratedBranchExternalPythonOperator(_Decorated, BranchExternalPythonOperator):
    pass


NAMES: dict[str, Any] = {cls.__name__: cls for cls in (
    PythonVirtualenvOperator, ExternalPythonOperator, BranchPythonVirtualenvOperator, BranchExternalPythonOperator)}
