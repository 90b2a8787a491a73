"""The asset events of a run's context in Airflow's shapes: `triggering_asset_events` (Airflow 3's
accessor: keyed by Asset, Dataset, Asset.ref, alias), `triggering_dataset_events` (2.10: by URI) and
`inlet_events` read through the daemon's reader."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rtstream.airflow.asset_event_values import (
    AliasValue,
    AssetEventValue,
    AssetRefValue,
    TriggeringAssetEvents,
    triggering_dataset_events,
)
from rtstream.airflow.asset_events import InletEventsAccessors
from rtstream.airflow.assets import Asset, AssetAlias, Dataset

T = datetime(2026, 1, 1, tzinfo=UTC)


def ev(name: str, uri: str, n: int, aliases: tuple[str, ...] = ()) -> AssetEventValue:
    return AssetEventValue(AssetRefValue(name, uri), {"n": n}, "producer", "emit", "r1", -1, T,
                           [AliasValue(a) for a in aliases], id=n)


EVENTS = [ev("orders", "s3://b/orders", 1), ev("s3://b/x", "s3://b/x", 2, ("al",)), ev("orders", "s3://b/orders", 3)]


def test_triggering_asset_events_by_asset_ref_dataset_and_alias():
    acc = TriggeringAssetEvents(EVENTS)
    assert [e.extra["n"] for e in acc[Asset(name="orders", uri="s3://b/orders")]] == [1, 3]
    assert [e.extra["n"] for e in acc[Asset.ref(name="orders")]] == [1, 3]
    assert [e.extra["n"] for e in acc[Asset.ref(uri="s3://b/orders")]] == [1, 3]
    assert [e.extra["n"] for e in acc[Dataset("s3://b/x")]] == [2]
    assert [e.extra["n"] for e in acc[AssetAlias("al")]] == [2]
    assert acc[Asset("nothing")] == [] and acc[Asset.ref(name="nothing")] == []
    assert list(acc) == [Asset(name="orders", uri="s3://b/orders"), Asset("s3://b/x"), AssetAlias("al")]
    assert len(acc) == 3
    with pytest.raises(TypeError, match="either an asset or an asset alias"):
        acc["orders"]
    e = acc[Asset(name="orders", uri="s3://b/orders")][0]
    assert (e.asset.name, e.asset.uri, e.source_dag_id, e.source_task_id, e.source_run_id, e.timestamp) == (
        "orders", "s3://b/orders", "producer", "emit", "r1", T)
    assert e.dataset.uri == e.uri == "s3://b/orders"  # 2.10's DatasetEvent spellings


def test_triggering_dataset_events_by_uri():
    got = triggering_dataset_events(EVENTS)
    assert sorted(got) == ["s3://b/orders", "s3://b/x"]
    assert [e.extra["n"] for e in got["s3://b/orders"]] == [1, 3] and got["unknown"] == []


def test_inlet_events_read_through_the_reader_and_empty_without_one():
    asked = []

    def reader(name, uri, alias):
        asked.append((name, uri, alias))
        return [name, uri, alias]

    inlets = [Asset(name="orders", uri="s3://b/orders"), Dataset("s3://b/x")]
    acc = InletEventsAccessors(inlets, reader)
    acc[0], acc[1], acc[AssetAlias("al")], acc[Asset.ref(uri="u")], acc["s3://b/y"]
    acc.for_asset(name="n"), acc.for_asset_alias(name="al2")
    assert asked == [("orders", "s3://b/orders", None), (None, "s3://b/x", None), (None, None, "al"),
                     (None, "u", None), (None, "s3://b/y", None), ("n", None, None), (None, None, "al2")]
    assert InletEventsAccessors(inlets)[0] == [] and list(InletEventsAccessors(inlets)) == inlets
