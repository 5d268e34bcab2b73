"""Codec registry: the ``medbench.codecs`` entry-point group, keyed by command-line name,
plus one learned codec per registered architecture (:mod:`medbench.codecs.learned.archs`)."""

from __future__ import annotations

from medbench.codecs.base import LOSSLESS, Codec, CodecContext
from medbench.registry import Registry

__all__ = ["LOSSLESS", "Codec", "CodecContext", "registry", "get_codec", "codec_names"]



def _architecture_codecs() -> dict[str, object]:
    """One codec per learned architecture (:mod:`medbench.codecs.learned.archs`): an
    architecture needs no entry point of its own to be a codec."""
    from medbench.codecs.learned import archs
    from medbench.codecs.learned.codec import architecture_codecs

    found = dict(architecture_codecs())
    registry.broken.update(archs.broken)  # shown by `medbench codecs` like broken plugins
    return found


registry = Registry(group="medbench.codecs", kind="codec", extra=_architecture_codecs)


def codec_names() -> list[str]:
    return registry.names()


def get_codec(name: str, context: CodecContext | None = None) -> Codec:
    """An instance of the codec registered as ``name``."""
    cls = registry.get(name)
    return cls(context)  # type: ignore[operator]
