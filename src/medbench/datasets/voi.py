"""What a DICOM's VOI LUT module says, in the image's metadata (``meta["voi"]``).

A viewer shows a radiograph through its VOI LUT (PS3.3 C.11.2): Window Center and Width,
or a VOI LUT Sequence, applied to the Modality LUT's output and followed by the
Presentation LUT (PS3.4 N.2.1.1: stored values → Modality LUT → VOI LUT → Presentation
LUT → P-values). The reader keeps what the header says, untouched, and how the pixels it
returns relate to the values the VOI LUT is defined on, so the window can be applied to
the prepared image (``run --display dicom``, :mod:`medbench.benchmark.metrics.display`).

``meta["voi"]`` (JSON-safe, kept in the prepared-image cache):

============== ==========================================================================
``center``      (0028,1050) Window Center, the first value (None when absent)
``width``       (0028,1051) Window Width, the first value
``function``    (0028,1056) VOI LUT Function: ``LINEAR`` (default), ``LINEAR_EXACT``,
                ``SIGMOID``
``lut``         the first item of (0028,3010) VOI LUT Sequence, or None: ``entries``
                (LUT Data values), ``first`` (the first input value mapped), ``bits``
                (bits per entry) and ``explanation`` (0028,3003)
``offset``,     modality value = ``offset + scale × pixel``: how a returned (MONOCHROME2)
``scale``       pixel value maps back to the Modality LUT output the window is defined
                on. The reader sets ``offset`` = the rescale's lowest output and
                ``scale`` = 1, or, for an image it inverted, ``offset`` = lowest + peak
                and ``scale`` = −1. A protocol that changes the bit depth divides
                ``scale`` by its factor (:func:`rescaled`).
``invert``      True when the reader inverted the image (MONOCHROME1, or Presentation LUT
                Shape INVERSE on MONOCHROME2): the VOI output is then displayed inverted,
                as the Presentation LUT would (minimum = white for MONOCHROME1)
``note``        why a window the header holds cannot be used (a Window Width below 1),
                else None
============== ==========================================================================

No key ``voi`` means the header has neither Window Center/Width nor a VOI LUT Sequence.
"""

from __future__ import annotations

import math
import struct
from typing import Any

FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def voi_meta(ds: Any, lowest: float, peak: int, inverted: bool) -> dict[str, Any] | None:
    """The VOI LUT module of ``ds`` as ``meta["voi"]`` (see the module notes), or None.

    Parameters
    ----------
    ds
        The pydicom dataset.
    lowest
        The lowest Modality LUT output, which the reader shifted to pixel value 0.
    peak
        ``2**bit_depth - 1`` of the pixels the reader returns.
    inverted
        Whether the reader inverted the pixels (MONOCHROME1 or INVERSE).

    Returns
    -------
    dict or None
        None when the header has no window and no VOI LUT; a dict whose ``note`` says
        why values that are present cannot be used (the image is still read).
    """
    has_window = ds.get("WindowCenter") is not None or ds.get("WindowWidth") is not None
    has_lut = bool(ds.get("VOILUTSequence"))
    if not (has_window or has_lut):
        return None
    voi: dict[str, Any] = {
        "center": None, "width": None, "function": "LINEAR", "lut": None,
        "offset": float(lowest + peak) if inverted else float(lowest),
        "scale": -1.0 if inverted else 1.0, "invert": bool(inverted), "note": None,
    }
    notes = []
    if has_window:
        try:
            voi.update(_window(ds))
        except ValueError as exc:
            notes.append(str(exc))
    if has_lut:
        try:
            voi["lut"] = _lut(ds)
        except ValueError as exc:
            notes.append(str(exc))
    if notes:
        voi["note"] = "; ".join(notes)
    return voi


def _first(ds: Any, keyword: str) -> Any:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def _window(ds: Any) -> dict[str, Any]:
    """Window Center/Width (first pair) and VOI LUT Function, checked (PS3.3 C.11.2.1.2)."""
    values = {}
    for keyword, tag, name in (("WindowCenter", "(0028,1050)", "Window Center"),
                               ("WindowWidth", "(0028,1051)", "Window Width")):
        raw = _first(ds, keyword)
        try:
            number = float(str(raw).strip())
        except (TypeError, ValueError):
            raise ValueError(f"{tag} {name} of {raw!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{tag} {name} of {number:g} is not finite")
        values[name] = number
    function = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if function not in FUNCTIONS:
        raise ValueError(f"(0028,1056) VOI LUT Function {function!r} is none of "
                         f"{', '.join(FUNCTIONS)}")
    width = values["Window Width"]
    if (function == "LINEAR" and width < 1) or width <= 0:
        least = "at least 1" if function == "LINEAR" else "above 0"
        raise ValueError(f"(0028,1051) Window Width of {width:g} is invalid: it must be "
                         f"{least} for VOI LUT Function {function}")
    return {"center": values["Window Center"], "width": width, "function": function}


def _lut(ds: Any) -> dict[str, Any]:
    """The first VOI LUT Sequence item (PS3.3 C.11.2.1.1), its LUT Data as integers."""
    item = ds.VOILUTSequence[0]
    descriptor = item.get("LUTDescriptor")
    data = item.get("LUTData")
    if descriptor is None or data is None or len(descriptor) != 3:
        raise ValueError("(0028,3010) VOI LUT Sequence item lacks a three-value (0028,3002) "
                         "LUT Descriptor or its (0028,3006) LUT Data")
    count, first, bits = (int(v) for v in descriptor)
    count = count or 65536  # PS3.3 C.11.1.1.1: 0 means 2**16 entries
    if str(ds.get("PixelRepresentation", 0)) == "1" and first >= 1 << 15:
        first -= 1 << 16  # the first value mapped is signed (SS) for signed pixels
    if not 1 <= bits <= 16:
        raise ValueError(f"(0028,3002) LUT Descriptor gives {bits} bits per entry; "
                         "it must be 8 to 16")
    if isinstance(data, (bytes, bytearray)):  # OW: 16-bit words in the file's byte order
        little = getattr(ds, "is_little_endian", True) is not False
        if len(data) < 2 * count:
            raise ValueError(f"(0028,3006) LUT Data holds {len(data)} bytes for "
                             f"{count} entries")
        entries = list(struct.unpack(f"{'<' if little else '>'}{count}H", data[: 2 * count]))
    else:
        entries = [int(v) for v in (data if hasattr(data, "__len__") else [data])]
    if len(entries) != count:
        raise ValueError(f"(0028,3006) LUT Data holds {len(entries)} entries where "
                         f"(0028,3002) LUT Descriptor says {count}")
    explanation = str(item.get("LUTExplanation", "") or "").strip() or None
    return {"entries": entries, "first": first, "bits": bits, "explanation": explanation}


def rescaled(voi: dict[str, Any], from_peak: int, to_peak: int) -> dict[str, Any]:
    """``voi`` for pixels requantized from ``[0, from_peak]`` to ``[0, to_peak]``.

    A protocol that changes the bit depth maps pixel ``v`` to ``v·to_peak/from_peak``;
    the modality value of a new pixel ``v'`` is then ``offset + scale·v'·from/to``. A
    ``voi`` without a numeric ``scale`` (not the reader's) is returned as it is: the
    display window then says why it cannot be made, and the image is still coded.
    """
    scale = voi.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        return voi
    return {**voi, "scale": scale * from_peak / to_peak}
