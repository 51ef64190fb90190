"""Bad platform and pipeline files: every mistake is a ConfigError that says file:line:column, the field
path and what was expected. Each test writes one small bad file, so the message a user would see is
the thing asserted.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratus.config import Pipeline, Platform, load_pipeline, load_platform, resolve_platform_path
from stratus.errors import ConfigError
from stratus.resources import Accelerator

PLATFORM = """\
sites:
  aws-us-east:
    provider: aws
    region: us-east-1
    storage: s3://stratus-us/data
  gcp-eu-west:
    provider: gcp
    region: europe-west4
    storage: gs://stratus-eu/data
  onprem-eu:
    provider: onprem
    region: frankfurt-dc1
    jurisdiction: EU
    storage: file:///srv/stratus
    compute:
      backend: local
      capacity: {vcpus: 16, memory_gb: 64, accelerators: {L4: 1}}
    offerings:
      - {name: gpu-node, vcpus: 16, memory_gb: 64, accelerators: "L4:1", price_per_hour_usd: 0.95}
      - name: cpu-node
        vcpus: 16
        memory_gb: 64
        price_per_hour_usd: 0.35
egress:
  - {from: gcp-eu-west, to: onprem-eu, usd_per_gb: 0.02}
"""

PIPELINE = """\
name: demo
datasets:
  raw:
    site: gcp-eu-west
    size_gb: 2.0
    residency: eu
steps:
  prep:
    run: demo_steps:prep
    inputs: [dataset:raw]
    outputs: {features: {size_gb: 1.0}}
    resources: {cpus: 2, memory_gb: 8}
    estimated_hours: 0.5
  train:
    run: demo_steps:train
    inputs:
      - prep.features
    outputs: {model: {size_gb: 0.1}}
    resources: {cpus: 4, memory_gb: 16, accelerators: "L4:1"}
    estimated_hours: 2
  report:
    run: demo_steps:report
    inputs: [train.model]
    outputs: {summary: {size_gb: 0.001}}
"""

SITES_LISTED = "aws-us-east, gcp-eu-west, onprem-eu"


def edit(text: str, old: str, new: str) -> str:
    """Replace the one occurrence of ``old``; failing loudly keeps the fixtures and the edits in step."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line containing ``needle``, so tests do not hard-code numbers."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def load(tmp_path: Path, platform: str = PLATFORM, pipeline: str = PIPELINE) -> tuple[Platform, Pipeline]:
    (tmp_path / "stratus.yaml").write_text(platform, encoding="utf-8")
    (tmp_path / "pipeline.yaml").write_text(pipeline, encoding="utf-8")
    loaded = load_platform(tmp_path / "stratus.yaml")
    return loaded, load_pipeline(tmp_path / "pipeline.yaml", loaded)


def error_of(tmp_path: Path, platform: str = PLATFORM, pipeline: str = PIPELINE) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, platform, pipeline)
    return info.value


def assert_points_at(err: ConfigError, file: Path, line: int, field: str | None, *expected: str) -> None:
    """The message starts ``FILE:LINE:COL: FIELD: `` and contains every ``expected`` phrase."""
    message = str(err)
    prefix = rf"{re.escape(str(file))}:{line}:\d+: "
    if field is not None:
        prefix += re.escape(f"{field}: ")
    assert re.match(prefix, message), f"expected to start with {prefix!r}:\n{message}"
    assert err.file == str(file)
    assert err.line == line
    assert err.column is not None
    assert err.field == field
    for phrase in expected:
        assert phrase in message, f"{phrase!r} not in:\n{message}"


# --- a valid pair loads, with what the loader derives ---------------------------------------------------


