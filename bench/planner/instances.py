"""Deterministic random planning instances: every region of the bundled catalog, and seeded pipelines.

The same (shape, steps, seed) always gives the same pipeline, so figures from different runs and the
SkyPilot anchor (which gets the same steps as a JSON spec) describe one problem.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from stratus.catalog import PROVIDERS, Catalog, Location, region_info
from stratus.config import (
    DatasetSpec,
    EgressOverride,
    OutputSpec,
    Pipeline,
    Platform,
    Resources,
    Site,
    Step,
)
from stratus.errors import CatalogError

__all__ = ["SHAPES", "Instance", "Shape", "StepSpec", "make_instance", "make_platform"]

Shape = Literal["chain", "tree", "dag"]
SHAPES: tuple[Shape, ...] = ("chain", "tree", "dag")

# Accelerators the bundled catalog sells in several regions (checked by the generator's caller at build
# time: build_problem raises InfeasibleError if one had no offering anywhere).
ACCELERATORS = ("T4:1", "L4:1", "A10G:1", "V100:1", "A100:1", "H100:1")
ACCELERATOR_SHARE = 0.15
CPU_CHOICES = (2, 4, 8, 16)
MEMORY_CHOICES = (4, 8, 16, 32, 64)
LAYER_WIDTH = (5, 10)
READS_PER_STEP = (1, 3)
STORAGE = "file:///tmp/x"
# Stand-in for site pairs the bundled egress table cannot price (reported in RESULTS.md when used): GCP's
# intercontinental default, the highest GCP inter-region rate short of Oceania/Jakarta.
GAP_USD_PER_GB = Decimal("0.08")


@dataclass(frozen=True)
class StepSpec:
    """One generated step, in a form both Stratus and the SkyPilot harness can rebuild."""

    name: str
    cpus: int
    memory_gb: int
    accelerator: str | None
    spot: bool
    hours: float
    output_gb: float
    reads: tuple[str, ...]  # names of producing steps, in order
    datasets: tuple[str, ...]  # dataset names read


@dataclass(frozen=True)
class Instance:
    """A benchmark case: the platform, the pipeline and the raw step specs behind it."""

    shape: Shape
    n_steps: int
    seed: int
    platform: Platform
    pipeline: Pipeline
    specs: tuple[StepSpec, ...]


def make_platform(catalog: Catalog) -> tuple[Platform, list[str]]:
    """One site per (provider, region) of the catalog, named ``provider-region``, and the egress gaps.

    Pairs of sites the catalog's egress table cannot price get a platform override at
    ``GAP_USD_PER_GB``; the second value lists them as ``"src -> dst"`` so the report can say so.
    """
    sites: dict[str, Site] = {}
    for provider in PROVIDERS:
        for region in catalog.regions(provider):
            info = region_info(provider, region)
            if info is None:
                raise ValueError(f"{provider} region {region} is in the catalog but not in the region table")
            sites[f"{provider}-{region}"] = Site(
                provider=provider,
                region=region,
                jurisdiction=info.jurisdiction,
                continent=info.continent,
                storage=STORAGE,
                offerings="catalog",
            )
    gaps = _egress_gaps(catalog, sites)
    overrides = [EgressOverride(from_=src, to=dst, usd_per_gb=GAP_USD_PER_GB) for src, dst in gaps]
    return Platform(sites=sites, egress=overrides), [f"{src} -> {dst}" for src, dst in gaps]


def _egress_gaps(catalog: Catalog, sites: dict[str, Site]) -> list[tuple[str, str]]:
    def location(site: Site) -> Location:
        return Location(provider=site.provider, region=site.region, continent=site.continent or "")

    gaps = []
    for src, a in sites.items():
        for dst, b in sites.items():
            if src == dst:
                continue
            try:
                catalog.egress.rate_usd_per_gb(location(a), location(b))
            except CatalogError:
                gaps.append((src, dst))
    return gaps


def make_instance(shape: Shape, n_steps: int, seed: int, platform: Platform) -> Instance:
    """A pipeline of ``n_steps`` steps shaped as ``shape``, drawn from ``random.Random(seed, shape, n)``."""
    rng = random.Random(f"{seed}:{shape}:{n_steps}")
    names = [f"s{i:04d}" for i in range(n_steps)]
    reads = _edges(shape, n_steps, rng)
    site_names = list(platform.sites)
    datasets: dict[str, DatasetSpec] = {}
    dataset_reads: list[tuple[str, ...]] = []
    for i in range(n_steps):
        if reads[i]:
            dataset_reads.append(())
            continue
        # A source step reads data that already lives somewhere: one shared dataset for a DAG's first
        # layer, one own dataset per leaf for chains and trees (a shared one would couple the leaves).
        ds = "raw" if shape == "dag" else f"raw{i:04d}"
        if ds not in datasets:
            datasets[ds] = DatasetSpec(site=rng.choice(site_names), size_gb=_log_uniform(rng, 1.0, 100.0))
        dataset_reads.append((ds,))
    specs = tuple(
        _step_spec(rng, names[i], tuple(names[j] for j in reads[i]), dataset_reads[i]) for i in range(n_steps)
    )
    pipeline = Pipeline(
        name=f"bench-{shape}-{n_steps}",
        datasets=datasets,
        steps={spec.name: _step(spec) for spec in specs},
    )
    return Instance(shape, n_steps, seed, platform, pipeline, specs)


def _edges(shape: Shape, n: int, rng: random.Random) -> list[list[int]]:
    """For each step, the indices of the earlier steps whose output it reads."""
    reads: list[list[int]] = [[] for _ in range(n)]
    if shape == "chain":
        for i in range(1, n):
            reads[i].append(i - 1)
    elif shape == "tree":
        # In-tree: every step but the last is read by exactly one later step, so steps merge towards
        # the root. The reader is drawn from the next few steps, which gives fan-in 1–4 and depth ~n/3.
        for i in range(n - 1):
            reads[rng.randint(i + 1, min(n - 1, i + 4))].append(i)
    else:
        layers: list[list[int]] = []
        i = 0
        while i < n:
            width = min(rng.randint(*LAYER_WIDTH), n - i)
            layers.append(list(range(i, i + width)))
            i += width
        for previous, layer in itertools.pairwise(layers):
            for step in layer:
                k = min(rng.randint(*READS_PER_STEP), len(previous))
                reads[step] = sorted(rng.sample(previous, k))
    return reads


def _step_spec(rng: random.Random, name: str, reads: tuple[str, ...], datasets: tuple[str, ...]) -> StepSpec:
    if rng.random() < ACCELERATOR_SHARE:
        accelerator: str | None = rng.choice(ACCELERATORS)
        # Single-GPU machines in the catalog have 4–12 vCPUs and 16–85 GB; ask for what every one has.
        cpus, memory = rng.choice((2, 4)), rng.choice((4, 8, 16))
    else:
        accelerator = None
        cpus, memory = rng.choice(CPU_CHOICES), rng.choice(MEMORY_CHOICES)
    return StepSpec(
        name=name,
        cpus=cpus,
        memory_gb=memory,
        accelerator=accelerator,
        spot=rng.random() < 0.5,
        hours=round(rng.uniform(0.1, 5.0), 1),
        output_gb=_log_uniform(rng, 0.1, 50.0),
        reads=reads,
        datasets=datasets,
    )


def _step(spec: StepSpec) -> Step:
    return Step(
        run=f"bench.steps:{spec.name}",
        inputs=[f"dataset:{d}" for d in spec.datasets] + [f"{r}.out" for r in spec.reads],
        outputs={"out": OutputSpec(size_gb=spec.output_gb)},
        resources=Resources(
            cpus=spec.cpus,
            memory_gb=spec.memory_gb,
            accelerators=spec.accelerator,  # a string: the field validator parses it
        ),
        estimated_hours=spec.hours,
        spot=spec.spot,
    )


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return round(math.exp(rng.uniform(math.log(low), math.log(high))), 1)
