"""``stratus policy``: evaluate the platform's policies on one input, and run Rego unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from stratus.cli.inputs import JSON, PLATFORM_HERE, workspace_here
from stratus.cli.output import console, print_json
from stratus.config import policy_path
from stratus.config.source import read_yaml
from stratus.errors import ConfigError, PolicyError
from stratus.policy.loader import engine_for, merge_data, read_modules
from stratus.policy.testing import TestResult, run_tests

__all__ = ["app"]

DECISIONS = ("plan", "run", "serve", "repair")

app = typer.Typer(
    help="Policy as code: evaluate the platform's Rego policies on an input, run Rego unit tests.",
    no_args_is_help=True,
)


@app.command("eval")
def eval_command(
    input_file: Path = typer.Option(..., "--input", "-i", help="The input document (JSON or YAML)."),
    decision: str | None = typer.Option(
        None, "--decision", "-d", help="plan, run, serve or repair: sets (or checks) input.decision."
    ),
    platform: Path | None = PLATFORM_HERE,
    as_json: bool = JSON,
) -> None:
    """Put one input document to the platform's policies, as a decision point would.

    Example: stratus policy eval --input candidate.json --decision plan

    Exit codes: 0 allowed, 6 denied (with the policy's messages, or why it failed closed), 2 usage or
    configuration error.
    """
    if decision is not None and decision not in DECISIONS:
        raise typer.BadParameter(f"{decision!r} is not a decision; expected one of {', '.join(DECISIONS)}")
    workspace = workspace_here(platform)
    platform_file, model = workspace.platform_file, workspace.platform
    if model.policies is None:
        raise ConfigError("the platform file has no `policies:` to evaluate", file=str(platform_file))
    doc = read_yaml(input_file).data
    if not isinstance(doc, dict):
        raise ConfigError("the input document must be a mapping", file=str(input_file))
    given = doc.get("decision")
    if decision is not None and given is not None and given != decision:
        raise ConfigError(f"input.decision is {given!r} but --decision is {decision!r}", file=str(input_file))
    doc["decision"] = decision or given
    if doc["decision"] not in DECISIONS:
        raise ConfigError(
            f"input.decision must be one of {', '.join(DECISIONS)}; pass --decision", file=str(input_file)
        )
    with engine_for(model.policies, platform_file.parent) as engine:
        verdict = engine.decide([doc])[0]
    if as_json:
        print_json(
            {"decision": doc["decision"], "allowed": verdict.allowed, "reasons": list(verdict.reasons)}
        )
    elif verdict.allowed:
        console().print(f"{doc['decision']}: allowed")
    else:
        console().print(f"{doc['decision']}: [bold red]denied[/]")
        for reason in verdict.reasons:
            console().print(f"  - {escape(reason)}", soft_wrap=True)
    if not verdict.allowed:
        sys.exit(PolicyError.exit_code)


@app.command("test")
def run_tests_command(
    folder: str = typer.Argument(
        ..., help="A directory (or .rego file) of modules and *_test.rego tests; stratus:library for ours."
    ),
    data: list[Path] = typer.Option([], "--data", help="A YAML or JSON data document (repeatable)."),
    timeout_s: float = typer.Option(5.0, "--timeout", min=0.01, max=600, help="Seconds each test may take."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list the tests that passed."),
    as_json: bool = JSON,
) -> None:
    """Run every rule named test_* (in every *.rego below DIR) and report pass or fail, like `opa test`.

    Example: stratus policy test stratus:library

    Exit codes: 0 every test passed, 1 a test failed or errored (or a module does not parse), 2 usage
    error (no such directory, no test found).
    """
    root = policy_path(folder, Path.cwd())
    if not root.exists():
        raise ConfigError(f"{folder!r} does not exist ({root}); pass a directory of .rego files")
    modules = read_modules([root], root if root.is_dir() else root.parent, tests=True)
    results, broken = run_tests(modules, merge_data(data), timeout_s=timeout_s)
    if broken is None and not results:
        raise ConfigError(f"no test rule (test_*) found in {folder}")
    failed = [r for r in results if r.outcome != "pass"]
    if as_json:
        print_json(
            {
                "passed": len(results) - len(failed),
                "failed": sum(r.outcome == "fail" for r in results),
                "errored": sum(r.outcome == "error" for r in results),
                "error": broken,
                "tests": [r.to_json() for r in results],
            }
        )
    else:
        _show(results, broken, verbose)
    if broken is not None or failed:
        sys.exit(1)


def _show(results: list[TestResult], broken: str | None, verbose: bool) -> None:
    out = console()
    if broken is not None:
        out.print(f"[bold red]ERROR[/]: {escape(broken)}", soft_wrap=True)
        return
    file = None
    for r in results:
        if r.outcome == "pass" and not verbose:
            continue
        if r.file != file:
            file = r.file
            out.print(f"{escape(file)}:")
        label = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]", "error": "[bold red]ERROR[/]"}[
            r.outcome
        ]
        detail = f": {escape(r.detail)}" if r.detail else ""
        out.print(f"{escape(r.name)}: {label} ({r.duration_s * 1000:.1f} ms){detail}", soft_wrap=True)
    passed = sum(r.outcome == "pass" for r in results)
    out.print("-" * 80)
    out.print(f"PASS: {passed}/{len(results)}")
    if passed < len(results):
        out.print(f"FAIL: {len(results) - passed}/{len(results)}")