def test_valid_files_load_and_derive_jurisdiction_and_continent(tmp_path: Path) -> None:
    platform, pipeline = load(tmp_path)

    eu = platform.sites["gcp-eu-west"]
    assert (eu.jurisdiction, eu.continent) == ("EU", "europe")
    us = platform.sites["aws-us-east"]
    assert (us.jurisdiction, us.continent) == ("US", "north_america")
    onprem = platform.sites["onprem-eu"]
    assert (onprem.jurisdiction, onprem.continent) == ("EU", "europe")  # continent from jurisdiction
    assert not isinstance(onprem.offerings, str)
    assert [o.name for o in onprem.offerings] == ["gpu-node", "cpu-node"]
    assert onprem.offerings[0].accelerators == Accelerator("L4", 1)

    assert list(pipeline.steps) == ["prep", "train", "report"]
    assert pipeline.datasets["raw"].residency == "EU"
    assert pipeline.steps["train"].resources.accelerators == Accelerator("L4", 1)
    assert pipeline.steps["report"].estimated_hours == 1.0


def test_explicit_jurisdiction_and_continent_win_over_the_region_table(tmp_path: Path) -> None:
    platform_text = edit(PLATFORM, "    region: us-east-1\n", "    region: us-east-1\n    jurisdiction: us\n")
    platform, _ = load(tmp_path, platform=platform_text)
    assert platform.sites["aws-us-east"].jurisdiction == "US"


# --- the file itself -------------------------------------------------------------------------------------


def test_missing_platform_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "stratus.yaml"
    with pytest.raises(ConfigError) as info:
        load_platform(missing)
    assert str(info.value) == f"{missing}: file not found; check the path"


def test_no_platform_file_to_discover_says_where_it_looked_and_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve_platform_path(None, pipelines / "pipeline.yaml")
    message = str(info.value)
    assert "no platform file found" in message
    assert str(pipelines / "stratus.yaml") in message
    assert str(tmp_path / "stratus.yaml") in message
    assert "pass --platform FILE" in message


def test_platform_discovery_prefers_the_pipeline_folder_then_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stratus.yaml").write_text(PLATFORM)
    assert resolve_platform_path(None, pipelines / "p.yaml") == tmp_path / "stratus.yaml"
    (pipelines / "stratus.yaml").write_text(PLATFORM)
    assert resolve_platform_path(None, pipelines / "p.yaml") == pipelines / "stratus.yaml"
    explicit = tmp_path / "team.yaml"
    assert resolve_platform_path(explicit, pipelines / "p.yaml") == explicit


def test_yaml_syntax_error_gives_its_line_and_column(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "    inputs: [dataset:raw]", "    inputs: [dataset:raw")
    err = error_of(tmp_path, pipeline=bad)
    # PyYAML notices the unclosed '[' at the next line's ':'.
    assert_points_at(err, tmp_path / "pipeline.yaml", line_of(bad, "outputs: {features"), None)
    assert "invalid YAML: expected ',' or ']'" in str(err)


def test_tab_indentation_is_a_syntax_error_at_the_tab(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "    estimated_hours: 0.5", "\testimated_hours: 0.5")
    err = error_of(tmp_path, pipeline=bad)
    line = line_of(bad, "\testimated_hours")
    assert str(err).startswith(f"{tmp_path / 'pipeline.yaml'}:{line}:1: invalid YAML: ")
    assert "'\\t'" in str(err)


def test_bad_indentation_in_platform_file(tmp_path: Path) -> None:
    bad = edit(PLATFORM, "    region: europe-west4", "   region: europe-west4")
    err = error_of(tmp_path, platform=bad)
    assert_points_at(err, tmp_path / "stratus.yaml", line_of(bad, "   region: europe-west4"), None)
    assert "invalid YAML" in str(err)


def test_unknown_yaml_tag_is_a_config_error_at_the_value(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "run: demo_steps:prep", "run: !python/name:os.system x")
    err = error_of(tmp_path, pipeline=bad)
    line = line_of(bad, "!python")
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line,
        "steps.prep.run",
        "invalid YAML value: could not determine a constructor for the tag",
    )
    assert err.column == bad.splitlines()[line - 1].index("!") + 1


def test_value_that_yaml_reads_as_an_impossible_date(tmp_path: Path) -> None:
    # YAML 1.1 reads an unquoted 2024-13-01 as a timestamp; month 13 must not escape as a ValueError.
    bad = edit(PIPELINE, "name: demo\n", "name: demo\ntags: {since: 2024-13-01}\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err, tmp_path / "pipeline.yaml", 2, "tags.since", "invalid YAML value '2024-13-01'", "month"
    )


