"""Which (site, offering, pricing) choices a step may take, and why every other site was turned down."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple, overload

from stratus.catalog import Catalog, Offering, ReservedPrice
from stratus.config import Platform, Resources, Site, Step
from stratus.planner.plan import Pricing

__all__ = [
    "Candidate",
    "CandidatePolicy",
    "Option",
    "SiteCandidates",
    "SiteOfferings",
    "site_offerings",
    "step_candidates",
]

#: One way to buy a machine at a site: the offering, how it is paid for, and its price per hour.
Option = tuple[Offering, Pricing, Decimal]
#: Policy over a step's options at one site, built above the planner (``stratus.policy``) and passed in, so
#: the planner stays pure: (step, site, residency of what the step reads, options) → for each option, the
#: messages that deny it (empty: allowed).
CandidatePolicy = Callable[[str, str, frozenset[str], Sequence[Option]], list[tuple[str, ...]]]
#: Denial messages shown per site before "+N more".
MAX_POLICY_MESSAGES = 3
#: Options put to a policy at once, cheapest first (see _judge).
POLICY_BATCH = 4


class Candidate(NamedTuple):
    """One way to run a step at a site; ``cost_usd`` is compute only (hours × price).

    A named tuple rather than a frozen dataclass: a 1000-step plan over every region builds a quarter of
    a million of them, and tuples are several times cheaper to create.
    """

    site: str
    offering: Offering
    pricing: Pricing
    price_per_hour_usd: Decimal
    cost_usd: Decimal
    # A multi-site step's other machines (its cost_usd then includes theirs and the traffic between them).
    participants: tuple[Candidate, ...] = ()


class SiteCandidates(Sequence[Candidate]):
    """A step's candidates at one site, cheapest first, made on demand from the site's shared price list.

    Solvers read only the cheapest; building every candidate of a 1000-step plan over every region up
    front (a quarter of a million) cost more than solving it.
    """

    def __init__(self, site: str, options: list[tuple[Offering, Pricing, Decimal]], hours: Decimal) -> None:
        self._site = site
        self._options = options
        self._hours = hours

    def __len__(self) -> int:
        return len(self._options)

    @overload
    def __getitem__(self, index: int) -> Candidate: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Candidate]: ...
    def __getitem__(self, index: int | slice) -> Candidate | Sequence[Candidate]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        offering, pricing, price = self._options[index]
        return Candidate(self._site, offering, pricing, price, price * self._hours)


@dataclass(frozen=True)
class SiteOfferings:
    """What each site sells, and a note for sites whose catalog coverage is known to be thin."""

    offerings: dict[str, tuple[Offering, ...]]
    notes: dict[str, str]
    # Steps with the same resources and spot tolerance fit the same offerings: price them once per site.
    priced: dict[tuple[str, Resources, bool], tuple[list[tuple[Offering, Pricing, Decimal]], list[str]]] = (
        field(default_factory=dict, compare=False)
    )

    def fitting(
        self, step: Step, name: str, site: Site
    ) -> tuple[list[tuple[Offering, Pricing, Decimal]], list[str]]:
        """(offering, pricing, price per hour) fitting ``step`` at ``name``, cheapest first, else why not."""
        key = (name, step.resources, step.spot)
        if key not in self.priced:
            fits, why = _fitting_offerings(step, site, self.offerings[name], self.notes.get(name))
            options = [(o, pricing, price) for o in fits for pricing, price in _prices(o, step.spot)]
            options.sort(key=lambda c: (c[2], c[0].name, c[1]))
            self.priced[key] = (options, why)
        return self.priced[key]


def site_offerings(platform: Platform, catalog: Catalog) -> SiteOfferings:
    """Every site's offerings: catalog rows for its provider and region, or its inline list."""
    result: dict[str, tuple[Offering, ...]] = {}
    notes: dict[str, str] = {}
    for name, site in platform.sites.items():
        if site.offerings == "catalog":
            result[name] = catalog.offerings(site.provider, site.region)
            note = catalog.coverage_note(site.provider, site.region)
            if note and not result[name]:
                notes[name] = note
        else:
            result[name] = tuple(
                Offering(
                    name=o.name,
                    provider=site.provider,
                    region=site.region,
                    vcpus=o.vcpus,
                    memory_gb=o.memory_gb,
                    accelerator=o.accelerators,
                    price_per_hour_usd=o.price_per_hour_usd,
                    spot_price_per_hour_usd=o.spot_price_per_hour_usd,
                    reserved=(
                        ReservedPrice(
                            count=o.reserved.count, price_per_hour_usd=o.reserved.price_per_hour_usd
                        )
                        if o.reserved
                        else None
                    ),
                    source="inline",
                )
                for o in site.offerings
            )
    return SiteOfferings(result, notes)


