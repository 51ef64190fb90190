"""The dashboard's colours: one fill per site (stable for a platform), one outline per status."""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

__all__ = ["STATUS_COLOURS", "SitePalette", "status_colour"]

# Light fills, distinct from each other and readable under dark text (Tableau 20's light half).
_FILLS = (
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
    "#d9d9d9",
)
_NO_SITE = "#ffffff"

STATUS_COLOURS = {
    "succeeded": "#2ca02c",
    "cached": "#17becf",
    "running": "#1f77b4",
    "pending": "#7f7f7f",
    "not run": "#bbbbbb",
    "failed": "#d62728",
    "preempted": "#ff7f0e",
    "interrupted": "#ff7f0e",
    "cancelled": "#8c564b",
}


def status_colour(status: str) -> str:
    """The outline colour of a step in ``status`` (grey for a status this version does not know)."""
    return STATUS_COLOURS.get(status, "#7f7f7f")


class SitePalette:
    """Sites of the platform get fills in the platform file's order; any other site one by its name."""

    def __init__(self, sites: Sequence[str]) -> None:
        self._fills = {site: _FILLS[i % len(_FILLS)] for i, site in enumerate(sites)}

    def fill(self, site: str | None) -> str:
        """The site's fill; white when the step has no site yet."""
        if site is None:
            return _NO_SITE
        if site not in self._fills:
            self._fills[site] = _FILLS[int(sha256(site.encode()).hexdigest(), 16) % len(_FILLS)]
        return self._fills[site]

    def legend(self, sites: Sequence[str]) -> list[tuple[str, str]]:
        """(site, fill) for each of ``sites``, in that order."""
        return [(site, self.fill(site)) for site in sites]
