"""The flow as a graph (rtstream.config.graph): several chains, one node per name, fan-out and fan-in,
the refusals (loops with their path, unused and unreachable nodes, a join's sides), the drawing
`rtstream validate` prints, and the Python API's several chains."""

import subprocess
import sys

import pytest

from rtstream import SinkNode, SourceNode, StageNode
from rtstream.config.branches import Branch, plan_branches
from rtstream.config.graph import build_graph, flow_of, join_side_source, parse_chains
from rtstream.config.load import load_settings
from rtstream.model.errors import ConfigError
from rtstream.run.pipeline import Pipeline
from tests.support import write_config
from tests.unit.config.test_config import deep, refused

KINDS = {"bids": "source", "per_auction": "stage", "hottest": "stage", "top_out": "sink",
         "per_bidder": "stage", "bidder_out": "sink"}
NEXMARK = """
bids >> per_auction >> hottest >> top_out
bids >> per_bidder >> bidder_out
"""


def problems(text, kinds=KINDS, sections=None):
    with pytest.raises(ConfigError) as info:
        flow_of(text, kinds, sections)
    return info.value.problems


def test_one_chain_is_the_flow_it_always_was():
    flow = flow_of("a >> b >> [c, d]", {"a": "source", "b": "stage", "c": "sink", "d": "sink"})
    assert (flow.sources, flow.stages, flow.sinks) == (["a"], ["b"], ["c", "d"])
    assert str(flow) == "a >> b >> [c, d]" and not flow.branched
    two = flow_of("[a, e] >> b >> c", {"a": "source", "e": "source", "b": "stage", "c": "sink"})
    assert (two.sources, two.stages, two.sinks) == (["a", "e"], ["b"], ["c"]) and not two.branched


def test_a_chain_written_over_several_lines_is_still_one_chain():
    kinds = {"a": "source", "b": "stage", "c": "stage", "d": "sink"}
    flow = flow_of("a >> b\nb >> c  # the second half\n\nc >> d", kinds)
    assert (flow.sources, flow.stages, flow.sinks) == (["a"], ["b", "c"], ["d"]) and not flow.branched
    assert flow_of("a >> b; b >> c >> d", kinds).stages == ["b", "c"]


def test_a_source_named_in_two_chains_is_one_node_that_fans_out():
    flow = flow_of(NEXMARK, KINDS)
    g = flow.graph
    assert flow.branched and flow.sources == ["bids"]
    assert g.outputs("bids") == ["per_auction", "per_bidder"]
    assert g.branches() == [["bids", "per_auction", "hottest", "top_out"], ["bids", "per_bidder", "bidder_out"]]
    assert str(flow) == "bids >> per_auction >> hottest >> top_out; bids >> per_bidder >> bidder_out"
    assert plan_branches(g) == [Branch(["bids"], ["per_auction", "hottest"], ["top_out"]),
                                Branch(["bids"], ["per_bidder"], ["bidder_out"])]


def test_fan_in_after_stages_is_a_graph():
    kinds = {"a": "source", "b": "source", "ma": "stage", "mb": "stage", "out": "sink"}
    flow = flow_of("a >> ma >> out\nb >> mb >> out", kinds)
    assert flow.branched and flow.graph.inputs("out") == ["ma", "mb"]
    assert flow.graph.draw() == ("graph      2 branches (2 sources, 2 stages, 1 sinks)\n"
                                 "  a >> ma >> out (also from mb)\n"
                                 "  b >> mb >> out (also from ma)")


def test_the_drawing_of_a_fan_out():
    assert flow_of(NEXMARK, KINDS).graph.draw() == (
        "graph      2 branches (1 sources, 3 stages, 2 sinks)\n"
        "  bids >> per_auction >> hottest >> top_out\n"
        "  bids >> per_bidder >> bidder_out\n"
        "  bids fans out to per_auction, per_bidder")


def test_a_loop_is_refused_with_its_path():
    kinds = {"s": "source", "a": "stage", "b": "stage", "c": "stage", "out": "sink"}
    got = problems("s >> a >> b >> c >> out\nc >> a", kinds)
    assert ("pipeline.flow", "the flow loops back: a >> b >> c >> a") in got
    assert ("pipeline.flow", "'a' feeds itself: a >> a") in problems("s >> a >> a >> out", kinds | {"b": "stage"})


