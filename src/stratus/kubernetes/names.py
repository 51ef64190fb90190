"""Object names and labels: what Kubernetes accepts, and what owners and cost tools read.

Kubernetes names are DNS-1123 labels (63 characters, lower case); step and run names are not, so they
are folded here, once, with a short hash when folding could make two names collide.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

__all__ = [
    "FIELD_MANAGER",
    "LABEL_BUNDLE",
    "LABEL_PROJECT",
    "LABEL_RUN",
    "LABEL_SITE",
    "LABEL_STEP",
    "LABEL_TEAM",
    "MANAGED_BY",
    "dns_name",
    "label_value",
    "owner_labels",
]

FIELD_MANAGER = "stratus"
MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN = "stratus.io/run"
LABEL_STEP = "stratus.io/step"
LABEL_TEAM = "stratus.io/team"
LABEL_PROJECT = "stratus.io/project"
LABEL_SITE = "stratus.io/site"
LABEL_BUNDLE = "stratus.io/bundle"  # what `stratus k8s apply` applied together, and prunes together

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def dns_name(*parts: str, limit: int = 63) -> str:
    """``parts`` joined as a DNS-1123 label; a hash suffix keeps folded or shortened names distinct."""
    raw = "-".join(p for p in parts if p)
    folded = _NOT_DNS.sub("-", raw.lower()).strip("-") or "x"
    if folded == raw and len(folded) <= limit:
        return folded
    suffix = _digest(raw)
    return f"{folded[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def label_value(text: str) -> str:
    """``text`` as a label value: at most 63 of ``[A-Za-z0-9._-]``, starting and ending alphanumeric."""
    folded = _NOT_LABEL.sub("-", text).strip("-._")
    if folded == text and len(folded) <= 63:
        return folded
    suffix = _digest(text)
    return f"{folded[:56].strip('-._')}-{suffix}".strip("-")


def owner_labels(
    *, site: str, team: str | None, project: str | None, run: str | None = None, step: str | None = None
) -> dict[str, str]:
    """Labels on everything Stratus creates: ownership (prune and status select by them) and cost.

    ``stratus.io/*`` say which run, step, team and project an object belongs to. ``team``, ``owner``,
    ``product`` and ``app`` are the labels Kubecost aggregates by out of the box (OpenCost allocates by
    any label), so a team's spend shows without configuring either.
    """
    labels: dict[str, str] = {MANAGED_BY: FIELD_MANAGER, LABEL_SITE: label_value(site), "app": "stratus"}
    optional: Mapping[str, str | None] = {
        LABEL_TEAM: team,
        LABEL_PROJECT: project,
        LABEL_RUN: run,
        LABEL_STEP: step,
        "team": team,
        "owner": team,
        "product": project,
    }
    labels.update({key: label_value(value) for key, value in optional.items() if value})
    return labels
