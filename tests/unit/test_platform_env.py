"""``$STRATUS_PLATFORM`` names the platform file for every command; ``--platform`` still wins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer
from typer.testing import CliRunner

from stratus.cli.app import app
from stratus.config import PLATFORM_ENV, resolve_platform_path
from stratus.errors import ConfigError


@pytest.fixture
def two_platforms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    here = tmp_path / "stratus.yaml"
    named = tmp_path / "team" / "platform.yaml"
    named.parent.mkdir()
    for path in (here, named):
        path.write_text("sites: {}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return here, named


def test_the_variable_wins_over_the_working_directory(
    two_platforms: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, named = two_platforms
    monkeypatch.delenv(PLATFORM_ENV, raising=False)
    assert resolve_platform_path(None) == here
    monkeypatch.setenv(PLATFORM_ENV, str(named))
    assert resolve_platform_path(None) == named
    assert resolve_platform_path(None, pipeline=here) == named  # also over the file beside the pipeline
    assert resolve_platform_path(here) == here  # --platform still wins


def test_a_variable_naming_no_file_is_an_error_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PLATFORM_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError) as caught:
        resolve_platform_path(None)
    assert str(caught.value) == (
        f"STRATUS_PLATFORM: $STRATUS_PLATFORM names '{tmp_path}/nope.yaml', which is not a file; set it "
        "to your platform file (e.g. team/stratus.yaml), unset it, or pass --platform FILE"
    )


def _platform_options(command: click.Command, path: str) -> Iterator[tuple[str, click.Parameter]]:
    for param in command.params:
        if "--platform" in getattr(param, "opts", ()):
            yield path, param
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from _platform_options(sub, f"{path} {name}")


def test_every_platform_option_reads_the_variable() -> None:
    """Walks the whole command tree, so a command added later with its own --platform is checked too."""
    found = dict(_platform_options(typer.main.get_command(app), "stratus"))
    assert {
        "stratus plan",
        "stratus run",
        "stratus runs ls",
        "stratus cost report",
        "stratus models ls",
    } <= set(found)
    assert {path: p.envvar for path, p in found.items() if p.envvar != PLATFORM_ENV} == {}


def test_help_names_the_variable() -> None:
    result = CliRunner().invoke(app, ["plan", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "STRATUS_PLATFORM" in result.output
