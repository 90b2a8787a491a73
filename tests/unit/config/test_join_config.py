"""A join's or keyed stage's config: each mistake refused with its dotted key and a reason."""

import pytest

from rtstream.config.load import load_settings
from rtstream.model.errors import ConfigError
from tests.support import run_cli, write_config


def doc(stage, flow="[orders, payments] >> j >> out"):
    return {
        "pipeline": {"name": "t", "flow": flow},
        "window": {"size": "1m"},
        "sources": {"orders": {"type": "generator", "count": 10}, "payments": {"type": "generator", "count": 10}},
        "stages": {"j": stage},
        "sinks": {"out": {"type": "stdout"}},
    }


def refused(d):
    with pytest.raises(ConfigError) as info:
        load_settings(doc=d, overrides=[], env={})
    return dict(info.value.problems)


JOIN = {"type": "join", "left": "orders", "right": "payments", "on": "user_id"}


def test_a_valid_join_loads_and_its_parts_are_wired():
    from rtstream.runtime.build import build_parts

    settings = load_settings(doc=doc(JOIN), overrides=[], env={})
    parts = build_parts(settings)
    assert [s.name for s in parts.window_stages] == ["j"]
    assert [s.name for s in parts.record_stages] == ["j"]  # its per-record part marks each row's side
    assert parts.engine.steps == [parts.window_stages[0].tagger]


@pytest.mark.parametrize("stage, key, reason", [
    (dict(JOIN, left="nope"), "stages.j.left", "'nope' is not an input of 'j' in pipeline.flow (its inputs: orders, payments)"),
    (dict(JOIN, on=None), "stages.j", "give on (the key field both sides share), or left_on and right_on"),
    (dict(JOIN, left_on="a"), "stages.j", "give either on, or left_on and right_on, not both"),
    (dict(JOIN, right="orders"), "stages.j", "left and right name the same source 'orders'"),
    (dict(JOIN, how="outer"), "stages.j.how", "'inner'"),
    (dict(JOIN, window={"size": "5m"}), "stages.j.window", "a join's own window is not supported yet"),
    (dict(JOIN, max_rows=0), "stages.j.max_rows", "greater than 0"),
    (dict(JOIN, left_fields=[]), "stages.j.left_fields", "name at least one field"),
    (dict(JOIN, right_fields=["paid", " "]), "stages.j.right_fields", "a field name must not be blank, got ' '"),
    (dict(JOIN, left_fields=["a", "b", "a"]), "stages.j.left_fields", "'a' named more than once"),
    (dict(JOIN, right_fields="paid"), "stages.j.right_fields", "valid list"),
    (dict(JOIN, type="interval_join", lower="5m", upper="-1m"), "stages.j", "lower (300s) must not be above upper (-60s)"),
    (dict(JOIN, type="interval_join", lower=5, upper="1m"), "stages.j.lower", "a duration needs a unit"),
    ({"type": "table_join", "stream": "orders", "table": "users", "on": "id"}, "stages.j.table",
     "'users' is not a source of the flow"),
    ({"type": "table_join", "stream": "orders", "table": "payments", "on": "id", "ttl": "soon"}, "stages.j.ttl",
     "invalid duration"),
    ({"type": "keyed", "key": "k", "function": "no_colon"}, "stages.j.function", "must look like 'package.module:function'"),
])
def test_mistakes_are_refused_with_the_key(stage, key, reason):
    problems = refused(doc(stage))
    assert key in problems and reason in problems[key], problems


def test_a_window_join_over_sessions_and_state_beside_an_awaiting_lookup_are_refused():
    d = doc(JOIN)
    d["window"] = {"type": "session", "gap": "5m"}
    assert refused(d)["stages.j"] == "a window join needs tumbling or hopping windows, not sessions"
    d = doc({"type": "keyed", "key": "k", "function": "tests.unit.engine.test_keyed_state:running_total"},
            flow="[orders, payments] >> j >> names >> out")
    d["stages"]["names"] = {"type": "lookup", "from": "sqlite", "dsn": "sqlite:///x.db", "query": "select name from t where id = :key", "key": "k"}
    problems = refused(d)
    assert "stages.j" in problems and "cannot run yet beside 'names'" in problems["stages.j"], problems


def test_the_daemon_says_a_bad_join_in_one_line_with_exit_2(tmp_path):
    cfg = write_config(tmp_path / "bad.toml", doc(dict(JOIN, right="payment", left_fields=["id", "id"])))
    res = run_cli("validate", "-c", str(cfg), timeout=60)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "stages.j.right: 'payment' is not an input of 'j' in pipeline.flow" in res.stderr
    assert "stages.j.left_fields: 'id' named more than once" in res.stderr


def test_a_field_the_nexmark_source_never_has_is_refused_at_validate():
    d = doc(dict(JOIN, left="auctions", right="bids", on=None, left_on="id", right_on="auction",
                 left_fields=["id", "category", "expires"], right_fields=["price", "bidr"]),
            flow="[auctions, bids] >> j >> out")
    d["sources"] = {"auctions": {"type": "nexmark", "events": 10, "only": ["auction"]},
                    "bids": {"type": "nexmark", "events": 10, "only": ["bid"]}}
    problems = refused(d)
    assert list(problems) == ["stages.j.right_fields"]
    assert problems["stages.j.right_fields"].startswith("'bidr': no such field in the rows of 'bids' (they have auction, ")
    d["stages"]["j"]["left_fields"] = ["id", "price"]  # a bid's field, not an auction's
    assert "'price': no such field in the rows of 'auctions'" in refused(d)["stages.j.left_fields"]
