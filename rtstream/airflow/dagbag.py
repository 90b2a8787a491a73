"""Load DAG files as Airflow's DagBag does: a file, or every `.py` under a folder that mentions both
"airflow" and "dag" (Airflow's safe mode), each imported as its own module with its folder on
sys.path; the DAGs are its module globals plus every DAG used as a context (`with DAG`, `@dag`).

A file that raises, calls sys.exit or imports a package that is not installed gives one line naming
the file and what to do; a DAG with an operator rtstream does not run, or with a cycle, is refused
with the task, the operator and the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtstream.airflow import dag_model, real_airflow, stand_in
from rtstream.airflow.airflow3 import file_major
from rtstream.airflow.asset_conflicts import asset_conflicts
from rtstream.airflow.callbacks import note_sla
from rtstream.airflow.dag_model import DAG
from rtstream.airflow.dag_run import topological_order
from rtstream.airflow.states import DagRefused
from rtstream.airflow.subdag import subdags_of

# import name -> the pip package that provides it, where they differ
PIP_NAMES = {"yaml": "pyyaml", "sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow",
             "bs4": "beautifulsoup4", "dateutil": "python-dateutil", "psycopg2": "psycopg2-binary",
             "dotenv": "python-dotenv", "google": "google-cloud", "jwt": "pyjwt", "MySQLdb": "mysqlclient"}
_last_exceptions: dict[str, BaseException] = {}


@dataclass
class DagBag:
    dags: dict[str, DAG] = field(default_factory=dict)
    import_errors: dict[str, str] = field(default_factory=dict)  # file -> one line

    def refused_tasks(self, dag: DAG) -> list[str]:
        """`task (Operator): reason` for each task of `dag` rtstream would not run."""
        return [f"task {t.task_id} ({type(t).__name__ if not t.is_mapped else t.cls.__name__}): "
                f"{t.unsupported_reason}" for t in dag.tasks if not t.runs_natively] + asset_conflicts(self.dags, dag)


def dag_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DagRefused(f"{path}: no such file or folder")
    found = []
    for p in sorted(path.rglob("*.py")):
        if any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(path).parts):
            continue
        head = p.read_bytes().lower()
        if b"airflow" in head and b"dag" in head:
            found.append(p)
    return found


def _where(exc: BaseException, file: Path) -> str:
    """`file:line` of the deepest frame of the DAG file in the traceback."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == file:
            line = frame.lineno
    return f"{file}:{line}" if line else str(file)


def _import_error(exc: BaseException, file: Path) -> str:
    if isinstance(exc, SystemExit):
        return f"{_where(exc, file)}: the DAG file called sys.exit({exc.code!r}) at import"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        return (f"{_where(exc, file)}: imports {exc.name!r}, which is not installed (pip install "
                f"{PIP_NAMES.get(top, top)}) nor a module beside the DAG file")
    if isinstance(exc, SyntaxError):
        return (f"{exc.filename or file}:{exc.lineno}: syntax error: {exc.msg} "
                f"(read by Python {sys.version_info.major}.{sys.version_info.minor})")
    return f"{_where(exc, file)}: {type(exc).__name__}: {exc}"


def load_file(file: Path, bag: DagBag, roots: list[Path], file_builtins: dict[str, Any] | None = None) -> None:
    for folder in [file.parent, *roots]:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
    name = f"unusual_prefix_{digest}_{file.stem}"  # Airflow's own naming, so files never clash
    dag_model.registered.clear()
    try:
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        if file_builtins is not None:  # the real Airflow is installed: the file's imports (bridge_imports)
            module.__dict__["__builtins__"] = file_builtins
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - whatever a DAG file does at import is the user's to fix
        if isinstance(exc, KeyboardInterrupt):
            raise
        sys.modules.pop(name, None)
        bag.import_errors[str(file)] = _import_error(exc, file)
        _last_exceptions[str(file)] = exc
        return
    major = file_major(file)
    found = [v for v in vars(module).values() if isinstance(v, DAG)] + list(dag_model.registered)
    found += subdags_of(found)  # a SubDagOperator's sub-DAG is a DAG of the file, as in Airflow's DagBag
    dag_model.registered.clear()
    seen: set[int] = set()
    for dag in found:
        if id(dag) in seen:
            continue
        seen.add(id(dag))
        dag.fileloc = str(file)
        dag.airflow_major = major
        if dag.dag_id in bag.dags and bag.dags[dag.dag_id] is not dag:
            bag.import_errors[str(file)] = (f"{file}: DAG id {dag.dag_id!r} is also defined in "
                                            f"{bag.dags[dag.dag_id].fileloc} (AirflowDagDuplicatedIdException)")
            continue
        try:
            topological_order(dag)
        except ValueError as exc:
            bag.import_errors[str(file)] = f"{file}: {exc}"
            continue
        bag.dags[dag.dag_id] = dag
        note_sla(dag)


def last_exception(file: str) -> BaseException | None:
    """The exception behind an import error (for --debug's traceback)."""
    return _last_exceptions.get(file)


def load(path: Path) -> DagBag:
    """Every DAG under `path`. rtstream's own `airflow` modules for what it runs natively; where the
    real Airflow is installed, its operators for the rest (rtstream.airflow.bridge_imports)."""
    bag = DagBag()
    path = path.resolve() if path.exists() else path
    files = dag_files(path)
    roots = [path] if path.is_dir() else []
    file_builtins = None
    if real_airflow.installed():
        from rtstream.airflow import bridge, bridge_imports

        real_airflow.load()
        file_builtins = bridge_imports.dag_file_builtins()
        sys.meta_path.insert(0, bridge_imports.BesideFinder(roots or [f.parent for f in files]))
    else:
        stand_in.install(first=True)
    with bridge.loading_dag_files() if file_builtins is not None else contextlib.nullcontext():
        for file in files:
            load_file(file, bag, roots, file_builtins)
    if not files:
        raise DagRefused(f"{path}: no DAG file found (a DAG file mentions both 'airflow' and 'dag')")
    return bag