def test_recursive_alias(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "    inputs: [train.model]", "    inputs: &loop [*loop]")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err, tmp_path / "pipeline.yaml", line_of(bad, "&loop"), "steps.report.inputs[0]", "recursive alias"
    )


def test_anchors_and_aliases_of_whole_values_work(tmp_path: Path) -> None:
    text = edit(
        PIPELINE, "    resources: {cpus: 2, memory_gb: 8}", "    resources: &small {cpus: 2, memory_gb: 8}"
    )
    text += "    resources: *small\n"
    _, pipeline = load(tmp_path, pipeline=text)
    assert pipeline.steps["report"].resources == pipeline.steps["prep"].resources


def test_merge_key_says_it_is_not_supported_and_what_to_do(tmp_path: Path) -> None:
    text = edit(
        PIPELINE, "    resources: {cpus: 2, memory_gb: 8}", "    resources: &small {cpus: 2, memory_gb: 8}"
    )
    text += "    resources:\n      <<: *small\n      cpus: 1\n"
    err = error_of(tmp_path, pipeline=text)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(text, "<<: *small"),
        "steps.report.resources",
        "YAML merge keys (`<<:`) are not supported",
        "&name",
    )


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    err = error_of(tmp_path, pipeline=text)
    assert str(err) == f"{tmp_path / 'pipeline.yaml'}: the file is empty; expected a YAML mapping"


@pytest.mark.parametrize("text", ["- prep\n- train\n", "just words\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    err = error_of(tmp_path, pipeline=text)
    assert str(err) == f"{tmp_path / 'pipeline.yaml'}:1:1: expected a YAML mapping at the top level"


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    bad = PIPELINE + "name: demo-again\n"
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err, tmp_path / "pipeline.yaml", line_of(bad, "demo-again"), "name", "duplicate key 'name'", "once"
    )
    assert err.column == 1


def test_duplicate_nested_key(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "    estimated_hours: 2\n", "    estimated_hours: 2\n    estimated_hours: 3\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "estimated_hours: 3"),
        "steps.train.estimated_hours",
        "duplicate key 'estimated_hours'",
    )
    assert err.column == 5


def test_duplicate_site_in_platform(tmp_path: Path) -> None:
    bad = edit(
        PLATFORM, "egress:\n", "  aws-us-east: {provider: aws, region: us-east-2, storage: s3://b}\negress:\n"
    )
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "us-east-2"),
        "sites.aws-us-east",
        "duplicate key 'aws-us-east'",
    )


# --- keys and types ----------------------------------------------------------------------------------------


def test_unknown_top_level_key_lists_the_allowed_keys(tmp_path: Path) -> None:
    bad = PIPELINE + "stepz: {}\n"
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "stepz"),
        "stepz",
        "unknown key 'stepz'; expected one of: name, tags, replicate, datasets, steps",
    )


def test_unknown_step_key_lists_the_step_fields(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "    estimated_hours: 2\n", "    estimated_hours: 2\n    gpus: 1\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "gpus: 1"),
        "steps.train.gpus",
        "unknown key 'gpus'; expected one of: run, inputs, outputs, resources, estimated_hours, spot, "
        "replicate, constraints, declassify",
    )


def test_unknown_key_in_a_flow_mapping_points_at_its_column(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "{cpus: 4, memory_gb: 16,", "{cpu: 4, memory_gb: 16,")
    err = error_of(tmp_path, pipeline=bad)
    line = line_of(bad, "{cpu: 4")
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line,
        "steps.train.resources.cpu",
        "expected one of: cpus, memory_gb, accelerators",
    )
    assert err.column == bad.splitlines()[line - 1].index("cpu:") + 1


def test_unknown_site_key_in_platform(tmp_path: Path) -> None:
    bad = edit(
        PLATFORM, "    storage: s3://stratus-us/data\n", "    storage: s3://stratus-us/data\n    zone: a\n"
    )
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "zone: a"),
        "sites.aws-us-east.zone",
        "expected one of: provider, region, jurisdiction, continent, storage, storage_options, "
        "storage_timeouts, compute, offerings",
    )


