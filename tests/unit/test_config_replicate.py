"""``replicate``: the list shorthand, ``{sites, min}``, a pipeline-wide default, and mistakes in each.

A quorum that cannot be met is a mistake in the file (exit 2 with its line), not a run that fails later;
the planner keeps pricing a replica to every listed site whatever ``min`` says.
"""

from __future__ import annotations

from pathlib import Path

from stratus.catalog import Catalog
from stratus.planner import plan
from tests.unit.test_config_errors import (
    PIPELINE,
    SITES_LISTED,
    assert_points_at,
    edit,
    error_of,
    line_of,
    load,
)

TRAIN = "    estimated_hours: 2\n"


def test_the_list_shorthand_means_every_listed_site(tmp_path: Path) -> None:
    _, pipeline = load(
        tmp_path, pipeline=edit(PIPELINE, TRAIN, TRAIN + "    replicate: [gcp-eu-west, onprem-eu]\n")
    )
    spec = pipeline.steps["train"].replicate
    assert (spec.sites, spec.min, spec.quorum) == (["gcp-eu-west", "onprem-eu"], None, 2)
    assert pipeline.steps["prep"].replicate.sites == []


def test_a_mapping_sets_the_quorum(tmp_path: Path) -> None:
    text = edit(PIPELINE, TRAIN, TRAIN + "    replicate: {sites: [gcp-eu-west, onprem-eu], min: 1}\n")
    _, pipeline = load(tmp_path, pipeline=text)
    spec = pipeline.steps["train"].replicate
    assert (spec.sites, spec.min, spec.quorum) == (["gcp-eu-west", "onprem-eu"], 1, 1)


def test_a_pipeline_wide_replicate_applies_to_steps_without_their_own(tmp_path: Path) -> None:
    text = edit(
        PIPELINE, "name: demo\n", "name: demo\nreplicate: {sites: [onprem-eu, gcp-eu-west], min: 1}\n"
    )
    text = edit(text, TRAIN, TRAIN + "    replicate: []\n")
    _, pipeline = load(tmp_path, pipeline=text)
    assert pipeline.steps["prep"].replicate.sites == ["onprem-eu", "gcp-eu-west"]
    assert pipeline.steps["prep"].replicate.quorum == 1
    assert pipeline.steps["train"].replicate.sites == []  # its own (empty) list wins


def test_the_planner_prices_a_replica_to_every_listed_site_whatever_min_says(tmp_path: Path) -> None:
    everywhere = edit(PIPELINE, TRAIN, TRAIN + "    replicate: [gcp-eu-west, onprem-eu]\n")
    quorum = edit(PIPELINE, TRAIN, TRAIN + "    replicate: {sites: [gcp-eu-west, onprem-eu], min: 1}\n")
    (tmp_path / "all").mkdir()
    (tmp_path / "one").mkdir()
    (tmp_path / "none").mkdir()
    platform, all_sites = load(tmp_path / "all", pipeline=everywhere)
    _, one_site = load(tmp_path / "one", pipeline=quorum)
    catalog = Catalog.bundled()
    assert (
        plan(one_site, platform, catalog).total_cost_usd == plan(all_sites, platform, catalog).total_cost_usd
    )


def test_min_above_the_listed_sites_points_at_the_replicate_line(tmp_path: Path) -> None:
    bad = edit(PIPELINE, TRAIN, TRAIN + "    replicate: {sites: [gcp-eu-west, gcp-eu-west], min: 2}\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "replicate:"),
        "steps.train.replicate",
        "replicate.min is 2 but only 1 distinct site(s) are listed; expected a number from 1 to 1",
    )


def test_min_zero_is_refused(tmp_path: Path) -> None:
    bad = edit(PIPELINE, TRAIN, TRAIN + "    replicate:\n      sites: [gcp-eu-west]\n      min: 0\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(err, tmp_path / "pipeline.yaml", line_of(bad, "min: 0"), "steps.train.replicate.min")
    assert "greater than 0" in str(err)


def test_an_unknown_site_in_the_mapping_form_points_at_its_own_line(tmp_path: Path) -> None:
    bad = edit(
        PIPELINE, TRAIN, TRAIN + "    replicate:\n      sites:\n        - gcp-eu-west\n        - mars\n"
    )
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "- mars"),
        "steps.train.replicate.sites[1]",
        f"unknown site 'mars'; the platform's sites are: {SITES_LISTED}",
    )


def test_an_unknown_site_in_the_pipeline_wide_replicate_points_at_it(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "name: demo\n", "name: demo\nreplicate: [onprem-eu, mars]\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "mars"),
        "replicate[1]",
        f"unknown site 'mars'; the platform's sites are: {SITES_LISTED}",
    )


def test_an_unknown_key_in_replicate_lists_the_allowed_ones(tmp_path: Path) -> None:
    bad = edit(PIPELINE, TRAIN, TRAIN + "    replicate: {sites: [onprem-eu], quorum: 1}\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(err, tmp_path / "pipeline.yaml", line_of(bad, "quorum"), "steps.train.replicate.quorum")
    assert "expected one of: sites, min" in str(err)
