"""A proven lower bound on an LP from *any* row prices, however roughly they were computed.

For ``min c·x`` subject to ``lo ≤ A x ≤ hi`` and ``0 ≤ x ≤ u`` (every ``u`` finite), and any row prices
``y``, weak duality gives, for every feasible ``x``::

    c·x ≥ Σ_r (y⁺_r lo_r − y⁻_r hi_r) + Σ_j min(0, (c − Aᵀy)_j) u_j

(``y⁺ = max(y, 0)`` only where ``lo`` is finite, ``y⁻ = max(−y, 0)`` only where ``hi`` is). So a
first-order LP solver (PDLP) run to a loose tolerance still yields a bound that is *proven*, not
estimated: its prices only decide how close the bound comes to the LP's optimum. The LP is a relaxation
of the planner's MILP, so the bound holds for every plan.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.sparse import csc_array

__all__ = ["safe_dual_bound"]

FloatArray = npt.NDArray[np.float64]


def safe_dual_bound(
    cost: FloatArray,
    upper: FloatArray,
    matrix: csc_array,
    row_lower: FloatArray,
    row_upper: FloatArray,
    prices: FloatArray,
) -> float:
    """The weak-duality bound above for ``prices`` (either sign convention: both are tried)."""
    if not np.all(np.isfinite(upper)):
        raise ValueError("safe_dual_bound needs a finite upper bound on every variable")
    has_lower, has_upper = np.isfinite(row_lower), np.isfinite(row_upper)
    bounds = []
    for signed in (prices, -prices):
        up = np.where(has_lower, np.maximum(signed, 0.0), 0.0)
        down = np.where(has_upper, np.maximum(-signed, 0.0), 0.0)
        rows = float(np.dot(up, np.where(has_lower, row_lower, 0.0)))
        rows -= float(np.dot(down, np.where(has_upper, row_upper, 0.0)))
        reduced = cost - matrix.T @ (up - down)
        bounds.append(rows + float(np.dot(np.minimum(reduced, 0.0), upper)))
    return max(bounds)
