"""``stratus sandbox up|status|down`` as a user runs it: real servers, a platform file that works, clean stop.

The command group is run in a subprocess through its Typer app, so the servers it leaves running are
really detached from the command, as they are for a user.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.storage import dual_write, open_store, verify

pytestmark = pytest.mark.slow


def _sandbox(*args: str) -> Any:
    code = "from stratus.cli.sandbox_cmd import app; app()"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"stratus sandbox {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


def test_sandbox_up_status_down(tmp_path: Path) -> None:
    platform = tmp_path / "team" / "sandbox.yaml"
    try:
        up = _sandbox("up", "--platform-out", str(platform), "--json")
        running = {name: s["up"] for name, s in up["servers"].items()}
        assert running == {"s3": True, "gcs": True, "azure": True}, up
        pids = {name: s["pid"] for name, s in up["servers"].items()}
        state = tmp_path / "team" / ".stratus" / "sandbox" / "state.json"
        # The S3 server's secret key is in the state file, its own config and the platform file.
        for secret_bearing in (state, platform, state.parent / "s3" / "s3.json"):
            assert stat.S_IMODE(secret_bearing.stat().st_mode) == 0o600, secret_bearing
        again = _sandbox("up", "--platform-out", str(platform), "--json")
        assert {n: s["pid"] for n, s in again["servers"].items()} == pids, "a second `up` restarted servers"

        sites = yaml.safe_load(platform.read_text())["sites"]
        assert {name: site["storage"].split("://")[0] for name, site in sites.items()} == {
            "aws-us-east": "s3",
            "aws-eu-central": "s3",
            "gcp-eu-west": "gs",
            "azure-us-east": "az",
            "azure-eu-west": "az",
        }
        stores = [open_store(n, s["storage"], s["storage_options"]) for n, s in sites.items()]
        local = tmp_path / "artifact.bin"
        local.write_bytes(os.urandom(300_000))
        info = dual_write(local, stores)
        assert set(verify(info.sha256, stores).values()) == {"verified"}

        status = _sandbox("status", "--platform-out", str(platform), "--json")
        assert all(s["up"] for s in status["servers"].values()), status
    finally:
        down = _sandbox("down", "--platform-out", str(platform), "--json")
    assert sorted(down["stopped"]) == ["azure", "gcs", "s3"]
    assert not any(_alive(pid) for pid in pids.values()), "a sandbox server survived `down`"
    assert _sandbox("status", "--platform-out", str(platform), "--json")["servers"] == {}


def test_sandbox_keys_live_in_openbao_and_the_platform_file_has_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratus.config import load_platform

    monkeypatch.delenv("STRATUS_ALLOW_INLINE_SECRETS", raising=False)
    platform = tmp_path / "sandbox.yaml"
    try:
        up = _sandbox("up", "--platform-out", str(platform), "--json")
        assert up["openbao_up"] is True, up
        state = json.loads((tmp_path / ".stratus" / "sandbox" / "state.json").read_text())
        bao_pid = state["openbao"]["pid"]
        written = yaml.safe_load(platform.read_text())
        s3 = written["sites"]["aws-us-east"]["storage_options"]
        assert (s3["key"], s3["secret"]) == (
            "vault:secret/stratus/sandbox/s3#key",
            "vault:secret/stratus/sandbox/s3#secret",
        )
        azure = written["sites"]["azure-us-east"]["storage_options"]["connection_string"]
        assert azure == "vault:secret/stratus/sandbox/azure#connection_string"
        assert written["secrets"]["vault"]["token_ref"] == "file:.stratus/sandbox/openbao-token"
        token = tmp_path / ".stratus" / "sandbox" / "openbao-token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert token.read_text() not in platform.read_text()

        sites = load_platform(platform).sites  # keys read back from OpenBao by reference
        stores = [open_store(n, s.storage, s.storage_options) for n, s in sites.items()]
        local = tmp_path / "artifact.bin"
        local.write_bytes(os.urandom(100_000))
        info = dual_write(local, stores)
        assert set(verify(info.sha256, stores).values()) == {"verified"}
    finally:
        down = _sandbox("down", "--platform-out", str(platform), "--json")
    assert sorted(down["stopped"]) == ["azure", "gcs", "openbao", "s3"]
    assert not _alive(bao_pid), "OpenBao survived `down`"
