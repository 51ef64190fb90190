"""The root ``stratus`` command: registers the command groups and turns StratusError into a clean exit."""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass

import typer
from rich.markup import escape

from stratus.cli import audit_cmd
from stratus.cli.lazy import LazyCommand, lazy_group
from stratus.cli.output import configure_logging, stderr
from stratus.config.env import ALLOW_INLINE_ENV
from stratus.errors import StratusError

__all__ = ["COMMANDS", "app", "main"]


@dataclass
class _Session:
    debug: bool = False


_session = _Session()

#: Every command: loaded when the command line names it (stratus.cli.lazy), summarised in --help.
COMMANDS: dict[str, LazyCommand] = {
    "plan": LazyCommand(
        "stratus.cli.plan_cmd:plan_command",
        "Place every step on the cheapest (or fastest) compliant site and offering.",
    ),
    "run": LazyCommand(
        "stratus.cli.run_cmd:run_command",
        "Plan, then run every step on its site, in parallel up to each site's capacity.",
    ),
    "runs": LazyCommand(
        "stratus.cli.runs_cmd:app",
        "What ran where: runs, their steps, transfers, re-plans and logs; cancel a run.",
    ),
    "storage": LazyCommand(
        "stratus.cli.storage_cmd:app",
        "Artifacts and their replicas across sites: get, cat, ls, verify, repair.",
    ),
    "catalog": LazyCommand(
        "stratus.cli.catalog_cmd:app",
        "List cloud offerings with hourly prices, cheapest first, or import a fresher price catalog.",
    ),
    "cost": LazyCommand(
        "stratus.cli.cost_cmd:app",
        "What runs cost: planned next to actual by team, project, provider, site or step; FOCUS export.",
    ),
    "sandbox": LazyCommand(
        "stratus.cli.sandbox_cmd:app",
        "Real object-store servers on loopback (S3, GCS, Azure Blob) and a platform file using them.",
    ),
    "serve": LazyCommand(
        "stratus.cli.serve_cmd:app",
        "Serve a model from several sites behind one gateway (Open Inference Protocol / KServe V2).",
    ),
    "chaos": LazyCommand(
        "stratus.cli.chaos_cmd:app",
        "Drills that break a running deployment on purpose and measure how it heals.",
    ),
    "models": LazyCommand(
        "stratus.cli.models_cmd:app",
        "Registered models (MLflow): what exists, where each version came from, which is champion.",
    ),
    "k8s": LazyCommand("stratus.cli.k8s_cmd:app", "Kubernetes contexts as sites' compute, all at once."),
    "audit": LazyCommand("stratus.cli.audit_cmd:app", "The audit trail of state-changing commands."),
    "policy": LazyCommand(
        "stratus.cli.policy_cmd:app",
        "Policy as code: evaluate the platform's Rego policies on an input, run Rego unit tests.",
    ),
    "export": LazyCommand(
        "stratus.cli.export_cmd:app",
        "A pipeline as another engine's file: Kubeflow Pipelines IR (kfp) or an Argo Workflow (argo).",
    ),
    "ui": LazyCommand(
        "stratus.cli.ui_cmd:ui_command",
        "A read-only web dashboard: runs and their graphs, logs, sites, cost, serving and models.",
    ),
}

app = typer.Typer(
    name="stratus",
    help=(
        "Run ML pipelines across several clouds as one system.\n\n"
        "Describe your sites in stratus.yaml and your steps in a pipeline file, then:\n\n"
        "  stratus plan pipeline.yaml            cheapest compliant placement\n\n"
        "  stratus plan pipeline.yaml --explain  with runners-up and rejected sites\n\n"
        "  stratus run pipeline.yaml             execute it, resumably (--resume RUN_ID)\n\n"
        "  stratus serve export.onnx --sites a,b serve the model from two sites behind a gateway\n\n"
        "  stratus export kfp pipeline.yaml -o f  the plan as Kubeflow Pipelines (or argo) YAML\n\n"
        "  stratus catalog --accelerator A100    offerings, cheapest first"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=lazy_group(COMMANDS),
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails."),
    allow_inline_secrets: bool = typer.Option(
        False,
        "--allow-inline-secrets",
        help="Accept literal credentials in the platform file (default: only env:/file:/vault: references; "
        f"same as {ALLOW_INLINE_ENV}=1).",
    ),
) -> None:
    _session.debug = _session.debug or debug
    if allow_inline_secrets:
        os.environ[ALLOW_INLINE_ENV] = "1"  # read where the platform is loaded, also by child processes


def main() -> None:
    """Console entry point: a user's mistake prints one clear message and an exit code, not a traceback.

    A state-changing command (or one with an override flag) is recorded in the audit trail once it has
    ended, whatever its outcome: here, once, rather than in each command (stratus.cli.audit_cmd).
    """
    args = sys.argv[1:]
    command = audit_cmd.audited(args)
    code = 1
    try:
        _main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:
        if command is not None:
            audit_cmd.record(command, args, code)


def _main() -> None:
    # --debug is accepted anywhere on the line, since users add it after the command that failed.
    if "--debug" in sys.argv[1:]:
        _session.debug = True
        sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if a != "--debug")]
    if "--allow-inline-secrets" in sys.argv[1:]:
        os.environ[ALLOW_INLINE_ENV] = "1"
        sys.argv = [sys.argv[0], *(a for a in sys.argv[1:] if a != "--allow-inline-secrets")]
    configure_logging(_session.debug)
    try:
        app()
    except StratusError as exc:
        if _session.debug:
            traceback.print_exc()
        stderr().print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        stderr().print("interrupted")
        sys.exit(130)
