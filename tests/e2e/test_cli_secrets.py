"""No configured secret ever appears in a command's output or in any file Stratus writes.

Known secrets are planted in every secret-bearing field of a platform file (a GCS token, S3 key and
secret, an S3 URL password, an Azure connection string's account key and a SAS token, the registry's
tracking URI password, the state database URL's password). Every store that holds them refuses
connections, so each command runs into vendor errors that echo what they were given. Every stdout and
stderr, and every byte of every file beside the platform (the SQLite state database, run folders, logs),
is then searched for each secret.

Also here: a site the command does not need never fails it (stores are opened lazily).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.run_world import STEPS, one_json, stratus_cli

pytestmark = pytest.mark.slow

SECRETS = {
    "gcs token": "ya29.e2ePlantedGcsToken",
    "s3 key": "AKIAE2EPLANTEDKEYID",
    "s3 secret": "e2ePlantedS3SecretValue",
    "s3 url password": "e2ePlantedUrlPassword",
    "azure account key": "ZTJlUGxhbnRlZEF6dXJlS2V5",
    "azure sas token": "sv=2024-01-01&sig=e2ePlantedSasSignature",
    "registry password": "e2ePlantedRegistryPassword",
    "state url password": "e2ePlantedStatePassword",
}
COPY_STEP = "\n\ndef copy(ctx):\n    ctx.output('copy').write_bytes(ctx.input('squares').read_bytes())\n"
# Broken stores fail fast here; the default budget is measured in tests/integration/test_storage_timeouts.py
FAST = {"connect_s": 1, "read_s": 1, "attempts": 1}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _site(storage: str, price: float, options: dict[str, Any] | None = None) -> dict[str, Any]:
    site: dict[str, Any] = {
        "provider": "onprem",
        "region": "dc-1",
        "jurisdiction": "EU",
        "storage": storage,
        "compute": {"backend": "local", "capacity": {"max_parallel_steps": 4}},
        "offerings": [{"name": "node", "vcpus": 4, "memory_gb": 8, "price_per_hour_usd": price}],
    }
    if options is not None:
        site["storage_options"] = options
        site["storage_timeouts"] = FAST
    return site


def _platform(vault: str) -> dict[str, Any]:
    down = f"http://127.0.0.1:{_closed_port()}"
    return {
        "sites": {
            "cheap": _site("file://sites/cheap", 0.5),
            "vault": _site(vault, 9.0, {"endpoint_url": down} if vault.startswith("s3") else None),
            "gcs-down": _site(
                "gs://bucket/p", 9.0, {"endpoint_url": down, "token": SECRETS["gcs token"], "project": "x"}
            ),
            "s3-down": _site(
                "s3://bucket/p",
                9.0,
                {"endpoint_url": down, "key": SECRETS["s3 key"], "secret": SECRETS["s3 secret"]},
            ),
            "s3-url-down": _site(
                f"s3://AKIAE2EURLKEYID:{SECRETS['s3 url password']}@bucket/p",
                9.0,
                {"endpoint_url": down},
            ),
            "az-down": _site(
                "az://container/p",
                9.0,
                {
                    "connection_string": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                    f"AccountKey={SECRETS['azure account key']};BlobEndpoint={down}/devstoreaccount1;"
                },
            ),
            "az-sas-down": _site(
                "az://container/p",
                9.0,
                {
                    "account_name": "devstoreaccount1",
                    "account_host": down.removeprefix("http://"),
                    "sas_token": SECRETS["azure sas token"],
                },
            ),
        },
        "registry": {
            "tracking_uri": f"http://stratus:{SECRETS['registry password']}@127.0.0.1:{_closed_port()}"
        },
    }


def _pipeline() -> dict[str, Any]:
    broken = ["gcs-down", "s3-down", "s3-url-down", "az-down", "az-sas-down"]
    steps: dict[str, Any] = {
        "square": {
            "run": "flow_steps:square",
            "inputs": ["dataset:numbers"],
            "outputs": {"squares": {}},
            "replicate": ["vault"],
            "estimated_hours": 0.1,
        }
    }
    for site in broken:  # each publishes to one broken store: a vendor error per SDK and credential
        steps[f"to-{site}"] = {
            "run": "flow_steps:copy",
            "inputs": ["square.squares"],
            "outputs": {"copy": {}},
            "replicate": [site],
            "estimated_hours": 0.1,
        }
    return {
        "name": "secrets",
        "datasets": {
            "numbers": {
                "site": "cheap",
                "size_gb": 0.01,
                "make": "flow_steps:make_numbers",
                "params": {"n": 5},
            }
        },
        "steps": steps,
    }


def _write(folder: Path, platform: dict[str, Any]) -> None:
    (folder / "stratus.yaml").write_text(yaml.safe_dump(platform, sort_keys=False), encoding="utf-8")


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in SECRETS.items() if value.encode() in data]


def test_no_secret_in_any_output_or_file(tmp_path: Path) -> None:
    _write(tmp_path, _platform("file://sites/vault"))
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(_pipeline(), sort_keys=False), encoding="utf-8")
    (tmp_path / "flow_steps.py").write_text(STEPS + COPY_STEP, encoding="utf-8")

    outputs: dict[str, str] = {}

    def cli(label: str, *args: str, expect: set[int]) -> str:
        result = stratus_cli(*args, cwd=tmp_path, timeout=300)
        outputs[f"{label} stdout"] = result.stdout
        outputs[f"{label} stderr"] = result.stderr
        assert result.returncode in expect, f"{label}: exit {result.returncode}\n{result.stderr}"
        return result.stdout + result.stderr

    shown = cli("run", "run", "pipeline.yaml", expect={1})
    assert "site s3-url-down (s3://AKIAE2EURLKEYID:***@bucket/p)" in shown, shown
    cli("run --json", "run", "pipeline.yaml", "--json", expect={1})
    cli("plan", "plan", "pipeline.yaml", expect={0})
    cli("cost report", "cost", "report", expect={0})
    cli("models ls", "models", "ls", expect={1})

    # The same site's replicas now live on a broken S3 store whose URL carries a password.
    _write(tmp_path, _platform(f"s3://AKIAE2EURLKEYID:{SECRETS['s3 url password']}@vault/p"))
    cli("storage ls", "storage", "ls", expect={0})
    cli("storage ls --json", "storage", "ls", "--json", expect={0})
    verify = cli("storage verify", "storage", "verify", expect={1, 4})
    assert "vault" in verify, verify
    cli("storage verify --json", "storage", "verify", "--json", expect={1, 4})
    cli("storage repair", "storage", "repair", expect={1, 4})

    state_url = f"postgresql+psycopg://stratus:{SECRETS['state url password']}@127.0.0.1:{_closed_port()}/db"
    cli("storage ls (state url)", "storage", "ls", "--state-url", state_url, expect={1, 2})
    cli("cost report (state url)", "cost", "report", "--state-url", state_url, expect={1, 2})

    leaked = {label: _leaks(text) for label, text in outputs.items() if _leaks(text)}
    assert not leaked, f"secrets in command output: {leaked}"
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("stratus.yaml",)]
    assert any(p.name == "state.db" for p in files), "the state database was not written"
    leaked_files = {str(p.relative_to(tmp_path)): _leaks(p.read_bytes()) for p in files}
    leaked_files = {name: found for name, found in leaked_files.items() if found}
    assert not leaked_files, f"secrets in files Stratus wrote: {leaked_files}"


def test_a_site_the_command_does_not_use_never_fails_it(tmp_path: Path) -> None:
    platform = {
        "sites": {
            "cheap": _site("file://sites/cheap", 0.5),
            # cannot even be opened (no bucket in the URL); no step and no replica is there
            "broken": _site("s3:///no-bucket", 9.0, {"endpoint_url": f"http://127.0.0.1:{_closed_port()}"}),
        }
    }
    pipeline = _pipeline()
    pipeline["steps"] = {"square": {**pipeline["steps"]["square"], "replicate": []}}
    _write(tmp_path, platform)
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    (tmp_path / "flow_steps.py").write_text(STEPS + COPY_STEP, encoding="utf-8")

    run = stratus_cli("run", "pipeline.yaml", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert one_json(run.stdout)["status"] == "succeeded"
    for action in ("ls", "verify"):
        result = stratus_cli("storage", action, "--json", cwd=tmp_path)
        assert result.returncode == 0, f"storage {action}: {result.stderr}"
        assert one_json(result.stdout)["healthy"] == 2
