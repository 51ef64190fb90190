"""Package namespaces whose names load on first use (PEP 562), so importing a package costs nothing.

``stratus --help`` and ``stratus runs ls`` must start in a fraction of a second, and every step runs in a
fresh worker process: a package ``__init__`` that eagerly imported its submodules would drag SQLAlchemy,
pydantic or SciPy into processes that never use them. A package lists where each public name lives and
calls :func:`lazy_names`; type checkers see the same names through an ``if TYPE_CHECKING:`` import block.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, sources: Mapping[str, tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: public name → (module, attribute) it comes from."""

    def get_attribute(name: str) -> Any:
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source[0]), source[1])
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        unshadow()
        return value

    def unshadow() -> None:
        # Importing submodule ``report`` sets the package's ``report`` to that module, hiding the public
        # function ``report`` it defines (an eager ``from .report import report`` rebound it at once).
        namespace = vars(sys.modules[package])
        for public, (module, attribute) in sources.items():
            current = namespace.get(public)
            if isinstance(current, ModuleType) and current.__name__ == f"{package}.{public}":
                namespace[public] = getattr(importlib.import_module(module), attribute)

    def names() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(sources))

    return get_attribute, names
