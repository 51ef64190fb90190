"""The last scenes of the governance act (`make demo-governance`): over budget, and keys from OpenBao.

An OpenBao dev server is started on loopback (as `stratus sandbox up` does) and given the sandbox's S3
keys; a copy of governed.yaml is written whose aws-us-east site stores to the sandbox's S3 bucket with
those keys as `vault:` references, and whose project budget is nearly spent. Then:

1. the platform file is loaded: the keys are read from OpenBao by reference (checked, never shown);
2. `stratus plan` refuses the fraud pipeline over budget, exit code 7, naming budget, spent, planned
   and limit;
3. `stratus plan --allow-over-budget` goes ahead, and the audit trail (`stratus audit ls`) has the override.

OpenBao is stopped by PID at the end, whatever happened. Takes a few seconds.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from stratus.config import load_platform
from stratus.private_files import write_private
from stratus.sandbox.openbao import start_openbao, stop_openbao, write_secret
from stratus.state import open_database
from stratus.state.audit import audit_records

HERE = Path(__file__).resolve().parent
WORK = HERE / ".stratus" / "governance"
STATE_URL = f"sqlite:///{HERE / '.stratus' / 'state.db'}"  # the demo's own ledger: this month's spend
SECRET_PATH = "stratus/sandbox/s3"
OVER_BUDGET = 7


def stratus(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it (wide, colourless), against the demo's state database."""
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    command = [sys.executable, "-m", "stratus", *args, "--state-url", STATE_URL]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def platform_document(address: str) -> dict[str, Any]:
    """governed.yaml, with the S3 keys by reference and the fraud project's budget nearly spent."""
    document: dict[str, Any] = yaml.safe_load((HERE / "governed.yaml").read_text(encoding="utf-8"))
    document["policies"]["data"] = [str(HERE / p) for p in document["policies"]["data"]]
    document["sites"]["aws-us-east"].update(
        storage="s3://stratus-aws/stratus",
        storage_options={
            "endpoint_url": "http://127.0.0.1:8333",
            "key": f"vault:secret/{SECRET_PATH}#key",
            "secret": f"vault:secret/{SECRET_PATH}#secret",
        },
    )
    document["secrets"] = {"vault": {"address": address, "token_ref": "file:openbao-token"}}
    document["budgets"]["projects"]["fraud"] = {"monthly_usd": 1.0, "alerts": [0.8, 1.0]}
    return document


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    bao = start_openbao(WORK)
    try:
        keys = {"key": "stratus", "secret": secrets.token_hex(16)}
        write_secret(bao, SECRET_PATH, keys)
        write_private(WORK / "openbao-token", bao.root_token.encode())
        platform_file = WORK / "governed-vault.yaml"
        write_private(platform_file, yaml.safe_dump(platform_document(bao.address), sort_keys=False).encode())

        options = load_platform(platform_file).sites["aws-us-east"].storage_options
        if {k: options[k] for k in keys} != keys:
            print("the keys read by reference are not the ones written to OpenBao", file=sys.stderr)
            return 1
        print(
            f"aws-us-east's S3 keys read from OpenBao at {bao.address} by reference "
            f"(vault:secret/{SECRET_PATH}#key, #secret): they match what was stored; values never shown"
        )

        pipeline = str(HERE / "pipeline.yaml")
        refused = stratus("plan", pipeline, "--platform", str(platform_file))
        budgets = refused.stdout[
            refused.stdout.rfind("\n", 0, refused.stdout.find("Budgets this month")) + 1 :
        ]
        print(budgets.rstrip() + "\n" + refused.stderr.rstrip())
        if refused.returncode != OVER_BUDGET:
            print(
                f"expected exit code {OVER_BUDGET} (over budget), got {refused.returncode}", file=sys.stderr
            )
            return 1
        print(f"stratus plan exited with {refused.returncode}: over budget, refused")

        allowed = stratus("plan", pipeline, "--platform", str(platform_file), "--allow-over-budget", "--json")
        if allowed.returncode != 0:
            print(allowed.stderr, file=sys.stderr)
            return 1
        db = open_database(STATE_URL)  # what `stratus audit ls` lists
        override = [r for r in audit_records(db) if r.command == "budget override"]
        db.engine.dispose()
        if not override:
            print("the override is missing from the audit trail", file=sys.stderr)
            return 1
        last = override[-1]
        print(f"--allow-over-budget went ahead; audit trail: {last.at:%Y-%m-%d %H:%M:%S} {last.actor}")
        print("  budget override: " + "; ".join(last.arguments[1:]))
        return 0
    finally:
        stop_openbao(bao)


if __name__ == "__main__":
    sys.exit(main())
