"""Diagnostic regions: where in an image the region metrics (``roi_*`` columns) are measured.

A region is a boolean mask over the *prepared* image (the pixels the codecs received), so
:func:`~medbench.benchmark.metrics.region_metrics` compares the same pixels as the
whole-image metrics. It comes from one of two places:

- **the dataset's own regions**, which its reader puts in the record's metadata (readers
  only read; the mapping onto the prepared image lives here):

  ============== =====================================================================
  ``roi_label``   what the region is (``nodule``): the row's ``roi`` column
  ``roi_discs``   ``((x, y, diameter), ...)`` in pixels of the frame ``roi_shape``;
                  ``x`` is the column from the left, ``y`` the row from the top,
                  both of a pixel's centre
  ``roi_shape``   ``(height, width)`` of the frame the discs are given in (JSRT: the
                  2048×2048 film, whatever size the file read holds)
  ``roi_source``  the file the discs come from, for notes
  ``roi_note``    why the record has no region (a nodule without coordinates)
  ============== =====================================================================

  JSRT's nodules (``CLNDAT_EN.txt``) are such discs (:mod:`medbench.datasets.jsrt`).
- **``--masks DIR``**: binary mask images named like the images (``<image_id>.png``,
  else the source file's stem), at the image's native size or at the prepared size.
  With ``--masks`` the masks are every image's region; the dataset's own are not used,
  so that one run measures one kind of region.

A region that cannot be used (a mask of the wrong size or not binary, a nodule outside
the image) gives no region metrics and a note saying why (the row's ``roi_note``); it is
never silently dropped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from medbench.errors import MedbenchError

log = logging.getLogger(__name__)

Shape = tuple[int, int]


class Region(NamedTuple):
    """An image's region: the mask over the prepared image, what it is, and a note.

    ``mask`` and ``label`` are None when the image has no usable region; ``note`` then
    says why (None when there is simply none, as for a JSRT image without a nodule). A
    note may also come with a mask (a second nodule that lay outside the image).
    """

    mask: np.ndarray | None
    label: str | None
    note: str | None


NONE = Region(None, None, None)


def image_region(record: Any, prepared_shape: Shape, masks_dir: str | Path | None = None,
                 native_shape: Callable[[], Shape] | None = None) -> Region:
    """The region of ``record``'s prepared image: from ``masks_dir`` when given, else its own.

    Parameters
    ----------
    record
        The image's :class:`~medbench.datasets.base.Record`.
    prepared_shape
        ``(height, width)`` of the image as the codecs received it.
    masks_dir
        The ``--masks`` folder, or None.
    native_shape
        Returns the image's ``(height, width)`` as read, before the protocol; asked only
        when a mask is not at the prepared size.
    """
    if masks_dir is not None:
        return mask_from_dir(Path(masks_dir), record, prepared_shape, native_shape)
    return region_mask(record.meta, prepared_shape)


# -- a dataset's discs ---------------------------------------------------------------------------
def region_mask(record_meta: Mapping[str, Any], prepared_shape: Shape) -> Region:
    """The dataset's own region of a record (its ``roi_discs``), mapped onto the prepared image.

    Parameters
    ----------
    record_meta
        The record's metadata (see the module docstring for the keys read).
    prepared_shape
        ``(height, width)`` of the prepared image.

    Returns
    -------
    Region
        The union of the discs inside the frame; discs whose centre lies outside it are
        left out and named in the note. No region (and the reader's note, if any) when
        the record has no discs.

    Notes
    -----
    The protocol's resize (:func:`~medbench.datasets.protocols.resize`, PIL) maps pixel
    centres: native ``x`` lands at ``(x + 0.5)·s − 0.5`` with ``s`` = prepared / frame size
    (per axis), and a diameter ``d`` becomes ``d·s``. A disc keeps at least the pixel
    nearest its centre, so a small nodule on a 256² image is still measured.
    """
    discs = record_meta.get("roi_discs")
    if not discs:
        return Region(None, None, record_meta.get("roi_note"))
    label = str(record_meta.get("roi_label") or "region")
    frame_h, frame_w = record_meta.get("roi_shape") or prepared_shape
    height, width = prepared_shape
    sy, sx = height / frame_h, width / frame_w
    mask = np.zeros(prepared_shape, dtype=bool)
    outside = []
    for x, y, diameter in discs:
        if not (0 <= x < frame_w and 0 <= y < frame_h):
            outside.append(f"x={x:g}, y={y:g}")
            continue
        if not (math.isfinite(diameter) and diameter >= 0):
            outside.append(f"x={x:g}, y={y:g} with diameter {diameter:g}")
            continue
        _paint_ellipse(mask, (y + 0.5) * sy - 0.5, (x + 0.5) * sx - 0.5,
                       diameter / 2 * sy, diameter / 2 * sx)
    note = None
    if outside:
        source = record_meta.get("roi_source") or "the dataset's region list"
        note = (f"{label} at {'; '.join(outside)} ({source}) lies outside the "
                f"{frame_w}x{frame_h} image or has no usable size; not measured")
        log.warning("%s", note)
    if not mask.any():
        return Region(None, None, note)
    return Region(mask, label, note)


def _paint_ellipse(mask: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> None:
    """Set the pixels whose centre lies in the ellipse (only its bounding box is visited)."""
    height, width = mask.shape
    top, bottom = max(int(np.floor(cy - ry)), 0), min(int(np.ceil(cy + ry)) + 1, height)
    left, right = max(int(np.floor(cx - rx)), 0), min(int(np.ceil(cx + rx)) + 1, width)
    rows, cols = np.ogrid[top:bottom, left:right]
    if ry > 0 and rx > 0:
        inside = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0
        mask[top:bottom, left:right] |= inside
    r = min(max(int(round(cy)), 0), height - 1)
    c = min(max(int(round(cx)), 0), width - 1)
    mask[r, c] = True


# -- --masks DIR -------------------------------------------------------------------------------
def mask_candidates(masks_dir: Path, record: Any) -> list[Path]:
    """Files that may hold ``record``'s mask: ``<image_id>.png``, then ``<source stem>.png``."""
    stems = [record.image_id]
    source = Path(str(record.source))
    if source.is_file() and source.stem not in stems:
        stems.append(source.stem)
    return [masks_dir / f"{stem}{ext}" for stem in stems for ext in (".png", ".PNG")]


def mask_from_dir(masks_dir: Path, record: Any, prepared_shape: Shape,
                  native_shape: Callable[[], Shape] | None = None) -> Region:
    """``record``'s mask from the ``--masks`` folder, checked and resized to the prepared image.

    Parameters
    ----------
    masks_dir
        The folder of mask images.
    record
        The image's record (its ``image_id`` and ``source`` name the mask).
    prepared_shape
        ``(height, width)`` of the prepared image.
    native_shape
        Returns the image's size as read (asked only when the mask is not at the prepared
        size).

    Returns
    -------
    Region
        ``mask:<file name>`` and the mask; or no region and the reason: no mask file, a
        file that cannot be read, a mask that is not binary (values other than 0 and one
        non-zero value), empty, or of neither size.

    Notes
    -----
    A native-size mask is resized to the prepared size by nearest neighbour at pixel
    centres (prepared pixel ``i`` takes native pixel ``floor((i + 0.5)·native/prepared)``),
    so it stays binary.
    """
    path = next((p for p in mask_candidates(masks_dir, record) if p.is_file()), None)
    if path is None:
        return Region(None, None, f"no mask {record.image_id}.png in {masks_dir}")
    try:
        pixels = _read_mask(path)
        mask = _fit(path, pixels, prepared_shape, native_shape)
    except MedbenchError as exc:
        note = f"mask {path.name} refused: {exc}"
        log.warning("%s", note)
        return Region(None, None, note)
    return Region(mask, f"mask:{path.name}", None)


def _read_mask(path: Path) -> np.ndarray:
    """The mask as booleans; raises MedbenchError when it is not a binary image."""
    from medbench.datasets.formats import read_image

    pixels = read_image(path)[0]
    if pixels.ndim != 2:
        raise MedbenchError(f"{pixels.ndim}-D pixel array; save the mask as a greyscale PNG")
    values = pixels[pixels != 0]
    if values.size == 0:
        raise MedbenchError("the mask is empty (every pixel is 0); draw the region or "
                            "remove the file")
    low, high = values.min(), values.max()
    if low != high:
        raise MedbenchError(f"not binary: it holds 0 and the values {low}..{high}; save it "
                            "with 0 outside the region and one value inside")
    return pixels != 0


def _fit(path: Path, mask: np.ndarray, prepared_shape: Shape,
         native_shape: Callable[[], Shape] | None) -> np.ndarray:
    """``mask`` at the prepared size: as it is, or resized from the native size."""
    if mask.shape == tuple(prepared_shape):
        return mask
    native = tuple(native_shape()) if native_shape is not None else None
    if mask.shape != native:
        (h, w), (ph, pw) = mask.shape, prepared_shape
        sizes = f"{pw}x{ph} as coded" if native is None else (
            f"{native[1]}x{native[0]} as read and {pw}x{ph} as coded")
        raise MedbenchError(f"it is {w}x{h} but the image is {sizes}; save the mask at "
                            "one of those sizes")
    rows = ((np.arange(prepared_shape[0]) + 0.5) * mask.shape[0] / prepared_shape[0])
    cols = ((np.arange(prepared_shape[1]) + 0.5) * mask.shape[1] / prepared_shape[1])
    resized = mask[rows.astype(np.intp)[:, None], cols.astype(np.intp)[None, :]]
    if not resized.any():
        raise MedbenchError(f"its region vanishes at the prepared size {prepared_shape[1]}x"
                            f"{prepared_shape[0]}; draw a larger region")
    return resized