def test_unknown_key_in_inline_offering_points_at_the_offering_not_the_union(tmp_path: Path) -> None:
    bad = edit(
        PLATFORM, "        price_per_hour_usd: 0.35\n", "        price_per_hour_usd: 0.35\n        gpu: 1\n"
    )
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "gpu: 1"),
        "sites.onprem-eu.offerings[1].gpu",
        "unknown key 'gpu'",
        "price_per_hour_usd, spot_price_per_hour_usd, reserved",
    )
    # `offerings` is "catalog" or a list; a list with one bad key must not be told it should be 'catalog'.
    assert "'catalog'" not in str(err)


def test_offerings_neither_catalog_nor_a_list(tmp_path: Path) -> None:
    bad = edit(PLATFORM, "    offerings:\n", "    offerings: catalogue\n    inline:\n")
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "catalogue"),
        "sites.onprem-eu.offerings",
        "Input should be 'catalog' (got 'catalogue')",
        "Input should be a valid list",
    )


def test_string_where_a_number_is_expected(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "size_gb: 2.0", 'size_gb: "big"')
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, '"big"'),
        "datasets.raw.size_gb",
        "Input should be a valid number",
        "(got 'big')",
    )


def test_negative_hours(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "estimated_hours: 2\n", "estimated_hours: -1\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "estimated_hours: -1"),
        "steps.train.estimated_hours",
        "Input should be greater than 0 (got -1)",
    )


def test_negative_price_in_inline_offering(tmp_path: Path) -> None:
    bad = edit(PLATFORM, "price_per_hour_usd: 0.35", "price_per_hour_usd: -0.35")
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "-0.35"),
        "sites.onprem-eu.offerings[1].price_per_hour_usd",
        "greater than or equal to 0",
    )


def test_mapping_where_a_list_is_expected(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "    inputs: [train.model]", "    inputs: {train: model}")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err, tmp_path / "pipeline.yaml", line_of(bad, "{train: model}"), "steps.report.inputs", "valid list"
    )


def test_missing_required_step_field(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "    run: demo_steps:train\n", "")
    err = error_of(tmp_path, pipeline=bad)
    # The field is absent, so the error points at the step that lacks it.
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "  train:"),
        "steps.train.run",
        "required field is missing",
    )


def test_missing_required_top_level_field(tmp_path: Path) -> None:
    err = error_of(tmp_path, pipeline="name: demo\n")
    assert_points_at(err, tmp_path / "pipeline.yaml", 1, "steps", "required field is missing")


def test_missing_storage_in_platform(tmp_path: Path) -> None:
    bad = edit(PLATFORM, "    storage: gs://stratus-eu/data\n", "")
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "  gcp-eu-west:"),
        "sites.gcp-eu-west.storage",
        "required field is missing",
    )


def test_several_problems_are_listed_below_the_first(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "size_gb: 2.0", 'size_gb: "big"')
    bad = edit(bad, "estimated_hours: 2\n", "estimated_hours: -1\n")
    err = error_of(tmp_path, pipeline=bad)
    first, second = str(err).splitlines()
    assert first.startswith(f"{tmp_path / 'pipeline.yaml'}:{line_of(bad, 'big')}:")
    assert second.startswith(f"  {tmp_path / 'pipeline.yaml'}:{line_of(bad, '-1')}:")
    assert "steps.train.estimated_hours" in second


def test_bad_entry_point(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "run: demo_steps:prep", "run: demo_steps.prep")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "demo_steps.prep"),
        "steps.prep.run",
        "'demo_steps.prep' is not an entry point; expected 'package.module:function'",
    )


def test_pipeline_name_must_be_an_identifier(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "name: demo", 'name: "my demo"')
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(err, tmp_path / "pipeline.yaml", 1, "name", "name 'my demo' cannot be referenced")


# --- literals, URLs and accelerators ----------------------------------------------------------------------


