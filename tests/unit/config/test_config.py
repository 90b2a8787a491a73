import pytest

from rtstream.config.load import interpolate, load_settings
from rtstream.model.errors import ConfigError

BASE = {
    "pipeline": {"name": "t", "flow": "src >> agg >> out"},
    "window": {"size": "5m"},
    "sources": {"src": {"type": "generator", "count": 10}},
    "stages": {"agg": {"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"}}},
    "sinks": {"out": {"type": "stdout"}},
}


def refused(doc, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_settings(doc=doc, overrides=list(overrides), env={})
    out: dict[str, str] = {}
    for key, reason in info.value.problems:
        out[key] = f"{out[key]}; {reason}" if key in out else reason
    return out


def deep(**changes):
    import copy

    doc = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = doc
        parts = path.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(parts[-1])
        else:
            node[parts[-1]] = value
    return doc


def test_valid():
    s = load_settings(doc=deep(), env={})
    assert str(s.flow) == "src >> agg >> out"
    assert s.root.window.size == 300


def test_bad_duration_names_key():
    assert refused(deep(window__size="five minutes")) == {
        "window.size": "invalid duration 'five minutes' (expected e.g. 250ms, 30s, 5m, 1m30s, 1h)"}


def test_unknown_key_and_type():
    p = refused(deep(window__sise="5m", sources__src__rat=3))
    assert p["window.sise"] == "unknown key (did you mean 'size'?)"  # the nearest known key
    assert p["sources.src.rat"] == "unknown key (did you mean 'rate'?)"


def test_wrong_type():
    p = refused(deep(sources__src__count="many"))
    assert "sources.src.count" in p and "'many'" in p["sources.src.count"]


def test_unknown_component_type_lists_known():
    p = refused(deep(sinks__out__type="kafkaa"))
    assert "unknown sink type 'kafkaa'" in p["sinks.out.type"] and "sqlite" in p["sinks.out.type"]


def test_flow_undefined_name_and_cycle():
    assert "'nope' is not defined" in refused(deep(pipeline__flow="src >> nope >> out"))["pipeline.flow"]
    # a name is one node of the flow's graph: used twice in a row it feeds itself
    assert "feeds itself: agg >> agg" in refused(deep(pipeline__flow="src >> agg >> agg >> out"))["pipeline.flow"]


def test_flow_order():
    assert "'out' is a sink: it feeds nothing" in refused(deep(pipeline__flow="src >> out >> agg"))["pipeline.flow"]


def test_schedule_alias_and_refusal():
    s = load_settings(doc=deep(window__size=None, window__schedule="*/5 * * * *"), env={})
    assert s.root.window.size == 300
    assert "unsupported schedule" in refused(deep(window__size=None, window__schedule="0 9 * * 1"))["window"]


def test_bad_aggregate():
    assert "unknown aggregate function 'median'" in refused(deep(stages__agg__aggregates={"m": "median(x)"}))[
        "stages.agg.aggregates"]


def test_python_call_must_import():
    doc = deep(pipeline__flow="src >> py >> out", stages__agg=None)
    doc["stages"]["py"] = {"type": "python", "call": "no_such_module_xyz:fn"}
    assert "cannot import module 'no_such_module_xyz'" in refused(doc)["stages.py.call"]


def test_source_time_needs_a_source_that_keeps_time():
    doc = deep(window__time="source", sources__src={"type": "file", "path": "/x"})
    assert "keeps no time of its own" in refused(doc)["window.time"]


def test_overrides_are_typed():
    s = load_settings(doc=deep(), overrides=["window.size=10s", "sources.src.count=500", "daemon.log_level=debug"], env={})
    assert s.root.window.size == 10 and s.components["src"].config.count == 500


def test_interpolation():
    env = {"HOST": "db", "EMPTY": ""}
    assert interpolate({"a": "${HOST}:5432", "b": "${PORT:-1}", "c": "$${HOST}", "d": ["${EMPTY}x"]}, env) == {
        "a": "db:5432", "b": "1", "c": "${HOST}", "d": ["x"]}
    with pytest.raises(ConfigError, match="sinks.x.dsn: environment variable DSN is not set"):
        interpolate({"sinks": {"x": {"dsn": "${DSN}"}}}, env)


def test_all_problems_reported_at_once():
    p = refused(deep(window__size="bad", sinks__out__format="xml"))
    assert {"window.size", "sinks.out.format"} <= set(p)


def test_yaml_config(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("pipeline:\n  name: y\n  flow: src >> agg >> out\nwindow:\n  schedule: '*/5 * * * *'\n"
                    "sources:\n  src: {type: generator, count: 10}\n"
                    "stages:\n  agg: {type: aggregate, key: user_id, aggregates: {n: count()}}\n"
                    "sinks:\n  out: {type: stdout}\n")
    s = load_settings(path, env={})
    assert s.root.pipeline.name == "y" and s.root.window.size == 300
    (tmp_path / "bad.yaml").write_text("pipeline: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(tmp_path / "bad.yaml", env={})


def test_shape_is_bounded_without_recursion():
    from rtstream.config.load import check_shape

    shared: list = ["x"] * 10
    for _ in range(6):
        shared = [shared] * 10  # 10**7 values once expanded, a few objects in memory
    with pytest.raises(ConfigError, match="more than 100,000 values"):
        check_shape({"a": shared})
    loop: dict = {}
    loop["b"] = [loop]
    with pytest.raises(ConfigError, match=r"b\[0\]\.b holds itself"):
        check_shape({"a": 1, "b": loop["b"]})
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    with pytest.raises(ConfigError, match="nested deeper than 32 levels"):
        load_settings(doc={**deep(), "x": nested}, env={})
    same = ["v"] * 3
    check_shape({"a": same, "b": same})  # shared, not cyclic: fine


def test_secret_values_are_never_in_reasons():
    p = refused(deep(admin={"token": 99999999}, alert={"url": "http://h/x", "bearer_token": ["s3cr3t-list"]}))
    assert p["admin.token"] == "Input should be a valid string (a secret: its value is not shown)"
    assert "s3cr3t" not in p["alert.bearer_token"]
    doc = deep(sinks__out={"type": "postgres", "dsn": 12345678, "table": "t"})
    assert "12345678" not in refused(doc)["sinks.out.dsn"]
    doc = deep(sinks__out={"type": "http", "url": "http://h/x", "headers": {"X-Api-Key": 4242424242}})
    assert "4242424242" not in refused(doc)["sinks.out.headers.X-Api-Key"]
    # not secrets: the value helps
    assert "(got 'many')" in refused(deep(sources__src__count="many"))["sources.src.count"]


def test_secret_keys_by_name_and_by_model():
    from pydantic import BaseModel, SecretStr

    from rtstream.config.problems import is_secret_key, mask_url_passwords

    class Inner(BaseModel):
        shh: SecretStr | None = None
        plain: str = ""

    class Outer(BaseModel):
        inner: Inner | None = None

    assert is_secret_key(["inner", "shh"], Outer) and not is_secret_key(["inner", "plain"], Outer)
    assert is_secret_key(["sasl_plain_password"]) and is_secret_key(["headers", "X-Anything"])
    assert not is_secret_key(["window", "size"])
    assert mask_url_passwords("bad 'postgresql://app:hunter2@db:5432/x'") == "bad 'postgresql://app:***@db:5432/x'"


def test_state_dir_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    p = refused(deep(daemon={"state_dir": str(tmp_path / "f" / "s")}))
    assert p == {"daemon.state_dir": f"'{tmp_path / 'f' / 's'}' cannot be created: {tmp_path / 'f'} is a file"}
    load_settings(doc=deep(daemon={"state_dir": str(tmp_path / "f" / "s")}), env={}, check_paths=False)


def test_every_problem_in_one_pass_with_the_nearest_names(tmp_path):
    src = tmp_path / "in.jsonl"
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pipeline]\nflow = "src >> per_usr >> out"\n[window]\nsize = "5m"\n'
                   '[sources.src]\ntype = "file"\npath = "in.jsonl"\nfolow = true\n'
                   '[stages.per_user]\ntype = "agregate"\n[sinks.out]\ntype = "stdout"\n'
                   '[daemon]\nstate_dir = "${NOT_SET_ANYWHERE}"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, check_inputs=True)
    p = dict(exc.value.problems)
    assert p["sources.src.folow"] == "unknown key (did you mean 'follow'?)"
    assert p["stages.per_user.type"].startswith("unknown stage type 'agregate' (did you mean 'aggregate'?)")
    assert p["pipeline.flow"] == "'per_usr' is not defined in [sources], [stages] or [sinks] (did you mean 'per_user'?)"
    assert p["daemon.state_dir"].startswith("environment variable NOT_SET_ANYWHERE is not set")
    assert p["sources.src.path"] == f"no such file {str(src)!r}"


def test_relative_paths_are_beside_the_config(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "in.jsonl").write_text("")
    cfg = tmp_path / "conf" / "c.toml"
    cfg.write_text('[pipeline]\nflow = "src >> out"\n[window]\nsize = "5m"\n'
                   '[sources.src]\ntype = "file"\npath = "in.jsonl"\n[sinks.out]\ntype = "sqlite"\npath = "db/o.db"\n'
                   'table = "t"\n[dead_letter]\npath = "dl.jsonl"\n')
    monkeypatch.chdir(tmp_path)
    s = load_settings(cfg, ["daemon.state_dir=here"], check_inputs=True)
    assert s.components["src"].config.path == str(tmp_path / "conf" / "in.jsonl")
    assert s.components["out"].config.path == str(tmp_path / "conf" / "db" / "o.db")
    assert s.root.dead_letter.path == str(tmp_path / "conf" / "dl.jsonl")
    assert s.root.daemon.state_dir == "here"  # typed on the command line: relative to where it was typed
    assert load_settings(cfg).root.daemon.state_dir == str(tmp_path / "conf" / "var" / "rtstream")


def test_an_unusable_state_dir_is_reported_with_the_other_problems(tmp_path):
    (tmp_path / "blocker").write_text("a file")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pipeline]\nflow = "src >> out"\n[window]\nsize = "5m"\n[sources.src]\ntype = "generator"\n'
                   'rat = 5\n[sinks.out]\ntype = "stdout"\n[daemon]\nstate_dir = "blocker/state"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    p = dict(exc.value.problems)
    assert p["sources.src.rat"] == "unknown key (did you mean 'rate'?)"
    assert "daemon.state_dir" in p and "is a file" in p["daemon.state_dir"]


def test_every_built_in_type_registers_from_the_module_the_registry_names():
    from rtstream.model.registry import _BUILTINS, lookup

    for kind, types in _BUILTINS.items():
        for type_name in types:
            cls = lookup(kind, type_name)
            assert cls is not None and cls.type_name == type_name, (kind, type_name)


def test_a_kafka_to_kafka_config_loads_without_the_http_stack(tmp_path):
    """Start-up imports what the config uses: no aiohttp, database driver or cloud client here."""
    import subprocess
    import sys

    cfg = tmp_path / "k.toml"
    cfg.write_text('[pipeline]\nflow = "src >> agg >> out"\n[window]\nsize = "5m"\n'
                   '[sources.src]\ntype = "kafka"\nbootstrap_servers = "127.0.0.1:9"\ntopics = ["t"]\ngroup_id = "g"\n'
                   '[stages.agg]\ntype = "aggregate"\naggregates = { n = "count()" }\n'
                   '[sinks.out]\ntype = "kafka"\nbootstrap_servers = "127.0.0.1:9"\ntopic = "o"\n')
    code = ("import sys; from rtstream.config.load import load_settings; load_settings(sys.argv[1]); "
            "print(sorted(m for m in ('aiohttp', 'asyncpg', 'aiobotocore', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
