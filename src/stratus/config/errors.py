"""Turn pydantic's validation errors into ConfigErrors that point at the user's file and say what fits."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from stratus.config.source import Located, PathKey, format_path
from stratus.errors import ConfigError

__all__ = ["translate"]

_MAX_LISTED = 5


def translate(exc: ValidationError, located: Located, model: type[BaseModel]) -> ConfigError:
    """One ConfigError for the first problem, with the others listed below it (up to a few)."""
    errors = _without_losing_branches(exc.errors(include_url=False))
    first = _one(errors[0], located, model)
    if len(errors) > 1:
        others = [str(_one(err, located, model)) for err in errors[1:_MAX_LISTED]]
        more = len(errors) - _MAX_LISTED
        tail = [f"... and {more} more"] if more > 0 else []
        first = ConfigError(
            "\n  ".join([first.detail, *others, *tail]),
            file=first.file,
            line=first.line,
            column=first.column,
            field=first.field,
        )
    return first


def _is_branch_tag(part: str | int) -> bool:
    # Pydantic appends union-branch tags like 'list[InlineOffering]' to loc; they are not user fields.
    return isinstance(part, str) and ("[" in part or part in {"str", "int"})


def _shown_path(err: ErrorDetails) -> PathKey:
    return tuple(p for p in err["loc"] if isinstance(p, (str, int)) and not _is_branch_tag(p))


def _without_losing_branches(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop a union branch that failed at its root when another branch got further into the value.

    ``offerings: [{..., gpu: 1}]`` should report the unknown key ``gpu`` at its line, not lead with
    "Input should be 'catalog'" at the ``offerings:`` line.
    """
    paths = [_shown_path(err) for err in errors]

    def superseded(err: ErrorDetails, path: PathKey) -> bool:
        at_branch_root = bool(err["loc"]) and _is_branch_tag(err["loc"][-1])
        return at_branch_root and any(len(o) > len(path) and o[: len(path)] == path for o in paths)

    kept = [err for err, path in zip(errors, paths, strict=True) if not superseded(err, path)]
    return kept or errors


def _one(err: ErrorDetails, located: Located, model: type[BaseModel]) -> ConfigError:
    path = _shown_path(err)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, path[:-1])
        hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        message = f"unknown key {path[-1]!r}{hint}"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        got = err.get("input")
        if not isinstance(got, (dict, list)) and kind != "value_error":
            message += f" (got {got!r})"
    return located.error(path, message)


def _allowed_keys(model: type[BaseModel], path: PathKey) -> list[str]:
    """Walk the model's field annotations along ``path`` to list the keys valid at that spot."""
    target: Any = model
    for part in path:
        target = _descend(target, part)
        if target is None:
            return []
    model_cls = _model_in(target)
    if model_cls is None:
        return []
    return [field.alias or name for name, field in model_cls.model_fields.items()]


def _descend(annotation: Any, part: str | int) -> Any:
    model_cls = _model_in(annotation)
    if model_cls is not None and isinstance(part, str) and part in _fields_by_key(model_cls):
        return _fields_by_key(model_cls)[part]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin is list and args:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _descend(arg, part)
            if found is not None:
                return found
    return None


def _fields_by_key(model_cls: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or n): f.annotation for n, f in model_cls.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    if typing.get_origin(annotation) is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    return None


def describe_path(path: PathKey) -> str:
    """The dotted form used in messages (re-exported for callers that build their own errors)."""
    return format_path(path)
