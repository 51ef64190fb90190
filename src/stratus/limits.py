"""Every cap on what a user's input may hold, in one place: file sizes, YAML shape, names and numbers.

Stratus reads files, flags and environment variables written by people (and sometimes by other
programs). Without a cap, a 1 KB YAML alias bomb expands to gigabytes, ``.inf`` reaches a bill, and a
site named ``../../x`` writes outside ``.stratus/``. Each limit here is generous for real use and far
below what breaks us; docs/hardening.md lists them. Pure: no pydantic, no I/O.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_ACCELERATORS",
    "MAX_ATTEMPTS",
    "MAX_BUDGET_USD",
    "MAX_CATALOG_FILE_BYTES",
    "MAX_CLIENT_THREADS",
    "MAX_CONFIG_FILE_BYTES",
    "MAX_DURATION_S",
    "MAX_FLAG_SECONDS",
    "MAX_HOURS",
    "MAX_MEMORY_GB",
    "MAX_PARALLEL_STEPS",
    "MAX_PRICE_USD",
    "MAX_RESERVED",
    "MAX_SITES",
    "MAX_SIZE_GB",
    "MAX_TRANSFER_GBPS",
    "MAX_VCPUS",
    "MAX_YAML_ALIASES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "NAME_MAX_LENGTH",
    "alias_problem",
    "name_problem",
]

# Files. A platform or pipeline file is hand-written: a few KB. SkyPilot's largest vms.csv is ~15 MB.
MAX_CONFIG_FILE_BYTES = 2 * 1024 * 1024
MAX_CATALOG_FILE_BYTES = 256 * 1024 * 1024

# YAML shape: nesting depth, aliases used, and values (mappings, lists, scalars) in the file, counted
# again for every alias that repeats them. The YAML parser is pure Python (~40 us a value), so the
# value cap also bounds the time a hostile file costs to a few seconds.
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 1_000
MAX_YAML_NODES = 100_000

# Numbers (every numeric field of both files; all must also be finite).
MAX_SIZE_GB = 1_000_000.0  # 1 PB: a dataset, an output, a step's exchange
MAX_HOURS = 10_000.0  # a step's estimated_hours: more than a year
MAX_TRANSFER_GBPS = 10_000.0  # 10 Tb/s between sites
MAX_VCPUS = 10_000.0
MAX_MEMORY_GB = 100_000.0  # 100 TB
MAX_ACCELERATORS = 1_024  # devices of one kind in one request or offering
MAX_PRICE_USD = 1_000_000  # any one price: per hour, per GB, per request, per GB-second
MAX_ATTEMPTS = 100  # a step's max_attempts
MAX_PARALLEL_STEPS = 10_000  # a site's capacity.max_parallel_steps
MAX_RESERVED = 100_000  # machines in one reservation
MAX_SITES = 1_000  # sites of one distributed step
MAX_DURATION_S = 7 * 24 * 3600.0  # a serverless function's max_duration_s: a week
MAX_BUDGET_USD = 1_000_000_000  # a team's or project's monthly budget: a billion dollars

# Command-line flags (ports are 1-65535, set where each flag is declared).
MAX_FLAG_SECONDS = 24 * 3600.0  # --time-limit, --timeout
MAX_CLIENT_THREADS = 256  # chaos --concurrency

# Names of sites, steps, outputs, datasets, registered models and aliases become folder and file names
# (.stratus/serve/<site>/, store keys, run folders), URL path segments and DNS-like labels: one safe
# alphabet, no '..', and the length of a DNS label so every file system takes them.
NAME_MAX_LENGTH = 63
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# Step, dataset and output names also appear in `dataset:NAME` and `STEP.OUTPUT`: no '.', no leading digit.
_REFERABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# A registry alias: MLflow's own rule, minus what we would read as a version number.
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_RESERVED_ALIAS = re.compile(r"latest|v\d+", re.IGNORECASE)


def name_problem(value: object, *, referable: bool = False) -> str | None:
    """Why ``value`` cannot name a site, step, output, dataset, model or alias; None when it can.

    ``referable`` names (steps, datasets, outputs) are also written inside references, so they may not
    contain '.' nor start with a digit.
    """
    if not isinstance(value, str):
        return f"a name must be text, got {type(value).__name__} {value!r}"
    shown = value if len(value) <= 40 else f"{value[:40]}..."
    if len(value) > NAME_MAX_LENGTH:
        return f"name {shown!r} is {len(value)} characters long; names have at most {NAME_MAX_LENGTH}"
    if referable:
        if not _REFERABLE_NAME.fullmatch(value):
            return (
                f"name {shown!r} cannot be referenced; "
                "expected letters, digits, '_' or '-', starting with a letter"
            )
        return None
    if not _SAFE_NAME.fullmatch(value) or ".." in value:
        return (
            f"name {shown!r} is not a safe name; expected letters, digits, '.', '_' or '-', "
            "starting with a letter, digit or '_', and no '..'"
        )
    return None


def alias_problem(value: object) -> str | None:
    """Why ``value`` cannot be a registry alias (``models:/NAME@ALIAS``); None when it can."""
    if isinstance(value, str) and len(value) > NAME_MAX_LENGTH:
        return name_problem(value)
    if not isinstance(value, str) or not _ALIAS.fullmatch(value) or _RESERVED_ALIAS.fullmatch(value):
        return (
            f"{value!r} is not a usable alias: use letters, digits, '_' and '-', starting with a letter, "
            "and not 'latest' or 'v<number>' (MLflow reserves those), e.g. champion"
        )
    return None
