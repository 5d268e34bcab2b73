"""Coding one image with one codec at one setting: the unit of work of every executor."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from medbench.benchmark.metrics import measure
from medbench.benchmark.timing import timed
from medbench.codecs.base import Codec
from medbench.errors import UnsupportedInput
from medbench.image import Image

log = logging.getLogger(__name__)


def image_columns(image: Image) -> dict[str, Any]:
    """Result columns that describe the image as the codecs received it."""
    return {
        "image_id": image.image_id,
        "bit_depth": image.bit_depth,
        "height": image.height,
        "width": image.width,
        "protocol": image.meta.get("protocol"),
        "split": image.meta.get("split"),
        "body_part": image.meta.get("body_part"),
        "group_id": image.meta.get("group"),
        "source": image.meta.get("source"),
    }


def code_cell(codec: Codec, setting: str, image: Image, repeats: int = 3) -> dict[str, Any]:
    """Encode, decode and measure one cell; never raises for a codec's failure.

    Returns the metric and timing columns plus ``status`` (``ok``, ``error`` or
    ``unsupported``) and ``error``. A lossless setting that does not decode bit-exact is
    an error row (its metrics are kept so the damage can be seen), and so is a setting
    whose promised error bound (:meth:`Codec.max_error`) is exceeded.
    """
    row: dict[str, Any] = {"codec": codec.name, "setting": setting, "codec_kind": codec.kind}
    try:
        row.update(codec.setting_info(setting))
        codec.check(image)
        data, encode_ms = timed(lambda: codec.encode(image, setting), repeats=repeats)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"{codec.name}.encode returned {type(data).__name__}, not bytes")
        decoded, decode_ms = timed(lambda: codec.decode(bytes(data)), repeats=repeats)
        row.update(measure(image.pixels, decoded, len(data), image.bit_depth))
        row.update(encode_ms=encode_ms, decode_ms=decode_ms, status="ok", error=None)
        if codec.is_lossless(setting) and not row["lossless_exact"]:
            row.update(
                status="error",
                error=f"lossless setting did not decode bit-exact "
                f"(max_abs_error={row['max_abs_error']})",
            )
        bound = codec.max_error(setting)
        if row["status"] == "ok" and bound is not None and row["max_abs_error"] > bound:
            row.update(
                status="error",
                error=f"setting {setting} promises max_abs_error <= {bound} but the image "
                f"decoded with max_abs_error={row['max_abs_error']}",
            )
    except UnsupportedInput as exc:
        row.update(status="unsupported", error=str(exc))
    except Exception as exc:  # one bad cell never ends a run
        log.debug("cell failed", exc_info=True)
        row.update(status="error", error=f"{type(exc).__name__}: {exc}")
    return row


def code_image(
    image: Image, plan: list[tuple[Codec, str]], repeats: int = 3
) -> Iterator[dict[str, Any]]:
    """Rows for every (codec, setting) of ``plan`` on one image, one at a time."""
    base = image_columns(image)
    for codec, setting in plan:
        yield {**base, **code_cell(codec, setting, image, repeats)}
