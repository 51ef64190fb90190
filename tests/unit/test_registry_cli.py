"""``stratus models`` before anything is registered: no MLflow needed, nothing written, clear messages.

The commands against real stores are in tests/integration/test_registry.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stratus.cli import models_cmd
from stratus.errors import ConfigError
from stratus.registry import RegistryError

runner = CliRunner()
PLATFORM = "sites:\n  local:\n    provider: aws\n    region: us-east-1\n    storage: file://sites/local\n"


def cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(models_cmd.app, name="models")
    return root


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "stratus.yaml").write_text(PLATFORM)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_ls_on_a_fresh_platform_is_empty_and_creates_nothing(folder: Path) -> None:
    result = runner.invoke(cli(), ["models", "ls", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload == {"tracking_uri": f"sqlite:///{folder.resolve()}/.stratus/mlflow.db", "models": []}
    assert not (folder / ".stratus").exists()


def test_ls_for_people_says_nothing_is_registered(folder: Path) -> None:
    result = runner.invoke(cli(), ["models", "ls"])
    assert result.exit_code == 0, result.output
    assert "No models registered in sqlite:///" in result.stdout


def test_show_on_an_empty_registry_says_how_models_get_there(folder: Path) -> None:
    result = runner.invoke(cli(), ["models", "show", "fraud"])
    assert isinstance(result.exception, RegistryError)
    assert str(result.exception) == (
        f"no models registered yet: the registry at sqlite:///{folder.resolve()}/.stratus/mlflow.db is "
        "empty (models are registered when a pipeline exports one)"
    )
    assert result.exception.exit_code == 1


def test_promote_to_a_reserved_alias_is_refused_before_any_lookup(folder: Path) -> None:
    result = runner.invoke(cli(), ["models", "promote", "fraud", "--version", "2", "--alias", "latest"])
    assert isinstance(result.exception, RegistryError)
    assert str(result.exception).startswith("'latest' is not a usable alias")


def test_version_and_alias_together_is_a_usage_error(folder: Path) -> None:
    result = runner.invoke(cli(), ["models", "show", "fraud", "--version", "1", "--alias", "champion"])
    assert result.exit_code == 2
    assert "choose one of --version and --alias" in result.output


def test_without_a_platform_file_the_message_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli(), ["models", "ls"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == (
        f"no platform file found (looked for {tmp_path}/stratus.yaml); pass --platform FILE "
        "or set $STRATUS_PLATFORM"
    )


def test_a_bad_tracking_uri_is_named(folder: Path) -> None:
    result = runner.invoke(cli(), ["models", "ls", "--tracking-uri", "mlflow.internal:5000"])
    assert isinstance(result.exception, RegistryError)
    assert str(result.exception).startswith("'mlflow.internal:5000' is not an MLflow tracking URI")


def test_help_shows_an_example() -> None:
    result = runner.invoke(cli(), ["models", "promote", "--help"])
    assert result.exit_code == 0
    assert "stratus models promote fraud --version 3 --alias champion" in result.output


def test_the_cli_does_not_import_mlflow_until_a_registry_is_used() -> None:
    code = "import sys, stratus.cli.models_cmd, stratus.registry; print('mlflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
