"""The result row: one (run, dataset, image, codec, setting) cell, as the store keeps it.

:class:`ResultRow` is the only shape a result has between the cell that measures it and
the SQLite store; its fields *are* the store's columns, in ``results.csv`` order (the
first 24 are the documented contract; the rest are context reports group by). Rows are
made only by the constructors here, from a :class:`WorkUnit` (what is known before the
pixels are read) and, once the image is prepared, from the :class:`~medbench.image.Image`.

A row may carry :class:`VisualCrop` pixels (``row.visuals``) for the report's visual
comparison, whole decoded images for reader studies (``row.kept``, ``run --keep-pixels``),
and the observer experiment's site observations (``row.observations``,
:mod:`medbench.benchmark.observers`); they travel with the row from the worker to the
store and are not columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from medbench.benchmark.observers.experiment import SiteObservation
    from medbench.datasets.protocols import Protocol
    from medbench.image import Image

STATUSES = ("ok", "error", "unsupported")


def _col(sql: str, default: Any = None) -> Any:
    return field(default=default, metadata={"sql": sql})


@dataclass(frozen=True)
class WorkUnit:
    """One image (dataset spec and record) and the ``(codec, setting)`` cells still to do."""

    dataset: str
    record: Any  # medbench.datasets.Record (kept untyped: this module imports no datasets)
    cells: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class VisualCrop:
    """Pixels the visual comparison shows for one cell (or the original, ``setting=""``).

    ``role`` is ``"whole"`` (the image, downscaled for display when large) or ``"crop"``
    (a region at 1:1, native resolution).
    """

    role: str
    pixels: np.ndarray
    bit_depth: int
    top: int = 0  # where a crop starts in the coded image
    left: int = 0
    decoded: bool = True  # False: the original image


@dataclass(frozen=True)
class KeptPixels:
    """A whole decoded image (or the original, ``decoded=False``) at the size it was
    coded, kept for reader studies (``run --keep-pixels``; :mod:`medbench.benchmark.pixels`)."""

    pixels: np.ndarray
    bit_depth: int
    decoded: bool = True


@dataclass
class ResultRow:
    """One result cell; fields are the store's columns in export order."""

    run_id: str = _col("TEXT NOT NULL", "")
    dataset: str = _col("TEXT NOT NULL", "")
    split: str | None = _col("TEXT")
    image_id: str = _col("TEXT NOT NULL", "")
    protocol: str | None = _col("TEXT")
    bit_depth: int | None = _col("INTEGER")
    height: int | None = _col("INTEGER")
    width: int | None = _col("INTEGER")
    codec: str = _col("TEXT NOT NULL", "")
    setting: str = _col("TEXT NOT NULL", "")
    train_dataset: str | None = _col("TEXT")
    bytes: int | None = _col("INTEGER")
    bpp: float | None = _col("REAL")
    ratio: float | None = _col("REAL")
    mse: float | None = _col("REAL")
    psnr: float | None = _col("REAL")
    ssim: float | None = _col("REAL")
    ms_ssim: float | None = _col("REAL")
    max_abs_error: int | None = _col("INTEGER")
    lossless_exact: bool | None = _col("INTEGER")
    encode_ms: float | None = _col("REAL")
    decode_ms: float | None = _col("REAL")
    status: str = _col("TEXT NOT NULL", "ok")
    error: str | None = _col("TEXT")
    # Beyond the contract: context that reports group by.
    codec_kind: str | None = _col("TEXT")
    setting_rank: int | None = _col("INTEGER")
    body_part: str | None = _col("TEXT")
    group_id: str | None = _col("TEXT")
    source: str | None = _col("TEXT")
    model_info: str | None = _col("TEXT")
    finished_at: str | None = _col("TEXT")
    #: SHA-256 (hex) of the bitstream whose length is ``bytes``.
    stream_sha256: str | None = _col("TEXT")
    #: Timed encode (and decode) calls behind ``encode_ms``/``decode_ms`` medians.
    timed_calls: int | None = _col("INTEGER")
    #: Conventions to compare with the literature: the PSNR peak, how the image was
    #: prepared (protocol), and how the codec was configured.
    psnr_peak: float | None = _col("REAL")
    preparation: str | None = _col("TEXT")
    codec_conventions: str | None = _col("TEXT")
    # Diagnostic-region metrics (medbench.benchmark.regions), on the same decoded pixels.
    #: What the region is (``nodule``, ``mask:<file>``); empty when the image has none.
    roi: str | None = _col("TEXT")
    roi_psnr: float | None = _col("REAL")
    roi_ssim: float | None = _col("REAL")
    roi_max_abs_error: int | None = _col("INTEGER")
    #: Why an image has no region, or what of it was left out (a refused mask, a nodule
    #: outside the image).
    roi_note: str | None = _col("TEXT")
    # Perceptual metrics radiologists' scores track (run --metrics; metrics.perceptual), at
    # the image's peak, whole and in the region; empty where not computed.
    vif: float | None = _col("REAL")
    gmsd: float | None = _col("REAL")
    haarpsi: float | None = _col("REAL")
    fsim: float | None = _col("REAL")
    roi_vif: float | None = _col("REAL")
    roi_gmsd: float | None = _col("REAL")
    roi_haarpsi: float | None = _col("REAL")
    roi_fsim: float | None = _col("REAL")
    # Display-referred scores (run --display; metrics.display): the original and the decode
    # through one VOI window, as 8-bit display values, at data range 255.
    #: The window (``lung (P1 …, P99 …: center …, width …)``, ``dicom window …``).
    display: str | None = _col("TEXT")
    display_psnr: float | None = _col("REAL")
    display_ssim: float | None = _col("REAL")
    display_vif: float | None = _col("REAL")
    display_gmsd: float | None = _col("REAL")
    display_haarpsi: float | None = _col("REAL")
    display_fsim: float | None = _col("REAL")
    #: Why an image has no display window (``--display dicom`` on a source without one).
    display_note: str | None = _col("TEXT")
    # Rate matching (``run --target``, medbench.benchmark.targets): target cells only.
    #: The codec setting a ``target:…`` cell was coded at (``ratio=10.37``, ``q=43``).
    knob: str | None = _col("TEXT")
    #: Whether the coded point obeys the target's rule (rate not above it, PSNR not below).
    target_met: bool | None = _col("INTEGER")
    #: Why a target cell is not within tolerance: unreachable (with the closest rate), a
    #: learned model chosen as the nearest, or the search's closest point.
    target_note: str | None = _col("TEXT")
    #: Images coded together in the encode and decode calls behind the latency columns:
    #: 1, coded alone; N > 1 (``run --learned-batch``), ``encode_ms``/``decode_ms`` are
    #: amortized, the batch's median time divided by N.
    batch_size: int | None = _col("INTEGER")
    # Provenance: what the image is, what its groups are, what coded it.
    #: What ``group_id`` is, so intervals know what they resample: ``patient``,
    #: ``report``, ``radiograph`` (tiles of one film), or ``image`` where the dataset knows
    #: no grouping (intervals then assume its images are independent).
    group_kind: str | None = _col("TEXT")
    #: SHA-256 of the image's pixels as the reader gave them (native size and bit depth,
    #: before the protocol): the same radiograph under any file name or format.
    image_sha256: str | None = _col("TEXT")
    #: SHA-256 of the source file's bytes (datasets read from files; else empty).
    file_sha256: str | None = _col("TEXT")
    #: Learned rows: whether the source image was among the images the model trained or
    #: validated on, by content (``image_sha256`` or ``file_sha256``); empty when not
    #: known (classical codecs, models that record no training images).
    seen_in_training: bool | None = _col("INTEGER")
    #: The library that wrote and read the stream, with its version (and, where a codec
    #: can load one of several builds, which file): two rows whose ``codec_library``
    #: agree must have identical streams for identical input.
    codec_library: str | None = _col("TEXT")
    # Complexity, beside the latency columns.
    #: Peak growth of resident memory (MiB) during the cell's encode and decode calls
    #: (:mod:`medbench.benchmark.memory`: Linux's reset peak RSS; weights loaded before the
    #: cell and GPU memory are not in it); empty where it cannot be measured.
    peak_mem_mb: float | None = _col("REAL")
    #: Learned codecs: trained parameters of the model, and multiply–accumulates per
    #: pixel (thousands) of its encoder and decoder, counted from the layers
    #: (:mod:`medbench.codecs.learned.complexity`); empty for classical codecs.
    params: int | None = _col("INTEGER")
    kmac_per_pixel_enc: float | None = _col("REAL")
    kmac_per_pixel_dec: float | None = _col("REAL")
    #: Pixels for the report's visual comparison; not a column.
    visuals: tuple[VisualCrop, ...] = field(default=(), compare=False, repr=False,
                                            metadata={"sql": None})
    #: ``run --keep-pixels``: the whole decoded image of a ``target:`` cell (and, with the
    #: image's first such row, the original); not a column.
    kept: tuple[KeptPixels, ...] = field(default=(), compare=False, repr=False,
                                         metadata={"sql": None})
    #: ``run --observer``: the cell's (and, on an image's first row, the original's)
    #: observed sites (:mod:`medbench.benchmark.observers`); not a column.
    observations: tuple[SiteObservation, ...] = field(default=(), compare=False,
                                                      repr=False, metadata={"sql": None})

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def for_unit(cls, unit: WorkUnit, run_id: str, protocol: Protocol | None = None
                 ) -> ResultRow:
        """The columns known from a work unit alone, before its pixels are read."""
        record = unit.record
        return cls(
            preparation=protocol.describe() if protocol is not None else None,
            run_id=run_id,
            dataset=unit.dataset,
            image_id=record.image_id,
            split=record.meta.get("split"),
            # Intervals resample this group (a patient; sample: the tile's radiograph).
            group_id=record.meta.get("interval_group", record.group),
            group_kind=record.meta.get("group_kind"),
            file_sha256=record.meta.get("file_hash") or None,
            source=record.source,
            body_part=record.meta.get("body_part"),
            protocol=protocol.name if protocol is not None else None,
        )

    def with_image(self, image: Image) -> ResultRow:
        """This row with the columns that describe the image as the codecs received it."""
        return replace(self, bit_depth=image.bit_depth, height=image.height,
                       width=image.width, psnr_peak=float(2**image.bit_depth - 1),
                       image_sha256=image.meta.get("image_sha256") or self.image_sha256)

    def for_cell(self, codec: str, setting: str, rank: int | None,
                 kind: str | None = None, **columns: Any) -> ResultRow:
        """This (image) row made into the row of one ``(codec, setting)`` cell."""
        return replace(self, codec=codec, setting=setting, setting_rank=rank,
                       codec_kind=kind, **columns)

    def failed(self, message: str) -> ResultRow:
        """This cell as an error row with ``message``; measured columns are kept."""
        return replace(self, status="error", error=message)

    def refused(self, reason: str) -> ResultRow:
        """This cell as an ``unsupported`` row: the codec cannot code the image as it is."""
        return replace(self, status="unsupported", error=reason)

    # -- conversion ---------------------------------------------------------------------
    def columns(self) -> dict[str, Any]:
        """The row as ``{column: value}`` in export order (without the visuals)."""
        return {name: getattr(self, name) for name in COLUMNS}


#: How an error row of an image no worker could read begins.
UNREADABLE = "image could not be read"

#: Column name → SQL type, in export order (the contract of ``results.csv``).
COLUMNS: dict[str, str] = {
    f.name: f.metadata["sql"] for f in fields(ResultRow) if f.metadata.get("sql")
}


def error_rows(unit: WorkUnit, run_id: str, ranks: dict[tuple[str, str], int],
               message: str, kinds: dict[str, str] | None = None,
               protocol: Protocol | None = None) -> list[ResultRow]:
    """Error rows for every cell of ``unit`` (an image that could not be read or coded)."""
    base = ResultRow.for_unit(unit, run_id, protocol)
    kinds = kinds or {}
    return [
        base.for_cell(name, setting, ranks.get((name, setting)), kinds.get(name)).failed(message)
        for name, setting in unit.cells
    ]