def test_unused_and_unreachable_nodes_are_refused():
    got = problems("bids >> per_auction >> hottest >> top_out", KINDS)
    assert ("stages.per_bidder", "defined but not used in pipeline.flow") in got
    assert ("sinks.bidder_out", "defined but not used in pipeline.flow") in got
    kinds = {"s": "source", "a": "stage", "b": "stage", "out": "sink", "out2": "sink"}
    got = problems("s >> a >> out\nb >> out2", kinds)
    assert ("pipeline.flow", "'b' is reached from no source (add e.g. 'SOURCE >> b')") in got
    got = problems("s >> a >> out\ns >> b", {"s": "source", "a": "stage", "b": "stage", "out": "sink"})
    assert ("pipeline.flow", "'b' leads to no sink (add e.g. 'b >> SINK')") in got


def test_sources_take_no_input_and_sinks_feed_nothing():
    kinds = {"s": "source", "t": "source", "out": "sink", "o2": "sink"}
    got = problems("s >> t >> out", kinds | {"o2": "sink"})
    assert ("pipeline.flow", "'t' is a source: nothing can feed it (it is after 's')") in got
    got = problems("s >> out >> o2\nt >> o2", kinds)
    assert ("pipeline.flow", "'out' is a sink: it feeds nothing (it is before 'o2')") in got


def test_a_join_names_its_sides_by_its_inputs():
    kinds = {"orders": "source", "payments": "source", "paid": "stage", "out": "sink", "clean": "stage"}
    text = "orders >> paid\npayments >> clean >> paid\npaid >> out"
    ok = {"paid": {"type": "join", "left": "orders", "right": "clean"}}
    assert build_graph(parse_chains(text), kinds, ok).inputs("paid") == ["orders", "clean"]
    by_source = {"paid": {"type": "join", "left": "orders", "right": "payments"}}  # clean is payments' own stage
    graph = build_graph(parse_chains(text), kinds, by_source)  # accepted
    assert [join_side_source(graph, "paid", n) for n in ("orders", "clean", "payments")] == ["orders", "payments",
                                                                                            "payments"]
    bad = {"paid": {"type": "join", "left": "orders", "right": "out"}}
    assert problems(text, kinds, bad) == [
        ("stages.paid.right", "'out' is not an input of 'paid' in pipeline.flow (its inputs: orders, clean)")]
    same = {"paid": {"type": "join", "left": "orders", "right": "orders"}}
    assert ("stages.paid.right", "the same input as left ('orders'): a join needs two (or, for one input's two "
            "kinds of rows, left_where and right_where)") in problems(text, kinds, same)
    split = {"paid": {**same["paid"], "left_where": "kind = 'o'", "right_where": "kind = 'p'"}}
    build_graph(parse_chains(text), kinds, split)  # accepted: one input's two kinds of rows
    three = "orders >> paid\npayments >> clean >> paid\npayments >> paid\npaid >> out"
    assert problems(three, kinds, ok) == [
        ("pipeline.flow", "'paid' is a join of 'orders' and 'clean'; 'payments' cannot feed it too")]


@pytest.mark.parametrize("text, reason", [
    ("", "the flow is empty"),
    ("# only a comment\n;;", "the flow is empty"),
    ("bids", "a chain needs at least two steps"),
    ("bids >> >> out", "invalid step ''"),
    ("bids >> [] >> out", "invalid step '[]'"),
    ("bids >> ../../etc >> out", "invalid step '../../etc'"),
    ("bids >> per\x00auction >> out", "invalid step"),
    ("bids >> " + "x" * 5000 + " >> out", "is not defined"),
])
def test_odd_flows_get_one_clear_reason(text, reason):
    got = problems(text)
    assert any(reason in r for _, r in got), got
    assert all(len(r) < 400 for _, r in got)  # a huge name is cut, never echoed whole


def test_a_huge_flow_is_refused_not_walked():
    kinds = {f"n{i}": "stage" for i in range(1200)} | {"s": "source", "o": "sink"}
    text = "s >> " + " >> ".join(f"n{i}" for i in range(1200)) + " >> o"
    assert problems(text, kinds) == [("pipeline.flow", "the flow names 1202 components; at most 1000 are supported")]


def test_a_deep_chain_of_stages_is_checked_without_recursion_limits():
    kinds = {f"n{i}": "stage" for i in range(990)} | {"s": "source", "o": "sink"}
    text = "s >> " + " >> ".join(f"n{i}" for i in range(990)) + " >> o"
    assert len(flow_of(text, kinds).stages) == 990
    looped = text + "\nn989 >> n0"
    assert problems(looped, kinds)[0][1].startswith("the flow loops back: n0 >> n1 >> ")