def step_candidates(
    step: Step,
    residency: frozenset[str],
    platform: Platform,
    offerings: SiteOfferings,
    policy: CandidatePolicy | None = None,
    name: str = "",
) -> tuple[dict[str, Sequence[Candidate]], dict[str, list[str]], dict[str, list[str]]]:
    """Feasible candidates per site (cheapest first); for every other site, why it was rejected; and for
    sites that stay feasible with some choices denied by ``policy``, the policy's messages.

    With a policy, a site the built-in rules reject is still put to it, so its denials show next to them.
    """
    hours = Decimal(str(step.estimated_hours))
    feasible: dict[str, Sequence[Candidate]] = {}
    rejected: dict[str, list[str]] = {}
    partly: dict[str, list[str]] = {}
    for site_name, site in platform.sites.items():
        reasons = _placement_reasons(step, residency, site_name, site)
        asked = not reasons or policy is not None
        options: list[Option] = []
        why: list[str] = []
        if asked and site.compute.backend == "serverless":
            function, why = _function_offering(step, site)
            if function is not None:
                options = [(function, "on-demand", function.price_per_hour_usd)]
        elif asked:
            options, why = offerings.fitting(step, site_name, site)
        if not reasons:
            reasons.extend(why)
        if policy is not None and options:
            allowed, verdicts = _judge(policy, name, site_name, residency, options, once=bool(reasons))
            if len(allowed) < len(verdicts):
                (partly.setdefault(site_name, []) if allowed and not reasons else reasons).extend(
                    _policy_messages(verdicts, partial=bool(allowed))
                )
            options = allowed
        candidates: Sequence[Candidate] = []
        if not reasons and site.compute.backend == "serverless" and options:
            candidates = [_function_candidate(site_name, options[0][0], step, site)]
        elif not reasons:
            candidates = SiteCandidates(site_name, options, hours)
        if candidates:
            feasible[site_name] = candidates
        else:
            rejected[site_name] = reasons
    return feasible, rejected, partly


def _judge(
    policy: CandidatePolicy,
    step: str,
    site: str,
    residency: frozenset[str],
    options: list[Option],
    *,
    once: bool,
) -> tuple[list[Option], list[tuple[str, ...]]]:
    """The allowed options among those asked about, and every verdict, asking cheapest first.

    Solvers use only a site's cheapest candidate, so options are put to the policy POLICY_BATCH at a time
    until one is allowed; dearer ones are never asked about (a catalog region sells hundreds of shapes,
    and a decision costs a Rego evaluation). ``once``: ask only the first batch (a site the built-in rules
    reject, asked only to show the policy's view next to theirs).
    """
    allowed: list[Option] = []
    verdicts: list[tuple[str, ...]] = []
    for start in range(0, len(options), POLICY_BATCH):
        batch = options[start : start + POLICY_BATCH]
        judged = policy(step, site, residency, batch)
        verdicts.extend(judged)
        allowed.extend(option for option, denied in zip(batch, judged, strict=True) if not denied)
        if allowed or once:
            break
    return allowed, verdicts


def _policy_messages(verdicts: list[tuple[str, ...]], *, partial: bool) -> list[str]:
    """``policy: MESSAGE`` once per distinct message (with how many choices it denied when only some)."""
    counts: dict[str, int] = {}
    for messages in verdicts:
        for message in dict.fromkeys(messages):
            counts[message] = counts.get(message, 0) + 1
    shown = [
        f"policy: {m}" + (f" ({n} of the {len(verdicts)} cheapest choices)" if partial else "")
        for m, n in list(counts.items())[:MAX_POLICY_MESSAGES]
    ]
    if len(counts) > MAX_POLICY_MESSAGES:
        shown.append(f"policy: +{len(counts) - MAX_POLICY_MESSAGES} more denial message(s)")
    return shown


