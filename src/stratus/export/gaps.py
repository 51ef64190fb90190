"""What a workflow engine cannot say about a Stratus pipeline: listed, never silently dropped.

Kubeflow Pipelines and Argo Workflows run a DAG of containers in one cluster with one artifact store.
Stratus's guarantees that live in its runner (residency checked on every copy, dual-write, failover to
another site, a federated step whose data never moves, ranks across sites, the model registry, the cost
ledger) have no equivalent there; each one the pipeline relies on becomes a :class:`Gap` the export
prints on stderr and in ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratus.config import Pipeline, Platform
from stratus.planner import Plan
from stratus.planner.multisite import data_sites

__all__ = ["Gap", "find_gaps"]


@dataclass(frozen=True)
class Gap:
    """One thing the export could not express: which feature, where, and what the file does instead."""

    feature: str
    where: str  # a step, "dataset:NAME", or "pipeline"
    detail: str

    def line(self) -> str:
        """One line for the terminal."""
        return f"{self.feature} ({self.where}): {self.detail}"

    def to_json(self) -> dict[str, str]:
        """The gap as a JSON object."""
        return {"feature": self.feature, "where": self.where, "detail": self.detail}


def _multi_site(pipeline: Pipeline, plan: Plan, engine: str) -> list[Gap]:
    gaps = []
    for name, step in pipeline.steps.items():
        where = plan.placement(name)
        if step.kind == "federated":
            sites = ", ".join(data_sites(step, pipeline))
            gaps.append(
                Gap(
                    "federated",
                    name,
                    f"one Flower participant per data site ({sites}), only model updates crossing, is "
                    f"exported as one task at {where.site} that is handed every participant's data: "
                    f"{engine} moves those datasets through its artifact store, out of their sites; run "
                    "this step with `stratus run` to keep the data where it is",
                )
            )
        elif step.kind == "distributed":
            ranks = [where.site, *(p.site for p in where.participants)]
            gaps.append(
                Gap(
                    "distributed",
                    name,
                    f"{len(ranks)} ranks across sites ({', '.join(ranks)}) are exported as rank 0 alone at "
                    f"{where.site}: {engine} starts no gang of pods across clusters (`stratus k8s render` "
                    "gives a JobSet or PyTorchJob inside one)",
                )
            )
    return gaps


def _data(pipeline: Pipeline, engine: str) -> list[Gap]:
    gaps = []
    for name, step in pipeline.steps.items():
        if step.replicate.sites:
            quorum = step.replicate.quorum
            gaps.append(
                Gap(
                    "replicate",
                    name,
                    f"dual-write of every output to {', '.join(step.replicate.sites)} (acknowledged at "
                    f"{quorum} of them) is not expressed: {engine} keeps one copy of each output in its "
                    "artifact store; `stratus storage repair` cannot see it",
                )
            )
        if step.registration is not None:
            aliases = "".join(f"@{a}" for a in step.registration.aliases)
            gaps.append(
                Gap(
                    "register",
                    name,
                    f"registering the output as {step.registration.model}{aliases} in the model registry "
                    "is done by `stratus run` only; the exported task writes the file and stops",
                )
            )
    for name, dataset in pipeline.datasets.items():
        if dataset.residency:
            gaps.append(
                Gap(
                    "residency",
                    f"dataset:{name}",
                    f"{dataset.residency} residency (of this dataset and everything derived from it up to a "
                    f"declassify step) is not checked: {engine} writes every artifact to its one store "
                    f"wherever that is; point its artifact store at a bucket in {dataset.residency}",
                )
            )
    return gaps


def _sites(platform: Platform, plan: Plan, engine: str) -> list[Gap]:
    gaps = []
    used = list(dict.fromkeys(p.site for p in plan.placements))
    if len(used) > 1:
        gaps.append(
            Gap(
                "placement",
                "pipeline",
                f"the plan spans {len(used)} sites ({', '.join(used)}); the export runs every task in one "
                f"{engine} cluster, each pinned to its site's nodes by node selectors (region, accelerator, "
                "spot): a cluster with no such nodes leaves that task pending, and the plan's "
                f"{len(plan.transfers)} copies between sites become reads from the one artifact store",
            )
        )
    for placement in plan.placements:
        if platform.sites[placement.site].compute.backend == "serverless":
            gaps.append(
                Gap(
                    "serverless",
                    placement.step,
                    f"placed at {placement.site}, a function service: exported as a container, without "
                    "the function service's memory and duration limits",
                )
            )
    gaps.append(
        Gap(
            "failover",
            "pipeline",
            f"a step that fails is retried in place by {engine} (max_attempts - 1 retries); `stratus run` "
            "would re-plan it onto another compliant site and resume from the last finished step",
        )
    )
    gaps.append(
        Gap(
            "cost",
            "pipeline",
            "no planned-against-actual cost rows are written to the ledger (`stratus cost report`)",
        )
    )
    return gaps


def find_gaps(pipeline: Pipeline, platform: Platform, plan: Plan, engine: str) -> list[Gap]:
    """Every guarantee of ``pipeline`` under ``plan`` that ``engine`` (a display name) cannot keep."""
    return [*_multi_site(pipeline, plan, engine), *_data(pipeline, engine), *_sites(platform, plan, engine)]
