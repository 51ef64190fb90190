"""Bar charts as rectangles: stacked spend per time bucket, and planned against actual per run.

Numbers only (positions in SVG units and texts); the template draws and escapes them. Heights scale to
the tallest bar, so a chart of micro-dollars is as readable as one of thousands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from stratus.ledger import from_micros
from stratus.ui.queries.cost import SpendSeries
from stratus.ui.views.colours import SitePalette
from stratus.ui.views.format import usd

__all__ = ["Bar", "BarChart", "Segment", "planned_vs_actual", "stacked_spend"]

PLOT_H = 180
BAR_W = 28
GAP = 14
LEFT = 8
TOP = 20
LABEL_H = 64  # room under the bars for rotated bucket labels
PLANNED, ACTUAL = "#9aa9c2", "#2b6cb0"


@dataclass(frozen=True)
class Segment:
    """One coloured piece of a bar; ``title`` is the hover text."""

    x: int
    y: float
    width: int
    height: float
    fill: str
    title: str


@dataclass(frozen=True)
class Bar:
    """One bar (a bucket or a run): its pieces and the label under it."""

    label: str
    label_x: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class BarChart:
    """A whole chart: bars, legend (name, colour, total), size and the scale's top value."""

    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, str, str], ...]
    width: int
    height: int
    top_label: str
    baseline: int

    @property
    def empty(self) -> bool:
        """True when there is nothing to draw."""
        return not self.bars


def stacked_spend(series: SpendSeries, palette: SitePalette) -> BarChart:
    """One bar per time bucket, stacked by group, largest group at the bottom."""
    peak = max((sum(cell.values()) for cell in series.cells.values()), default=0)
    bars = []
    for i, bucket in enumerate(series.buckets):
        x = LEFT + i * (BAR_W + GAP)
        y = float(TOP + PLOT_H)
        segments = []
        for group in series.groups:
            micros = series.cells[bucket].get(group, 0)
            if micros <= 0:
                continue
            h = PLOT_H * micros / peak
            y -= h
            title = f"{bucket} · {series.by} {group}: {usd(from_micros(micros))}"
            segments.append(Segment(x, round(y, 2), BAR_W, round(h, 2), palette.fill(group), title))
        bars.append(Bar(bucket, x + BAR_W // 2, tuple(segments)))
    legend = tuple((g, palette.fill(g), usd(series.total(g))) for g in series.groups)
    return _chart(bars, legend, usd(from_micros(peak)))


def planned_vs_actual(runs: Sequence[tuple[str, Decimal, Decimal]]) -> BarChart:
    """Two bars per run (planned, actual), oldest run on the left."""
    peak = max((max(p, a) for _, p, a in runs), default=Decimal(0))
    bars = []
    for i, (run, planned, actual) in enumerate(runs):
        x = LEFT + i * (2 * BAR_W + GAP)
        segments = []
        for j, (what, value, colour) in enumerate(
            (("planned", planned, PLANNED), ("actual", actual, ACTUAL))
        ):
            h = float(PLOT_H * value / peak) if peak > 0 else 0.0
            segments.append(
                Segment(x + j * BAR_W, round(TOP + PLOT_H - h, 2), BAR_W - 2, round(h, 2), colour,
                        f"{run} {what}: {usd(value)}")
            )  # fmt: skip
        bars.append(Bar(run, x + BAR_W, tuple(segments)))
    legend = (("planned", PLANNED, ""), ("actual", ACTUAL, ""))
    return _chart(bars, legend if bars else (), usd(peak), step=2 * BAR_W + GAP)


def _chart(
    bars: list[Bar], legend: tuple[tuple[str, str, str], ...], top: str, step: int = BAR_W + GAP
) -> BarChart:
    width = max(240, LEFT * 2 + len(bars) * step)
    return BarChart(tuple(bars), legend, width, TOP + PLOT_H + LABEL_H, top, TOP + PLOT_H)
