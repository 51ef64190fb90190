"""The Workspace: one home for the ``.stratus/`` layout, the platform lookup order, and lazy loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratus.config import PLATFORM_ENV
from stratus.errors import ConfigError
from stratus.state import STATE_URL_ENV
from stratus.workspace import Workspace
from tests.run_world import REPO, run_python, stratus_cli, write_world
from tests.unit.test_cli_startup import HEAVY


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PLATFORM_ENV, raising=False)
    monkeypatch.delenv(STATE_URL_ENV, raising=False)


def test_the_layout_is_beside_the_resolved_platform_file_and_nothing_is_created(tmp_path: Path) -> None:
    real = tmp_path / "team"
    real.mkdir()
    (real / "stratus.yaml").write_text("sites: {}\n", encoding="utf-8")
    link = tmp_path / "stratus.yaml"
    link.symlink_to(real / "stratus.yaml")
    ws = Workspace(link)
    state = real / ".stratus"
    assert (ws.base_dir, ws.state_dir, ws.state_file) == (real, state, state / "state.db")
    assert (ws.runs_dir, ws.catalog_dir, ws.serve_dir, ws.sandbox_dir) == (
        state / "runs",
        state / "catalog",
        state / "serve",
        state / "sandbox",
    )
    assert ws.registry_cache_dir == state / "serve" / "models" / "registry"
    assert not state.exists()  # naming the folders creates none of them


def test_nothing_is_read_until_asked_and_each_file_is_parsed_once(tmp_path: Path, clean_env: None) -> None:
    pipeline_file = write_world(tmp_path)
    ws = Workspace(tmp_path / "stratus.yaml")
    assert "platform" not in vars(ws)  # not loaded by building the workspace
    loaded = ws.platform
    pipeline = ws.pipeline(pipeline_file)
    # Later edits are not seen: the command works on what it parsed first.
    (tmp_path / "stratus.yaml").write_text("not: [a, platform\n", encoding="utf-8")
    pipeline_file.write_text("name: [broken\n", encoding="utf-8")
    assert ws.platform is loaded
    assert ws.pipeline(tmp_path / "." / "pipeline.yaml") is pipeline  # the same file by another spelling
    assert list(ws.stores()) == list(loaded.sites) == ["cheap", "backup", "vault"]
    assert ws.store("nowhere") is None
    assert not ws.state_dir.exists()  # no state database until one is asked for


def test_the_state_database_is_the_flag_then_the_variable_then_the_file_beside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    ws = Workspace(tmp_path / "stratus.yaml")
    assert ws.state_url() == f"sqlite:///{tmp_path / '.stratus' / 'state.db'}"
    monkeypatch.setenv(STATE_URL_ENV, "sqlite:///from-env.db")
    assert ws.state_url() == "sqlite:///from-env.db"
    flagged = Workspace(tmp_path / "stratus.yaml", state_url="sqlite:///from-flag.db")
    assert flagged.state_url() == "sqlite:///from-flag.db"


def test_lookup_is_flag_then_variable_then_beside_the_pipeline_then_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    here, beside, named, flagged = (tmp_path / n for n in ("cwd", "pipes", "named", "flagged"))
    for folder in (here, beside, named, flagged):
        folder.mkdir()
        (folder / "stratus.yaml").write_text("sites: {}\n", encoding="utf-8")
    monkeypatch.chdir(here)
    pipeline = beside / "pipeline.yaml"
    assert Workspace.find(None, None).platform_file == here / "stratus.yaml"
    assert Workspace.find(None, pipeline).platform_file == beside / "stratus.yaml"
    monkeypatch.setenv(PLATFORM_ENV, str(named / "stratus.yaml"))
    assert Workspace.find(None, pipeline).platform_file == named / "stratus.yaml"
    assert Workspace.find(flagged / "stratus.yaml", pipeline).platform_file == flagged / "stratus.yaml"
    monkeypatch.delenv(PLATFORM_ENV)
    (beside / "stratus.yaml").unlink()
    assert Workspace.find(None, pipeline).platform_file == here / "stratus.yaml"
    (here / "stratus.yaml").unlink()
    with pytest.raises(ConfigError, match=r"no platform file found \(looked for .*pipes/stratus.yaml and "):
        Workspace.find(None, pipeline)


def test_a_platform_file_that_is_not_there_fails_when_loaded_naming_it(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "nope.yaml")
    assert ws.state_dir == tmp_path / ".stratus"  # the layout needs no file
    with pytest.raises(ConfigError, match="file not found; check the path") as caught:
        _ = ws.platform
    assert caught.value.file == str(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "args",
    [
        ["run", "pipeline.yaml", "--platform", "nope.yaml"],
        ["plan", "pipeline.yaml", "-p", "nope.yaml"],
        ["storage", "ls", "-p", "nope.yaml"],
        ["storage", "repair", "-p", "nope.yaml"],
    ],
)
def test_a_bad_platform_path_is_the_same_clear_exit_2(args: list[str], tmp_path: Path) -> None:
    write_world(tmp_path)
    result = stratus_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "error: nope.yaml: file not found; check the path"


def test_importing_it_loads_no_heavy_library() -> None:
    result = run_python("-X", "importtime", "-c", "import stratus.workspace", cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "stratus.workspace" in modules
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY) == []
