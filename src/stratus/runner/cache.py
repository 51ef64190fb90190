"""Cache keys: a step is not rerun when its code, parameters and input bytes are what they were.

The code version hashes the source file of the step's module (not its import-time state), the entry
point and the parameters, so editing the function, renaming it or changing a parameter all miss the
cache, while moving the step to another site or rerunning tomorrow hits it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stratus.errors import ConfigError

__all__ = ["cache_key", "code_version", "module_file"]


def module_file(entrypoint: str, search: Sequence[Path], *, field: str | None = None) -> Path:
    """The source file of ``module:function``: first under ``search`` (the pipeline's folder), then installed.

    Found without importing the module, so a step with heavy imports costs the runner nothing.
    """
    module = entrypoint.partition(":")[0]
    parts = module.split(".")
    for folder in search:
        for candidate in (folder.joinpath(*parts).with_suffix(".py"), folder.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and Path(spec.origin).is_file():
        return Path(spec.origin)
    looked = ", ".join(str(f) for f in search) or "nowhere"
    raise ConfigError(
        f"module {module!r} of {entrypoint!r} not found (looked in {looked} and the installed packages); "
        f"put {parts[-1]}.py beside the pipeline file",
        field=field,
    )


def code_version(entrypoint: str, source: Path, params: Mapping[str, Any]) -> str:
    """SHA-256 of the module's source, the entry point and the parameters (canonical JSON)."""
    digest = hashlib.sha256()
    digest.update(source.read_bytes())
    digest.update(b"\0" + entrypoint.encode())
    digest.update(b"\0" + _canonical(params).encode())
    return digest.hexdigest()


def cache_key(version: str, inputs: Mapping[str, str], outputs: Iterable[str]) -> str:
    """SHA-256 of the code version, every input reference's bytes (by hash) and the output names."""
    payload = {"code": version, "inputs": dict(sorted(inputs.items())), "outputs": sorted(outputs)}
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
