"""``stratus plan`` as a user runs it: a real subprocess, real files, exit codes and the words on screen.

Every run happens in a temporary working directory, so nothing is written into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fraud-detection"
EXAMPLE_PIPELINE = EXAMPLE / "pipeline.yaml"
EXAMPLE_PLATFORM = EXAMPLE / "stratus.yaml"

EU_SITES = {"gcp-eu-west", "gcp-eu-functions", "onprem-eu-gpu"}
US_SITES = {"aws-us-east", "azure-us-east"}


def stratus(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stratus ARGS`` the way a shell would; wide columns so rich does not wrap."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [sys.executable, "-m", "stratus", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def flat(text: str) -> str:
    """Whitespace and box-drawing folded, so assertions survive rich's layout."""
    return " ".join(text.translate(str.maketrans("│╭╮╰╯─", "      ")).split())


def copy_example(dest: Path, *, pipeline_text: str | None = None, platform: bool = True) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    pipeline = dest / "pipeline.yaml"
    pipeline.write_text(pipeline_text or EXAMPLE_PIPELINE.read_text(encoding="utf-8"), encoding="utf-8")
    if platform:
        shutil.copy(EXAMPLE_PLATFORM, dest / "stratus.yaml")
    return pipeline


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def parse_one_json_object(stdout: str) -> dict[str, Any]:
    decoder = json.JSONDecoder()
    payload, end = decoder.raw_decode(stdout.lstrip())
    assert stdout.lstrip()[end:].strip() == "", f"more than one JSON value on stdout:\n{stdout}"
    assert isinstance(payload, dict)
    return payload


