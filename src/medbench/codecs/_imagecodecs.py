"""Lazy access to the ``imagecodecs`` package and the libraries it bundles.

imagecodecs gives each format the same small face (``<fmt>_encode``, ``<fmt>_decode``,
and a ``<FMT>.available`` flag); a wheel built without a library keeps a stub that says so
when called. We import it only when a codec is used, so a machine without imagecodecs, or
with a build that lacks one format, loses only those codecs and never the rest.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from medbench.codecs.base import Codec
from medbench.errors import CodecUnavailable

# HTJ2K and its reversible/tile options arrived in 2026.1.x.
REQUIREMENT = "imagecodecs>=2026.1.14"


def import_imagecodecs(feature: str) -> ModuleType:
    """imagecodecs, if it is installed and was built with ``feature`` (e.g. ``"JPEGLS"``).

    Raises
    ------
    CodecUnavailable
        Naming the pip requirement when the package is missing, or the format when the
        installed build lacks it.
    """
    try:
        module = importlib.import_module("imagecodecs")
    except ImportError as exc:
        raise CodecUnavailable(
            f"imagecodecs is not installed ({exc}); pip install '{REQUIREMENT}'"
        ) from exc
    flag = getattr(module, feature, None)
    if flag is None or not getattr(flag, "available", False):
        version = getattr(module, "__version__", "?")
        raise CodecUnavailable(
            f"the installed imagecodecs {version} was built without {feature}; "
            f"pip install --force-reinstall '{REQUIREMENT}' (the PyPI wheels bundle it)"
        )
    return module


class ImagecodecsCodec(Codec):
    """A classical codec backed by one imagecodecs format (``feature``).

    ``libraries`` names the libraries bundled in imagecodecs that write and read the
    format, as keys of ``imagecodecs.version(dict)`` (``libjpeg_turbo``, ``openjph``): the
    ``codec_library`` column names them with their versions (:meth:`library`).
    """

    feature: str = ""
    libraries: tuple[str, ...] = ()

    def unavailable_reason(self) -> str | None:
        try:
            import_imagecodecs(self.feature)
        except CodecUnavailable as exc:
            return str(exc)
        return None

    def _lib(self) -> ModuleType:
        return import_imagecodecs(self.feature)

    def library(self, setting: str) -> str:
        """``imagecodecs <version> (<library> <version>, ...)`` of :attr:`libraries`."""
        return imagecodecs_libraries(self.libraries)


@cache
def imagecodecs_libraries(names: tuple[str, ...]) -> str:
    """``imagecodecs 2026.3.6 (libjpeg_turbo 3.1.3/8.0)``: the package and the versions of
    the bundled libraries ``names``; ``imagecodecs unavailable`` without it."""
    try:
        module = importlib.import_module("imagecodecs")
        versions = module.version(dict)
    except (ImportError, AttributeError, TypeError) as exc:
        return f"imagecodecs unavailable ({exc})"
    inner = ", ".join(f"{name} {versions.get(name, '?')}" for name in names)
    text = f"imagecodecs {versions.get('imagecodecs', getattr(module, '__version__', '?'))}"
    return f"{text} ({inner})" if inner else text


def container_bits(bit_depth: int) -> int:
    """Bits of the storage word: 8 for up to 8 bits, 16 above (see :func:`dtype_for`)."""
    return 8 if bit_depth <= 8 else 16


def check_range(setting: str, value: float, low: float, high: float, what: str) -> float:
    """``value`` if ``low <= value <= high``; out-of-range settings raise, never clamp."""
    if not low <= value <= high:
        raise ValueError(f"{what} must be in {low:g}..{high:g}, got {setting!r}")
    return value
