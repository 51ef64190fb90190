"""The distributed fraud example as a user runs it: two torch ranks on two EU sites through the runner.

Smaller data and fewer steps than the example, same code path: the planner picks rank 0's site and the
second rank, the runner stages the features at both sites, starts both ranks with the rendezvous, and
rank 0 publishes the model, which the next step exports (parity-checked) and registers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from stratus.state import Repository, open_database, state_url
from tests.run_world import REPO, one_json, stratus_cli

pytestmark = pytest.mark.slow


def test_two_ranks_train_across_two_eu_sites_and_the_export_is_registered(tmp_path: Path) -> None:
    source = REPO / "examples" / "fraud-detection"
    for name in ("stratus.yaml", "distributed.yaml", "fraud_steps.py", "fraud_torch.py", "fraud_data.py",
                 "fraud_features.py"):  # fmt: skip
        shutil.copy(source / name, tmp_path / name)
    spec = yaml.safe_load((tmp_path / "distributed.yaml").read_text())
    spec["datasets"]["raw_transactions"]["params"]["rows"] = 30_000
    spec["steps"]["train"]["params"].update(steps=120, sync_every=8)
    (tmp_path / "distributed.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    result = stratus_cli("run", tmp_path / "distributed.yaml", "--json", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = one_json(result.stdout)
    [train] = [s for s in report["steps"] if s["step"] == "train"]
    assert train["metrics"]["world_size"] == 2
    assert train["metrics"]["auc"] > 0.8

    repo = Repository(open_database(state_url(tmp_path / "stratus.yaml")))
    [run] = repo.runs()
    transfers = repo.transfers(run.id)
    exchange = [t for t in transfers if t.reason == "model exchange"]
    assert exchange, "the ranks' all-reduce traffic must be in the transfer ledger"
    ranks = {train["site"], *(t.to_site for t in exchange), *(t.from_site for t in exchange)}
    assert len(ranks) == 2
    # Residency: the EU-bound features were copied only to EU sites.
    sites = yaml.safe_load((tmp_path / "stratus.yaml").read_text())["sites"]
    assert all(t.to_site not in ("aws-us-east", "azure-us-east") for t in transfers)
    assert set(ranks) <= set(sites)

    shown = stratus_cli("models", "show", "fraud-mlp", "--alias", "candidate", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert all(site in shown.stdout for site in ranks)
