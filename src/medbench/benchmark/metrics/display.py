"""Display windows: the original and the decode as a viewer shows them (``run --display``).

Radiologists read a radiograph through a VOI window, not its raw 10-16-bit values: a
narrow window magnifies the errors inside it and hides those outside. A display-referred
score applies one window to the original and to the decode, both giving 8-bit display
values (0-255, as a viewer's), and measures PSNR, SSIM and the perceptual metrics of
those at data range 255 (``display_*`` columns).

Windows:

- ``dicom``: the source DICOM's own VOI LUT (PS3.3 C.11.2), which its reader keeps in the
  image's ``meta["voi"]`` (:mod:`medbench.datasets.voi`): the first item of the VOI LUT
  Sequence when there is one (as ``pydicom.pixels.apply_voi_lut`` prefers it), else the
  first Window Center/Width pair with its VOI LUT Function (``LINEAR``,
  ``LINEAR_EXACT``, ``SIGMOID``). It is applied where PS3.4 N.2.1.1 applies it: each
  prepared pixel is mapped back to the Modality LUT output the window is defined on
  (``offset + scale × pixel``, which undoes the reader's shift, its MONOCHROME1
  inversion and a protocol's bit-depth change), the window maps that to its output
  range, and for a source the reader inverted (MONOCHROME1, or INVERSE) the output is
  inverted last, as the Presentation LUT does: the VOI minimum shows white. A VOI LUT's
  input is the nearest integer modality value; its output ``e`` shows as
  ``255·e/(2^bits − 1)``, ``bits`` from its LUT Descriptor.
- ``lung``, ``mediastinum``, ``bone``: a radiograph has no Hounsfield units, so these
  are windows on the *image's own occupied range*: with ``P1`` and ``P99`` the 1st and
  99th percentiles of the original's pixels (as coded), and ``R = P99 − P1``,

  =============== ======================== ======================
  preset           center                   width
  =============== ======================== ======================
  ``lung``         ``P1 + 0.30·R``          ``0.60·R`` (0-60 %)
  ``mediastinum``  ``P1 + 0.60·R``          ``0.60·R`` (30-90 %)
  ``bone``         ``P1 + 0.80·R``          ``0.40·R`` (60-100 %)
  =============== ======================== ======================

  applied with the DICOM ``LINEAR`` function. Why so: in a MONOCHROME2 chest film the
  aerated lung is the dark end of the anatomy, the mediastinum and soft tissue the middle
  and bone the bright end, but where they fall in the 12-bit range depends on the
  detector, exposure and processing, so fixed fractions of the nominal range
  (``2**bits − 1``) would window some images onto nothing. The percentiles adapt to the
  exposure; the 1 % tails leave out collimator edges, markers and the odd dead pixel,
  which min/max scaling would follow. Each preset halves (or more) the range shown, as a
  narrower viewer window does. The percentiles of the lung field itself would need a
  lung segmentation medbench does not have; these presets are medbench's conventions,
  the same for every codec, not clinical standards (``dicom`` is the modality's own).

A window is computed once per image, from the original, and the same lookup table maps
the original and every decode.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medbench.benchmark.metrics.fidelity import errors, psnr_from_mse
from medbench.benchmark.metrics.perceptual import perceptual_metrics
from medbench.benchmark.metrics.structural import WIN_SIZE, Reference, ssim_ms_ssim

#: Preset → (center, width) as fractions of the original's [P1, P99] range.
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (0.30, 0.60),
    "mediastinum": (0.60, 0.60),
    "bone": (0.80, 0.40),
}
DICOM = "dicom"
CHOICES = (*PRESETS, DICOM)
#: The percentiles that bound an image's occupied range for the presets.
PERCENTILES = (1.0, 99.0)
#: Display values: 8 bits, as a viewer's.
DISPLAY_PEAK = 255.0
#: The window's lookup table covers every value a uint16 pixel can hold.
_DOMAIN = np.arange(1 << 16, dtype=np.float64)


@dataclass(frozen=True)
class Window:
    """A VOI window over pixel values: ``table[v]`` is pixel ``v``'s display value.

    ``label`` names it in the ``display`` column.
    """

    label: str
    table: np.ndarray  # uint8, 65,536 entries

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The 8-bit display values of ``pixels`` (unsigned integers)."""
        if pixels.dtype.kind != "u" or pixels.dtype.itemsize > 2:
            pixels = np.clip(np.rint(pixels), 0, len(self.table) - 1).astype(np.uint16)
        return self.table[pixels]


def linear_table(center: float, width: float, function: str = "LINEAR", offset: float = 0.0,
                 scale: float = 1.0, invert: bool = False) -> np.ndarray:
    """The display table of a Window Center/Width (PS3.3 C.11.2.1.2 and C.11.2.1.3).

    Pixel ``v`` is windowed at modality value ``x = offset + scale·v`` into [0, 255]:
    ``LINEAR``: 0 for ``x ≤ c − 0.5 − (w − 1)/2``, 255 above ``c − 0.5 + (w − 1)/2``,
    else ``((x − (c − 0.5))/(w − 1) + 0.5)·255``; ``LINEAR_EXACT``: the same with ``c``
    and ``w``; ``SIGMOID``: ``255/(1 + exp(−4(x − c)/w))``. Rounded to the nearest
    integer; ``invert``: ``255 − y``.
    """
    x = offset + scale * _DOMAIN
    if function == "SIGMOID":
        with np.errstate(over="ignore"):
            y = DISPLAY_PEAK / (1.0 + np.exp(-4.0 * (x - center) / width))
    else:
        c, w = (center - 0.5, width - 1.0) if function == "LINEAR" else (center, width)
        if w <= 0:  # LINEAR with width 1: a step at the center
            y = np.where(x <= c, 0.0, DISPLAY_PEAK)
        else:
            y = np.clip(((x - c) / w + 0.5) * DISPLAY_PEAK, 0.0, DISPLAY_PEAK)
            y[x <= c - w / 2] = 0.0
            y[x > c + w / 2] = DISPLAY_PEAK
    return _to_table(y, invert)


