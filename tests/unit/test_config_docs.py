"""docs/configuration.md documents every field the platform and pipeline files accept, and no other.

The test walks the pydantic models, so a field added to the config without a line in the reference
fails here. A field is documented by a table row whose first column is its dotted path
(``sites.N.compute.backend``), or, for small nested objects written inline
(``{vcpus, memory_gb, accelerators}``), by its name in the row of the nearest documented parent; a
container (``sites.N.compute``) is documented by its fields' rows.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from stratus.config import Pipeline, Platform

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)$")


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models an annotation holds, each with the path part it adds (``N.`` for a mapping's values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        yield from _models_in(args[0])
    elif origin is dict:
        for prefix, model in _models_in(args[1]):
            yield "N." + prefix, model
    elif origin in (list, typing.Union, types.UnionType):
        for arg in args:
            yield from _models_in(arg)


def field_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every dotted path a file may set: ``sites.N.compute.serverless.usd_per_gb_second``."""
    for name, info in model.model_fields.items():
        path = prefix + (info.alias or name)
        yield path
        for part, nested in _models_in(info.annotation):
            yield from field_paths(nested, f"{path}.{part}")


def documented_rows(section: str) -> dict[str, str]:
    """The reference table of one section: first-column path → the rest of its row."""
    text = DOC.read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        match = _ROW.match(line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


def undocumented(paths: list[str], rows: dict[str, str]) -> list[str]:
    missing = []
    for path in paths:
        if path in rows or any(row.startswith(path + ".") for row in rows):
            continue  # its own row, or a container whose fields have rows
        parts = path.split(".")
        leaf = parts[-1]
        parents = [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
        nearest = next((p for p in parents if p in rows), None)
        if nearest is None or not re.search(rf"(?<![\w-]){re.escape(leaf)}(?![\w-])", rows[nearest]):
            missing.append(path)
    return missing


@pytest.mark.parametrize(
    ("section", "model"),
    [("Platform file", Platform), ("Pipeline file", Pipeline)],
)
def test_every_config_field_is_documented(section: str, model: type[BaseModel]) -> None:
    paths = list(field_paths(model))
    rows = documented_rows(section)
    assert undocumented(paths, rows) == [], f"add these fields to docs/configuration.md ({section})"
    entries = {p.rsplit(".N.", 1)[0] + ".N" for p in paths if ".N." in p}  # ``datasets.N``
    stale = sorted(set(rows) - set(paths) - entries)
    assert stale == [], f"docs/configuration.md ({section}) documents fields the config does not accept"


def test_the_walk_sees_nested_fields() -> None:
    """The two fields the reference once missed are among the walked paths, so the check covers them."""
    assert "sites.N.compute.serverless.usd_per_gb_second" in set(field_paths(Platform))
    assert "steps.N.constraints.backends" in set(field_paths(Pipeline))
    assert "steps.N.register.aliases" in set(field_paths(Pipeline))  # by its alias, as users write it


def test_a_missing_field_is_reported() -> None:
    rows = {"a.b": "`{x, y}`", "d": ""}
    assert undocumented(["a", "a.b", "a.b.x", "a.b.z", "a.c", "d", "e"], rows) == ["a.b.z", "a.c", "e"]