def test_many_diamonds_draw_a_bounded_number_of_branches():
    kinds = {"s": "source", "o": "sink"} | {f"{x}{i}": "stage" for i in range(20) for x in "ab"} | \
        {f"m{i}": "stage" for i in range(21)}
    text = "s >> m0\n" + "\n".join(f"m{i} >> [a{i}, b{i}] >> m{i + 1}" for i in range(20)) + "\nm20 >> o"
    drawing = flow_of(text, kinds).graph.draw()  # 2**20 paths: drawn up to the bound
    assert drawing.startswith("graph      100 branches") and "... more branches than drawn" in drawing


def test_a_config_with_branches_is_validated_and_drawn(tmp_path):
    doc = deep(pipeline__flow="src >> agg >> out\nsrc >> agg2 >> out2", state={"checkpoint_interval": "1s"},
               stages__agg2={"type": "aggregate", "aggregates": {"n": "count()"},
                             "window": {"type": "hopping", "size": "10s", "hop": "5s"}},
               sinks__out2={"type": "stdout"})
    s = load_settings(doc=doc, env={})
    assert s.flow.branched and s.flow.graph.branches()[1] == ["src", "agg2", "out2"]
    assert s.root.window.size == 300  # [window] stays the default; agg2's window is its branch's
    val = subprocess.run([sys.executable, "-m", "rtstream", "validate", "-c", str(write_config(tmp_path / "g.toml", doc))],
                         capture_output=True, text=True, timeout=60)
    assert val.returncode == 0, val.stderr
    assert "graph      2 branches (1 sources, 2 stages, 2 sinks)\n  src >> agg >> out\n  src >> agg2 >> out2\n" \
        "  src fans out to agg, agg2" in val.stdout
    assert "  agg: tumbling 5m, event time" in val.stdout and "  agg2: hopping 10s every 5s, event time" in val.stdout
    del doc["state"]
    assert refused(doc)["state.checkpoint_interval"].startswith("a flow of several branches needs it")


@pytest.mark.parametrize("text, reason", [
    ("src >> agg >> out\nsrc >> agg2 >> out", "sink 'out' is fed by branches keyed apart ('agg' by user_id, 'agg2' "
                                              "by nothing): the sink upserts by (window_start, branch, key)"),
    ("src >> agg >> out2 >> [agg2, out]", "'out2' is a sink: it feeds nothing"),
    ("src >> agg >> agg2 >> out\nsrc >> agg2\nagg >> out2", "'agg2' merges agg, src: a fan-in after a stage is not "
                                                            "run yet, but after a source's own per-record stages"),
    ("src >> agg >> out\nsrc >> out", "sink 'out' is fed by several branches, and 'src''s rows have no key"),
])
def test_shapes_not_run_yet_are_refused_with_the_reason(text, reason):
    doc = deep(pipeline__flow=text, state={"checkpoint_interval": "1s"},
               stages__agg2={"type": "aggregate", "aggregates": {"n": "count()"}}, sinks__out2={"type": "stdout"})
    for section in ("stages", "sinks"):  # only what the flow names
        doc[section] = {n: body for n, body in doc[section].items() if n in text}
    got = refused(doc)
    assert any(reason in why for why in got.values()), got


def test_a_sink_fed_by_two_branches_keyed_alike_is_valid():
    doc = deep(pipeline__flow="src >> agg >> out\nsrc >> agg2 >> out", state={"checkpoint_interval": "1s"},
               stages__agg2={"type": "aggregate", "key": "user_id", "aggregates": {"n": "count()"},
                             "window": {"size": "1h"}})
    s = load_settings(doc=doc, env={})
    from rtstream.config.shared_sinks import shared_sink_keys

    assert shared_sink_keys(s.root, s.flow, s.components) == {"out": ["branch", "user_id"]}
    assert [b.name for b in plan_branches(s.flow.graph)] == ["agg", "agg2"]


def test_a_window_fan_out_runs_after_one_aggregate_only():
    ok = deep(pipeline__flow="src >> agg >> [agg2, out]\nagg2 >> out2", state={"checkpoint_interval": "1s"},
              stages__agg2={"type": "aggregate", "aggregates": {"n": "count()"}}, sinks__out2={"type": "stdout"})
    s = load_settings(doc=ok, env={})
    assert [(b.trunk, b.stages, b.sinks) for b in plan_branches(s.flow.graph)] == [
        (["agg"], ["agg2"], ["out2"]), (["agg"], [], ["out"])]
    bad = deep(pipeline__flow="src >> agg >> agg2 >> [agg3, out]\nagg3 >> out2", state={"checkpoint_interval": "1s"},
               stages__agg2={"type": "aggregate", "aggregates": {"n": "count()"}},
               stages__agg3={"type": "aggregate", "aggregates": {"m": "count()"}}, sinks__out2={"type": "stdout"})
    assert "'agg2' follows the aggregate 'agg' before a fan-out" in refused(bad)["pipeline.flow"]


