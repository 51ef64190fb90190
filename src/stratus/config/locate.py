"""Which platform file a command or the SDK uses: ``--platform``, ``$STRATUS_PLATFORM``, then a search.

Kept apart from the loader (which imports pydantic and the catalog) so a command that only needs the
platform's state folder, such as ``stratus runs ls``, finds it without loading either.
"""

from __future__ import annotations

import os
from pathlib import Path

from stratus.config.env import PLATFORM_ENV
from stratus.errors import ConfigError

__all__ = ["PLATFORM_FILENAME", "resolve_platform_path"]

PLATFORM_FILENAME = "stratus.yaml"


def resolve_platform_path(platform: Path | None, pipeline: Path | None = None) -> Path:
    """The explicit ``--platform``, else ``$STRATUS_PLATFORM``, else ``stratus.yaml`` beside the
    pipeline, else in the working directory.

    A variable naming no file is an error rather than a silent fall-back to another platform: the user
    asked for that file, and running against a different one would put state in the wrong place.
    """
    if platform is not None:
        return platform
    named = os.environ.get(PLATFORM_ENV, "")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"${PLATFORM_ENV} names {named!r}, which is not a file; set it to your platform file "
                "(e.g. team/stratus.yaml), unset it, or pass --platform FILE",
                field=PLATFORM_ENV,
            )
        return path
    candidates = []
    if pipeline is not None:
        candidates.append(pipeline.parent / PLATFORM_FILENAME)
    candidates.append(Path.cwd() / PLATFORM_FILENAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = " and ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no platform file found (looked for {looked}); pass --platform FILE or set ${PLATFORM_ENV}"
    )
