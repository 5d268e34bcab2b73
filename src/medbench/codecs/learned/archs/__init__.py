"""The registry of learned architectures: one module each, found rather than listed.

Every module of this package declares ``ARCHITECTURE`` (an
:class:`~medbench.codecs.learned.architecture.Architecture`); outside packages declare
theirs in the ``medbench.architectures`` entry-point group (``name = module:OBJECT``).
Both are loaded on first use. A module or plugin that fails to import, or whose
declaration is inconsistent, is logged and skipped (:data:`broken`); two declaring one
name is an error naming both. Adding an architecture is adding one module here: the
codec of that name, ``medbench train --model``, checkpoint checks, complexity counts and
``run --train-missing`` all read this registry.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

from medbench.codecs.learned.architecture import Architecture
from medbench.errors import MedbenchError
from medbench.registry import DuplicateNameError, Registry

log = logging.getLogger(__name__)

__all__ = ["Architecture", "registered", "names", "get", "new_model", "broken", "reset"]

_plugins = Registry(group="medbench.architectures", kind="architecture")
_found: dict[str, Architecture] | None = None
_origins: dict[str, str] = {}
#: Name → reason of each architecture module or plugin that was skipped.
broken: dict[str, str] = {}


def registered() -> dict[str, Architecture]:
    """Name → architecture: the built-in modules of this package, then plugins."""
    global _found
    if _found is not None:
        return _found
    found: dict[str, Architecture] = {}
    _origins.clear()
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        origin = f"{__name__}.{info.name}"
        try:
            spec = importlib.import_module(origin).ARCHITECTURE
        except Exception as exc:  # one broken module must not break the others
            _skip(info.name, origin, exc)
            continue
        _add(found, spec, origin)
    for name, spec in _plugins.load().items():
        _add(found, spec, f"entry point {name!r} of medbench.architectures")
    broken.update(_plugins.broken)
    _found = found
    return found


def _skip(name: str, origin: str, exc: Exception) -> None:
    broken[name] = f"{type(exc).__name__}: {exc}"
    log.warning("architecture %s (%s) failed to load: %s", name, origin, exc)


def _add(found: dict[str, Architecture], spec: object, origin: str) -> None:
    if not isinstance(spec, Architecture):
        _skip(origin, origin, TypeError(f"{origin} is a {type(spec).__name__}, not an "
                                        f"Architecture"))
        return
    try:
        spec.check()
    except ValueError as exc:
        _skip(spec.name or origin, origin, exc)
        return
    if spec.name in found and found[spec.name] is not spec:
        raise DuplicateNameError(
            f"architecture name {spec.name!r} is declared twice: by {_origins[spec.name]} "
            f"and by {origin}; remove one of the two"
        )
    found[spec.name] = spec
    _origins[spec.name] = origin


def names() -> list[str]:
    """Every registered architecture's name, sorted."""
    return list(registered())


def get(name: str) -> Architecture:
    """The architecture ``name``; an unknown one is a :class:`MedbenchError` listing all."""
    found = registered()
    if name not in found:
        raise MedbenchError(f"unknown architecture {name!r}; known: {', '.join(found)}")
    return found[name]


def new_model(arch: str, latent: int | None = None, width: int | None = None,
              components: int = 3):
    """A freshly initialised compression model of architecture ``arch`` (sizes default to
    the architecture's)."""
    return get(arch).build(latent, width, components)


def reset() -> None:
    """Forget what was loaded (tests use this after changing what is installed)."""
    global _found
    _found = None
    _plugins.reset()
    broken.clear()
