"""One exception tree for the whole platform.

The CLI catches :class:`StratusError` in one place and prints it without a traceback, so every message
must say what happened, where, and how to fix it. Vendor exceptions are translated where they enter our
code (``raise StorageError(...) from exc``). Vendor messages can carry credentials, so every message is
rendered through :func:`stratus.redact.redact`: no secret reaches a terminal, a log or the state database
by way of ``str(error)``.
"""

from __future__ import annotations

from stratus.redact import display_url, redact

__all__ = [
    "CatalogError",
    "ConfigError",
    "ExecutorError",
    "InfeasibleError",
    "OverBudgetError",
    "PlanError",
    "PolicyError",
    "RegistryError",
    "ResidencyError",
    "RunError",
    "ServingError",
    "StorageError",
    "StratusError",
]


class StratusError(Exception):
    """Root of every error Stratus raises on purpose; ``exit_code`` is what the CLI returns for it."""

    exit_code: int = 1

    def __str__(self) -> str:
        return redact(super().__str__())


class ConfigError(StratusError):
    """A user file (platform, pipeline, catalog) is malformed: names the file, position, field and fix."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.detail}"


class CatalogError(ConfigError):
    """A price catalog file cannot be read: names the file, row and column."""


class PlanError(StratusError):
    """The planner could not produce a plan."""

    exit_code = 3


class InfeasibleError(PlanError):
    """No placement satisfies the constraints; the message lists, per step, why each site was rejected."""

    def __init__(self, message: str, reasons: dict[str, dict[str, list[str]]]) -> None:
        self.reasons = reasons
        super().__init__(message)


class StorageError(StratusError):
    """A site's object store failed or refused an operation: always names the site and the store URL."""

    def __init__(self, message: str, *, site: str | None = None, url: str | None = None) -> None:
        self.site = site
        self.url = display_url(url) if url else url
        self.detail = message
        where = ""
        if site and url:
            where = f"site {site} ({self.url}): "
        elif site or url:
            where = f"{site or self.url}: "
        super().__init__(f"{where}{message}")


class ExecutorError(StratusError):
    """A step could not be started, or ended badly (exit code, timeout, memory limit): names step and site."""

    def __init__(self, message: str, *, step: str | None = None, site: str | None = None) -> None:
        self.step = step
        self.site = site
        self.detail = message
        where = f"step {step!r} at site {site}: " if step and site else (f"step {step!r}: " if step else "")
        super().__init__(f"{where}{message}")


class RunError(StratusError):
    """A run cannot start or continue (unknown run id, missing dataset, a step out of attempts)."""


class ServingError(StratusError):
    """A model cannot be loaded or a request cannot be served; ``status`` is the HTTP code to answer with.

    Bad client input is a 400 naming the tensor and what was expected, so no caller ever sees a 5xx for
    its own mistake; a model that fails to load or run is a 500.
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        self.status = status
        self.detail = message
        super().__init__(message)


class RegistryError(StratusError):
    """The model registry refused or failed an operation: names the tracking URI and, when known, the model.

    Unknown models, versions and aliases list what does exist, so the fix is in the message.
    """

    def __init__(self, message: str, *, tracking_uri: str | None = None, model: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.model = model
        self.detail = message
        super().__init__(message)


class ResidencyError(StratusError):
    """Bytes would be placed, registered or served outside the jurisdictions they are bound to.

    Deterministic (the same inputs would be refused again), so a step refused for it is never retried;
    the message names the data, its bound and the place that was refused.
    """

    exit_code = 2


class PolicyError(StratusError):
    """A policy denied an action (a step's start, a copy, serving from a site, a repair), or failed closed.

    Deterministic like a residency refusal (the same policy would deny again), so a step refused for it is
    never retried; the message names the action and carries the policy's own messages.
    """

    exit_code = 6


class OverBudgetError(StratusError):
    """The plan's cost on top of this month's spend would exceed a team's or project's budget.

    Its own exit code (7) so a script can tell "over budget" from "infeasible" (3) and "denied by
    policy" (6); the message names each budget exceeded with its spent, planned and limit, and says that
    ``--allow-over-budget`` (recorded in the audit trail) runs it anyway.
    """

    exit_code = 7
