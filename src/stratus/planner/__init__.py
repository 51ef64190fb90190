"""Place every step of a pipeline on the cheapest (or fastest) compliant site, exactly.

Pure: no I/O, no printing. ``plan`` returns a frozen :class:`Plan`; infeasibility raises
:class:`~stratus.errors.InfeasibleError` with the reason every site was turned down.
"""

from stratus.planner.candidates import SiteOfferings, site_offerings
from stratus.planner.compare import Comparison, Priced, Saving, compare
from stratus.planner.evaluate import Evaluation, evaluate
from stratus.planner.plan import Alternative, Participant, Placement, Plan, Rejection, StoredCopy, Transfer
from stratus.planner.problem import Problem, build_problem
from stratus.planner.residency import artifact_residency
from stratus.planner.sizes import FAR_OFF_FACTOR, Measurement, SizeEstimate, far_off
from stratus.planner.solve import plan, solve

__all__ = [
    "FAR_OFF_FACTOR",
    "Alternative",
    "Comparison",
    "Evaluation",
    "Measurement",
    "Participant",
    "Placement",
    "Plan",
    "Priced",
    "Problem",
    "Rejection",
    "Saving",
    "SiteOfferings",
    "SizeEstimate",
    "StoredCopy",
    "Transfer",
    "artifact_residency",
    "build_problem",
    "compare",
    "evaluate",
    "far_off",
    "plan",
    "site_offerings",
    "solve",
]