def _placement_reasons(step: Step, residency: frozenset[str], name: str, site: Site) -> list[str]:
    c = step.constraints
    reasons: list[str] = []
    if not (residency or c.sites or c.providers or c.regions or c.backends or c.jurisdiction):
        return reasons
    if c.sites and name not in c.sites:
        reasons.append(f"sites: not in constraints.sites {c.sites}")
    if c.providers and site.provider not in c.providers:
        reasons.append(f"provider: {site.provider} not in constraints.providers {c.providers}")
    if c.regions and site.region not in c.regions:
        reasons.append(f"region: {site.region} not in constraints.regions {c.regions}")
    if c.backends and site.compute.backend not in c.backends:
        reasons.append(f"backend: {site.compute.backend} not in constraints.backends {c.backends}")
    if c.jurisdiction and site.jurisdiction not in c.jurisdiction:
        reasons.append(f"jurisdiction: {site.jurisdiction} not in constraints.jurisdiction {c.jurisdiction}")
    outside = sorted(r for r in residency if r != site.jurisdiction)
    if outside:
        reasons.append(
            f"residency: reads data that must stay in {', '.join(sorted(residency))}; "
            f"site is in {site.jurisdiction}"
        )
    return reasons


def _function_offering(step: Step, site: Site) -> tuple[Offering | None, list[str]]:
    """A serverless site sells memory by the GB-second; vCPUs come with memory, as on Lambda."""
    limits = site.compute.serverless
    need = step.resources
    memory = max(need.memory_gb, need.cpus * limits.gb_per_vcpu)
    why = []
    if need.accelerators is not None:
        why.append(f"serverless: functions have no accelerators (step needs {need.accelerators})")
    if memory > limits.max_memory_gb:
        why.append(
            f"serverless: needs {memory:g} GB (for {need.cpus:g} vCPUs and {need.memory_gb:g} GB); "
            f"the limit is {limits.max_memory_gb:g} GB"
        )
    if step.estimated_hours * 3600 > limits.max_duration_s:
        why.append(
            f"serverless: estimated {step.estimated_hours:g} h exceeds the {limits.max_duration_s:g} s limit"
        )
    if why:
        return None, why
    per_hour = limits.usd_per_gb_second * Decimal(str(memory)) * 3600
    offering = Offering(
        name=f"function-{memory:g}GB",
        provider=site.provider,
        region=site.region,
        vcpus=memory / limits.gb_per_vcpu,
        memory_gb=memory,
        accelerator=None,
        price_per_hour_usd=per_hour,
        spot_price_per_hour_usd=None,
        source="serverless",
    )
    return offering, []


def _function_candidate(name: str, offering: Offering, step: Step, site: Site) -> Candidate:
    hours = Decimal(str(step.estimated_hours))
    cost = offering.price_per_hour_usd * hours + site.compute.serverless.usd_per_request
    return Candidate(name, offering, "on-demand", offering.price_per_hour_usd, cost)


def _fitting_offerings(
    step: Step, site: Site, offerings: Sequence[Offering], note: str | None
) -> tuple[list[Offering], list[str]]:
    need = step.resources
    if not offerings:
        missing = f"catalog: no catalog row for {site.provider} in region {site.region}"
        return [], [f"{missing} ({note})" if note else missing]
    fits = [
        o
        for o in offerings
        if o.vcpus >= need.cpus
        and o.memory_gb >= need.memory_gb
        and (
            (need.accelerators is None and o.accelerator is None)
            or (
                need.accelerators is not None
                and o.accelerator is not None
                and need.accelerators.matches(o.accelerator)
            )
        )
    ]
    if not fits:
        wanted = f"≥{need.cpus:g} vCPUs, ≥{need.memory_gb:g} GB"
        wanted += f", {need.accelerators}" if need.accelerators else ", no accelerator"
        return [], [f"resources: no offering with {wanted} among {len(offerings)} at this site"]
    cap = site.compute.capacity
    within = [
        o
        for o in fits
        if (cap.vcpus is None or need.cpus <= cap.vcpus)
        and (cap.memory_gb is None or need.memory_gb <= cap.memory_gb)
        and (
            need.accelerators is None
            or not cap.accelerators
            or need.accelerators.count <= _cap_for(cap.accelerators, need.accelerators.name)
        )
    ]
    if not within:
        return [], [f"capacity: the site allows at most {cap.model_dump(exclude_none=True)} per step"]
    return within, []


def _cap_for(limits: Mapping[str, int], accelerator: str) -> int:
    for name, count in limits.items():
        if name.lower() == accelerator.lower():
            return count
    return 0


def _prices(offering: Offering, spot_ok: bool) -> list[tuple[Pricing, Decimal]]:
    prices: list[tuple[Pricing, Decimal]] = [("on-demand", offering.price_per_hour_usd)]
    if spot_ok and offering.spot_price_per_hour_usd is not None:
        prices.append(("spot", offering.spot_price_per_hour_usd))
    if offering.reserved is not None:
        prices.append(("reserved", offering.reserved.price_per_hour_usd))
    return prices
