"""An alias in a schedule stands for the assets events were added to through it (Airflow re-parses the
consumer to that effect): unresolved it holds for nothing, resolved it holds for those assets."""

from __future__ import annotations

from rtstream.airflow.asset_schedule import AssetId, consumes, evaluate
from rtstream.airflow.assets import Asset, AssetAlias, DatasetAlias

T: AssetId = ("s3://b/t", "s3://b/t")
OTHER: AssetId = ("o", "o")


def test_an_unresolved_alias_holds_for_nothing():
    assert not evaluate(AssetAlias("al"), {T}) and not consumes(AssetAlias("al"), T)
    assert not evaluate(AssetAlias("al"), {T}, {"other": {T}})


def test_a_resolved_alias_holds_for_its_assets_alone_and_in_conditions():
    aliases = {"al": {T}}
    assert evaluate(AssetAlias("al"), {T}, aliases) and consumes(AssetAlias("al"), T, aliases)
    assert not evaluate(AssetAlias("al"), {OTHER}, aliases) and not consumes(AssetAlias("al"), OTHER, aliases)
    assert evaluate(DatasetAlias("al"), {T}, aliases)  # Airflow 2.10's name
    both = AssetAlias("al") & Asset("o")
    assert not evaluate(both, {T}, aliases) and evaluate(both, {T, OTHER}, aliases)
    assert evaluate(AssetAlias("al") | Asset("o"), {OTHER}, aliases)