def eu_bound(pipeline_file: Path) -> tuple[set[str], set[str]]:
    """(steps that read EU-resident data, EU-resident artifacts), worked out from the YAML alone."""
    spec = yaml.safe_load(pipeline_file.read_text(encoding="utf-8"))
    resident = {
        f"dataset:{n}" for n, d in spec["datasets"].items() if str(d.get("residency")).upper() == "EU"
    }
    readers: set[str] = set()
    changed = True
    while changed:  # fixpoint: residency flows through outputs until a step declassifies
        changed = False
        for name, step in spec["steps"].items():
            if name in readers or not resident & set(step.get("inputs", [])):
                continue
            readers.add(name)
            changed = True
            if not step.get("declassify", False):
                resident |= {f"{name}.{out}" for out in step.get("outputs", {})}
    return readers, resident


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="module")
def example_plan(work: Path) -> dict[str, Any]:
    result = stratus("plan", EXAMPLE_PIPELINE, "--json", cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return parse_one_json_object(result.stdout)


# --- help teaches -------------------------------------------------------------------------------------------


def test_root_help_lists_commands_and_an_example(work: Path) -> None:
    result = stratus("--help", cwd=work)
    assert result.returncode == 0, result.stderr
    out = flat(result.stdout)
    assert "stratus plan pipeline.yaml" in out
    assert "--explain" in out
    assert "plan" in out
    assert "catalog" in out
    assert "--debug" in out


def test_plan_help_shows_an_example_and_exit_codes(work: Path) -> None:
    result = stratus("plan", "--help", cwd=work)
    assert result.returncode == 0, result.stderr
    out = flat(result.stdout)
    assert "Example: stratus plan examples/fraud-detection/pipeline.yaml --explain" in out
    assert "Exit codes: 0 planned, 2 usage or config error, 3 infeasible" in out
    for option in ("--platform", "--objective", "--explain", "--json"):
        assert option in out
    assert "stratus.yaml beside the pipeline, then in the working directory" in out


# --- the example's plan as JSON -----------------------------------------------------------------------------


def test_json_has_the_documented_shape(example_plan: dict[str, Any]) -> None:
    top = {
        "objective",
        "total_cost_usd",
        "compute_cost_usd",
        "egress_cost_usd",
        "makespan_hours",
        "steps",
        "transfers",
    }
    assert top <= set(example_plan)
    assert example_plan["objective"] == "cost"
    assert example_plan["steps"]
    for step in example_plan["steps"]:
        assert {"step", "site", "offering", "pricing", "hours", "cost_usd"} <= set(step)
        assert step["pricing"] in {"on-demand", "spot", "reserved"}
    for transfer in example_plan["transfers"]:
        assert {"artifact", "from_site", "to_site", "size_gb", "cost_usd"} <= set(transfer)
        assert transfer["from_site"] != transfer["to_site"]


def test_json_places_every_step_once(example_plan: dict[str, Any]) -> None:
    declared = list(yaml.safe_load(EXAMPLE_PIPELINE.read_text(encoding="utf-8"))["steps"])
    placed = [s["step"] for s in example_plan["steps"]]
    assert sorted(placed) == sorted(declared)


def test_json_totals_add_up(example_plan: dict[str, Any]) -> None:
    total = example_plan["total_cost_usd"]
    compute = example_plan["compute_cost_usd"]
    egress = example_plan["egress_cost_usd"]
    assert compute + egress == pytest.approx(total, abs=1e-6)
    assert sum(s["cost_usd"] for s in example_plan["steps"]) == pytest.approx(compute, abs=1e-6)
    assert sum(t["cost_usd"] for t in example_plan["transfers"]) == pytest.approx(egress, abs=1e-6)
    assert total > 0
    assert example_plan["makespan_hours"] >= max(s["hours"] for s in example_plan["steps"])


def test_json_keeps_eu_data_in_the_eu(example_plan: dict[str, Any]) -> None:
    readers, resident = eu_bound(EXAMPLE_PIPELINE)
    assert {"ingest", "preprocess", "train", "evaluate", "export"} <= readers  # the oracle sees the chain
    assert "report" not in readers  # evaluate declassifies its metrics
    site_of = {s["step"]: s["site"] for s in example_plan["steps"]}
    for step in readers:
        assert site_of[step] in EU_SITES, f"{step} reads EU data but runs at {site_of[step]}"
    for transfer in example_plan["transfers"]:
        if transfer["artifact"] in resident:
            assert transfer["to_site"] not in US_SITES, transfer


def test_objective_time_is_no_slower_than_cost(work: Path, example_plan: dict[str, Any]) -> None:
    result = stratus("plan", EXAMPLE_PIPELINE, "--json", "--objective", "time", cwd=work)
    assert result.returncode == 0, result.stderr
    fastest = parse_one_json_object(result.stdout)
    assert fastest["objective"] == "time"
    assert fastest["makespan_hours"] <= example_plan["makespan_hours"] + 1e-9
    assert fastest["total_cost_usd"] >= example_plan["total_cost_usd"] - 1e-6


def test_unknown_objective_is_a_usage_error(work: Path) -> None:
    result = stratus("plan", EXAMPLE_PIPELINE, "--objective", "bogus", cwd=work)
    assert result.returncode == 2
    err = flat(result.stderr)
    assert "'bogus' is not an objective; expected 'cost' or 'time'" in err
    assert "--objective" in err
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_explain_shows_runners_up_and_rejected_sites(work: Path) -> None:
    result = stratus("plan", EXAMPLE_PIPELINE, "--explain", cwd=work)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Plan for fraud-detection (objective: cost)" in out
    assert "Runners-up" in out
    assert "Rejected sites" in out
    assert "residency: reads data that must stay in EU; site is in US" in out
    assert "Total $" in out


# --- where the platform file comes from ---------------------------------------------------------------------


def test_platform_beside_the_pipeline_wins_over_the_working_dir(tmp_path: Path) -> None:
    pipeline = copy_example(tmp_path / "project")
    (tmp_path / "stratus.yaml").write_text("not: [a, platform\n")  # would fail if it were read
    result = stratus("plan", "project/pipeline.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert parse_one_json_object(result.stdout)["steps"]
    assert pipeline.exists()


def test_platform_in_the_working_dir_when_none_is_beside_the_pipeline(tmp_path: Path) -> None:
    copy_example(tmp_path / "pipelines", platform=False)
    team = tmp_path / "team"
    team.mkdir()
    shutil.copy(EXAMPLE_PLATFORM, team / "stratus.yaml")
    result = stratus("plan", "../pipelines/pipeline.yaml", "--json", cwd=team)
    assert result.returncode == 0, result.stderr
    assert parse_one_json_object(result.stdout)["steps"]


def test_explicit_platform_wins_over_discovery(tmp_path: Path) -> None:
    pipeline = copy_example(tmp_path / "pipelines", platform=False)
    (pipeline.parent / "stratus.yaml").write_text("not: [a, platform\n")  # would fail if it were read
    conf = tmp_path / "conf"
    conf.mkdir()
    shutil.copy(EXAMPLE_PLATFORM, conf / "team.yaml")
    result = stratus("plan", pipeline, "--platform", "conf/team.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert parse_one_json_object(result.stdout)["steps"]


def test_no_platform_file_anywhere(tmp_path: Path) -> None:
    copy_example(tmp_path / "pipelines", platform=False)
    result = stratus("plan", "pipelines/pipeline.yaml", cwd=tmp_path)
    assert result.returncode == 2
    err = flat(result.stderr)
    assert "error: no platform file found" in err
    assert "pipelines/stratus.yaml" in err
    assert "pass --platform FILE" in err
    assert "Traceback" not in result.stderr


def test_explicit_platform_that_does_not_exist(tmp_path: Path) -> None:
    result = stratus("plan", EXAMPLE_PIPELINE, "-p", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert flat(result.stderr) == "error: missing.yaml: file not found; check the path"


# --- config errors: exit 2, file:line, no traceback ---------------------------------------------------------

BAD_TYPE = edit(EXAMPLE_PIPELINE.read_text(encoding="utf-8"), "estimated_hours: 3", 'estimated_hours: "half"')


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_config_error_exits_2_with_file_line_and_field(tmp_path: Path) -> None:
    copy_example(tmp_path, pipeline_text=BAD_TYPE)
    result = stratus("plan", "pipeline.yaml", "--json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""  # --json promises parseable stdout or nothing
    assert "Traceback" not in result.stderr
    err = flat(result.stderr)
    line = _line(BAD_TYPE, '"half"')
    assert err.startswith(f"error: pipeline.yaml:{line}:")
    assert "steps.train.estimated_hours: Input should be a valid number" in err
    assert "(got 'half')" in err


def test_config_error_in_the_platform_file(tmp_path: Path) -> None:
    platform_text = edit(EXAMPLE_PLATFORM.read_text(encoding="utf-8"), "    jurisdiction: EU", "")
    copy_example(tmp_path, platform=False)
    (tmp_path / "stratus.yaml").write_text(platform_text)
    result = stratus("plan", "pipeline.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    err = flat(result.stderr)
    # Found beside the pipeline, so shown relative to it as the user named it.
    assert err.startswith(f"error: stratus.yaml:{_line(platform_text, 'frankfurt-dc1')}:")
    assert "sites.onprem-eu-gpu.region: jurisdiction cannot be derived" in err
    assert "add `jurisdiction:`" in err


def test_cycle_error_on_the_command_line(tmp_path: Path) -> None:
    text = edit(
        EXAMPLE_PIPELINE.read_text(encoding="utf-8"),
        "inputs: [ingest.transactions]",
        "inputs: [ingest.transactions, train.model]",
    )
    copy_example(tmp_path, pipeline_text=text)
    result = stratus("plan", "pipeline.yaml", cwd=tmp_path)
    assert result.returncode == 2
    err = flat(result.stderr)
    assert "the steps form a cycle:" in err
    assert "preprocess → train → preprocess" in err or "train → preprocess → train" in err
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback_of_a_config_error(tmp_path: Path) -> None:
    copy_example(tmp_path, pipeline_text=BAD_TYPE)
    result = stratus("--debug", "plan", "pipeline.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "stratus.errors.ConfigError" in result.stderr
    assert "steps.train.estimated_hours" in result.stderr


# --- infeasible: exit 3, per-step reasons, what to relax ----------------------------------------------------


def _infeasible(tmp_path: Path, old: str, new: str, *extra: str) -> subprocess.CompletedProcess[str]:
    text = edit(EXAMPLE_PIPELINE.read_text(encoding="utf-8"), old, new)
    copy_example(tmp_path, pipeline_text=text)
    return stratus(*extra, "plan", "pipeline.yaml", cwd=tmp_path)


H100_ON_PREM = (
    'accelerators: "L4:1"}\n',
    'accelerators: "H100:8"}\n    constraints: {providers: [onprem]}\n',
)


def test_infeasible_accelerator_names_each_site_and_what_to_relax(tmp_path: Path) -> None:
    result = _infeasible(tmp_path, *H100_ON_PREM)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    err = result.stderr
    assert "error: no site can run train:" in err
    for site in (*EU_SITES, *US_SITES):
        assert f"    {site}: " in err, f"no reason given for {site}"
    assert "provider: gcp not in constraints.providers ['onprem']" in err
    assert "onprem-eu-gpu: resources: no offering with" in err
    assert "H100:8" in err
    relax = flat(err.split("To relax:", 1)[1])
    assert "allow more constraints.providers" in relax
    assert "request fewer resources or add an offering that fits" in relax


def test_infeasible_residency_against_jurisdiction_constraint(tmp_path: Path) -> None:
    result = _infeasible(
        tmp_path,
        "    replicate: [gcp-eu-west, onprem-eu-gpu]",
        "    replicate: [gcp-eu-west, onprem-eu-gpu]\n    constraints: {jurisdiction: [US]}",
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    err = result.stderr
    assert "error: no site can run ingest:" in err
    assert "gcp-eu-west: jurisdiction: EU not in constraints.jurisdiction ['US']" in err
    assert "aws-us-east: residency: reads data that must stay in EU; site is in US" in err
    relax = flat(err.split("To relax:", 1)[1])
    assert "allow more constraints.jurisdiction" in relax
    assert "add a site in the data's jurisdiction, or declassify an upstream step" in relax


def test_infeasible_replica_outside_the_jurisdiction(tmp_path: Path) -> None:
    result = _infeasible(
        tmp_path,
        "    replicate: [gcp-eu-west, onprem-eu-gpu]",
        "    replicate: [gcp-eu-west, aws-us-east]",
    )
    assert result.returncode == 3
    err = flat(result.stderr)
    assert "residency forbids storing data where the pipeline asks" in err
    assert "ingest.transactions must stay in EU; aws-us-east is in US" in err
    assert "Remove those sites from replicate/replicas" in err


def test_debug_shows_the_traceback_of_an_infeasible_plan(tmp_path: Path) -> None:
    result = _infeasible(tmp_path, *H100_ON_PREM, "--debug")
    assert result.returncode == 3
    assert "Traceback (most recent call last)" in result.stderr
    assert "stratus.errors.InfeasibleError" in result.stderr
    assert "error: no site can run train:" in result.stderr
