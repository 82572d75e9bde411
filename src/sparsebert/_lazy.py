"""Names a package imports on first use (PEP 562 module ``__getattr__`` / ``__dir__``), so importing
the package does not load what they need (``import sparsebert`` does not load the training stack)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], names: Mapping[str, str], *,
                 listed: bool = True) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``names`` map to the module defining each.

    On first access a name is imported from its module and stored in ``namespace`` (the package's
    ``globals()``), so later accesses are plain lookups. With ``listed=False`` the names are neither
    stored nor in ``dir()`` (only in ``__all__``), so ``help(package)`` stays the package docstring
    instead of documenting every class and function in full (pydoc reads what ``dir()`` lists).

    Raises (from ``__getattr__``):
        AttributeError: a name that is neither defined nor lazy (the usual message).
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        if listed:
            namespace[name] = value
        return value

    def __dir__() -> list[str]:
        if listed:
            return sorted(set(namespace) | set(names))
        return sorted(set(namespace) - {"__getattr__", "__dir__"})

    return __getattr__, __dir__
