"""Malformed configs are refused by the real CLI: exit 2, one line naming the file and the reason,
never a traceback; and a config error never shows a secret's value."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, rtstream_cmd, run_cli, to_toml

COMMANDS = ["validate", "run"]
GOOD = {
    "pipeline": {"name": "t", "flow": "src >> agg >> out"},
    "window": {"size": "5m"},
    "sources": {"src": {"type": "generator", "count": 10}},
    "stages": {"agg": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
    "sinks": {"out": {"type": "stdout"}},
}
GOOD_YAML = """\
pipeline: {name: t, flow: src >> agg >> out}
window: {size: 5m}
sources: {src: {type: generator, count: 10}}
stages: {agg: {type: aggregate, key: user_id, aggregates: {n: count()}}}
sinks: {out: {type: stdout}}
"""


def good_toml(tmp_path: Path, **daemon: str) -> str:
    doc = {**GOOD, "daemon": {"state_dir": str(tmp_path / "state"), **daemon}}
    return to_toml(doc)


def assert_refused(res: subprocess.CompletedProcess[str], path: Path, reason: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if reason in line]
    assert lines, res.stderr[-2000:]
    assert str(path) in res.stderr
    assert len(res.stderr) < 1000, "one short message, not a dump"


def bounded_cli(*args: str, memory: int = 1 << 30, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI with its address space capped: a runaway expansion fails (or is killed) instead of
    taking the machine's memory; the timeout bounds its time."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(rtstream_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          preexec_fn=cap)


def billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n" + GOOD_YAML


MALFORMED = {
    "deep.toml": ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "invalid TOML: nested too deeply"),
    "deep_inline.toml": ("a = " + "{b = " * 100_000 + "1" + "}" * 100_000 + "\n", "invalid TOML: nested too deeply"),
    "nested.toml": ("x = " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 32 levels"),
    "broken.toml": ("[pipeline\nname = 1\n", "invalid TOML"),
    "deep.yaml": ("a: " + "[" * 100_000 + "]" * 100_000 + "\n", "invalid YAML: nested too deeply"),
    "self.yaml": ("a: &a [1, *a]\n" + GOOD_YAML, "a[1] holds itself (a YAML alias inside its own anchor)"),
    "self_map.yaml": ("a: &a\n  b: *a\n" + GOOD_YAML, "a.b holds itself"),
    "laughs.yaml": (billion_laughs(), "more than 100,000 values once YAML aliases are expanded"),
    "tagged.yaml": ("a: !!python/object/apply:os.system [echo hi]\n" + GOOD_YAML, "invalid YAML at line 1"),
    "list.yaml": ("- 1\n- 2\n", "the top level must be a mapping"),
    "long_int.toml": ("a = " + "1" * 5000 + "\n", "invalid TOML: an integer of more than 4300 digits"),
    "long_int.yaml": ("a: " + "1" * 5000 + "\n" + GOOD_YAML, "invalid YAML: an integer of more than 4300 digits"),
    "nul.toml": (to_toml({**GOOD, "daemon": {"state_dir": "/tmp/st\0ate"}}),
                 "daemon.state_dir: a string holding a NUL character"),
    "hex_int.yaml": ("a: 0x" + "f" * 5000 + "\n" + GOOD_YAML, "a: an integer of 20000 bits is out of range"),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_file_exits_2_naming_it(tmp_path, command, name):
    text, reason = MALFORMED[name]
    path = tmp_path / name
    path.write_text(text)
    assert_refused(bounded_cli(command, "-c", str(path)), path, reason)


@pytest.mark.parametrize("command", COMMANDS)
def test_invalid_utf8_names_the_byte_and_line(tmp_path, command):
    path = tmp_path / "latin1.toml"
    path.write_bytes(good_toml(tmp_path).replace('name = "t"', 'name = "caf\xe9"').encode("latin-1"))
    assert_refused(run_cli(command, "-c", str(path)), path, "not valid UTF-8 (byte 0xe9 on line 2)")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_huge_file_is_not_read_whole(tmp_path, command):
    path = tmp_path / "huge.toml"
    path.write_text("# padding\n" * 500_000)
    assert_refused(run_cli(command, "-c", str(path)), path, "larger than 4 MB")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("value,reason", [("inf", "invalid duration inf (at most 10000 years)"),
                                          ("nan", "invalid duration nan (not a number)"),
                                          ("1e300", "invalid duration 1e+300 (at most 10000 years)"),
                                          ('"' + "9" * 400 + 'd"', "(at most 10000 years)"),
                                          ("0x" + "f" * 40, "an integer of 160 bits is out of range")])
def test_durations_that_cannot_be_milliseconds(tmp_path, command, value, reason):
    path = tmp_path / "c.toml"
    path.write_text(good_toml(tmp_path).replace('size = "5m"', f"size = {value}"))
    assert_refused(run_cli(command, "-c", str(path)), path, reason)


def test_a_directory_as_config(tmp_path):
    assert_refused(run_cli("validate", "-c", str(tmp_path)), tmp_path, "Is a directory")


def test_billion_laughs_is_refused_within_a_small_memory_cap(tmp_path):
    # 9**9 = 387 million strings if expanded; refused within 256 MB of address space... and the
    # same process without the refusal would grow to gigabytes (the issue saw 2 GB, then a hang)
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs())
    assert_refused(bounded_cli("validate", "-c", str(path), memory=768 << 20, timeout=30), path,
                   "an alias bomb")


def test_yaml_aliases_within_the_bound_still_work(tmp_path):
    # aliases are bounded, not banned: a merge key sharing settings is how YAML configs stay short
    path = tmp_path / "anchors.yaml"
    path.write_text(GOOD_YAML.replace("src >> agg >> out", "'src >> agg >> [out, summary]'")
                    .replace("sinks: {out: {type: stdout}}", "sinks:\n  out: &out {type: stdout}\n"
                                                              "  summary: {<<: *out, format: summary}"))
    res = run_cli("validate", "-c", str(path))
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_state_dir_under_a_file(tmp_path, command):
    (tmp_path / "afile").write_text("x")
    path = tmp_path / "c.toml"
    path.write_text(good_toml(tmp_path, state_dir=str(tmp_path / "afile" / "state")))
    res = run_cli(command, "-c", str(path))
    assert_refused(res, path, f"daemon.state_dir: '{tmp_path / 'afile' / 'state'}' cannot be created: "
                              f"{tmp_path / 'afile'} is a file")


def test_state_dir_that_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    path = tmp_path / "c.toml"
    path.write_text(good_toml(tmp_path, state_dir=str(tmp_path / "afile")))
    assert_refused(run_cli("run", "-c", str(path)), path, "is a file, not a directory")


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")


@pytest.fixture
def read_only_dir(tmp_path):
    mount = tmp_path / "ro"
    _mount_tmpfs(mount, "ro,size=1m")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def full_dir(tmp_path):
    mount = tmp_path / "full"
    _mount_tmpfs(mount, "size=64k")
    try:
        with open(mount / "filler", "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_state_dir_on_a_read_only_filesystem(tmp_path, read_only_dir, command):
    path = tmp_path / "c.toml"
    path.write_text(good_toml(tmp_path, state_dir=str(read_only_dir / "state")))
    assert_refused(run_cli(command, "-c", str(path)), path,
                   f"daemon.state_dir: '{read_only_dir / 'state'}' cannot be created: {read_only_dir} is on a "
                   "read-only filesystem")


@pytest.mark.parametrize("command", COMMANDS)
def test_state_dir_on_a_full_filesystem(tmp_path, full_dir, command):
    path = tmp_path / "c.toml"
    path.write_text(good_toml(tmp_path, state_dir=str(full_dir)))
    assert_refused(run_cli(command, "-c", str(path)), path,
                   f"daemon.state_dir: '{full_dir}' cannot be written: the filesystem of {full_dir} is full")


def test_dead_letter_directory_is_checked_too(tmp_path):
    (tmp_path / "afile").write_text("x")
    doc = {**GOOD, "daemon": {"state_dir": str(tmp_path / "state")},
           "dead_letter": {"path": str(tmp_path / "afile" / "dead.jsonl")}}
    path = tmp_path / "c.toml"
    path.write_text(to_toml(doc))
    assert_refused(run_cli("run", "-c", str(path)), path, "dead_letter.path:")


SECRET = 99999999


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("where", ["admin.token", "alert.bearer_token", "sinks.db.dsn", "sinks.hook.password",
                                   "sinks.hook.bearer_token", "sinks.hook.headers.Authorization"])
def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path, command, where):
    doc = {**GOOD, "pipeline": {"name": "t", "flow": "src >> agg >> [out, db, hook]"},
           "daemon": {"state_dir": str(tmp_path / "state")},
           "admin": {"listen": "127.0.0.1:0", "token": "a-good-token"},
           "alert": {"url": "http://127.0.0.1:9/alert"},
           "sinks": {"out": {"type": "stdout"},
                     "db": {"type": "postgres", "dsn": "postgresql://u:pw@127.0.0.1:9/x", "table": "t"},
                     "hook": {"type": "http", "url": "http://127.0.0.1:9/in"}}}
    node = doc
    parts = where.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = SECRET
    path = tmp_path / "c.toml"
    path.write_text(to_toml(doc))
    res = run_cli(command, "-c", str(path))
    assert_refused(res, path, f"{where}: Input should be a valid string (a secret: its value is not shown)")
    assert str(SECRET) not in res.stderr + res.stdout


def test_a_password_in_a_url_is_masked_in_reasons(tmp_path):
    doc = {**GOOD, "daemon": {"state_dir": str(tmp_path / "state")}, "alert": {"url": ["http://u:hunter22@h/x"]}}
    path = tmp_path / "c.toml"
    path.write_text(to_toml(doc))
    res = run_cli("validate", "-c", str(path))
    assert res.returncode == 2 and "alert.url" in res.stderr, res.stderr
    assert "hunter22" not in res.stderr
