"""Policy as code: Rego modules evaluated at every decision point, fail closed (docs/policy.md).

``policy_gate(platform, folder)`` builds the one :class:`PolicyGate` a command passes down to the planner
(as a candidate filter), the runner (each step start and copy), serving (each site) and repair (each
copy); without ``policies:`` it is :data:`NO_POLICY`, which costs nothing.
"""

from stratus.policy.engine import Decision, Module, PolicyEngine, RuleResult
from stratus.policy.gate import NO_POLICY, PolicyGate, policy_gate

__all__ = ["NO_POLICY", "Decision", "Module", "PolicyEngine", "PolicyGate", "RuleResult", "policy_gate"]
