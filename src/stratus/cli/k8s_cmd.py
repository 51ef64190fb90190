"""``stratus k8s``: the platform's Kubernetes contexts as one: render, apply, status, scale, delete.

Every command acts on every ``backend: kubernetes`` site of the platform file at once (``--sites`` to
narrow it), the way a ``kubectl`` user would run the same command once per ``--context``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from stratus.cli.inputs import JSON, PLATFORM, load_files, workspace_here
from stratus.cli.output import console, print_json, stderr
from stratus.config import Platform
from stratus.errors import ConfigError

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Kubernetes contexts as sites' compute, all at once.\n\n"
        "  stratus k8s render pipeline.yaml -o out/    validated YAML per site (kubectl apply -f out/S)\n\n"
        "  stratus k8s render --serve fraud.onnx -o out/  the model server per site\n\n"
        "  stratus k8s apply pipeline.yaml             server-side apply in every context, prune the rest\n\n"
        "  stratus k8s status                          pods, jobs, deployments of every context\n\n"
        "  stratus k8s scale DEPLOYMENT --replicas 5   in every context (or --context C)"
    ),
    no_args_is_help=True,
)

_PIPELINE = typer.Argument(None, help="The pipeline file (YAML); or --serve MODEL.", show_default=False)
_SERVE = typer.Option(None, "--serve", help="Serve this model (an ONNX file name or path) instead.")
_SITES = typer.Option(None, "--sites", help="Only these Kubernetes sites (comma-separated).")
_RUN_ID = typer.Option("manual", "--run-id", help="Run id the rendered steps carry (labels, work folder).")
_MIN = typer.Option(2, "--min-replicas", min=1, help="Serving: replicas the autoscaler keeps at least.")
_MAX = typer.Option(5, "--max-replicas", min=1, help="Serving: replicas the autoscaler may grow to.")


def _targets(platform: Platform, sites: str | None) -> list[Any]:
    from stratus.kubernetes.target import kubernetes_targets

    only = [s.strip() for s in sites.split(",") if s.strip()] if sites else None
    return kubernetes_targets(platform.sites, only)


def _platform_only(platform: Path | None) -> Platform:
    return workspace_here(platform).platform


def _bundle(
    pipeline: Path | None,
    serve: str | None,
    platform: Path | None,
    sites: str | None,
    run_id: str,
    low: int,
    high: int,
) -> tuple[Any, Platform]:
    from stratus.kubernetes.bundle import pipeline_bundle, serving_bundle
    from stratus.kubernetes.serving import ServeSpec

    if (pipeline is None) == (serve is None):
        raise typer.BadParameter(
            "give either a PIPELINE file or --serve MODEL (one of them)", param_hint="PIPELINE"
        )
    if pipeline is not None:
        workspace, pipeline_model = load_files(pipeline, platform)
        platform_model = workspace.platform
        return pipeline_bundle(pipeline_model, _targets(platform_model, sites), run_id), platform_model
    assert serve is not None
    if high < low:
        raise typer.BadParameter(
            f"--max-replicas {high} is below --min-replicas {low}", param_hint="--max-replicas"
        )
    file_name = Path(serve).name if serve.endswith(".onnx") else f"{serve}.onnx"
    spec = ServeSpec(model=Path(file_name).stem, file_name=file_name, min_replicas=low, max_replicas=high)
    platform_model = _platform_only(platform)
    return serving_bundle(spec, _targets(platform_model, sites)), platform_model


@app.command("render")
def render_command(
    pipeline: Path | None = _PIPELINE,
    serve: str | None = _SERVE,
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write DIR/SITE/*.yaml into."),
    platform: Path | None = PLATFORM,
    sites: str | None = _SITES,
    run_id: str = _RUN_ID,
    min_replicas: int = _MIN,
    max_replicas: int = _MAX,
    as_json: bool = JSON,
) -> None:
    """Write validated manifests, one folder per Kubernetes site, ready for ``kubectl apply -f``."""
    from stratus.kubernetes.bundle import write_bundle

    bundle, _ = _bundle(pipeline, serve, platform, sites, run_id, min_replicas, max_replicas)
    files = write_bundle(bundle, out)
    if as_json:
        print_json(
            {
                "bundle": bundle.name,
                "sites": {
                    site: [f"{o['kind']}/{o['metadata']['name']}" for o in objs]
                    for site, objs in bundle.objects.items()
                },
                "files": [str(f) for f in files],
                "skipped": bundle.skipped,
            }
        )
        return
    for site, objects in bundle.objects.items():
        kinds = ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
        console().print(f"[bold]{escape(site)}[/] → {escape(str(out / site))}: {escape(kinds)}")
    for line in bundle.skipped:
        stderr().print(f"skipped {escape(line)}")
    console().print(f"{len(files)} objects validated and written")


@app.command("apply")
def apply_command(
    pipeline: Path | None = _PIPELINE,
    serve: str | None = _SERVE,
    platform: Path | None = PLATFORM,
    sites: str | None = _SITES,
    run_id: str = _RUN_ID,
    min_replicas: int = _MIN,
    max_replicas: int = _MAX,
    prune_objects: bool = typer.Option(
        True, "--prune/--no-prune", help="Delete this bundle's objects no longer rendered."
    ),
    as_json: bool = JSON,
) -> None:
    """Server-side apply (field manager ``stratus``) in every context; idempotent; prunes what it owns."""
    from stratus.kubernetes.client import apply_objects, connect, prune
    from stratus.kubernetes.target import kubernetes_targets

    bundle, platform_model = _bundle(pipeline, serve, platform, sites, run_id, min_replicas, max_replicas)
    report: dict[str, dict[str, list[str]]] = {}
    for target in kubernetes_targets(platform_model.sites, list(bundle.objects)):
        client = connect(target)
        objects = bundle.objects[target.site]
        applied = apply_objects(client, target, objects)
        pruned = prune(client, target, bundle.name, objects) if prune_objects else []
        report[target.site] = {"context": [target.context], "applied": applied, "pruned": pruned}
    if as_json:
        print_json({"bundle": bundle.name, "sites": report})
        return
    for site, done in report.items():
        removed = f"; pruned {', '.join(done['pruned'])}" if done["pruned"] else ""
        where = f"{site} (context {done['context'][0]})"
        console().print(f"{escape(where)}: applied {len(done['applied'])}{escape(removed)}")


@app.command("status")
def status_command(
    platform: Path | None = PLATFORM, sites: str | None = _SITES, as_json: bool = JSON
) -> None:
    """Pods, Jobs and Deployments of every context and namespace, in one table."""
    from stratus.kubernetes.client import connect, status_rows

    rows = []
    for target in _targets(_platform_only(platform), sites):
        rows += status_rows(connect(target), target)
    if as_json:
        print_json({"objects": [asdict(r) for r in rows]})
        return
    table = Table("CONTEXT", "SITE", "NAMESPACE", "KIND", "NAME", "STATUS", "DETAIL", box=None)
    for row in rows:
        table.add_row(
            *(
                escape(v)
                for v in (row.context, row.site, row.namespace, row.kind, row.name, row.status, row.detail)
            )
        )
    console().print(table)


@app.command("scale")
def scale_command(
    deployment: str = typer.Argument(..., help="The Deployment's name (see stratus k8s status)."),
    replicas: int = typer.Option(..., "--replicas", min=0, help="How many replicas."),
    context: str | None = typer.Option(None, "--context", help="Only the site(s) with this kube context."),
    platform: Path | None = PLATFORM,
    sites: str | None = _SITES,
) -> None:
    """Set a Deployment's replicas in every context (or one), as ``kubectl scale`` does."""
    from stratus.kubernetes.client import connect, scale_deployment

    targets = _targets(_platform_only(platform), sites)
    if context is not None:
        targets = [t for t in targets if t.context == context]
        if not targets:
            raise ConfigError(f"no Kubernetes site uses context {context!r}", field="--context")
    for target in targets:
        scale_deployment(connect(target), target, deployment, replicas)
        where = f"{target.site} (context {target.context})"
        console().print(f"{escape(where)}: {escape(deployment)} scaled to {replicas}")


@app.command("delete")
def delete_command(
    pipeline: Path | None = _PIPELINE,
    serve: str | None = _SERVE,
    everything: bool = typer.Option(False, "--all", help="Everything Stratus created at the sites."),
    platform: Path | None = PLATFORM,
    sites: str | None = _SITES,
) -> None:
    """Delete what ``stratus k8s apply`` created (one bundle, or ``--all``); never anything else."""
    from stratus.kubernetes.client import connect, delete_owned
    from stratus.kubernetes.names import label_value

    if everything == (pipeline is not None or serve is not None):
        raise typer.BadParameter(
            "give a PIPELINE file, --serve MODEL, or --all (one of them)", param_hint="PIPELINE"
        )
    bundle: str | None = None
    if pipeline is not None:
        workspace, pipeline_model = load_files(pipeline, platform)
        platform_model = workspace.platform
        bundle = label_value(f"pipeline-{pipeline_model.name}")
    else:
        platform_model = _platform_only(platform)
        if serve is not None:
            bundle = label_value(f"serve-{Path(serve).stem}")
    for target in _targets(platform_model, sites):
        gone = delete_owned(connect(target), target, bundle)
        console().print(f"{escape(target.site)} (context {escape(target.context)}): deleted {len(gone)}")
