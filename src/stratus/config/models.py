"""Shared building blocks of the user-facing models: strictness, money, accelerators."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from stratus.resources import Accelerator, parse_accelerator

__all__ = [
    "PROVIDERS",
    "AcceleratorField",
    "Money",
    "Provider",
    "StrictModel",
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
    Field(ge=0, description="US dollars"),
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
