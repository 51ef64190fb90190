"""Cache keys: what must change a step's key (code, entry point, params, input bytes, outputs) and what
must not (dict order, where the step runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus.errors import ConfigError
from stratus.runner import cache_key, code_version, module_file


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "my_steps.py"
    path.write_text("def train(ctx):\n    return {'auc': 0.9}\n", encoding="utf-8")
    return path


def test_the_code_version_follows_source_entry_point_and_params(module: Path) -> None:
    base = code_version("my_steps:train", module, {"lr": 0.1, "depth": 3})
    assert base == code_version("my_steps:train", module, {"depth": 3, "lr": 0.1})  # order is not meaning
    assert base != code_version("my_steps:train", module, {"lr": 0.2, "depth": 3})
    assert base != code_version("my_steps:fit", module, {"lr": 0.1, "depth": 3})
    module.write_text(module.read_text() + "# a comment is a code change too\n", encoding="utf-8")
    assert base != code_version("my_steps:train", module, {"lr": 0.1, "depth": 3})


def test_the_cache_key_follows_input_bytes_and_output_names_not_their_order() -> None:
    version = "v" * 64
    key = cache_key(version, {"dataset:raw": "a" * 64, "prep.features": "b" * 64}, ["model", "report"])
    assert key == cache_key(
        version, {"prep.features": "b" * 64, "dataset:raw": "a" * 64}, ["report", "model"]
    )
    assert key != cache_key(
        version, {"dataset:raw": "c" * 64, "prep.features": "b" * 64}, ["model", "report"]
    )
    assert key != cache_key(version, {"dataset:raw": "a" * 64, "prep.features": "b" * 64}, ["model"])
    assert key != cache_key(
        "w" * 64, {"dataset:raw": "a" * 64, "prep.features": "b" * 64}, ["model", "report"]
    )
    assert len(key) == 64


def test_a_module_is_found_beside_the_pipeline_then_among_installed_packages(
    tmp_path: Path, module: Path
) -> None:
    assert module_file("my_steps:train", [tmp_path]) == module
    package = tmp_path / "pkg" / "sub"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    assert module_file("pkg.sub:run", [tmp_path]) == package / "__init__.py"
    assert module_file("json:dumps", [tmp_path]).name == "__init__.py"  # the standard library's json


def test_a_missing_module_is_a_config_error_that_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        module_file("nowhere_steps:train", [tmp_path], field="steps.train.run")
    assert str(caught.value) == (
        f"steps.train.run: module 'nowhere_steps' of 'nowhere_steps:train' not found (looked in {tmp_path} "
        "and the installed packages); put nowhere_steps.py beside the pipeline file"
    )