def lut_table(entries: list[int], first: int, bits: int, offset: float = 0.0,
              scale: float = 1.0, invert: bool = False) -> np.ndarray:
    """The display table of a VOI LUT (PS3.3 C.11.2.1.1): modality values below ``first``
    take the first entry, above the last mapped value the last entry; entry ``e`` shows
    as ``255·e/(2^bits − 1)``, rounded; ``invert``: ``255 − y``."""
    data = np.asarray(entries, dtype=np.float64)
    x = np.rint(offset + scale * _DOMAIN)
    index = np.clip(x - first, 0, len(data) - 1).astype(np.intp)
    return _to_table(data[index] * (DISPLAY_PEAK / ((1 << bits) - 1)), invert)


def _to_table(y: np.ndarray, invert: bool) -> np.ndarray:
    table = np.clip(np.rint(y), 0, DISPLAY_PEAK).astype(np.uint8)
    return (255 - table).astype(np.uint8) if invert else table


def preset_window(name: str, pixels: np.ndarray) -> Window | str:
    """The ``lung``/``mediastinum``/``bone`` window of an image, or why it has none.

    The percentiles are the nearest-rank ones (``numpy.percentile(method="inverted_cdf")``)
    of the original's pixels, so a window is made of pixel values the image holds.
    """
    fc, fw = PRESETS[name]
    low, high = (float(v) for v in np.percentile(pixels, PERCENTILES, method="inverted_cdf"))
    if not high > low:
        return (f"no {name} window: the image's 1st and 99th percentiles are both "
                f"{low:g} (an image without contrast)")
    span = high - low
    center, width = low + fc * span, fw * span
    label = (f"{name} (P1 {low:g}, P99 {high:g}: center {center:.6g}, width {width:.6g}, "
             f"LINEAR)")
    return Window(label, linear_table(center, width))


def dicom_window(meta: Mapping[str, Any]) -> Window | str:
    """The source DICOM's window of an image (its ``meta["voi"]``), or why it has none."""
    voi = meta.get("voi")
    if not voi:
        return ("no dicom window: the source has no (0028,1050) Window Center/(0028,1051) "
                "Window Width nor (0028,3010) VOI LUT Sequence (only DICOM sources carry "
                "one); choose --display lung, mediastinum or bone")
    place = {"offset": float(voi["offset"]), "scale": float(voi["scale"]),
             "invert": bool(voi["invert"])}
    polarity = ", displayed inverted (MONOCHROME1 source)" if place["invert"] else ""
    lut = voi.get("lut")
    if lut:
        name = f" {lut['explanation']!r}" if lut.get("explanation") else ""
        label = (f"dicom VOI LUT{name} ({len(lut['entries'])} entries from "
                 f"{lut['first']}, {lut['bits']} bits{polarity})")
        return Window(label, lut_table(lut["entries"], int(lut["first"]), int(lut["bits"]),
                                       **place))
    if voi.get("center") is None or voi.get("width") is None:
        return f"no dicom window: {voi.get('note') or 'the header window is incomplete'}"
    function = voi.get("function") or "LINEAR"
    label = (f"dicom window center {voi['center']:g}, width {voi['width']:g} "
             f"({function}{polarity})")
    return Window(label, linear_table(float(voi["center"]), float(voi["width"]), function,
                                      **place))


def display_window(choice: str, pixels: np.ndarray, meta: Mapping[str, Any]) -> Window | str:
    """The window ``choice`` (:data:`CHOICES`) for an image, or the note saying why none.

    Parameters
    ----------
    choice
        ``lung``, ``mediastinum``, ``bone`` or ``dicom``.
    pixels
        The original as coded (the presets read its percentiles).
    meta
        The prepared image's metadata (``dicom`` reads its ``voi``).
    """
    if choice == DICOM:
        return dicom_window(meta)
    if choice not in PRESETS:
        raise ValueError(f"unknown display window {choice!r}; known: {', '.join(CHOICES)}")
    return preset_window(choice, pixels)


class DisplayReference:
    """An image's window and its windowed original, shared by the image's cells."""

    def __init__(self, window: Window, original: np.ndarray):
        self.window = window
        self.reference = Reference(window.apply(original))

    def measure(self, decoded: np.ndarray, perceptual: Collection[str] = ()) -> dict:
        """``display_psnr``, ``display_ssim`` and ``display_<metric>`` of a decode.

        The decode is windowed by the same table as the original; the metrics compare
        the two 8-bit display images at data range 255 (SSIM: NaN under 11 px).
        """
        shown = self.window.apply(decoded)
        original = self.reference.pixels
        squares, largest = errors(original, shown)
        if largest == 0:
            ssim = 1.0 if min(shown.shape) >= WIN_SIZE else math.nan
        else:
            ssim = ssim_ms_ssim(self.reference.as_float(), shown.astype(np.float64),
                                DISPLAY_PEAK, 1, self.reference)[0]
        out = {"display_psnr": psnr_from_mse(squares / shown.size, DISPLAY_PEAK),
               "display_ssim": float(ssim)}
        if perceptual:
            values = perceptual_metrics(self.reference, shown, data_range=DISPLAY_PEAK,
                                        names=perceptual)
            out.update({f"display_{name}": value for name, value in values.items()})
        return out