def test_bad_provider_lists_the_providers(tmp_path: Path) -> None:
    bad = edit(PLATFORM, "provider: aws", "provider: amazon")
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "amazon"),
        "sites.aws-us-east.provider",
        "Input should be 'aws', 'gcp', 'azure', 'onprem' or 'local' (got 'amazon')",
    )


def test_bad_provider_in_step_constraints(tmp_path: Path) -> None:
    bad = edit(
        PIPELINE, "    estimated_hours: 2\n", "    estimated_hours: 2\n    constraints: {providers: [ibm]}\n"
    )
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "[ibm]"),
        "steps.train.constraints.providers[0]",
        "'aws', 'gcp', 'azure', 'onprem' or 'local' (got 'ibm')",
    )


@pytest.mark.parametrize("url", ["ftp://host/data", "/srv/data", "s3:/bucket"])
def test_storage_url_with_unknown_scheme(tmp_path: Path, url: str) -> None:
    bad = edit(PLATFORM, "s3://stratus-us/data", url)
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, f"storage: {url}"),
        "sites.aws-us-east.storage",
        f"storage URL {url!r} has no known scheme",
        "expected one of file://, memory://, s3://, gs://, gcs://, az://, abfs://",
    )


@pytest.mark.parametrize("shorthand", ["A100:x", ":1", "A100:", "A 100"])
def test_accelerator_that_does_not_parse(tmp_path: Path, shorthand: str) -> None:
    bad = edit(PIPELINE, '"L4:1"', f'"{shorthand}"')
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, f'"{shorthand}"'),
        "steps.train.resources.accelerators",
        f"accelerator {shorthand!r} does not parse; expected NAME or NAME:COUNT, e.g. 'A100:8'",
    )


def test_accelerator_count_zero(tmp_path: Path) -> None:
    bad = edit(PIPELINE, '"L4:1"', '"A100:0"')
    err = error_of(tmp_path, pipeline=bad)
    assert "steps.train.resources.accelerators: accelerator 'A100:0' has count 0" in str(err)
    assert "at least 1" in str(err)


def test_accelerator_given_as_a_bare_number(tmp_path: Path) -> None:
    bad = edit(PIPELINE, 'accelerators: "L4:1"', "accelerators: 1")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "accelerators: 1"),
        "steps.train.resources.accelerators",
        "accelerator 1 has no device name; expected NAME or NAME:COUNT",
    )
    assert "instance of" not in str(err)  # no internal class names in user-facing messages


def test_accelerator_that_does_not_parse_in_an_inline_offering(tmp_path: Path) -> None:
    bad = edit(PLATFORM, 'accelerators: "L4:1"', 'accelerators: "L4:one"')
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "L4:one"),
        "sites.onprem-eu.offerings[0].accelerators",
        "accelerator 'L4:one' does not parse",
    )


# --- references inside the pipeline -----------------------------------------------------------------------


def test_input_naming_no_dataset_lists_the_datasets(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "[dataset:raw]", "[dataset:rwa]")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "dataset:rwa"),
        "steps.prep.inputs[0]",
        "no dataset named 'rwa'; datasets: raw",
    )


def test_input_naming_a_dataset_when_none_are_declared(tmp_path: Path) -> None:
    bad = edit(
        PIPELINE, "datasets:\n  raw:\n    site: gcp-eu-west\n    size_gb: 2.0\n    residency: eu\n", ""
    )
    err = error_of(tmp_path, pipeline=bad)
    assert "steps.prep.inputs[0]: no dataset named 'raw'; datasets: none declared" in str(err)


def test_input_naming_a_missing_step_lists_the_steps(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "      - prep.features", "      - prepare.features")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "prepare.features"),
        "steps.train.inputs[0]",
        "no step named 'prepare'; steps: prep, train, report",
    )
    assert err.column == 9  # the list item itself, not the `inputs:` key


def test_input_naming_a_missing_output_lists_the_outputs(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "      - prep.features", "      - prep.feature")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "prep.feature"),
        "steps.train.inputs[0]",
        "step 'prep' has no output 'feature'; its outputs: features",
    )


