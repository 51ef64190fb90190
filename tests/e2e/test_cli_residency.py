"""Residency promises through the CLI: sites cannot lie about where they are, declassifying is not
copying, the manifest binds bytes to their strictest residency, and the registry's store is a place too.

Each test runs ``stratus`` in a subprocess on a small world (local sites, one of them in the US).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from stratus.state import Repository, open_database, state_url
from tests.run_world import one_json, pipeline, platform, stratus_cli, write_world

MAKE_PUBLIC = """

def make_public(ctx):  # the very bytes make_numbers writes
    ctx.output("public").write_text("\\n".join(str(i) for i in range(ctx.params["n"])))
"""


def _platform_with_us() -> dict[str, Any]:
    sites = platform()
    sites["sites"]["us"] = {**sites["sites"]["backup"], "jurisdiction": "US", "storage": "file://sites/us"}
    sites["sites"]["us"]["region"] = "dc-us"
    return sites


def _objects(world: Path, site: str) -> list[Path]:
    return [p for p in (world.parent / "sites" / site / "objects").rglob("*") if p.is_file()]


def test_a_cloud_site_cannot_claim_a_jurisdiction_its_region_lacks(tmp_path: Path) -> None:
    sites = platform()
    sites["sites"]["liar"] = {
        "provider": "aws",
        "region": "us-west-2",
        "jurisdiction": "EU",
        "storage": "file://sites/liar",
    }
    world = write_world(tmp_path, platform_spec=sites)
    result = stratus_cli("plan", world, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "stratus.yaml" in message
    assert "sites.liar.jurisdiction: jurisdiction EU contradicts the region" in message
    assert "aws region us-west-2 is in US" in message
    assert "Traceback" not in result.stderr

    sites["sites"]["liar"] = {**sites["sites"]["liar"], "jurisdiction": "US", "continent": "europe"}
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(sites, sort_keys=False))
    result = stratus_cli("plan", world, cwd=tmp_path)
    assert result.returncode == 2
    assert "sites.liar.continent: continent europe contradicts the region" in " ".join(result.stderr.split())

    # Saying what the table says, or saying where an on-prem site is, stays valid.
    sites["sites"]["liar"] = {**sites["sites"]["liar"], "jurisdiction": "us"}
    del sites["sites"]["liar"]["continent"]
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(sites, sort_keys=False))
    assert stratus_cli("plan", world, cwd=tmp_path).returncode == 0


def test_a_declassified_verbatim_copy_of_eu_data_is_refused_once(tmp_path: Path) -> None:
    spec = pipeline()
    spec["steps"] = {
        # Writes its EU input unchanged, then claims to have declassified it.
        "launder": {
            "run": "flow_steps:flaky",
            "inputs": ["dataset:numbers"],
            "outputs": {"squares": {}},
            "params": {"marker": str(tmp_path / "never"), "fail_times": 0},
            "declassify": True,
            "estimated_hours": 0.1,
        },
        "total": {
            "run": "flow_steps:total",
            "inputs": ["launder.squares"],
            "outputs": {"sum": {}},
            "constraints": {"sites": ["us"]},
            "estimated_hours": 0.1,
        },
    }
    world = write_world(tmp_path, pipeline_spec=spec, platform_spec=_platform_with_us())
    result = stratus_cli("run", world, "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    payload = one_json(result.stdout)
    launder = next(s for s in payload["steps"] if s["step"] == "launder")
    assert (launder["status"], launder["attempts"]) == ("failed", 1)  # refused, never retried
    message = " ".join(result.stderr.split())
    assert "step 'launder' was refused (not retried)" in message
    assert "launder.squares is declassified, but its bytes are exactly its input dataset:numbers" in message
    assert "(EU-resident)" in message
    assert _objects(world, "us") == []  # not one byte of the EU data reached the US site


def test_bytes_are_bound_to_the_strictest_residency_of_every_artifact_with_them(tmp_path: Path) -> None:
    spec = pipeline()
    numbers = spec["datasets"]["numbers"]
    # The same bytes, first made as an unbound dataset, then as the EU-resident one.
    public = {**numbers, "residency": None, "make": "flow_steps:make_public"}
    spec["datasets"] = {"public": public, "numbers": numbers}
    spec["steps"] = {
        "peek": {
            "run": "flow_steps:total",
            "inputs": ["dataset:public"],
            "outputs": {"sum": {}},
            "constraints": {"sites": ["us"]},
            "estimated_hours": 0.1,
        }
    }
    world = write_world(tmp_path, pipeline_spec=spec, platform_spec=_platform_with_us())
    with (tmp_path / "flow_steps.py").open("a") as steps:
        steps.write(MAKE_PUBLIC)
    result = stratus_cli("run", world, "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "refusing to copy dataset:public" in message
    assert "to site us (US): it is EU-resident (the manifest binds these bytes to the EU)" in message
    peek = next(s for s in one_json(result.stdout)["steps"] if s["step"] == "peek")
    assert peek["attempts"] == 1
    assert _objects(world, "us") == []

    listed = stratus_cli("storage", "ls", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [entry] = one_json(listed.stdout)["artifacts"]
    assert entry["residency"] == ["EU"]
    human = stratus_cli("storage", "ls", cwd=tmp_path)
    assert " EU " in human.stdout

    # A replica placed outside the bound by hand (or by an older version) is reported by verify.
    sha = entry["sha256"]
    stray = tmp_path / "sites" / "us" / "objects" / "sha256" / sha[:2] / sha
    stray.parent.mkdir(parents=True)
    shutil.copyfile(tmp_path / "sites" / "cheap" / "objects" / "sha256" / sha[:2] / sha, stray)
    Repository(open_database(state_url(tmp_path / "stratus.yaml"))).set_replica(sha, "us", "verified")
    verified = stratus_cli("storage", "verify", "--json", cwd=tmp_path)
    assert verified.returncode == 1, verified.stdout
    [checked] = one_json(verified.stdout)["artifacts"]
    assert checked["error"].startswith("replica(s) at us are outside these bytes' EU residency")


def test_an_eu_model_cannot_be_registered_in_a_registry_outside_the_eu(tmp_path: Path) -> None:
    spec = pipeline()
    spec["steps"]["combine"]["register"] = {"model": "flow"}
    sites = platform()
    sites["registry"] = {"jurisdiction": "US"}
    world = write_world(tmp_path, pipeline_spec=spec, platform_spec=sites)
    result = stratus_cli("run", world, cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "steps.combine.register: combine.report must stay in EU; the registry's store is in US" in message
    assert not (tmp_path / ".stratus" / "runs").exists()  # refused before anything ran

    del sites["registry"]  # the embedded default declares no jurisdiction
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(sites, sort_keys=False))
    result = stratus_cli("plan", world, cwd=tmp_path)
    assert result.returncode == 3
    assert "the registry's store has no declared jurisdiction (registry.jurisdiction)" in " ".join(
        result.stderr.split()
    )

    # The sites that keep registered models' bytes are places too.
    sites = _platform_with_us()
    sites["registry"] = {"jurisdiction": "EU", "artifacts": ["backup", "us"]}
    (tmp_path / "stratus.yaml").write_text(yaml.safe_dump(sites, sort_keys=False))
    result = stratus_cli("plan", world, cwd=tmp_path)
    assert result.returncode == 3
    assert "registry.artifacts: combine.report must stay in EU; us is in US" in " ".join(
        result.stderr.split()
    )
