"""The pipeline file: a DAG of steps, the datasets it starts from, and where each may run."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, PositiveInt, field_validator, model_validator

from stratus.config.models import (
    AcceleratorField,
    AliasName,
    Provider,
    RefName,
    SafeName,
    SizeGB,
    StrictModel,
    bounded_int,
    finite,
)
from stratus.limits import MAX_ATTEMPTS, MAX_HOURS, MAX_MEMORY_GB, MAX_SITES, MAX_VCPUS

__all__ = [
    "Constraints",
    "DatasetSpec",
    "OutputSpec",
    "Pipeline",
    "RegisterSpec",
    "ReplicateSpec",
    "Resources",
    "Step",
    "StepKind",
]

_ENTRYPOINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_INPUT = re.compile(r"^(dataset:[A-Za-z_][\w\-]*|[A-Za-z_][\w\-]*\.[A-Za-z_][\w\-]*)$")


def _input_ref(ref: str) -> str:
    # Checked per item (not per list) so the error points at the bad entry's own line and index.
    if not _INPUT.match(ref):
        raise ValueError(f"input {ref!r} is malformed; expected 'dataset:NAME' or 'STEP.OUTPUT'")
    return ref


InputRef = Annotated[str, AfterValidator(_input_ref)]


class DatasetSpec(StrictModel):
    """Data that already lives somewhere before the pipeline runs."""

    site: SafeName
    size_gb: SizeGB
    residency: str | None = Field(default=None, description="jurisdiction the data must stay in, e.g. EU")
    replicas: list[SafeName] = Field(default_factory=list, description="other sites that already hold a copy")
    make: str | None = Field(
        default=None,
        description="module:function that creates the data when it is not there yet (demos, tests)",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="passed to `make`")

    @field_validator("make")
    @classmethod
    def _entrypoint(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRYPOINT.match(value):
            raise ValueError(f"{value!r} is not an entry point; expected 'package.module:function'")
        return value

    @field_validator("residency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class OutputSpec(StrictModel):
    """An artifact a step writes; its size drives transfer cost."""

    size_gb: SizeGB = 0.0


class Resources(StrictModel):
    """What one run of a step needs; an offering fits when it has at least this much."""

    cpus: Annotated[float, finite(gt=0, le=MAX_VCPUS)] = 1.0
    memory_gb: Annotated[float, finite(gt=0, le=MAX_MEMORY_GB)] = 1.0
    accelerators: AcceleratorField | None = None


class Constraints(StrictModel):
    """Where a step may run; an empty list means no restriction."""

    jurisdiction: list[str] = Field(default_factory=list)
    providers: list[Provider] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    sites: list[SafeName] = Field(default_factory=list)
    backends: list[Literal["local", "kubernetes", "serverless", "ray"]] = Field(default_factory=list)

    @field_validator("jurisdiction")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [v.upper() for v in value]


StepKind = Literal["single", "distributed", "federated"]


class ReplicateSpec(StrictModel):
    """Sites that must hold a step's outputs, and how many of them a write needs before it counts.

    ``replicate: [a, b]`` is short for ``replicate: {sites: [a, b]}`` (every listed site, as before).
    With ``min: N`` a write is acknowledged once N listed sites hold verified bytes; the others are
    recorded *pending* and written by ``stratus storage repair`` (or the next run) once they answer. The
    step's own site, when not listed, always holds its outputs and does not count towards ``min``.
    """

    sites: list[SafeName] = Field(default_factory=list, description="sites that must hold every output")
    min: PositiveInt | None = Field(
        default=None, description="listed sites that must hold verified bytes before the write counts"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"sites": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _min_fits(self) -> ReplicateSpec:
        listed = len(set(self.sites))
        if self.min is not None and self.min > listed:
            raise ValueError(
                f"replicate.min is {self.min} but only {listed} distinct site(s) are listed; "
                f"expected a number from 1 to {listed}"
            )
        return self

    @property
    def quorum(self) -> int:
        """How many listed sites a write needs: ``min``, else all of them."""
        return len(set(self.sites)) if self.min is None else self.min


class RegisterSpec(StrictModel):
    """Register an output (an ONNX model) in the platform's model registry when the step succeeds."""

    model: SafeName = Field(description="registered model name")
    output: str | None = Field(default=None, description="which output; default: the step's only output")
    aliases: list[AliasName] = Field(default_factory=list, description="aliases to point at the new version")


