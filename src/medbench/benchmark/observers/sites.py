"""Where nodules go: the pixel spacing, the lung fields, and sites chosen in them.

**Spacing.** Nodule sizes are in mm, so the image's pixel spacing decides their size in
pixels. Readers record the spacing of the image as read (``spacing_row_mm``,
``spacing_col_mm``, ``spacing_source`` in its metadata: DICOM ``(0028,0030) Pixel
Spacing``, else ``(0018,1164) Imager Pixel Spacing``; JSRT 0.175 mm); the protocol's
resize scales it by native / prepared size per axis (:func:`prepared_spacing`). Where a
dataset records none (NIH's PNGs), a PA chest film is **assumed** to be
:data:`ASSUMED_FILM_MM` = 430 mm (a 43 cm cassette) across the image's width, with square
pixels; the assumption is stated in every row it affects. An image known not to be a whole
chest film (another body part, a tile of a film) gets no assumption: it is skipped,
saying why.

**Lung fields.** From ``--masks`` where given (binary masks named like the images, as for
the region metrics, :mod:`medbench.benchmark.regions`), else :func:`lung_rule`: two boxes
per side of a PA chest film (upper and lower zones, :data:`LUNG_BOXES`, in fractions of
the width and height, mirrored for the other side), intersected with the pixels whose
local mean (a box of :data:`LOCAL_FRACTION` of the width) is darker than the median of the
image's local means (aerated lung is darker than mediastinum, diaphragm and soft tissue
in MONOCHROME2), less the air outside the body: pixels whose local mean lies in the
darkest :data:`AIR_FRACTION` of the way from the image's 1st percentile to that median
and that connect to the image's edge through such pixels (the lungs, enclosed by the
brighter chest wall, do not). The rule was checked by eye on overlays of the 100 NIH
images at 256²; it is a simple stand-in for a segmentation, not one: on a very dense or
off-centre film it may keep some soft tissue, which only makes the background there
brighter than lung.

**Sites.** Each condition (diameter × contrast) gets up to ``per_condition`` sites. A site
is the centre of its condition's region of interest (ROI); the whole ROI lies inside the
lung field, away from the image edge (:data:`BORDER_FRACTION` of the side), off any region
the dataset marks (a JSRT nodule), and no two ROIs overlap (:data:`GAP_PX` apart). Sites
are drawn from a :class:`numpy.random.Generator` seeded by the run's ``--seed`` and the
image id, round by round (one site per condition, largest ROI first), so the same run
places the same nodules on every codec's copy of an image and a lung field too small for
all of them shorts every condition alike; a shortfall is stated, never silent.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medbench.benchmark.observers.nodules import Spacing

#: The film width assumed for a chest radiograph without recorded spacing (mm).
ASSUMED_FILM_MM = 430.0
#: ``(left, top, right, bottom)`` fractions of the image of the right lung's (image left)
#: upper and lower zones on a PA film; the left lung's are mirrored.
LUNG_BOXES = ((0.14, 0.16, 0.45, 0.45), (0.12, 0.45, 0.45, 0.74))
#: Side of the local-mean window of :func:`lung_rule`, as a fraction of the image width.
LOCAL_FRACTION = 0.06
#: Outside-body air: local means below this fraction of the way from the 1st percentile
#: to the median, connected to the image edge.
AIR_FRACTION = 0.4
#: Sites keep their ROI at least this fraction of the image side from the edge.
BORDER_FRACTION = 0.03
#: Pixels kept free between two sites' ROIs.
GAP_PX = 2
#: Body-part names taken as a chest.
CHEST_PARTS = ("CHEST", "THORAX", "LUNG")
_LATERAL_VIEWS = ("LL", "RL", "LAT", "LATERAL", "LLD", "RLD")


class SiteSkip(Exception):
    """An image (or condition) the experiment cannot use, with the reason in its message."""


def prepared_spacing(meta: Mapping[str, Any], native_shape: tuple[int, int],
                     prepared_shape: tuple[int, int]) -> Spacing:
    """The pixel spacing of the prepared image, or :class:`SiteSkip` saying why none.

    Parameters
    ----------
    meta
        The image's metadata (reader's and dataset's): ``spacing_row_mm``,
        ``spacing_col_mm``, ``spacing_source``, ``body_part``, ``tile`` (the ``sample``
        dataset's tiles), ``group_kind``, ``view``.
    native_shape, prepared_shape
        ``(height, width)`` as read and as coded.

    Notes
    -----
    The protocol resizes the whole image, so the field of view is kept: spacing scales
    by ``native / prepared`` per axis. The assumed film width gives
    ``col = 430 / native_width`` and square native pixels.
    """
    (nh, nw), (ph, pw) = native_shape, prepared_shape
    row, col = meta.get("spacing_row_mm"), meta.get("spacing_col_mm")
    if row is not None and col is not None:
        row, col = float(row), float(col)
        if not (row > 0 and col > 0 and np.isfinite(row) and np.isfinite(col)):
            raise SiteSkip(f"recorded pixel spacing {row} x {col} mm is not usable")
        source = str(meta.get("spacing_source") or "recorded")
        resized = "" if (nh, nw) == (ph, pw) else f", scaled from {nw}x{nh} to {pw}x{ph}"
        return Spacing(row * nh / ph, col * nw / pw, f"{source}{resized}")
    chest_film(meta)
    native_col = ASSUMED_FILM_MM / nw
    source = (f"no spacing recorded: ASSUMED a PA chest film {ASSUMED_FILM_MM:g} mm wide "
              f"({native_col:.4g} mm per pixel across the {nw}-pixel width, square pixels)")
    if (nh, nw) != (ph, pw):
        source += f", scaled to {pw}x{ph}"
    return Spacing(native_col * nh / ph, ASSUMED_FILM_MM / pw, source)


def chest_film(meta: Mapping[str, Any]) -> None:
    """Raise :class:`SiteSkip` unless the image may be a whole frontal chest film."""
    part = str(meta.get("body_part") or "").upper()
    if part and not any(name in part for name in CHEST_PARTS):
        raise SiteSkip(f"no pixel spacing recorded and the body part is {part}, not a chest "
                       "film: the nodule sizes in mm cannot be mapped to pixels")
    if meta.get("tile") or meta.get("group_kind") == "tile":
        raise SiteSkip("the image is a tile of a radiograph, not a whole chest film: neither "
                       "the film-width assumption nor the lung-field rule applies (give "
                       "--masks and a dataset with pixel spacing)")
    view = str(meta.get("view") or "").upper()
    if view in _LATERAL_VIEWS:
        raise SiteSkip(f"view {view} is lateral; the lung-field rule is for PA/AP films "
                       "(give --masks)")


def lung_rule(pixels: np.ndarray) -> np.ndarray:
    """The lung fields of a PA chest film by the simple rule of the module notes."""
    from scipy.ndimage import label, uniform_filter

    height, width = pixels.shape
    window = max(3, int(round(LOCAL_FRACTION * width)) | 1)
    local = uniform_filter(pixels.astype(np.float64), size=window, mode="reflect")
    median = np.median(local)
    dark = local < median
    floor = np.percentile(local, 1)
    labels, _ = label(local < floor + AIR_FRACTION * (median - floor))
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    dark &= ~np.isin(labels, edge[edge > 0])
    boxes = np.zeros(pixels.shape, dtype=bool)
    for left, top, right, bottom in LUNG_BOXES:
        rows = slice(int(round(top * height)), int(round(bottom * height)))
        for lo, hi in ((left, right), (1 - right, 1 - left)):
            boxes[rows, int(round(lo * width)):int(round(hi * width))] = True
    return boxes & dark


@dataclass(frozen=True)
class Site:
    """A chosen site: its condition (index into the run's conditions) and ROI centre."""

    condition: int
    row: int
    col: int


def _inside(allowed: np.ndarray, half: tuple[int, int], border: int) -> np.ndarray:
    """Centres whose whole ``(2h+1) × (2k+1)`` ROI lies in ``allowed``, ``border`` pixels
    or more from the edge."""
    from scipy.ndimage import minimum_filter

    h, k = half
    inside = minimum_filter(allowed.astype(np.uint8), size=(2 * h + 1, 2 * k + 1),
                            mode="constant", cval=0).astype(bool)
    margin_r, margin_c = border + h, border + k
    inside[:margin_r] = inside[inside.shape[0] - margin_r:] = False
    inside[:, :margin_c] = inside[:, inside.shape[1] - margin_c:] = False
    return inside


def image_rng(seed: int, dataset: str, image_id: str) -> np.random.Generator:
    """The image's own generator: the same sites for one seed, whatever the run's order."""
    key = zlib.crc32(f"{dataset}\0{image_id}".encode())
    return np.random.default_rng([seed, key])


def choose(allowed: np.ndarray, halves: Sequence[tuple[int, int]], per_condition: int,
           rng: np.random.Generator, border_fraction: float = BORDER_FRACTION,
           gap: int = GAP_PX) -> tuple[list[Site], list[int]]:
    """Sites for each condition, and how many each got.

    Parameters
    ----------
    allowed
        Boolean mask of the lung field (minus regions to avoid) on the prepared image.
    halves
        Per condition, its ROI half-size ``(h, k)``.
    per_condition
        Sites wanted per condition.
    rng
        The image's generator (:func:`image_rng`).
    border_fraction, gap
        Distance of every ROI from the image edge (fraction of the side) and between ROIs.

    Returns
    -------
    (sites, counts)
        The sites, in the order drawn, and the number per condition (a condition whose
        ROI finds no room gets fewer than ``per_condition``).
    """
    border = int(np.ceil(border_fraction * max(allowed.shape)))
    order = sorted(range(len(halves)), key=lambda i: (-halves[i][0] * halves[i][1], i))
    candidates: dict[tuple[int, int], tuple[np.ndarray, list[int]]] = {}
    for half in set(halves):
        centres = np.argwhere(_inside(allowed, half, border))
        candidates[half] = (centres[rng.permutation(len(centres))], [0])
    placed: list[Site] = []
    boxes = np.zeros((0, 4), dtype=np.int64)  # row, col, h, k of the placed ROIs
    counts = [0] * len(halves)
    for _ in range(per_condition):
        for condition in order:
            half = halves[condition]
            centres, cursor = candidates[half]
            while cursor[0] < len(centres):
                row, col = (int(v) for v in centres[cursor[0]])
                cursor[0] += 1
                clear = (np.abs(boxes[:, 0] - row) > boxes[:, 2] + half[0] + gap) | \
                        (np.abs(boxes[:, 1] - col) > boxes[:, 3] + half[1] + gap)
                if clear.all():
                    placed.append(Site(condition, row, col))
                    boxes = np.vstack([boxes, [row, col, half[0], half[1]]])
                    counts[condition] += 1
                    break
    return placed, counts
