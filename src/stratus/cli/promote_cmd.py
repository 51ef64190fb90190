"""``stratus models promote``: move an alias to a version, after copying its bytes and rolling it out.

    stratus models promote fraud --version 3 --alias champion          # the alias only
    stratus models promote fraud --from-alias staging --to-alias production --deploy aws-us-east

In order, each step only once the one before it succeeded, so ``production`` never names a version
that is not where it was promised:

1. the version is looked up (``--version N``, or whatever ``--from-alias`` points at) and its bytes are
   read from the registry, hash-checked against the SHA-256 registered with it (else from any site
   store that holds them);
2. the bytes are copied, content-addressed and hash-checked, into the stores of the ``--deploy`` and
   ``--copy-to`` sites, each refused before any byte moves when it is outside the model's residency
   or a policy denies serving there;
3. with ``--deploy``, the running deployment rolls to the new version site by site behind a health
   gate (:mod:`stratus.serving.roller`, carried out by the deployment's supervisor); a failed gate
   rolls every site back and ends the command (exit 1) with the alias unmoved;
4. the alias moves, and the promotion is recorded on the version: who (``$STRATUS_ACTOR``, else the OS
   user, as the audit trail names them), when, from what, and the sites. The audit trail records the
   command itself, whatever its outcome (``stratus audit ls``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from stratus.cli.audit_cmd import actor
from stratus.cli.inputs import JSON, PLATFORM_HERE, workspace_here
from stratus.cli.output import console, print_json
from stratus.config import Platform
from stratus.errors import ConfigError, ServingError
from stratus.policy import policy_gate
from stratus.processes import is_running
from stratus.registry import ModelRef, ModelVersionInfo, Promotion, check_alias
from stratus.serving.control import submit, wait_answer
from stratus.serving.deployment import SUPERVISOR_MARKER
from stratus.serving.deployments import Listed, require_deployment
from stratus.serving.roller import DEFAULT_MAX_ERROR_RATE, DEFAULT_WATCH_S, RollPlan
from stratus.serving.source import RegistryAccess, check_sites, resolve_model, stage_model
from stratus.workspace import Workspace

__all__ = ["promote_command"]


def promote_command(
    model: str = typer.Argument(..., help="The registered model's name.", show_default=False),
    version: int | None = typer.Option(None, "--version", min=1, help="The version to promote."),
    from_alias: str | None = typer.Option(
        None, "--from-alias", help="Promote the version this alias points at (e.g. staging)."
    ),
    alias: str = typer.Option(
        "champion",
        "--alias",
        "--to-alias",
        help="The alias to move (the model server loads models by alias).",
    ),
    deploy: str | None = typer.Option(
        None,
        "--deploy",
        help="Sites whose stores get the bytes and whose servers roll to the version, in this order: a,b.",
    ),
    copy_to: str | None = typer.Option(
        None, "--copy-to", help="More sites whose stores get the bytes (no serving change): a,b."
    ),
    name: str | None = typer.Option(
        None, "--name", help="The deployment to roll (--deploy). Default: the only one here."
    ),
    watch_s: float = typer.Option(
        DEFAULT_WATCH_S,
        "--watch",
        min=0.0,
        max=600.0,
        help="Seconds each site's new servers are watched after they take its traffic.",
    ),
    max_error_rate: float = typer.Option(
        DEFAULT_MAX_ERROR_RATE,
        "--max-error-rate",
        min=0.0,
        max=1.0,
        help="The share of attempts to the new version that may fail while it is watched.",
    ),
    timeout_s: float = typer.Option(
        600.0, "--timeout", min=1.0, help="Seconds to wait for the deployment's supervisor to finish."
    ),
    platform: Path | None = PLATFORM_HERE,
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow tracking URI to use instead of the platform's."
    ),
    as_json: bool = JSON,
) -> None:
    """Point an alias at a version; with --deploy, copy its bytes and roll the serving sites to it first.

    Example: stratus models promote fraud --version 3 --alias champion

    Example: stratus models promote fraud --from-alias staging --to-alias production --deploy aws-us-east
    """
    if (version is None) == (from_alias is None):
        raise ConfigError(
            "say which version to promote: --version N or --from-alias ALIAS (one of them)",
            field="--version/--from-alias",
        )
    check_alias(alias)  # before any lookup: a reserved or malformed alias is refused at once
    if from_alias is not None:
        check_alias(from_alias)
    deploy_sites = _site_list(deploy, "--deploy")
    targets = list(dict.fromkeys([*deploy_sites, *_site_list(copy_to, "--copy-to")]))
    if name is not None and not deploy_sites:
        raise ConfigError("--name chooses the deployment to roll: add --deploy SITES", field="--name")
    workspace = None if (tracking_uri and not targets) else workspace_here(platform)
    registry = (workspace or Workspace(Path("stratus.yaml"))).registry(tracking_uri)
    ref = ModelRef.of(model, from_alias if from_alias is not None else version)
    info = registry.version(ref)
    rolled: dict[str, Any] | None = None
    if targets:
        assert workspace is not None
        chosen = _deployment(workspace, name, deploy_sites) if deploy_sites else None
        paths, description = _copy(workspace, tracking_uri, info, targets, chosen)
        if chosen is not None:
            plan = RollPlan(
                tuple(deploy_sites),
                {site: paths[site] for site in deploy_sites},
                str(info.version),
                description,
                watch_s,
                max_error_rate,
            )
            rolled = _roll(chosen, plan, info, alias, timeout_s)
    source = from_alias if from_alias is not None else f"v{info.version}"
    result = registry.promote(model, info.version, alias, by=actor(), source=source, sites=targets)
    if as_json:
        print_json({"tracking_uri": registry.shown_uri, **result.to_json(), "rolled": rolled})
        return
    _print(result, info, targets, rolled)


def _site_list(text: str | None, flag: str) -> list[str]:
    if text is None:
        return []
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError(f"expected at least one site, e.g. {flag} a,b", field=flag)
    if len(set(names)) != len(names):
        raise ConfigError("a site is listed twice", field=flag)
    return names


def _check_known(platform: Platform, platform_file: Path, sites: list[str]) -> None:
    for site in sites:
        if site not in platform.sites:
            raise ConfigError(
                f"unknown site {site!r}; the platform's sites are: {', '.join(platform.sites)}",
                file=str(platform_file),
                field="--deploy/--copy-to",
            )


def _deployment(workspace: Workspace, name: str | None, sites: list[str]) -> Listed:
    """The running deployment to roll; refused (before any byte moves) when it cannot be rolled."""
    chosen = require_deployment(workspace.serve_dir, name)
    deployment = chosen.deployment
    missing = [site for site in sites if site not in deployment.site_names]
    if missing:
        raise ConfigError(
            f"deployment {chosen.name} does not serve from {', '.join(missing)} (it serves from "
            f"{', '.join(deployment.site_names)}); start serving there first, or --deploy only those",
            field="--deploy",
        )
    if not is_running(deployment.supervisor_pid, deployment.supervisor_command or SUPERVISOR_MARKER):
        raise ServingError(
            f"the supervisor (pid {deployment.supervisor_pid}) of deployment {chosen.name} is not running, "
            f"and only it starts and stops model servers: `stratus serve stop --name {chosen.name}`, "
            "then serve again",
            status=503,
        )
    return chosen


def _copy(
    workspace: Workspace,
    tracking_uri: str | None,
    info: ModelVersionInfo,
    targets: list[str],
    chosen: Listed | None,
) -> tuple[dict[str, Path], str]:
    """The version's bytes into every target site's store (hash-checked, residency and policy checked
    first); a local copy per site, read back from that site's store, and where the bytes came from."""
    platform = workspace.platform
    _check_known(platform, workspace.platform_file, targets)
    root = workspace.serve_dir
    repo = workspace.repository
    access = RegistryAccess.of(workspace, tracking_uri)
    source = resolve_model(info.uri, repo, chosen.deployment.model if chosen else None, access)
    stores = dict(workspace.stores(targets))
    gate = policy_gate(platform, workspace.platform_file.parent)
    try:
        check_sites(source, stores, gate)
    finally:
        gate.close()
    cache = (chosen.folder if chosen is not None else root / "promoted") / "models"
    return stage_model(source, stores, repo, cache, workspace.store), source.description