def test_a_per_record_stage_feeding_several_branches_is_their_trunk():
    doc = deep(pipeline__flow="src >> clean >> [agg, agg2]\nagg >> out\nagg2 >> out2\nclean >> raw",
               state={"checkpoint_interval": "1s"}, stages__clean={"type": "map", "call": "json:loads"},
               stages__agg2={"type": "aggregate", "aggregates": {"n": "count()"}}, sinks__out2={"type": "stdout"},
               sinks__raw={"type": "stdout"})
    s = load_settings(doc=doc, env={})
    assert [(b.trunk, b.stages, b.sinks) for b in plan_branches(s.flow.graph)] == [
        (["clean"], ["agg"], ["out"]), (["clean"], ["agg2"], ["out2"]), (["clean"], [], ["raw"])]
    assert [b.name for b in plan_branches(s.flow.graph)] == ["agg", "agg2", "clean"]
    keyed = deep(pipeline__flow="src >> k >> [agg, agg2]\nagg >> out\nagg2 >> out2", state={"checkpoint_interval": "1s"},
                 stages__k={"type": "keyed", "key": "user_id", "function": "json:loads"},
                 stages__agg2={"type": "aggregate", "aggregates": {"n": "count()"}}, sinks__out2={"type": "stdout"})
    assert "cannot run before a fan-out yet" in refused(keyed)["stages.k"]


def test_validate_draws_the_graph_of_a_chain(tmp_path):
    cfg = write_config(tmp_path / "c.toml", deep())
    val = subprocess.run([sys.executable, "-m", "rtstream", "validate", "-c", str(cfg)], capture_output=True,
                         text=True, timeout=60)
    assert val.returncode == 0, val.stderr
    assert "graph      1 branch (1 sources, 1 stages, 1 sinks)\n  src >> agg >> out\n" in val.stdout


def test_the_old_refusals_still_read_well():
    assert "feeds itself" in refused(deep(pipeline__flow="src >> agg >> agg >> out"))["pipeline.flow"]


def test_the_python_api_builds_several_chains():
    bids = SourceNode("bids", "generator", count=10)
    per_a = StageNode("per_auction", "aggregate", key="user_id", aggregates={"n": "count()"})
    per_b = StageNode("per_bidder", "aggregate", aggregates={"n": "count()"})
    p = Pipeline([bids >> per_a >> SinkNode("a_out", "stdout"), bids >> per_b >> SinkNode("b_out", "stdout")],
                 state={"checkpoint_interval": "1s"})
    doc = p.config()
    assert doc["pipeline"]["flow"] == "bids >> per_auction >> a_out\nbids >> per_bidder >> b_out"
    assert sorted(doc["sources"]) == ["bids"] and sorted(doc["sinks"]) == ["a_out", "b_out"]
    flow = p.settings().flow
    assert flow.graph.outputs("bids") == ["per_auction", "per_bidder"]
    other = SourceNode("bids", "generator", count=99)
    with pytest.raises(ValueError, match="two different nodes are named 'bids'"):
        Pipeline([bids >> per_a >> SinkNode("a_out", "stdout"), other >> per_b >> SinkNode("b_out", "stdout")]).config()


def test_a_sources_own_stages_before_the_sources_meet():
    kinds = {"orders": "source", "clicks": "source", "purchases": "stage", "per_user": "stage", "out": "sink"}
    flow = flow_of("orders >> purchases >> per_user >> out\nclicks >> per_user", kinds)
    assert not flow.branched and flow.prefixes == {"orders": ["purchases"]}
    assert (flow.sources, flow.stages, flow.sinks) == (["orders", "clicks"], ["purchases", "per_user"], ["out"])
    assert flow.graph.draw().splitlines()[1:3] == ["  orders >> purchases >> per_user (also from clicks) >> out",
                                                   "  clicks >> (per_user) ..."]
    sides = {"per_user": {"type": "join", "left": "purchases", "right": "clicks"}}
    assert build_graph(parse_chains("orders >> purchases >> per_user >> out\nclicks >> per_user"), kinds, sides)
    doc = deep(pipeline__flow="src >> agg2 >> agg >> out\nsrc2 >> agg", sources__src2={"type": "generator", "count": 5},
               stages__agg2={"type": "aggregate", "aggregates": {"n": "count()"}})
    assert refused(doc) == {"stages.agg2": "runs on 'src''s records only, before the sources meet: it must be a "
                                           "per-record stage (map, lookup)"}
