"""Codec registry: the ``medbench.codecs`` entry-point group, keyed by command-line name."""

from __future__ import annotations

from medbench.codecs.base import LOSSLESS, Codec, CodecContext
from medbench.registry import Registry

__all__ = ["LOSSLESS", "Codec", "CodecContext", "registry", "get_codec", "codec_names"]

registry = Registry(group="medbench.codecs", kind="codec")


def codec_names() -> list[str]:
    return registry.names()


def get_codec(name: str, context: CodecContext | None = None) -> Codec:
    """An instance of the codec registered as ``name``."""
    cls = registry.get(name)
    return cls(context)  # type: ignore[operator]