def _roll(chosen: Listed, plan: RollPlan, info: ModelVersionInfo, alias: str, timeout_s: float) -> Any:
    """Hand the roll to the deployment's supervisor and wait for its outcome."""
    deployment = chosen.deployment

    def supervisor_alive() -> bool:
        return is_running(deployment.supervisor_pid, deployment.supervisor_command or SUPERVISOR_MARKER)

    request = submit(chosen.folder, "roll", plan.to_params())
    outcome = wait_answer(chosen.folder, request, supervisor_alive, timeout_s)
    if not outcome.get("ok"):
        raise ServingError(
            f"rolling deployment {chosen.name} to {info.uri} failed, so {info.name}@{alias} was not "
            f"moved: {outcome.get('error')}",
            status=int(outcome.get("status", 500)),
        )
    return {"name": chosen.name, **{key: value for key, value in outcome.items() if key != "ok"}}


def _print(
    result: Promotion, info: ModelVersionInfo, targets: list[str], rolled: dict[str, Any] | None
) -> None:
    out = console()
    if targets:
        digest = (info.onnx_sha256 or "?")[:12]
        out.print(f"copied v{info.version} (sha256 {digest}…, hash-checked) to {', '.join(targets)}")
    if rolled is not None:
        for site in rolled["sites"]:
            serving = ", ".join(s["name"] for s in site["serving"])
            out.print(
                f"rolled {escape(rolled['name'])} at {site['site']}: {serving} serve v{info.version} "
                f"(watched: {site['watched_requests']} requests, {site['watched_failures']} failed); "
                f"retired {', '.join(site['retired'])}"
            )
        for note in rolled["notes"]:
            out.print(f"  [yellow]note:[/] {escape(note)}")
    if result.previous_version is None:
        was = "new alias"
    elif result.previous_version == result.version:
        was = "unchanged"
    else:
        was = f"was v{result.previous_version}"
    out.print(
        f"{escape(result.name)}@{escape(result.alias)} → v{result.version} ({was}), promoted by "
        f"{escape(result.by or '?')}",
        soft_wrap=True,
    )
