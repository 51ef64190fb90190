"""Names for things in the registry: model references, aliases, and which MLflow store a platform uses.

Pure: no MLflow import, so the CLI and the serving config can parse ``models:/fraud@champion`` cheaply
and reject a bad reference before any network call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stratus.errors import RegistryError
from stratus.limits import alias_problem, name_problem
from stratus.redact import display_url

__all__ = [
    "ModelRef",
    "artifacts_dir",
    "check_alias",
    "check_tracking_uri",
    "display_uri",
    "embedded_uri",
]

DB_FILENAME = "mlflow.db"
ARTIFACTS_DIRNAME = "mlartifacts"

_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, by number or by alias; neither means the latest version."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        problem = name_problem(self.name)  # the name becomes a folder when the model is staged
        if problem:
            raise RegistryError(f"not a model name: {problem}")
        if self.version is not None and self.alias is not None:
            raise RegistryError(f"model {self.name!r}: give a version or an alias, not both")
        if self.version is not None and self.version < 1:
            raise RegistryError(f"model {self.name!r}: versions start at 1, got {self.version}")
        if self.alias is not None:
            check_alias(self.alias)

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, or the same without ``models:/``."""
        body = text[len("models:/") :] if text.startswith("models:/") else text
        if "@" in body:
            name, alias = body.split("@", 1)
            return cls(name, alias=alias)
        if "/" in body:
            name, version = body.split("/", 1)
            if not version.isdigit():
                raise RegistryError(
                    f"{text!r}: {version!r} is not a version number; expected models:/NAME/VERSION "
                    "or models:/NAME@ALIAS"
                )
            return cls(name, version=int(version))
        return cls(body)

    @classmethod
    def of(cls, name: str, selector: str | int | None) -> ModelRef:
        """A name and a version number or alias as users type them: digits are a version."""
        if selector is None:
            return cls(name)
        if isinstance(selector, int) or selector.isdigit():
            return cls(name, version=int(selector))
        return cls(name, alias=selector)

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        if self.version is not None:
            return f"models:/{self.name}/{self.version}"
        return f"models:/{self.name}"


def check_alias(alias: str) -> str:
    """``alias`` if MLflow will take it and it cannot be mistaken for a version; else why not."""
    problem = alias_problem(alias)
    if problem:
        raise RegistryError(problem)
    return alias


def check_tracking_uri(uri: str) -> str:
    """``uri`` if it names an MLflow server or database; a bare path or host is a mistake, said early."""
    scheme = urlsplit(uri).scheme.split("+", 1)[0]
    if scheme not in _SCHEMES:
        raise RegistryError(
            f"{display_uri(uri)!r} is not an MLflow tracking URI; expected http(s)://HOST:PORT for a "
            "server, or a database URL such as sqlite:///path/mlflow.db",
            tracking_uri=display_uri(uri),
        )
    return uri


def embedded_uri(state_dir: Path) -> str:
    """The default store: one SQLite file in the platform's state folder, found from any working dir."""
    return f"sqlite:///{state_dir.resolve() / DB_FILENAME}"


def artifacts_dir(state_dir: Path) -> Path:
    """Where a database-backed store keeps model files: beside the database, not in ./mlruns."""
    return state_dir.resolve() / ARTIFACTS_DIRNAME


def display_uri(uri: str) -> str:
    """``uri`` safe to print: a password in it becomes ``***`` (:func:`stratus.redact.display_url`)."""
    return display_url(uri)
