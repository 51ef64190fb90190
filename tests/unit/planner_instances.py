"""Random small planning instances for property tests: every knob of the model, few enough choices to
enumerate by brute force."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from stratus.config import Pipeline, Platform

JURISDICTIONS = {"US": "north_america", "EU": "europe"}
PROVIDERS = ["aws", "gcp", "azure", "onprem"]
RATES = [0.0, 0.01, 0.02, 0.05, 0.09, 0.12]
ACCELERATORS = [None, None, "L4:1", "A100:1"]


@st.composite
def platforms(draw: st.DrawFn, max_sites: int = 4) -> Platform:
    """2–4 sites with inline offerings and a full matrix of egress overrides."""
    n = draw(st.integers(2, max_sites))
    sites: dict[str, Any] = {}
    for i in range(n):
        jurisdiction = draw(st.sampled_from(sorted(JURISDICTIONS)))
        offerings = []
        for k in range(draw(st.integers(1, 2))):
            accel = draw(st.sampled_from(ACCELERATORS)) if k else None  # the first fits any CPU step
            price = draw(st.integers(1, 400)) / 100
            offering: dict[str, Any] = {
                "name": f"o{k}",
                "vcpus": draw(st.sampled_from([4, 8])) if k else 8,
                "memory_gb": draw(st.sampled_from([8, 16, 32])) if k else 32,
                "price_per_hour_usd": price,
            }
            if accel:
                offering["accelerators"] = accel
            if draw(st.booleans()):
                offering["spot_price_per_hour_usd"] = round(price * draw(st.floats(0.2, 0.9)), 2)
            if draw(st.integers(0, 4)) == 0:
                offering["reserved"] = {"count": 1, "price_per_hour_usd": round(price * 0.5, 2)}
            offerings.append(offering)
        sites[f"s{i}"] = {
            "provider": draw(st.sampled_from(PROVIDERS)),
            "region": f"r{i}",
            "jurisdiction": jurisdiction,
            "continent": JURISDICTIONS[jurisdiction],
            "storage": f"memory://s{i}",
            "offerings": offerings,
        }
    egress = [
        {"from": a, "to": b, "usd_per_gb": draw(st.sampled_from(RATES))}
        for a in sites
        for b in sites
        if a != b
    ]
    return Platform.model_validate(
        {"sites": sites, "egress": egress, "transfer_gbps": draw(st.sampled_from([0.1, 1.0]))}
    )


@st.composite
def pipelines(draw: st.DrawFn, platform: Platform, max_steps: int = 5, tree: bool = False) -> Pipeline:
    """A random DAG over the platform: datasets, fan-in, fan-out, replicas, residency, declassify."""
    site_names = list(platform.sites)
    datasets: dict[str, Any] = {}
    for d in range(draw(st.integers(1, 2))):
        site = draw(st.sampled_from(site_names))
        spec: dict[str, Any] = {"site": site, "size_gb": draw(st.integers(0, 20))}
        if draw(st.integers(0, 2)) == 0:
            spec["residency"] = platform.sites[site].jurisdiction
        if not tree and draw(st.booleans()):
            spec["replicas"] = draw(st.lists(st.sampled_from(site_names), max_size=2, unique=True))
            if "residency" in spec:
                spec["replicas"] = [
                    s for s in spec["replicas"] if platform.sites[s].jurisdiction == spec["residency"]
                ]
        datasets[f"d{d}"] = spec
    steps: dict[str, Any] = {}
    outputs: list[str] = []
    unread = {f"dataset:{d}" for d in datasets}
    for i in range(draw(st.integers(1, max_steps))):
        pool = [f"dataset:{d}" for d in datasets] + outputs
        if tree:  # every artifact read at most once and one output per step: an in-forest
            pool = [o for o in pool if o in unread]
        if not pool:
            break
        chosen = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
        unread -= set(chosen)
        n_out = 1 if tree else draw(st.integers(1, 2))
        step: dict[str, Any] = {
            "run": "m:f",
            "inputs": chosen,
            "outputs": {f"o{k}": {"size_gb": draw(st.integers(0, 20))} for k in range(n_out)},
            "resources": {
                "cpus": draw(st.sampled_from([1, 2, 4])),
                "memory_gb": draw(st.sampled_from([1, 8])),
            },
            "estimated_hours": draw(st.sampled_from([0.5, 1.0, 2.0, 3.0])),
            "spot": draw(st.booleans()),
            "declassify": draw(st.integers(0, 3)) == 0,
        }
        if draw(st.integers(0, 5)) == 0:
            step["resources"]["accelerators"] = draw(st.sampled_from(["L4:1", "A100:1"]))
        if not tree and draw(st.integers(0, 2)) == 0:
            step["replicate"] = draw(st.lists(st.sampled_from(site_names), max_size=2, unique=True))
        if draw(st.integers(0, 5)) == 0:
            step["constraints"] = {
                "providers": draw(st.lists(st.sampled_from(PROVIDERS), min_size=1, unique=True))
            }
        steps[f"t{i}"] = step
        new = [f"t{i}.o{k}" for k in range(n_out)]
        outputs.extend(new)
        unread.update(new)
    return Pipeline.model_validate({"name": "random", "datasets": datasets, "steps": steps})
