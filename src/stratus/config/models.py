"""Shared building blocks of the user-facing models: strictness, money, accelerators."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from stratus.limits import MAX_PRICE_USD, MAX_SIZE_GB, alias_problem, name_problem
from stratus.resources import Accelerator, parse_accelerator

__all__ = [
    "PROVIDERS",
    "AcceleratorField",
    "AliasName",
    "Money",
    "Provider",
    "RefName",
    "SafeName",
    "SizeGB",
    "StrictModel",
    "bounded_int",
    "finite",
]

PROVIDERS: tuple[str, ...] = ("aws", "gcp", "azure", "onprem", "local")
Provider = Literal["aws", "gcp", "azure", "onprem", "local"]


class StrictModel(BaseModel):
    """Every user-facing model: a typo is an error, not silence; values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _to_decimal(value: Any) -> Any:
    # Floats parsed from YAML go through str() so 0.1 stays 0.1 rather than its binary neighbour.
    if isinstance(value, float):
        return Decimal(str(value))
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    Field(ge=0, le=MAX_PRICE_USD, allow_inf_nan=False, description="US dollars"),
    PlainSerializer(lambda d: float(d), return_type=float),
]


def _to_accelerator(value: Any) -> Any:
    if isinstance(value, str):
        return parse_accelerator(value)
    if isinstance(value, (bool, int, float)):
        # `accelerators: 1` is a common slip; pydantic's own message would name our internal class.
        raise ValueError(
            f"accelerator {value!r} has no device name; expected NAME or NAME:COUNT, e.g. 'A100:8'"
        )
    return value


AcceleratorField = Annotated[
    Accelerator,
    BeforeValidator(_to_accelerator),
    PlainSerializer(str, return_type=str),
]


def finite(*, le: float, gt: float | None = None) -> Any:
    """Field metadata for a finite number at most ``le`` (above ``gt``, else at least 0).

    ``Annotated[float, finite(le=...)]``: ``.inf``, NaN and 1e308 fail at their line. Every number a user
    writes ends up in a sum or a product (a bill, a makespan, a timeout); an unbounded one overflows
    there, far from the line that caused it.
    """
    if gt is not None:
        return Field(gt=gt, le=le, allow_inf_nan=False)
    return Field(ge=0, le=le, allow_inf_nan=False)


def bounded_int(*, le: int, ge: int = 1) -> Any:
    """Field metadata for a whole number from ``ge`` to ``le``: ``Annotated[int, bounded_int(le=...)]``."""
    return Field(ge=ge, le=le)


SizeGB = Annotated[float, finite(le=MAX_SIZE_GB)]


def _checked(problem_of: Callable[[str], str | None]) -> Any:
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


# A site or registered model name: becomes a folder, a file name and a URL segment.
SafeName = Annotated[str, _checked(name_problem)]
# A step, dataset or output name: also written inside `dataset:NAME` and `STEP.OUTPUT` references.
RefName = Annotated[str, _checked(lambda value: name_problem(value, referable=True))]
# A registry alias (models:/NAME@ALIAS), checked here so a bad one fails before the step runs.
AliasName = Annotated[str, _checked(alias_problem)]
