"""The root ``stratus`` command: registers the command groups and turns StratusError into a clean exit."""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass

import typer
from rich.markup import escape

from stratus.cli import (
    audit_cmd,
    catalog_cmd,
    chaos_cmd,
    cost_cmd,
    k8s_cmd,
    models_cmd,
    plan_cmd,
    policy_cmd,
    run_cmd,
    sandbox_cmd,
    serve_cmd,
    storage_cmd,
    ui_cmd,
)
from stratus.cli.output import configure_logging, stderr
from stratus.config.secret_fields import ALLOW_INLINE_ENV
from stratus.errors import StratusError

__all__ = ["app", "main"]


@dataclass
class _Session:
    debug: bool = False


_session = _Session()

app = typer.Typer(
    name="stratus",
    help=(
        "Run ML pipelines across several clouds as one system.\n\n"
        "Describe your sites in stratus.yaml and your steps in a pipeline file, then:\n\n"
        "  stratus plan pipeline.yaml            cheapest compliant placement\n\n"
        "  stratus plan pipeline.yaml --explain  with runners-up and rejected sites\n\n"
        "  stratus run pipeline.yaml             execute it, resumably (--resume RUN_ID)\n\n"
        "  stratus serve export.onnx --sites a,b serve the model from two sites behind a gateway\n\n"
        "  stratus catalog --accelerator A100    offerings, cheapest first"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
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


app.command("plan")(plan_cmd.plan_command)
app.command("run")(run_cmd.run_command)
app.add_typer(storage_cmd.app, name="storage")
app.add_typer(catalog_cmd.app, name="catalog")
app.add_typer(cost_cmd.app, name="cost")
app.add_typer(sandbox_cmd.app, name="sandbox")
app.add_typer(serve_cmd.app, name="serve")
app.add_typer(chaos_cmd.app, name="chaos")
app.add_typer(models_cmd.app, name="models")
app.add_typer(k8s_cmd.app, name="k8s")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(policy_cmd.app, name="policy")
app.command("ui")(ui_cmd.ui_command)


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
