"""Turn the platform's ``policies:`` into an engine: modules read from disk, data files merged.

Paths are relative to the platform file (``stratus:library`` is the shipped library); a directory
contributes every ``*.rego`` below it, in name order, except ``*_test.rego`` (unit tests are for
``stratus policy test``, not for decisions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stratus.config import PolicySpec, policy_path
from stratus.config.platform import LIBRARY_DIR, LIBRARY_PREFIX
from stratus.config.source import read_yaml
from stratus.errors import ConfigError
from stratus.limits import MAX_CONFIG_FILE_BYTES
from stratus.policy.engine import Module, PolicyEngine
from stratus.userfile import read_user_file

__all__ = ["MAX_POLICY_MODULES", "engine_for", "merge_data", "read_modules"]

#: Modules one platform (or one `stratus policy test` directory) may load.
MAX_POLICY_MODULES = 1_000


def engine_for(spec: PolicySpec, base: Path) -> PolicyEngine:
    """The engine for a platform's ``policies`` (``base``: the platform file's folder)."""
    paths = [policy_path(entry, base) for entry in spec.modules]
    modules = read_modules(paths, base, tests=False)
    data = merge_data(policy_path(entry, base) for entry in spec.data)
    return PolicyEngine(modules, data, timeout_s=spec.timeout_s)


def read_modules(paths: Iterable[Path], base: Path, *, tests: bool) -> list[Module]:
    """Every module named by ``paths`` (files, or directories searched recursively), each read once.

    ``tests`` keeps ``*_test.rego`` files from directories; a file named explicitly is always read.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.rego") if p.is_file())
            files.extend(p for p in found if tests or not p.name.endswith("_test.rego"))
        else:
            files.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    if len(unique) > MAX_POLICY_MODULES:
        raise ConfigError(
            f"{len(unique)} Rego modules found; at most {MAX_POLICY_MODULES} are loaded", field="policies"
        )
    return [Module(_shown(p, base), _text(p)) for p in unique]


def merge_data(paths: Iterable[Path]) -> dict[str, Any]:
    """The data document: each YAML or JSON file's mapping merged in, objects recursively.

    Two files that give the same leaf different values are an error naming the key, not a silent win.
    """
    data: dict[str, Any] = {}
    for path in paths:
        located = read_yaml(path)
        if not isinstance(located.data, dict):
            raise ConfigError("a policy data file must hold a mapping at its top level", file=str(path))
        _merge(data, located.data, str(path), ())
    return data


def _merge(into: dict[str, Any], new: Mapping[str, Any], file: str, at: tuple[str, ...]) -> None:
    for key, value in new.items():
        key = str(key)
        if isinstance(into.get(key), dict) and isinstance(value, dict):
            _merge(into[key], value, file, (*at, key))
        elif key in into and into[key] != value:
            where = ".".join((*at, key))
            raise ConfigError(f"data.{where} is already set by another data file", file=file)
        else:
            into[key] = value


def _text(path: Path) -> str:
    raw = read_user_file(path, limit=MAX_CONFIG_FILE_BYTES)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None


def _shown(path: Path, base: Path) -> str:
    """The name errors cite: relative to the platform file where possible, library files by library name."""
    for root, prefix in ((LIBRARY_DIR, LIBRARY_PREFIX + "/"), (base.resolve(), "")):
        if path.is_relative_to(root):
            return prefix + str(path.relative_to(root))
    return str(path)
