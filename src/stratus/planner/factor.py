"""Factor an egress price matrix into classes so the integer program stays small.

Egress prices depend on provider and continent, not on the exact pair of regions, so rows and columns
of the site × site price matrix repeat. We find column groups on which every row is constant (ignoring
the diagonal, where a site pays nothing to itself) and row groups with equal prices per column group.
Then ``rates[o, d] == table[row_group[o], col_group[d]]`` for every ``o != d``, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Factored", "factor_rates"]


@dataclass(frozen=True)
class Factored:
    """``rates[o, d] == table[rows[o], cols[d]]`` for all distinct sites o, d."""

    rows: npt.NDArray[np.intp]
    cols: npt.NDArray[np.intp]
    table: npt.NDArray[np.float64]


def factor_rates(rates: npt.NDArray[np.float64], labels: Sequence[object]) -> Factored:
    """Start from ``labels`` (e.g. provider and continent) as column groups and split until exact."""
    n = rates.shape[0]
    first: dict[object, int] = {}
    cols = np.array([first.setdefault(label, len(first)) for label in labels], dtype=np.intp)
    changed = True
    while changed:
        changed = False
        for o in range(n):
            cols, split = _split_columns(rates[o], o, cols)
            changed |= split
    n_cols = int(cols.max()) + 1 if n else 0
    signatures: dict[tuple[float | None, ...], int] = {}
    rows = np.empty(n, dtype=np.intp)
    values: list[tuple[float | None, ...]] = []
    for o in range(n):
        sig: list[float | None] = [None] * n_cols
        for d in range(n):
            if d != o:
                sig[cols[d]] = float(rates[o, d])
        key = tuple(sig)
        if key not in signatures:
            signatures[key] = len(signatures)
            values.append(key)
        rows[o] = signatures[key]
    table = np.array([[0.0 if v is None else v for v in sig] for sig in values], dtype=np.float64)
    return Factored(rows=rows, cols=cols, table=table.reshape(len(values), n_cols))


def _split_columns(
    row: npt.NDArray[np.float64], own: int, cols: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.intp], bool]:
    """Split every column group on which ``row`` is not constant (the row's own column is ignored)."""
    split = False
    next_id = int(cols.max()) + 1
    for group in np.unique(cols):
        members = [d for d in np.flatnonzero(cols == group) if d != own]
        prices = {float(row[d]) for d in members}
        if len(prices) <= 1:
            continue
        split = True
        by_price: dict[float, int] = {}
        for d in members:
            price = float(row[d])
            if price not in by_price:
                # The first price keeps the old id so the row's own column stays in a valid group.
                by_price[price] = int(group) if not by_price else next_id
                if by_price[price] == next_id:
                    next_id += 1
            cols[d] = by_price[price]
    return cols, split
