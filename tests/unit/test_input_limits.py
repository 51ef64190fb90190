"""The caps of stratus.limits at their edges: the last value allowed passes, the next one is refused.

The hostile cases themselves run through the CLI in tests/e2e/test_cli_hostile.py; these pin the exact
boundaries in-process, where they are cheap.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from stratus.catalog.reader import read_vm_rows
from stratus.config.source import read_yaml
from stratus.errors import CatalogError, ConfigError
from stratus.limits import (
    MAX_YAML_ALIASES,
    MAX_YAML_DEPTH,
    NAME_MAX_LENGTH,
    alias_problem,
    name_problem,
)


def load(tmp_path: Path, text: str | bytes) -> object:
    path = tmp_path / "file.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return read_yaml(path).data


def test_nesting_up_to_the_depth_cap_loads_and_one_more_level_is_refused_at_its_line(tmp_path: Path) -> None:
    lists = MAX_YAML_DEPTH - 1  # the top-level mapping is the first level
    assert load(tmp_path, "x: " + "[" * lists + "]" * lists)
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "ok: 1\nx: " + "[" * (lists + 1) + "]" * (lists + 1))
    assert caught.value.line == 2
    assert f"values are nested more than {MAX_YAML_DEPTH} levels deep" in str(caught.value)


def test_aliases_up_to_the_cap_load_and_one_more_is_refused(tmp_path: Path) -> None:
    def text(count: int) -> str:
        return "x: &x 1\nmany: [" + ", ".join(["*x"] * count) + "]\n"

    data = load(tmp_path, text(MAX_YAML_ALIASES))
    assert isinstance(data, dict)
    assert len(data["many"]) == MAX_YAML_ALIASES
    with pytest.raises(ConfigError, match=r"file.yaml:2:\d+: more than 1,000 aliases"):
        load(tmp_path, text(MAX_YAML_ALIASES + 1))


def test_a_few_aliases_of_a_large_value_are_refused_once_expanded(tmp_path: Path) -> None:
    big = "[" + ", ".join(["1"] * 30_000) + "]"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"a: &a {big}\nb: [*a, *a, *a, *a]\n")
    assert caught.value.line == 2
    assert "more than 100,000 values once its aliases (*name) are expanded" in str(caught.value)


def test_a_value_that_contains_itself_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recursive alias"):
        load(tmp_path, "a: &x [1, *x]\n")


def test_bytes_that_are_not_utf8_are_refused_at_their_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, b"name: ok\nsteps: caf\xe9\n")
    assert (caught.value.line, caught.value.column) == (2, 11)
    assert "not UTF-8 text (byte 0xe9)" in str(caught.value)


def test_a_directory_is_not_read_as_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="this is a directory, not a regular file"):
        read_yaml(tmp_path)


@pytest.mark.parametrize("name", ["gcp-eu-west", "p3.2xlarge", "_scratch", "a" * NAME_MAX_LENGTH, "v1.2"])
def test_safe_names_pass(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("..", "is not a safe name"),
        ("a..b", "is not a safe name"),
        (".hidden", "is not a safe name"),
        ("-rf", "is not a safe name"),
        ("a/b", "is not a safe name"),
        ("", "is not a safe name"),
        ("a" * (NAME_MAX_LENGTH + 1), "is 64 characters long; names have at most 63"),
        ("naïve", "is not a safe name"),
    ],
)
def test_unsafe_names_say_why(name: str, why: str) -> None:
    problem = name_problem(name)
    assert problem is not None
    assert why in problem


def test_referable_names_refuse_dots_and_long_aliases_are_refused() -> None:
    assert "cannot be referenced" in (name_problem("a.b", referable=True) or "")
    assert alias_problem("champion") is None
    assert "at most 63" in (alias_problem("c" * 64) or "")


HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region\n"


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        ("m5,,,4,16,1e300,,us-east-1", "Price", "'1e300' is more than 1,000,000, the most a Price may be"),
        ("m5,,,1e9,16,0.1,,us-east-1", "vCPUs", "'1e9' is more than 10,000.0, the most a vCPUs may be"),
        ("p4,A100,99999,4,16,0.1,,us-east-1", "AcceleratorCount", "'99999' is more than 1,024"),
    ],
)
def test_catalog_numbers_are_bounded(row: str, column: str, message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        read_vm_rows(io.StringIO(HEADER + row + "\n"), "vms.csv")
    assert caught.value.field == column
    assert caught.value.line == 2
    assert message in str(caught.value)
