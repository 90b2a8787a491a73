"""Several pipelines in one config: the tables and the folder forms, each pipeline's own state folder, and
every problem under the key the user wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtstream.config.pipelines import load_pipelines
from rtstream.model.errors import ConfigError
from tests.support import run_cli

ORDERS = """
flow = "events >> per_user >> out"
[window]
size = "1m"
[sources.events]
type = "generator"
[stages.per_user]
type = "aggregate"
key = "user_id"
aggregates = { n = "count()" }
[sinks.out]
type = "file"
path = "out/orders"
"""


def _tables(tmp: Path, extra: str = "", body: str = ORDERS) -> Path:
    """A config of two pipelines, `orders` and `clicks`, as [pipelines.NAME] tables."""
    lines = [f"[daemon]\nstate_dir = \"state\"\nshutdown_grace = \"5s\"\n{extra}"]
    for name in ("orders", "clicks"):
        text = body.replace("out/orders", f"out/{name}")
        section = ""
        for line in text.strip().splitlines():
            if line.startswith("["):
                section = line.strip("[]")
                lines.append(f"[pipelines.{name}.{section}]")
            elif not section:
                lines.append(f"[pipelines.{name}]\n{line}" if line.startswith("flow") else line)
            else:
                lines.append(line)
    path = tmp / "many.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _problems(path: Path, *overrides: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        load_pipelines(path, list(overrides))
    return err.value.problems


def test_tables_give_each_pipeline_its_own_state_folder(tmp_path: Path) -> None:
    ps = load_pipelines(_tables(tmp_path))
    assert list(ps.pipelines) == ["orders", "clicks"]
    for name, settings in ps.pipelines.items():
        assert settings.root.pipeline.name == name
        assert settings.root.daemon.state_dir == str(tmp_path / "state" / "pipelines" / name)
        assert settings.root.daemon.shutdown_grace == 5.0  # the shared [daemon]
        assert settings.components["out"].config.path == str(tmp_path / "out" / name)  # type: ignore[attr-defined]
        assert settings.flow.sinks == ["out"]
    assert ps.daemon.state_dir == str(tmp_path / "state")


def test_problems_carry_the_full_dotted_key(tmp_path: Path) -> None:
    path = _tables(tmp_path, body=ORDERS.replace('size = "1m"', 'size = "soon"').replace(
        'type = "file"', 'type = "file"\nfsink = true'))
    problems = dict(_problems(path))
    for name in ("orders", "clicks"):
        assert problems[f"pipelines.{name}.window.size"].startswith("invalid duration"), problems
        assert problems[f"pipelines.{name}.sinks.out.fsink"].startswith("unknown key (did you mean 'fsync'?)")


def test_a_bad_flow_an_unknown_key_and_an_unsafe_name(tmp_path: Path) -> None:
    path = _tables(tmp_path, body=ORDERS.replace('flow = "events >> per_user >> out"', 'flow = "events >> nope"'))
    text = path.read_text() + '\n[pipelines.clicks.admin]\nlisten = "127.0.0.1:1"\n[pipelines."../up"]\nflow = "a"\n'
    path.write_text(text.replace("[pipelines.clicks]\n", "[pipelines.clicks]\nwindw = 1\n"))
    problems = _problems(path)
    keys = [k for k, _ in problems]
    assert any(k == "pipelines.orders.flow" and "'nope' is not defined" in r for k, r in problems), problems
    assert ("pipelines.clicks.windw", "unknown key (did you mean 'window'?) (a pipeline's keys: flow, python_path, "
            "window, sources, stages, sinks, dead_letter, state, defaults, alert; daemon, admin and dags are "
            "shared)") in problems
    assert "pipelines.clicks.admin" in keys
    assert any(k == "pipelines.'../up'" and "letters, digits" in r for k, r in problems), problems
    assert not any("up" in k and "state" in k for k in keys)


def test_shared_keys_are_checked_once_and_top_level_pipeline_keys_refused(tmp_path: Path) -> None:
    path = _tables(tmp_path, extra="queue_size = 0\nworkers = 2\n")
    path.write_text(path.read_text() + '\n[window]\nsize = "1m"\n')
    problems = _problems(path)
    assert [k for k, _ in problems].count("daemon.queue_size") == 1, problems
    assert any(k == "daemon.workers" and "one pipeline" in r for k, r in problems)
    assert any(k == "window" and "[pipelines.NAME.window]" in r for k, r in problems)


def test_overrides_reach_one_pipeline(tmp_path: Path) -> None:
    ps = load_pipelines(_tables(tmp_path), ["pipelines.clicks.window.size=5m", 'pipelines.orders.sinks.out.fsync=false',
                                            "daemon.commit_interval=1s"])
    assert ps.pipelines["clicks"].root.window.size == 300.0
    assert ps.pipelines["orders"].root.window.size == 60.0
    assert ps.pipelines["orders"].components["out"].config.fsync is False  # type: ignore[attr-defined]
    assert ps.pipelines["clicks"].components["out"].config.fsync is True  # type: ignore[attr-defined]
    assert all(s.root.daemon.commit_interval == 1.0 for s in ps.pipelines.values())
    assert dict(_problems(_tables(tmp_path), "pipelines.orders.window.size=x"))["pipelines.orders.window.size"]
    problems = _problems(_tables(tmp_path), 'pipelines.orders.flow="events >> out"')
    assert problems == [("pipelines.orders.stages.per_user", "defined but not used in pipelines.orders.flow")]


def test_a_folder_of_pipeline_files(tmp_path: Path) -> None:
    folder = tmp_path / "pipes"
    folder.mkdir()
    (folder / "orders.toml").write_text(ORDERS)
    (folder / "clicks.toml").write_text(ORDERS.replace("out/orders", "out/clicks").replace('"count()"', '"cnt()"'))
    (folder / "notes.txt").write_text("not a pipeline")
    config = tmp_path / "many.toml"
    config.write_text('pipelines = "pipes"\n[daemon]\nstate_dir = "state"\n')
    problems = _problems(config)
    assert [k for k, _ in problems] == ["pipelines.clicks.stages.per_user.aggregates"], problems
    (folder / "clicks.toml").write_text(ORDERS.replace("out/orders", "out/clicks"))
    ps = load_pipelines(config)
    assert list(ps.pipelines) == ["clicks", "orders"]  # by file name
    assert ps.pipelines["clicks"].components["out"].config.path == str(folder / "out" / "clicks")  # type: ignore[attr-defined]
    (folder / "bad name.toml").write_text(ORDERS)
    (folder / "broken.toml").write_text("flow = [")
    problems = _problems(config)
    assert any(k == "pipelines.'bad name'" for k, _ in problems), problems
    assert any(k == "pipelines.broken" and "invalid TOML" in r for k, r in problems), problems


def test_a_missing_folder_and_no_pipeline(tmp_path: Path) -> None:
    config = tmp_path / "many.toml"
    config.write_text('pipelines = "nowhere"\n')
    assert [k for k, _ in _problems(config)] == ["pipelines"]
    config.write_text("[pipelines]\n")
    assert _problems(config) == [("pipelines", "no pipeline: add a [pipelines.NAME] table")]


def test_validate_prints_every_pipeline_or_exits_2_with_dotted_keys(tmp_path: Path) -> None:
    path = _tables(tmp_path)
    done = run_cli("validate", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert "== pipeline orders" in done.stdout and "== pipeline clicks" in done.stdout
    path.write_text(path.read_text().replace('size = "1m"', 'size = "1 minute"', 1))
    done = run_cli("validate", "-c", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "  pipelines.orders.window.size: invalid duration" in done.stderr, done.stderr


KAFKA = """
flow = "events >> out"
[window]
size = "1m"
[sources.events]
type = "kafka"
bootstrap_servers = "127.0.0.1:9"
topics = ["t"]
group_id = "GROUP"
[sinks.out]
type = "file"
path = "out/orders"
"""


def test_two_pipelines_cannot_share_a_consumer_group_or_a_listen_address(tmp_path: Path) -> None:
    problems = _problems(_tables(tmp_path, body=KAFKA))
    assert problems == [("pipelines.clicks.sources.events.group_id", "the consumer group 'GROUP' is "
                         "pipelines.orders.sources.events's too: two pipelines in one group would each read part "
                         "of the partitions; give each its own group_id")]
    ingest = ORDERS.replace('type = "generator"', 'type = "http_ingest"\nlisten = "127.0.0.1:18080"')
    path = _tables(tmp_path, body=ingest)
    path.write_text(path.read_text() + '[admin]\nlisten = "127.0.0.1:18080"\n')
    problems = _problems(path)
    assert [k for k, _ in problems] == ["pipelines.orders.sources.events.listen", "pipelines.clicks.sources.events.listen"]
    assert all("is admin.listen already" in r for _, r in problems), problems


def test_odd_names_shapes_and_secrets(tmp_path: Path) -> None:
    config = tmp_path / "many.toml"
    config.write_text('pipelines = 5\n')
    assert _problems(config) == [("pipelines", "must be a folder of pipeline files (a string) or [pipelines.NAME] "
                                               "tables (got int)")]
    config.write_text('[pipelines]\n"ördérs" = { flow = "a" }\n"a/b" = { flow = "a" }\nlisted = [1, 2]\n'
                      '"" = { flow = "a" }\n')
    problems = _problems(config)
    assert [k for k, _ in problems] == ["pipelines.'ördérs'", "pipelines.'a/b'", "pipelines.''", "pipelines.listed"]
    assert problems[-1][1].startswith("must be a table")
    many = "".join(f'[pipelines.p{i}]\nflow = "a"\n' for i in range(65))
    config.write_text(many)
    assert _problems(config) == [("pipelines", "65 pipelines: one daemon runs at most 64")]
    secret = KAFKA.replace('group_id = "GROUP"', 'group_id = "GROUP"\nsasl_plain_password = 987654321')
    problems = _problems(_tables(tmp_path, body=secret))
    shown = "\n".join(f"{k}: {r}" for k, r in problems)
    assert "pipelines.orders.sources.events.sasl_plain_password" in shown and "987654321" not in shown, shown


def test_backfill_and_test_refuse_several_pipelines_in_one_line(tmp_path: Path) -> None:
    path = _tables(tmp_path)
    for args in (("backfill", "-c", str(path), "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z"),
                 ("test", "-c", str(path))):
        done = run_cli(*args)
        assert done.returncode == 2
        assert done.stderr.strip() == (f"rtstream {args[0]}: {path} holds several pipelines ([pipelines]); {args[0]} "
                                       "runs one: give it a config of that pipeline alone ([pipeline], [window], "
                                       "[sources.NAME] ...)"), done.stderr


def test_an_override_must_name_a_pipeline(tmp_path: Path) -> None:
    path = _tables(tmp_path)
    assert _problems(path, "pipelines.nope.window.size=5m") == [
        ("--set", "pipelines.nope.window.size: no pipeline 'nope' (pipelines: orders, clicks)")]
    assert _problems(path, 'pipelines="elsewhere"') == [
        ("--set", "pipelines: set one pipeline's key: pipelines.NAME.KEY=VALUE")]
    assert _problems(path, "pipelines.orders=1") == [
        ("--set", "pipelines.orders: set one pipeline's key: pipelines.NAME.KEY=VALUE")]