def test_input_naming_a_step_without_outputs(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "    outputs: {summary: {size_gb: 0.001}}\n", "")
    bad += "  publish:\n    run: demo_steps:publish\n    inputs: [report.summary]\n"
    err = error_of(tmp_path, pipeline=bad)
    assert "steps.publish.inputs[0]: step 'report' has no output 'summary'; its outputs: none" in str(err)


@pytest.mark.parametrize("ref", ["prep-features", "dataset raw", "prep.features.x", "dataset:", ".features"])
def test_malformed_input_ref_points_at_the_entry(tmp_path: Path, ref: str) -> None:
    bad = edit(PIPELINE, "      - prep.features", f'      - "{ref}"')
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, f'"{ref}"'),
        "steps.train.inputs[0]",
        f"input {ref!r} is malformed; expected 'dataset:NAME' or 'STEP.OUTPUT'",
    )


def _cycle_in(message: str) -> list[str]:
    match = re.search(r"the steps form a cycle: (.+?); a step cannot depend on its own outputs", message)
    assert match, message
    return match.group(1).split(" → ")


def _assert_follows_data(cycle: list[str], pipeline_text: str) -> None:
    """Each arrow goes from a producer to a step that reads it, and the cycle closes on its start."""
    assert cycle[0] == cycle[-1], cycle
    steps = yaml.safe_load(pipeline_text)["steps"]
    reads = {
        name: {ref.split(".")[0] for ref in step.get("inputs", []) if not ref.startswith("dataset:")}
        for name, step in steps.items()
    }
    for producer, consumer in itertools.pairwise(cycle):
        assert producer in reads[consumer], f"{producer} → {consumer} is not a data edge in {cycle}"


def test_two_step_cycle_prints_the_loop_with_arrows(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "inputs: [dataset:raw]", "inputs: [dataset:raw, train.model]")
    err = error_of(tmp_path, pipeline=bad)
    cycle = _cycle_in(str(err))
    assert sorted(cycle[:-1]) == ["prep", "train"]
    _assert_follows_data(cycle, bad)
    assert err.field == f"steps.{cycle[0]}.inputs"
    assert err.file == str(tmp_path / "pipeline.yaml")
    assert err.line == line_of(bad, f"  {cycle[0]}:") + 2  # the `inputs:` line of that step


def test_three_step_cycle_prints_every_step_once(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "inputs: [dataset:raw]", "inputs: [dataset:raw, report.summary]")
    err = error_of(tmp_path, pipeline=bad)
    cycle = _cycle_in(str(err))
    assert len(cycle) == 4
    assert sorted(cycle[:-1]) == ["prep", "report", "train"]
    _assert_follows_data(cycle, bad)
    assert re.match(rf"{re.escape(str(tmp_path / 'pipeline.yaml'))}:\d+:\d+: steps\.\w+\.inputs: ", str(err))


def test_self_loop(tmp_path: Path) -> None:
    bad = edit(PIPELINE, "      - prep.features\n", "      - prep.features\n      - train.model\n")
    err = error_of(tmp_path, pipeline=bad)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line_of(bad, "      - prep.features") - 1,  # the `inputs:` key of train
        "steps.train.inputs",
        "the steps form a cycle: train → train; a step cannot depend on its own outputs",
    )


# --- sites named in the pipeline must exist in the platform ------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("    site: gcp-eu-west\n", "    site: gcp-us\n", "datasets.raw.site"),
        ("    residency: eu\n", "    residency: eu\n    replicas: [mars]\n", "datasets.raw.replicas[0]"),
        (
            "    estimated_hours: 2\n",
            "    estimated_hours: 2\n    replicate: [mars]\n",
            "steps.train.replicate[0]",
        ),
        (
            "    estimated_hours: 2\n",
            "    estimated_hours: 2\n    constraints:\n      sites: [gcp-eu-west, mars]\n",
            "steps.train.constraints.sites[1]",
        ),
    ],
)
def test_unknown_site_lists_the_known_sites(tmp_path: Path, old: str, new: str, field: str) -> None:
    bad = edit(PIPELINE, old, new)
    err = error_of(tmp_path, pipeline=bad)
    unknown = "gcp-us" if "gcp-us" in new else "mars"
    line = line_of(bad, unknown)
    assert_points_at(
        err,
        tmp_path / "pipeline.yaml",
        line,
        field,
        f"unknown site {unknown!r}; the platform's sites are: {SITES_LISTED}",
    )