class Step(StrictModel):
    """One unit of work: a Python entry point with inputs, outputs and resource needs."""

    run: str = Field(description="module:function")
    inputs: list[InputRef] = Field(default_factory=list)
    outputs: dict[RefName, OutputSpec] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    estimated_hours: Annotated[float, finite(gt=0, le=MAX_HOURS)] = 1.0
    spot: bool = False
    replicate: ReplicateSpec = Field(
        default_factory=ReplicateSpec,
        description="sites that must hold every output: [a, b], or {sites: [a, b], min: 1} for a quorum",
    )
    constraints: Constraints = Field(default_factory=Constraints)
    declassify: bool = Field(default=False, description="outputs carry no residency (e.g. only aggregates)")
    params: dict[str, Any] = Field(default_factory=dict, description="passed to the step as ctx.params")
    max_attempts: Annotated[int, bounded_int(le=MAX_ATTEMPTS)] = Field(
        default=3,
        description="tries before the run fails (retries back off): for infrastructure failures, and for "
        "errors of the step's own code only with retry_on_error",
    )
    retry_on_error: bool = Field(
        default=False,
        description="also retry when the step's own code fails (an exception, a missing output); "
        "off: such a failure happens again on every try, so the step runs once",
    )
    kind: StepKind = Field(
        default="single",
        description="single: one site; distributed: ranks on several sites (DDP); federated: one participant "
        "per dataset location, data never moves",
    )
    sites: Annotated[int, bounded_int(le=MAX_SITES)] | list[SafeName] | None = Field(
        default=None,
        description="distributed only: how many sites (the planner picks them) or which (rank 0 among them; "
        "a site listed twice runs two ranks there)",
    )
    # Named `register:` in the file; `register` itself is taken by the ABC machinery behind BaseModel.
    registration: RegisterSpec | None = Field(
        default=None,
        alias="register",
        description="register an ONNX output in the model registry, with its lineage",
    )
    exchange_gb: SizeGB = Field(
        default=0.0,
        description="multi-site steps: GB each participant sends to, and receives from, the coordinator over "
        "the step (gradients, model updates); priced as egress both ways",
    )

    @model_validator(mode="after")
    def _fields_agree(self) -> Step:
        if self.sites is not None and self.kind != "distributed":
            raise ValueError(f"`sites` is for kind: distributed steps; this step is kind: {self.kind}")
        if self.kind == "distributed" and self.sites is None:
            raise ValueError("a distributed step needs `sites`: how many (e.g. 2) or which ([a, b])")
        if self.kind == "federated":
            not_data = [ref for ref in self.inputs if not ref.startswith("dataset:")]
            if not self.inputs or not_data:
                found = f" (found {', '.join(not_data)})" if not_data else ""
                raise ValueError(
                    "a federated step reads datasets where they lie (one participant per dataset site); "
                    f"its inputs must all be `dataset:NAME`{found}"
                )
        if self.registration is not None:
            chosen = self.registration.output
            if chosen is None and len(self.outputs) != 1:
                raise ValueError(
                    f"register: say which output to register (`output:`); outputs: {list(self.outputs)}"
                )
            if chosen is not None and chosen not in self.outputs:
                raise ValueError(
                    f"register.output {chosen!r} is not an output of this step: {list(self.outputs)}"
                )
        return self

    @field_validator("run")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        if not _ENTRYPOINT.match(value):
            raise ValueError(f"{value!r} is not an entry point; expected 'package.module:function'")
        return value


class Pipeline(StrictModel):
    """The whole pipeline file."""

    name: RefName
    tags: dict[str, str] = Field(default_factory=dict)
    replicate: ReplicateSpec | None = Field(
        default=None, description="the `replicate` of every step that does not set its own"
    )
    datasets: dict[RefName, DatasetSpec] = Field(default_factory=dict)
    steps: dict[RefName, Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _inherit_replicate(self) -> Pipeline:
        # Applied here, once, so the planner and the runner read one field (`step.replicate`) and agree.
        if self.replicate is not None:
            for name, step in self.steps.items():
                if "replicate" not in step.model_fields_set:
                    self.steps[name] = step.model_copy(update={"replicate": self.replicate})
        return self
