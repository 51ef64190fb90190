"""The one object every decision point asks: plan, run (start, copy), serve, repair.

Built once per command from the platform (:func:`policy_gate`) and passed down. Without ``policies:`` it
is :data:`NO_POLICY`, whose checks return at once: no worker, no documents built, no cost. Decisions are
remembered by their input document, so a runner that re-plans asks the engine only about what is new.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from stratus.catalog import Offering
from stratus.config import Pipeline, Platform, Site, parse_input
from stratus.errors import PolicyError
from stratus.planner import Placement, artifact_residency
from stratus.planner.candidates import CandidatePolicy, Option
from stratus.policy.engine import Decision, PolicyEngine, encode
from stratus.policy.input import copy_doc, plan_doc, repair_doc, serve_doc, start_doc
from stratus.policy.loader import engine_for

__all__ = ["NO_POLICY", "PolicyGate", "policy_gate"]

#: Remembered decisions per gate before the memory is cleared (a long run's copies stay bounded).
MAX_REMEMBERED = 100_000

#: Which offering a placement uses at a site, for the run-time input document (None: not known).
OfferingLookup = Callable[[str, str, str], Offering | None]


class PolicyGate:
    """Policies over every decision point; the checks raise :class:`PolicyError` with the policy's words."""

    def __init__(self, engine: PolicyEngine | None, platform: Platform | None = None) -> None:
        self.engine = engine
        self.platform = platform
        self._memory: dict[str, Decision] = {}

    @property
    def enabled(self) -> bool:
        """Whether any policy is configured (False: every check is a no-op)."""
        return self.engine is not None

    def decide(self, docs: Sequence[Mapping[str, object]]) -> list[Decision]:
        """A decision per input document (all allowed when no policy is configured)."""
        if self.engine is None:
            return [Decision(True)] * len(docs)
        lines = [encode(doc) for doc in docs]
        todo = list(dict.fromkeys(line for line in lines if line not in self._memory))
        if todo:
            if len(self._memory) + len(todo) > MAX_REMEMBERED:
                self._memory.clear()
            self._memory.update(zip(todo, self.engine.decide_json(todo), strict=True))
        return [self._memory[line] for line in lines]

    # -- plan ---------------------------------------------------------------------------------------

    def plan_policy(self, pipeline: Pipeline) -> CandidatePolicy | None:
        """The planner's view of the policies for ``pipeline``; None when there are none."""
        if self.engine is None or self.platform is None:
            return None
        platform = self.platform
        residency = artifact_residency(pipeline)

        def inputs_of(step: str) -> dict[str, frozenset[str]]:
            found = {}
            for ref in pipeline.steps[step].inputs:
                producer, item = parse_input(ref)
                found[ref] = residency.get(f"dataset:{item}" if producer is None else ref, frozenset())
            return found

        def judge(
            step: str, site: str, bound: frozenset[str], options: Sequence[Option]
        ) -> list[tuple[str, ...]]:
            where = (site, platform.sites[site])
            reads = inputs_of(step)
            docs = [plan_doc(pipeline, step, where, o, p, price, bound, reads) for o, p, price in options]
            return [d.reasons for d in self.decide(docs)]

        return judge

    # -- run ----------------------------------------------------------------------------------------

    def check_start(
        self,
        pipeline: Pipeline,
        run_id: str,
        placement: Placement,
        residency: frozenset[str],
        offering: OfferingLookup,
    ) -> None:
        """Before a step starts: every machine of it (a multi-site step's participants too) is asked about."""
        if self.engine is None:
            return
        machines = [
            (placement.site, placement.offering, placement.pricing, placement.price_per_hour_usd),
            *((q.site, q.offering, q.pricing, q.price_per_hour_usd) for q in placement.participants),
        ]
        docs = [
            start_doc(
                pipeline,
                run_id,
                placement.step,
                self._site(site),
                offering(placement.step, site, name),
                name,
                pricing,
                price,
                residency,
            )
            for site, name, pricing, price in machines
        ]
        for (site, name, pricing, _), decision in zip(machines, self.decide(docs), strict=True):
            _raise_if_denied(decision, f"starting step {placement.step!r} at {site} ({name}, {pricing})")

    def check_copy(
        self,
        pipeline: Pipeline,
        run_id: str,
        *,
        artifact: str,
        sha256: str,
        residency: frozenset[str],
        source: str | None,
        target: str,
        reason: str,
        step: str | None,
    ) -> None:
        """Before a run copies bytes to ``target`` (``source`` None: from the machine that produced them)."""
        if self.engine is None:
            return
        doc = copy_doc(
            pipeline,
            run_id,
            artifact=artifact,
            sha256=sha256,
            residency=residency,
            source=self._site(source) if source is not None else None,
            target=self._site(target),
            reason=reason,
            step=step,
        )
        origin = f" from {source}" if source is not None else ""
        _raise_if_denied(self.decide([doc])[0], f"copying {artifact}{origin} to {target} ({reason})")

    # -- serve and repair ---------------------------------------------------------------------------

    def check_serve(
        self, name: str, description: str, sha256: str, residency: frozenset[str], sites: Sequence[str]
    ) -> None:
        """Before any byte of a model moves: each serving site is asked about; the first denial raises."""
        if self.engine is None:
            return
        docs = [serve_doc(name, description, sha256, residency, self._site(site)) for site in sites]
        for site, decision in zip(sites, self.decide(docs), strict=True):
            _raise_if_denied(decision, f"serving {description} from {site}")

    def repair_denial(
        self, artifact: str, sha256: str, residency: frozenset[str], target: str, sources: Sequence[str]
    ) -> str | None:
        """Why restoring ``artifact`` at ``target`` is denied, or None when it may go ahead."""
        if self.engine is None:
            return None
        doc = repair_doc(artifact, sha256, residency, self._site(target), sources)
        decision = self.decide([doc])[0]
        return None if decision.allowed else _denied(decision, f"repairing {artifact} at {target}")

    def close(self) -> None:
        """Stop the engine's worker, if one was started."""
        if self.engine is not None:
            self.engine.close()

    def _site(self, name: str) -> tuple[str, Site]:
        assert self.platform is not None
        return name, self.platform.sites[name]


#: The gate of a platform without policies: every check returns at once.
NO_POLICY = PolicyGate(None)


def _denied(decision: Decision, action: str) -> str:
    return f"denied by policy: {action}: " + "; ".join(decision.reasons)


def _raise_if_denied(decision: Decision, action: str) -> None:
    if not decision.allowed:
        raise PolicyError(_denied(decision, action))


def policy_gate(platform: Platform, platform_dir: Path) -> PolicyGate:
    """The gate for ``platform`` (its ``policies`` paths are relative to ``platform_dir``)."""
    if platform.policies is None:
        return NO_POLICY
    return PolicyGate(engine_for(platform.policies, platform_dir), platform)