def test_pipeline_without_platform_does_not_check_sites(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(edit(PIPELINE, "    site: gcp-eu-west\n", "    site: anywhere\n"))
    assert load_pipeline(path).datasets["raw"].site == "anywhere"


# --- platform-level checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "value", "internet"),
    [
        ("{from: gcp-eu-west,", "{from: gcp-mars,", "from", "gcp-mars", False),
        ("to: onprem-eu,", "to: nowhere,", "to", "nowhere", True),
    ],
)
def test_egress_override_naming_an_unknown_site_or_provider(
    tmp_path: Path, old: str, new: str, key: str, value: str, internet: bool
) -> None:
    bad = edit(PLATFORM, old, new)
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, value),
        f"egress[0].{key}",
        f"{value!r} is neither a site nor a provider",
        f"the sites ({SITES_LISTED})",
        "a provider (aws, gcp, azure, onprem, local)",
    )
    assert ("'internet'" in str(err)) is internet


def test_egress_override_may_name_providers_and_internet(tmp_path: Path) -> None:
    text = PLATFORM + "  - {from: aws, to: internet, usd_per_gb: 0.05}\n"
    platform, _ = load(tmp_path, platform=text)
    assert [(e.from_, e.to) for e in platform.egress] == [("gcp-eu-west", "onprem-eu"), ("aws", "internet")]


def test_onprem_site_without_jurisdiction_says_to_add_it(tmp_path: Path) -> None:
    bad = edit(PLATFORM, "    jurisdiction: EU\n", "")
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "frankfurt-dc1"),
        "sites.onprem-eu.region",
        "jurisdiction cannot be derived (an on-prem or local site)",
        "add `jurisdiction:` (e.g. US, EU, UK) to the site",
    )


def test_cloud_region_missing_from_the_table_says_to_add_jurisdiction(tmp_path: Path) -> None:
    bad = edit(PLATFORM, "region: us-east-1", "region: us-mars-1")
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "us-mars-1"),
        "sites.aws-us-east.region",
        "region 'us-mars-1' is not in the bundled region table",
        "add `jurisdiction:`",
    )


def test_unknown_jurisdiction_without_continent_says_to_add_continent(tmp_path: Path) -> None:
    bad = edit(PLATFORM, "jurisdiction: EU", "jurisdiction: ATLANTIS")
    err = error_of(tmp_path, platform=bad)
    assert_points_at(
        err,
        tmp_path / "stratus.yaml",
        line_of(bad, "  onprem-eu:"),
        "sites.onprem-eu",
        "continent cannot be derived from jurisdiction 'ATLANTIS'",
        "add `continent:`",
    )


def test_platform_without_sites(tmp_path: Path) -> None:
    err = error_of(tmp_path, platform="sites: {}\n")
    assert_points_at(err, tmp_path / "stratus.yaml", 1, "sites", "at least 1 item")


# --- property: no mutation of a valid file escapes as anything but a ConfigError ------------------------


