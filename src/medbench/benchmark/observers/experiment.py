"""The nodule-detection experiment of one image: plan it once, observe every decode.

``run --observer nodules`` adds, for every image, simulated nodules
(:mod:`~medbench.benchmark.observers.nodules`) at sites in the lung fields
(:mod:`~medbench.benchmark.observers.sites`). :func:`plan_image` does that once per image
(the same sites and nodules for every codec); then, for each cell, the worker codes the
image *with* nodules at the cell's setting (``target:`` cells at the knob the cell used),
and :meth:`ImagePlan.observe` cuts every site's ROI from both decodes, the one without
nodules (the cell's own) and the one with them, so the codec always saw the nodule in its
real context and the two regions differ only by the nodule and what coding did to it.
The uncoded original gives the reference (:meth:`ImagePlan.original`).

Workers ship no pixels: per site, the Laguerre–Gauss channel responses and the NPWE
statistic of each region (:class:`SiteObservation`). The CHO template is fitted centrally
(:mod:`~medbench.benchmark.observers.summary`) from the channel vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from medbench.benchmark.observers import nodules, sites, templates
from medbench.benchmark.observers.nodules import Spacing
from medbench.errors import MedbenchError
from medbench.image import Image

#: The one experiment ``run --observer`` knows.
EXPERIMENTS = ("nodules",)
#: Default nodule diameters (mm): small, typical and large pulmonary nodules.
DEFAULT_SIZES_MM = (4.0, 6.0, 10.0)
#: Default contrasts (peak added signal / nominal peak), calibrated on the NIH images at
#: 256² so that the CHO's d' on originals spans about 1 to 5 (README, "Detectability").
DEFAULT_CONTRASTS = (0.025, 0.05, 0.1)
#: Default sites per condition per image.
DEFAULT_SITES = 4
#: A region of interest reaches this many nodule radii from the site (at least the stamp).
ROI_RADII = 2.0
#: Largest diameter accepted (mm): beyond it a "nodule" is a mass.
MAX_DIAMETER_MM = 60.0


@dataclass(frozen=True)
class ObserverSpec:
    """What ``run --observer nodules`` inserts: sizes × contrasts, sites, seed and blur."""

    sizes_mm: tuple[float, ...] = DEFAULT_SIZES_MM
    contrasts: tuple[float, ...] = DEFAULT_CONTRASTS
    per_condition: int = DEFAULT_SITES
    seed: int = 0
    blur_mm: float = nodules.DEFAULT_BLUR_MM
    channels: int = templates.CHANNELS

    @property
    def conditions(self) -> list[tuple[float, float]]:
        """``(diameter_mm, contrast)`` of every condition, sizes outer."""
        return [(d, c) for d in self.sizes_mm for c in self.contrasts]


def _numbers(text: str | None, option: str, default: tuple[float, ...]) -> tuple[float, ...]:
    if text is None or not str(text).strip():
        return default
    values = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise MedbenchError(f"{option} {text!r}: {part.strip()!r} is not a number; give "
                                f"comma-separated numbers such as "
                                f"{','.join(f'{v:g}' for v in default)}") from None
        if not math.isfinite(value):
            raise MedbenchError(f"{option} {text!r}: {part.strip()!r} is not finite")
        values.append(value)
    if len(set(values)) != len(values):
        raise MedbenchError(f"{option} {text!r} names a value twice")
    return tuple(values)


def parse_spec(observer: str | None, sizes: str | None = None, contrasts: str | None = None,
               per_condition: int | None = None, seed: int = 0) -> ObserverSpec | None:
    """The :class:`ObserverSpec` of ``run --observer`` and its options (None: no experiment).

    Raises :class:`MedbenchError` naming the option, the value and the rule: an unknown
    experiment, a diameter outside (0, :data:`MAX_DIAMETER_MM`] mm, a contrast outside
    (0, 1] (a contrast above 1 saturates every pixel), fewer than 1 site.
    """
    if observer is None:
        if sizes or contrasts or per_condition:
            raise MedbenchError("--nodule-sizes, --nodule-contrasts and --nodule-sites "
                                "belong to --observer nodules; add it")
        return None
    if observer not in EXPERIMENTS:
        raise MedbenchError(f"unknown --observer {observer!r}; known: {', '.join(EXPERIMENTS)}")
    size_values = _numbers(sizes, "--nodule-sizes", DEFAULT_SIZES_MM)
    for value in size_values:
        if not 0 < value <= MAX_DIAMETER_MM:
            raise MedbenchError(f"--nodule-sizes: a diameter of {value:g} mm is outside "
                                f"(0, {MAX_DIAMETER_MM:g}] mm")
    contrast_values = _numbers(contrasts, "--nodule-contrasts", DEFAULT_CONTRASTS)
    for value in contrast_values:
        if not 0 < value <= 1:
            raise MedbenchError(f"--nodule-contrasts: {value:g} is outside (0, 1]: contrast "
                                "is the nodule's peak as a fraction of the image's peak "
                                "grey level, and above 1 it saturates every pixel")
    count = DEFAULT_SITES if per_condition is None else int(per_condition)
    if count < 1:
        raise MedbenchError(f"--nodule-sites must be at least 1, got {count}")
    return ObserverSpec(tuple(sorted(size_values)), tuple(sorted(contrast_values)), count,
                        int(seed))


@dataclass(frozen=True)
class SiteObservation:
    """One site (or one condition's note) of one image, for the original or one cell.

    ``codec``/``setting`` are empty for the uncoded original. ``site`` is -1 for a row
    that speaks for a whole condition of the image (``status`` ``skipped`` with the reason,
    or ``error`` when the image with nodules could not be coded). Travels with its
    :class:`~medbench.benchmark.rows.ResultRow` (``row.observations``), not a column.
    """

    codec: str
    setting: str
    site: int
    diameter_mm: float
    contrast: float
    status: str  # ok, skipped, error
    note: str | None = None
    row: int | None = None
    col: int | None = None
    #: Laguerre–Gauss channel responses of the ROI with and without the nodule.
    cho_present: np.ndarray | None = field(default=None, compare=False, repr=False)
    cho_absent: np.ndarray | None = field(default=None, compare=False, repr=False)
    npwe_present: float | None = None
    npwe_absent: float | None = None
    spacing_row_mm: float | None = None
    spacing_col_mm: float | None = None
    spacing_source: str | None = None
    channel_width_mm: float | None = None
    #: Bytes of the stream of the image with nodules (coded cells only).
    nodule_bytes: int | None = None


@dataclass(frozen=True)
class Condition:
    """A condition's fixed parts on one image's grid: ROI, channels and NPWE template."""

    diameter_mm: float
    contrast: float
    half: tuple[int, int]
    stamp: np.ndarray  # the nodule's added grey levels (its own grid, centred)
    channels: np.ndarray  # (J, ROI pixels)
    npwe: np.ndarray  # (ROI pixels,)
    width_mm: float
    refused: str | None = None  # why this condition cannot be used on this image


def roi_half(diameter_mm: float, spacing: Spacing, blur_mm: float) -> tuple[int, int]:
    """Half-size ``(h, k)`` of a condition's ROI: :data:`ROI_RADII` radii, at least the
    nodule's stamp (:func:`~medbench.benchmark.observers.nodules.stamp`)."""
    radius = diameter_mm / 2
    out = []
    for pixel in (spacing.row_mm, spacing.col_mm):
        stamp_half = int(math.ceil((radius + 3 * blur_mm) / pixel)) + 1
        out.append(max(stamp_half, int(math.ceil(ROI_RADII * radius / pixel)) + 1))
    return out[0], out[1]


@lru_cache(maxsize=64)
def _fixed_parts(diameter_mm: float, spacing: Spacing, blur_mm: float, count: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Unit stamp, LG channels, unit NPWE template and LG width (cached: they depend only
    on the nodule and the spacing)."""
    unit = nodules.stamp(diameter_mm, 1.0, spacing, blur_mm)
    half = roi_half(diameter_mm, spacing, blur_mm)
    roi = _on_roi(unit, half)
    width, _ = templates.matched_width(roi, diameter_mm / 2, half, spacing, count)
    channels = templates.lg_channels(width, half, spacing, count)
    npwe = templates.npwe_template(roi, spacing).ravel()
    return unit, channels, npwe, width


def _on_roi(patch: np.ndarray, half: tuple[int, int]) -> np.ndarray:
    """``patch`` (odd sides, centred) placed at the centre of a ``(2h+1) × (2k+1)`` ROI."""
    roi = np.zeros((2 * half[0] + 1, 2 * half[1] + 1))
    top, left = half[0] - patch.shape[0] // 2, half[1] - patch.shape[1] // 2
    roi[top:top + patch.shape[0], left:left + patch.shape[1]] = patch
    return roi


def conditions_for(spec: ObserverSpec, spacing: Spacing, bit_depth: int,
                   shape: tuple[int, int]) -> list[Condition]:
    """Every condition's fixed parts on an image of ``spacing``, ``bit_depth``, ``shape``;
    a condition too small or too large for the image is kept with its ``refused`` reason."""
    peak = (1 << bit_depth) - 1
    out = []
    for diameter, contrast in spec.conditions:
        across = nodules.diameter_px(diameter, spacing)
        if across < nodules.MIN_DIAMETER_PX:
            out.append(Condition(diameter, contrast, (0, 0), np.zeros((1, 1)),
                                 np.zeros((0, 0)), np.zeros(0), 0.0,
                                 f"a {diameter:g} mm nodule is {across:.2f} pixels across at "
                                 f"{spacing.describe()}, under {nodules.MIN_DIAMETER_PX:g}: "
                                 "the image is too small for this size"))
            continue
        half = roi_half(diameter, spacing, spec.blur_mm)
        if 2 * half[0] + 1 > shape[0] // 2 or 2 * half[1] + 1 > shape[1] // 2:
            out.append(Condition(diameter, contrast, half, np.zeros((1, 1)), np.zeros((0, 0)),
                                 np.zeros(0), 0.0,
                                 f"a {diameter:g} mm nodule needs a {2 * half[1] + 1}x"
                                 f"{2 * half[0] + 1} region, more than half the {shape[1]}x"
                                 f"{shape[0]} image: the image is too small for this size"))
            continue
        unit, channels, npwe, width = _fixed_parts(diameter, spacing, spec.blur_mm,
                                                   spec.channels)
        out.append(Condition(diameter, contrast, half, unit * contrast * peak,
                             channels, npwe * contrast, width))
    return out


@dataclass
class ImagePlan:
    """An image's experiment: its sites, its image with nodules, and its skips."""

    image: Image
    spacing: Spacing | None
    conditions: list[Condition]
    #: ``(site index, condition index, row, col)`` of the sites whose nodule went in.
    placed: list[tuple[int, int, int, int]]
    present: Image | None
    #: Rows for the original only: skipped sites and conditions, with their reasons.
    skips: list[SiteObservation]

    @classmethod
    def skipped(cls, spec: ObserverSpec, image: Image, reason: str) -> ImagePlan:
        """A plan without sites: every condition skipped on this image for ``reason``."""
        return cls(image, None, [], [], None,
                   [SiteObservation("", "", -1, d, c, "skipped", reason)
                    for d, c in spec.conditions])

    def _common(self, condition: Condition) -> dict[str, Any]:
        spacing = self.spacing
        return {"diameter_mm": condition.diameter_mm, "contrast": condition.contrast,
                "spacing_row_mm": spacing.row_mm if spacing else None,
                "spacing_col_mm": spacing.col_mm if spacing else None,
                "spacing_source": spacing.source if spacing else None,
                "channel_width_mm": condition.width_mm or None}

    def observe(self, absent: np.ndarray, present: np.ndarray, codec: str = "",
                setting: str = "", nodule_bytes: int | None = None
                ) -> tuple[SiteObservation, ...]:
        """Every placed site's channel responses and NPWE statistic in two images.

        Parameters
        ----------
        absent, present
            The decodes without and with the nodules (for the original: the image and
            the image with nodules), same shape as the image.
        codec, setting
            The cell (empty for the original).
        nodule_bytes
            Size of the stream of the image with nodules.
        """
        absent = np.asarray(absent)
        present = np.asarray(present)
        shape = self.image.pixels.shape
        if absent.shape != shape or present.shape != shape:
            return self.failed(codec, setting, f"decoded shapes {absent.shape} and "
                               f"{present.shape} differ from the image's {shape}")
        out = []
        for index, which, row, col in self.placed:
            condition = self.conditions[which]
            h, k = condition.half
            rows, cols = slice(row - h, row + h + 1), slice(col - k, col + k + 1)
            g_present = _centred(present[rows, cols])
            g_absent = _centred(absent[rows, cols])
            out.append(SiteObservation(
                codec, setting, index, status="ok", row=row, col=col,
                cho_present=condition.channels @ g_present,
                cho_absent=condition.channels @ g_absent,
                npwe_present=float(condition.npwe @ g_present),
                npwe_absent=float(condition.npwe @ g_absent),
                nodule_bytes=nodule_bytes, **self._common(condition)))
        return tuple(out)

    def original(self) -> tuple[SiteObservation, ...]:
        """The uncoded reference: every placed site, then the skips with their reasons."""
        found: tuple[SiteObservation, ...] = ()
        if self.present is not None and self.placed:
            found = self.observe(self.image.pixels, self.present.pixels)
        return found + tuple(self.skips)

    def failed(self, codec: str, setting: str, reason: str) -> tuple[SiteObservation, ...]:
        """One error row per condition that has sites: the cell's nodule image failed."""
        used = sorted({which for _, which, _, _ in self.placed})
        return tuple(SiteObservation(codec, setting, -1, status="error", note=reason,
                                     **self._common(self.conditions[which]))
                     for which in used)


def _centred(region: np.ndarray) -> np.ndarray:
    """The ROI's grey levels less their mean, flattened (float64).

    Both observers are DC-free: the lung's local grey level varies between patients and
    places far more than a nodule adds, and carries nothing about the nodule, so each ROI
    is taken relative to its own mean before the channels and the NPWE template see it
    (the nodule's own contribution to that mean is removed with it, the same way in the
    present and absent regions of every cell).
    """
    values = region.astype(np.float64).ravel()
    return values - values.mean()


def plan_image(spec: ObserverSpec, image: Image, meta: Mapping[str, Any], dataset: str,
               native_shape: Callable[[], tuple[int, int]],
               lung: np.ndarray | None = None, lung_note: str | None = None,
               avoid: np.ndarray | None = None, masks: bool = False) -> ImagePlan:
    """Choose the image's sites and insert the nodules (never raises for a bad image).

    Parameters
    ----------
    spec
        The experiment.
    image
        The prepared image, as the codecs receive it.
    meta
        The image's and its record's metadata (spacing, body part, view, group kind).
    dataset
        The dataset spec (with the image id, it seeds the image's sites).
    native_shape
        Returns ``(height, width)`` as read (for the spacing's resize).
    lung, lung_note
        The lung-field mask from ``--masks`` (``masks=True``), or its refusal note.
    avoid
        Pixels no ROI may cover (a JSRT image's own nodule).
    masks
        Whether the run gave ``--masks``: then ``lung`` is the only lung field.
    """
    try:
        spacing = sites.prepared_spacing(meta, native_shape(), image.pixels.shape)
        if masks:
            if lung is None:
                raise sites.SiteSkip(f"no usable lung mask: {lung_note or 'none given'}")
            field_ = lung.astype(bool)
        else:
            sites.chest_film(meta)
            field_ = sites.lung_rule(image.pixels)
    except sites.SiteSkip as exc:
        return ImagePlan.skipped(spec, image, str(exc))
    if avoid is not None:
        field_ = field_ & ~avoid
    conditions = conditions_for(spec, spacing, image.bit_depth, image.pixels.shape)
    plan = ImagePlan(image, spacing, conditions, [], None, [])
    usable = [i for i, c in enumerate(conditions) if c.refused is None]
    for condition in conditions:
        if condition.refused is not None:
            plan.skips.append(SiteObservation("", "", -1, status="skipped",
                                              note=condition.refused,
                                              **plan._common(condition)))
    rng = sites.image_rng(spec.seed, dataset, image.image_id)
    chosen, counts = sites.choose(field_, [conditions[i].half for i in usable],
                                  spec.per_condition, rng)
    where = "the --masks lung field" if masks else "the lung fields (rule)"
    for slot, i in enumerate(usable):
        if counts[slot] < spec.per_condition:
            plan.skips.append(SiteObservation(
                "", "", -1, status="skipped",
                note=f"only {counts[slot]} of {spec.per_condition} sites fit in {where}, "
                     "away from the edge and from each other", **plan._common(conditions[i])))
    placed = [(index, usable[site.condition], site.row, site.col)
              for index, site in enumerate(chosen)]
    inserted = nodules.insert(image.pixels, image.bit_depth,
                              [(row, col) for _, _, row, col in placed],
                              [conditions[which].stamp for _, which, _, _ in placed])
    for (index, which, row, col), reason in zip(placed, inserted.refused):
        if reason is None:
            plan.placed.append((index, which, row, col))
        else:
            plan.skips.append(SiteObservation("", "", index, status="skipped", note=reason,
                                              row=row, col=col,
                                              **plan._common(conditions[which])))
    plan.present = image.replace(pixels=inserted.pixels)
    return plan
