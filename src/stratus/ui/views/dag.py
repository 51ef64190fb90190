"""The run page's graph as shapes: boxes per dataset and step, curves per input, copies between sites.

Layout is layered left to right: a node's column is the longest path to it from a source, and within a
column nodes are ordered by the mean row of what they read (one barycentre pass keeps small pipelines
uncrossed). Everything is numbers and strings; the template draws the SVG (and escapes every name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stratus.ui.queries.graph import Edge, PipelineGraph
from stratus.ui.queries.runs import StepView, TransferView
from stratus.ui.views.colours import SitePalette, status_colour
from stratus.ui.views.format import human_bytes

__all__ = ["DagEdge", "DagNode", "DagView", "build_dag", "layers"]

NODE_W = 170
NODE_H = 62
COLUMN_GAP = 140  # room for a copy's label: "→ SITE" over its size
ROW_GAP = 34
MARGIN = 16


@dataclass(frozen=True)
class DagNode:
    """One box: where it is, what it is, its colours and the step page it links to (None: no page)."""

    id: str
    label: str
    kind: str  # "step" or "dataset"
    x: int
    y: int
    status: str
    site: str | None
    fill: str
    stroke: str
    step: str | None  # the step (or "dataset:NAME", its making) whose page the box opens
    copies: tuple[str, ...] = ()  # "→ site (size)" for replicas written from here

    @property
    def width(self) -> int:
        """Box width in SVG units."""
        return NODE_W

    @property
    def height(self) -> int:
        """Box height in SVG units."""
        return NODE_H


@dataclass(frozen=True)
class DagEdge:
    """One input: a curve from producer to reader; ``transfer`` says which copy fed it, if one did."""

    source: str
    target: str
    artifact: str
    path: str
    label_x: int
    label_y: int
    transfer: str | None
    label_lines: tuple[str, ...] = ()  # the copy drawn on the curve: "→ SITE", then its size


@dataclass(frozen=True)
class DagView:
    """Everything the SVG needs, and its size."""

    nodes: tuple[DagNode, ...]
    edges: tuple[DagEdge, ...]
    width: int
    height: int
    legend: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    problem: str | None = None


def layers(nodes: Sequence[str], edges: Sequence[Edge]) -> dict[str, int]:
    """Node → its column: 0 for sources, else one more than the deepest node it reads (cycles cut)."""
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        parents.setdefault(e.target, []).append(e.source)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(node: str) -> int:
        if node in depth:
            return depth[node]
        if node in visiting:  # a cycle (the loader refuses them; a changed file might not): cut it here
            return 0
        visiting.add(node)
        found = max((visit(p) + 1 for p in parents.get(node, ())), default=0)
        visiting.discard(node)
        depth[node] = found
        return found

    for node in nodes:
        visit(node)
    return depth


def build_dag(
    graph: PipelineGraph,
    steps: Sequence[StepView],
    transfers: Sequence[TransferView],
    palette: SitePalette,
) -> DagView:
    """Shapes for ``graph`` coloured by each step's site (fill) and status (outline), with its copies."""
    views = {s.name: s for s in steps}
    node_ids = list(graph.nodes)
    column = layers(node_ids, graph.edges)
    rows = _rows(node_ids, graph.edges, column)
    fed = _edge_transfers(graph.edges, transfers)
    copies = _replica_copies(graph, transfers)
    nodes = []
    used_sites: dict[str, None] = {}
    for node in node_ids:
        nodes.append(_node(node, column[node], rows[node], views, graph.dataset_sites, palette, copies))
        if nodes[-1].site:
            used_sites[nodes[-1].site] = None
    position = {n.id: n for n in nodes}
    edges = [_edge(e, position, fed.get((e.artifact, e.target))) for e in graph.edges]
    width = MARGIN * 2 + (max(column.values(), default=0) + 1) * (NODE_W + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + (max(rows.values(), default=0) + 1) * (NODE_H + ROW_GAP) - ROW_GAP
    return DagView(
        tuple(nodes), tuple(edges), width, height, tuple(palette.legend(list(used_sites))), graph.problem
    )


def _rows(nodes: Sequence[str], edges: Sequence[Edge], column: Mapping[str, int]) -> dict[str, int]:
    parents: dict[str, list[str]] = {}
    for e in edges:
        parents.setdefault(e.target, []).append(e.source)
    rows: dict[str, int] = {}
    for c in range(max(column.values(), default=-1) + 1):
        members = [n for n in nodes if column[n] == c]
        order = {n: i for i, n in enumerate(members)}

        def key(node: str, order: Mapping[str, int] = order) -> tuple[float, int]:
            above = [rows[p] for p in parents.get(node, ()) if p in rows]
            return (sum(above) / len(above) if above else float(order[node]), order[node])

        for row, node in enumerate(sorted(members, key=key)):
            rows[node] = row
    return rows


def _edge_transfers(
    edges: Sequence[Edge], transfers: Sequence[TransferView]
) -> dict[tuple[str, str], list[TransferView]]:
    """(artifact, reader) → the copies made as that step's input."""
    wanted = {(e.artifact, e.target) for e in edges}
    found: dict[tuple[str, str], list[TransferView]] = {}
    for t in transfers:
        key = (t.artifact, t.reader or "")
        if key in wanted:
            found.setdefault(key, []).append(t)
    return found


def _replica_copies(graph: PipelineGraph, transfers: Sequence[TransferView]) -> dict[str, list[str]]:
    """Node → "→ site (size)" for copies that fed no drawn input (replicas, repairs, model exchanges)."""
    drawn = {(e.artifact, e.target) for e in graph.edges}
    nodes = set(graph.nodes)
    out: dict[str, list[str]] = {}
    for t in transfers:
        if (t.artifact, t.reader or "") in drawn:
            continue
        owner = t.artifact if t.artifact.startswith("dataset:") else t.artifact.split(".", 1)[0]
        if owner not in nodes:
            owner = t.step or ""
        if owner in nodes:
            text = f"→ {t.to_site} ({human_bytes(t.size_bytes)})"
            if text not in out.setdefault(owner, []):
                out[owner].append(text)
    return out


def _node(
    node: str,
    column: int,
    row: int,
    views: Mapping[str, StepView],
    dataset_sites: Mapping[str, str],
    palette: SitePalette,
    copies: Mapping[str, list[str]],
) -> DagNode:
    x = MARGIN + column * (NODE_W + COLUMN_GAP)
    y = MARGIN + row * (NODE_H + ROW_GAP)
    if node.startswith("dataset:"):
        name = node.removeprefix("dataset:")
        view = views.get(node)  # the attempt that made (or found) it is step "dataset:NAME"
        site = view.site if view and view.site else dataset_sites.get(name)
        status = view.status if view else "dataset"
        fill, stroke = palette.fill(site), status_colour(status) if view else "#555555"
        return DagNode(
            node, name, "dataset", x, y, status, site, fill, stroke, view.name if view else None,
            tuple(copies.get(node, ())),
        )  # fmt: skip
    step = views.get(node)
    site = step.site or step.planned_site if step else None
    status = step.status if step else "pending"
    return DagNode(
        node, node, "step", x, y, status, site, palette.fill(site), status_colour(status), node,
        tuple(copies.get(node, ())),
    )  # fmt: skip


def _edge(edge: Edge, position: Mapping[str, DagNode], copies: Sequence[TransferView] | None) -> DagEdge:
    a, b = position[edge.source], position[edge.target]
    x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
    x2, y2 = b.x, b.y + NODE_H // 2
    bend = max(24, (x2 - x1) // 2)
    path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
    texts = [f"{t.from_site} → {t.to_site} ({human_bytes(t.size_bytes)})" for t in copies or ()]
    lines: list[str] = []
    for to_site, size in dict.fromkeys((t.to_site, t.size_bytes) for t in copies or ()):
        lines += [f"→ {to_site}", human_bytes(size)]
    transfer = "; ".join(dict.fromkeys(texts)) or None
    # Above the curve's middle, so the label never sits on the line it explains.
    label_y = (y1 + y2) // 2 - 6 - 12 * max(0, len(lines) - 1)
    return DagEdge(
        edge.source, edge.target, edge.artifact, path, (x1 + x2) // 2, label_y, transfer, tuple(lines)
    )