JUNK_VALUES = ["1", "x", "-1", "[]", "{}", "null", "true", '"A100:x"', "[a, b]", "{k: v}", "'"]
JUNK_VALUES += ["&a 1", "*a", "!custom x", "2024-13-01", "!!int one", "{<<: {}}"]


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """One to three edits: delete a line, repeat a line, or insert ``junk_key: value`` at some indent."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        action = draw(st.sampled_from(["delete", "repeat", "insert"]))
        if action == "delete" and len(lines) > 1:
            del lines[index]
        elif action == "repeat":
            lines.insert(index, lines[index])
        else:
            # Mostly at the neighbouring line's indent, so the junk lands inside a mapping and reaches
            # the models rather than stopping at the YAML parser.
            here = len(lines[index]) - len(lines[index].lstrip(" -"))
            indent = draw(st.sampled_from([here, here, here, 0, 2, 4, 6, 8]))
            key = draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True))
            lines.insert(index, f"{' ' * indent}{key}: {draw(st.sampled_from(JUNK_VALUES))}")
    return "\n".join(lines) + "\n"


def _check_only_config_errors(path: Path, load_it: Callable[[], object], text: str) -> None:
    path.write_text(text, encoding="utf-8")
    err: ConfigError | None = None
    try:
        load_it()
    except ConfigError as exc:  # anything else propagates and fails the property
        err = exc
    if err is not None:
        message = str(err)
        assert message.startswith(str(path)), message
        assert err.detail, message
        if err.line is not None:
            assert 1 <= err.line <= len(text.splitlines()) + 1, (err.line, message)


PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(text=mutated(PIPELINE))
def test_mutated_pipeline_raises_only_config_errors(tmp_path: Path, text: str) -> None:
    (tmp_path / "stratus.yaml").write_text(PLATFORM, encoding="utf-8")
    platform = load_platform(tmp_path / "stratus.yaml")
    path = tmp_path / "pipeline.yaml"
    _check_only_config_errors(path, lambda: load_pipeline(path, platform), text)


@PROPERTY
@given(text=mutated(PLATFORM))
def test_mutated_platform_raises_only_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "stratus.yaml"
    _check_only_config_errors(path, lambda: load_platform(path), text)


# --- multi-site steps --------------------------------------------------------------------------------


def test_sites_on_a_single_site_step_says_it_is_for_distributed_steps(tmp_path: Path) -> None:
    pipeline = edit(PIPELINE, "    estimated_hours: 2\n", "    estimated_hours: 2\n    sites: 2\n")
    err = error_of(tmp_path, pipeline=pipeline)
    assert_points_at(
        err, tmp_path / "pipeline.yaml", line_of(pipeline, "  train:"), "steps.train", "kind: distributed"
    )


def test_a_distributed_step_without_sites_says_what_to_give(tmp_path: Path) -> None:
    pipeline = edit(PIPELINE, "    estimated_hours: 2\n", "    estimated_hours: 2\n    kind: distributed\n")
    err = error_of(tmp_path, pipeline=pipeline)
    assert "a distributed step needs `sites`: how many (e.g. 2) or which ([a, b])" in str(err)
    assert err.field == "steps.train"


def test_a_distributed_step_naming_an_unknown_site_lists_the_known_ones(tmp_path: Path) -> None:
    pipeline = edit(
        PIPELINE,
        "    estimated_hours: 2\n",
        "    estimated_hours: 2\n    kind: distributed\n    sites: [onprem-eu, mars]\n",
    )
    err = error_of(tmp_path, pipeline=pipeline)
    assert_points_at(
        err, tmp_path / "pipeline.yaml", line_of(pipeline, "sites: [onprem-eu"), "steps.train.sites[1]",
        "unknown site 'mars'", SITES_LISTED,
    )  # fmt: skip


def test_a_federated_step_must_read_datasets_where_they_lie(tmp_path: Path) -> None:
    pipeline = edit(PIPELINE, "    estimated_hours: 2\n", "    estimated_hours: 2\n    kind: federated\n")
    err = error_of(tmp_path, pipeline=pipeline)
    assert "its inputs must all be `dataset:NAME` (found prep.features)" in str(err)
    assert err.field == "steps.train"


def test_registry_artifacts_must_name_sites_of_the_platform(tmp_path: Path) -> None:
    good = PLATFORM + "registry: {jurisdiction: EU, artifacts: onprem-eu}\n"
    platform, _ = load(tmp_path, platform=good)
    assert platform.registry is not None
    assert platform.registry.artifacts == ["onprem-eu"]  # one site is short for a list of one
    bad = PLATFORM + "registry: {artifacts: [onprem-eu, onprem-us]}\n"
    err = error_of(tmp_path, platform=bad)
    assert "registry.artifacts names onprem-us, which is not a site of this platform; expected some of: " in (
        str(err)
    )
    assert "aws-us-east, gcp-eu-west, onprem-eu" in str(err)
