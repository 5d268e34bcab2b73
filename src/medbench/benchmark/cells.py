"""One image → its result rows: the per-image pipeline every executor runs.

A :class:`~medbench.benchmark.rows.WorkUnit` (one image and the cells still to do) is
coded by :func:`code_unit`: read and prepare the image under the run's protocol, then for
each ``(codec, setting)`` cell encode, decode, measure (:func:`~medbench.benchmark.metrics.measure`,
the only distortion and rate code) and time it. Every row of a run is made here, through
the :class:`~medbench.benchmark.rows.ResultRow` constructors; executors only decide where
this runs and move the rows.

Learned codecs can code several images in one call (one network pass). Under
``run --learned-batch N`` (:attr:`Job.learned_batch`), executors hand :func:`code_units`
up to N units at once, and each learned cell is coded for the units' same-size images
together (:meth:`LearnedCodec.encode_batch`/``decode_batch``; same bytes as one at a time);
each image's row is then measured as usual. Such a row's ``batch_size`` is the images
coded together, and its ``encode_ms``/``decode_ms`` are **amortized**: the batch's median
time divided by ``batch_size``. A batch that fails is coded again one image at a time,
so one bad image costs only its own row. Every other cell is coded one image at a time
(``batch_size`` 1).

Under ``run --observer nodules`` (:attr:`Job.observer`) each image also gets simulated
nodules (:mod:`medbench.benchmark.observers`): planned once per image, then every cell
codes the image with nodules once more at the cell's setting (``target:`` cells at their
knob), and the row carries what the observers saw at each site of both decodes
(``row.observations``; the uncoded original's travel with the image's first row).

For the few images a run shows in its visual comparison (:attr:`Job.visual_images`), the
cells of each codec nearest the target ratio also keep their decoded pixels (a crop at
1:1 and the whole image, downscaled when large: :mod:`medbench.benchmark.visuals`), so
that ``medbench report`` needs neither the data nor the codecs.

Under ``run --keep-pixels`` (:attr:`Job.keep_pixels`) every ``target:`` cell that decoded
also carries its whole decoded image, and the image's first such row the original
(``row.kept``; written by the store into ``OUT/pixels/``: :mod:`medbench.benchmark.pixels`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medbench.benchmark.memory import peak_memory
from medbench.benchmark.metrics import DisplayReference, Reference, Scoring, perceptual_for
from medbench.benchmark.metrics.display import display_window
from medbench.benchmark.observers.experiment import ImagePlan, ObserverSpec, plan_image
from medbench.benchmark.regions import Region, image_region, region_mask
from medbench.benchmark.rows import (
    UNREADABLE,
    KeptPixels,
    ResultRow,
    VisualCrop,
    WorkUnit,
    error_rows,
)
from medbench.benchmark.targets import Target, match, parse_target_setting, recheck
from medbench.benchmark.timing import PairTiming, timed_pair
from medbench.benchmark.visuals import TARGET_RATIO, display_crops
from medbench.codecs.base import Codec
from medbench.datasets.cache import PreparedCache, prepare_image
from medbench.errors import MedbenchError, UnsupportedInput, is_library_failure
from medbench.image import Image

if TYPE_CHECKING:
    from medbench.datasets.base import Dataset
    from medbench.datasets.protocols import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """What every worker needs to code a unit: plain values, cheap to pickle."""

    data_root: str | None
    protocol: Protocol
    repeats: int | None  # None: automatic (benchmark.timing)
    models_dir: str
    device: str
    #: Prepared-image cache folder (:mod:`medbench.datasets.cache`); None = no cache.
    cache_dir: str | None = None
    run_id: str = ""
    #: ``(codec, setting)`` → its position in the codec's settings (low to high rate).
    ranks: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: ``(dataset, image_id)`` of the images whose pixels the visual comparison keeps.
    visual_images: frozenset[tuple[str, str]] = frozenset()
    #: ``--masks`` folder of region masks (:mod:`medbench.benchmark.regions`); None: the
    #: datasets' own regions (JSRT nodules).
    masks: str | None = None
    #: Learned codecs also code their models' milestone checkpoints (``run --milestones``).
    milestones: bool = False
    #: Most images a learned cell codes in one call (``run --learned-batch``); executors
    #: hand :func:`code_units` this many units at a time.
    learned_batch: int = 1
    #: The libopenjp2 file the run's process loaded (:func:`medbench.codecs._openjpeg.pin`):
    #: workers load the same one, so JPEG 2000 streams never depend on the worker.
    openjpeg: str | None = None
    #: The byo spec folder the user trusts (``run --trust-byo``; see CodecContext).
    trusted_byo: Path | None = None
    #: ``run --observer nodules``: the detection experiment (benchmark.observers).
    observer: ObserverSpec | None = None
    #: ``run --metrics``: which perceptual metrics each image gets (metrics.perceptual_for).
    metrics: str = "auto"
    #: ``run --display``: the VOI window of the display_* columns (metrics.display); None: off.
    display: str | None = None
    #: ``run --keep-pixels``: ``target:`` cells keep their whole decoded image, and each
    #: image its original (benchmark.pixels), for reader studies.
    keep_pixels: bool = False


#: ``run --learned-batch auto``: the batch when a learned codec runs on a CUDA GPU (on the
#: CPU a batch saves little and ``auto`` codes one image at a time).
AUTO_GPU_BATCH = 32
#: Most pixels one batch holds (images x height x width), so large images make small
#: batches: 256 images of 256², 4 of 2048². :func:`code_units` also prepares images in
#: windows of about this many pixels.
MAX_BATCH_PIXELS = 1 << 24
#: Called before cells are coded in this process: ``before_cells(units, codec, setting)``
#: (one unit, or the units of a batch).
BeforeCells = Callable[[Sequence[WorkUnit], str, str], Any]


def code_cell(codec: Codec, setting: str, image: Image, repeats: int | None = None,
              base: ResultRow | None = None) -> ResultRow:
    """Encode, decode and measure one cell; never raises for a codec's failure.

    Parameters
    ----------
    codec, setting
        The codec and one of its settings.
    image
        The prepared image, as the codec receives it.
    repeats
        Timed encode+decode pairs after one warm-up; None: automatic, the measured calls
        and more only while cheap (:func:`~medbench.benchmark.timing.timed_pair`).
    base
        The image's row (:meth:`ResultRow.for_unit`); default: one made from ``image``.

    Returns
    -------
    ResultRow
        The cell's row, status ``ok``, ``error`` or ``unsupported``. A lossless setting
        that does not decode bit-exact is an error row (its metrics are kept so the damage
        can be seen), and so is a setting whose promised error bound
        (:meth:`Codec.max_error`) is exceeded.
    """
    return _code_cell(codec, setting, image, repeats, base)[0]


def _code_cell(codec: Codec, setting: str, image: Image, repeats: int | None,
               base: ResultRow | None, scoring: Scoring | None = None
               ) -> tuple[ResultRow, np.ndarray | None]:
    """:func:`code_cell` and the decoded pixels (None when nothing decoded).

    ``scoring``: what the image's cells are measured with
    (:class:`~medbench.benchmark.metrics.Scoring`: its shared
    :class:`~medbench.benchmark.metrics.Reference`, so the original's statistics are
    computed once per image, its region mask, perceptual metrics and display window);
    default: the basic metrics of the image alone.
    """
    base = (base or ResultRow(image_id=image.image_id)).with_image(image)
    row = _cell_row(codec, setting, base)
    decoded = None
    try:
        target = parse_target_setting(setting)
        if target is not None:  # a rate-matching cell: search first, then code as usual
            codec.check(image)
            found = match(codec, image, target)
            setting = found.setting
            row = replace(row, knob=setting, target_met=found.met, target_note=found.note,
                          codec_library=_library(codec, setting))
        row = replace(row, **codec.setting_info(setting))
        codec.check(image)
        with peak_memory() as peak:
            timing = timed_pair(lambda: _encoded(codec, image, setting), codec.decode,
                                repeats)
        data, decoded = timing.encoded, timing.decoded
        row = _scored(_timed_row(row, timing, 1, peak.mb), codec, setting, image, data,
                      decoded, scoring)
        if target is not None:  # judged again on the stream measured, not the search's
            met, note = recheck(found, target, image.bit_depth, row.bytes, row.bpp,
                                row.ratio, row.psnr)
            row = replace(row, target_met=met, target_note=note)
    except BaseException as exc:  # one bad cell never ends a run (Ctrl-C does)
        row = _failed(row, exc)
    return row, decoded


def _cell_row(codec: Codec, setting: str, base: ResultRow) -> ResultRow:
    return base.for_cell(codec.name, setting, None, codec.kind,
                         codec_conventions=codec.conventions or None,
                         codec_library=_library(codec, setting))


def _library(codec: Codec, setting: str) -> str:
    """The row's ``codec_library`` (:meth:`Codec.library`), asked in the process that codes
    the cell, so a worker that loaded another library says so; a failing plugin's says why."""
    try:
        return codec.library(setting)
    except Exception as exc:  # a plugin's bug must not cost the row
        return f"unknown ({type(exc).__name__}: {exc})"


def _timed_row(row: ResultRow, timing: PairTiming, batch: int,
               peak_mb: float | None) -> ResultRow:
    """``row`` with the latency of one image of a ``batch`` coded together (amortized)
    and the peak memory of the calls (the whole batch's: memory is not amortized)."""
    return replace(row, encode_ms=timing.encode_ms / batch, decode_ms=timing.decode_ms / batch,
                   timed_calls=timing.calls, batch_size=batch, peak_mem_mb=peak_mb)


def _scored(row: ResultRow, codec: Codec, setting: str, image: Image, data: bytes,
            decoded: np.ndarray, scoring: Scoring | None) -> ResultRow:
    """``row`` measured: rate, distortion, region, perceptual and display metrics
    (:meth:`Scoring.measure`), and the setting's promises.

    A lossless setting that does not decode bit-exact is an error row (its metrics are
    kept so the damage can be seen), and so is a setting whose promised error bound
    (:meth:`Codec.max_error`) is exceeded.
    """
    seen = codec.training_images(setting)
    scoring = scoring or Scoring(Reference(image.pixels))
    row = replace(row, **scoring.measure(decoded, len(data), image.bit_depth),
                  stream_sha256=hashlib.sha256(data).hexdigest(),
                  seen_in_training=None if seen is None
                  else seen.seen(row.image_sha256, row.file_sha256))
    if codec.is_lossless(setting) and not row.lossless_exact:
        row = row.failed(f"lossless setting did not decode bit-exact "
                         f"(max_abs_error={row.max_abs_error})")
    bound = codec.max_error(setting)
    if row.status == "ok" and bound is not None and row.max_abs_error > bound:
        row = row.failed(f"setting {setting} promises max_abs_error <= {bound} but the "
                         f"image decoded with max_abs_error={row.max_abs_error}")
    return row


def _failed(row: ResultRow, exc: BaseException) -> ResultRow:
    """The row of a cell that raised ``exc``: ``unsupported`` or ``error``; anything
    but a library failure (Ctrl-C, ``SystemExit``) is raised again."""
    if isinstance(exc, UnsupportedInput):
        return row.refused(str(exc))
    if not is_library_failure(exc):
        raise exc
    log.debug("cell failed", exc_info=exc)
    return row.failed(f"{type(exc).__name__}: {exc}")


def _encoded(codec: Codec, image: Image, setting: str) -> bytes:
    data = codec.encode(image, setting)
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"{codec.name}.encode returned {type(data).__name__}, not bytes")
    return bytes(data)


def code_unit(job: Job, unit: WorkUnit, dataset: Dataset,
              codecs: Mapping[str, Codec | Exception],
              before_cell: Callable[[str, str], Any] | None = None) -> Iterator[ResultRow]:
    """Rows of every cell of ``unit``, one at a time; never raises for a bad image or codec.

    Parameters
    ----------
    job
        The run's shared settings (protocol, repeats, ranks, visual images...).
    unit
        The image and the cells still to do for it.
    dataset
        The unit's dataset (its reader loads the record).
    codecs
        Codec name → instance, or the exception raised when it could not be created
        here (its cells become error rows).
    before_cell
        Called as ``before_cell(codec, setting)`` just before a cell is coded (the runner
        records the cell in flight, so a codec that kills the process is known on resume).

    Yields
    ------
    ResultRow
        One row per cell of the unit, with ``run_id`` and ``setting_rank`` filled in.
    """
    marks = None if before_cell is None else lambda _units, c, s: before_cell(c, s)
    yield from code_units(replace(job, learned_batch=1), [unit], {unit.dataset: dataset},
                          codecs, marks)


def code_units(job: Job, units: Sequence[WorkUnit], datasets: Mapping[str, Dataset],
               codecs: Mapping[str, Codec | Exception],
               before_cells: BeforeCells | None = None) -> Iterator[ResultRow]:
    """Rows of every cell of ``units``, unit after unit; learned cells batched.

    Each learned cell (not a ``target:`` one) is coded for the units' images of one size
    and bit depth together, up to :attr:`Job.learned_batch` images and
    :data:`MAX_BATCH_PIXELS` pixels a batch (see the module notes); every other cell as
    :func:`code_unit` codes it.

    Parameters
    ----------
    job, codecs
        As for :func:`code_unit`.
    units
        The units (images) coded together.
    datasets
        Dataset spec → dataset, for every unit's ``dataset``.
    before_cells
        Called as ``before_cells(units, codec, setting)`` just before a cell is coded for
        ``units`` (one unit, or the units of a batch).

    Yields
    ------
    ResultRow
        One row per cell of each unit, the units in the order given.
    """
    # Images are prepared and coded in windows of about MAX_BATCH_PIXELS, so that a large
    # --learned-batch of large images holds a bounded number of them (and their SSIM
    # statistics) at a time.
    window: list[WorkUnit] = []
    prepared: list[_Prepared | str] = []
    pixels = 0
    for unit in units:
        window.append(unit)
        prepared.append(_prepare(job, unit, datasets[unit.dataset], len(prepared)))
        if isinstance(prepared[-1], _Prepared):
            pixels += prepared[-1].image.pixels.size
        if pixels >= MAX_BATCH_PIXELS:
            yield from _code_window(job, window, prepared, codecs, before_cells)
            window, prepared, pixels = [], [], 0
    if window:
        yield from _code_window(job, window, prepared, codecs, before_cells)


def _code_window(job: Job, units: Sequence[WorkUnit], prepared: Sequence[_Prepared | str],
                 codecs: Mapping[str, Codec | Exception],
                 before_cells: BeforeCells | None) -> Iterator[ResultRow]:
    """Rows of prepared units: learned cells in batches first, then the rest."""
    kinds = {n: c.kind for n, c in codecs.items() if not isinstance(c, Exception)}
    done: dict[tuple[int, tuple[str, str]], tuple[ResultRow, np.ndarray | None]] = {}
    if job.learned_batch > 1 and len(units) > 1:
        done = _code_batches(job, units, [r if isinstance(r, _Prepared) else None
                                          for r in prepared], codecs, before_cells)
    for unit, ready in zip(units, prepared):
        if isinstance(ready, str):  # one bad image never ends a run: its cells are errors
            yield from error_rows(unit, job.run_id, job.ranks, ready, kinds, job.protocol)
        else:
            yield from _unit_rows(job, unit, ready, codecs, before_cells, done)


@dataclass(frozen=True)
class _Prepared:
    """A unit's image as the codecs receive it, and what its rows share."""

    index: int  # of the unit among those coded together
    image: Image
    base: ResultRow
    region: Region
    scoring: Scoring
    observer: ImagePlan | None = None


def _prepare(job: Job, unit: WorkUnit, dataset: Dataset, index: int = 0) -> _Prepared | str:
    """The unit's prepared image, or why it could not be read."""
    base = ResultRow.for_unit(unit, job.run_id, job.protocol)
    try:
        cache = PreparedCache(job.cache_dir) if job.cache_dir else None
        image = prepare_image(dataset, unit.record, job.protocol, cache)
    except BaseException as exc:  # one bad image never ends a run (Ctrl-C does)
        if not is_library_failure(exc):
            raise
        message = str(exc) if isinstance(exc, MedbenchError) else f"{type(exc).__name__}: {exc}"
        return f"{UNREADABLE}: {message}"
    region = _region(job, unit, dataset, image)
    display, display_note = _display(job, image)
    base = replace(base.with_image(image), roi=region.label, roi_note=region.note,
                   display=display.window.label if display else None,
                   display_note=display_note)
    scoring = Scoring(Reference(image.pixels), region.mask,
                      perceptual_for(job.metrics, image.height, image.width), display)
    plan = _observer_plan(job, unit, dataset, image, region)
    return _Prepared(index, image, base, region, scoring, plan)


def _observer_plan(job: Job, unit: WorkUnit, dataset: Dataset, image: Image,
                   region: Region) -> ImagePlan | None:
    """The image's nodule experiment (``run --observer``), or None when the run has none.

    The lung field is the ``--masks`` region when the run gives masks; the dataset's own
    regions (a JSRT nodule) are kept free of simulated nodules.
    """
    if job.observer is None:
        return None

    def native_shape() -> tuple[int, int]:
        probe = dataset.probe(unit.record)
        return probe.height, probe.width

    masks = job.masks is not None
    try:
        avoid = region_mask(unit.record.meta, image.pixels.shape).mask
        return plan_image(job.observer, image, {**image.meta, **unit.record.meta},
                          unit.dataset, native_shape, lung=region.mask if masks else None,
                          lung_note=region.note if masks else None, avoid=avoid, masks=masks)
    except Exception as exc:  # a broken plan costs the image's sites, not its rows
        log.debug("observer plan failed", exc_info=True)
        return ImagePlan.skipped(job.observer, image, f"the nodule experiment could not be "
                                 f"planned: {type(exc).__name__}: {exc}")


def _observed(ready: _Prepared, codec: Codec, row: ResultRow,
              decoded: np.ndarray | None) -> ResultRow:
    """``row`` with what the observers saw in the cell (``run --observer``): the image
    with nodules is coded at the cell's setting (a ``target:`` cell's knob) and each site
    cut from both decodes; a failure to code it is a note on the sites, never the row's."""
    plan = ready.observer
    if plan is None or row.status != "ok" or decoded is None or not plan.placed \
            or plan.present is None:
        return row
    setting = row.knob or row.setting
    try:
        data = _encoded(codec, plan.present, setting)
        found = plan.observe(decoded, codec.decode(data), row.codec, row.setting, len(data))
    except BaseException as exc:  # one bad cell never ends a run (Ctrl-C does)
        if not is_library_failure(exc):
            raise
        found = plan.failed(row.codec, row.setting, f"the image with nodules could not be "
                                                     f"coded at {setting}: "
                                                     f"{type(exc).__name__}: {exc}")
    return replace(row, observations=found)


def _display(job: Job, image: Image) -> tuple[DisplayReference | None, str | None]:
    """The image's display window (``run --display``), or the note saying why it has none."""
    if job.display is None:
        return None, None
    try:
        window = display_window(job.display, image.pixels, image.meta)
    except Exception as exc:  # a broken window costs its columns, not the image's rows
        log.debug("display window failed", exc_info=True)
        window = f"display window could not be made: {type(exc).__name__}: {exc}"
    if isinstance(window, str):
        log.info("%s: %s", image.image_id, window)
        return None, window
    return DisplayReference(window, image.pixels), None


def _unit_rows(job: Job, unit: WorkUnit, ready: _Prepared,
               codecs: Mapping[str, Codec | Exception], before_cells: BeforeCells | None,
               done: Mapping[tuple[int, tuple[str, str]], tuple[ResultRow, np.ndarray | None]]
               ) -> Iterator[ResultRow]:
    """Rows of one prepared unit: its cells in ``done`` (coded in a batch) and the rest."""
    visual = (unit.dataset, unit.record.image_id) in job.visual_images
    keeper = _VisualKeeper(ready.image) if visual else None
    # The original's observations travel with the image's first row (written again,
    # identical, when a resumed image codes its remaining cells).
    original = ready.observer.original() if ready.observer is not None else ()
    kept_original = False  # run --keep-pixels: the original travels with the first kept row
    for name, setting in unit.cells:
        rank = job.ranks.get((name, setting))
        codec = codecs[name]
        if isinstance(codec, Exception):
            row = ready.base.for_cell(name, setting, rank).failed(
                f"codec {name} could not be created on this worker: {codec}")
            yield replace(row, observations=original)
            original = ()
            continue
        if (ready.index, (name, setting)) in done:
            row, decoded = done[ready.index, (name, setting)]
        else:
            if before_cells is not None:
                before_cells([unit], name, setting)
            row, decoded = _code_cell(codec, setting, ready.image, job.repeats, ready.base,
                                      ready.scoring)
        row = _observed(ready, codec, row, decoded)
        row = replace(row, setting_rank=rank, observations=original + row.observations)
        original = ()
        if job.keep_pixels and _kept(row, decoded, ready.image.pixels.shape):
            kept = (KeptPixels(decoded, ready.image.bit_depth),)
            if not kept_original:
                kept += (KeptPixels(ready.image.pixels, ready.image.bit_depth, False),)
                kept_original = True
            row = replace(row, kept=kept)
        if keeper is None:
            yield row
        else:  # a visual image: its rows wait until each codec's nearest cell is known
            keeper.offer(row, decoded)
    if keeper is not None:
        yield from keeper.rows()


def _kept(row: ResultRow, decoded: np.ndarray | None, shape: tuple[int, ...]) -> bool:
    """Whether ``run --keep-pixels`` keeps this cell's decode: a ``target:`` cell that
    decoded to a uint8/uint16 image of the original's shape (a plugin's decode of another
    type is scored but not kept: the writer could not store it, and would end the run)."""
    return (row.status == "ok" and decoded is not None and decoded.shape == shape
            and decoded.dtype in (np.uint8, np.uint16)
            and parse_target_setting(row.setting) is not None)


# -- learned cells in batches --------------------------------------------------------------
def learned_batch(option: str | int, codecs: Sequence[Codec]) -> int:
    """The images a learned cell codes in one call for ``run --learned-batch``.

    ``auto``: :data:`AUTO_GPU_BATCH` when one of ``codecs`` is a learned codec on a CUDA
    GPU, else 1; a number: itself (at least 1).
    """
    if option != "auto":
        text = str(option).strip() if isinstance(option, (str, int)) else ""
        if isinstance(option, bool) or not (text.isascii() and text.isdigit()) \
                or int(text) < 1:
            raise MedbenchError(f"--learned-batch must be a whole number >= 1 or auto, "
                                f"got {option!r}")
        return int(text)
    on_gpu = any(_batches(codec) and codec.device.type == "cuda" for codec in codecs)
    return AUTO_GPU_BATCH if on_gpu else 1


def _batches(codec: Codec | Exception) -> bool:
    """Whether the harness codes ``codec``'s cells in batches: a learned codec's."""
    if isinstance(codec, Exception) or codec.kind != "learned":
        return False
    # Imported here: torch is loaded only where a learned codec is in the run.
    from medbench.codecs.learned.codec import LearnedCodec

    return isinstance(codec, LearnedCodec)


def _code_batches(job: Job, units: Sequence[WorkUnit], prepared: Sequence[_Prepared | None],
                  codecs: Mapping[str, Codec | Exception], before_cells: BeforeCells | None
                  ) -> dict[tuple[int, tuple[str, str]], tuple[ResultRow, np.ndarray | None]]:
    """Rows (and decoded pixels) of the learned cells the units' images share, coded in
    batches of same-size images; cells left out are coded later one image at a time."""
    done: dict[tuple[int, tuple[str, str]], tuple[ResultRow, np.ndarray | None]] = {}
    cells = dict.fromkeys(cell for unit in units for cell in unit.cells)  # in order, once
    for name, setting in cells:
        codec = codecs[name]
        if not _batches(codec) or parse_target_setting(setting) is not None:
            continue
        members = [ready for unit, ready in zip(units, prepared)
                   if ready is not None and (name, setting) in unit.cells
                   and _accepts(codec, ready.image)]
        for batch in _split(members, job.learned_batch):
            if len(batch) < 2:  # coded alone, as any cell
                continue
            if before_cells is not None:
                before_cells([units[ready.index] for ready in batch], name, setting)
            rows = _code_batch(codec, setting, batch, job.repeats)
            if rows is None:  # the batch failed: its images are coded one at a time
                continue
            for ready, (row, decoded) in zip(batch, rows):
                unit = units[ready.index]
                visual = (unit.dataset, unit.record.image_id) in job.visual_images
                keep = visual or job.observer is not None  # observers read the decode
                done[ready.index, (name, setting)] = (row, decoded if keep else None)
    return done


def _accepts(codec: Codec, image: Image) -> bool:
    """Whether ``codec`` takes ``image``; a refused one is coded alone (its own row)."""
    try:
        codec.check(image)
    except Exception:  # the one-image path records why
        return False
    return True


def _split(members: Sequence[_Prepared], most: int) -> Iterator[list[_Prepared]]:
    """Batches of ``members`` of one shape and bit depth: at most ``most`` images and
    :data:`MAX_BATCH_PIXELS` pixels each."""
    groups: dict[tuple[int, ...], list[_Prepared]] = {}
    for ready in members:
        image = ready.image
        groups.setdefault((*image.pixels.shape, image.bit_depth), []).append(ready)
    for (height, width, _), group in groups.items():
        size = max(1, min(most, MAX_BATCH_PIXELS // max(1, height * width)))
        for start in range(0, len(group), size):
            yield group[start : start + size]


def _code_batch(codec: Codec, setting: str, batch: Sequence[_Prepared], repeats: int | None
                ) -> list[tuple[ResultRow, np.ndarray | None]] | None:
    """Rows of one learned cell for a batch of same-size images, or None when the batch
    call failed (the caller then codes each image alone, so one bad image costs only its
    own row). Each row is measured on its own image; latency is amortized (module notes).
    """
    images = [ready.image for ready in batch]
    try:
        info = codec.setting_info(setting)
        with peak_memory() as peak:
            timing = timed_pair(lambda: _encoded_batch(codec, images, setting),
                                codec.decode_batch, repeats)  # type: ignore[attr-defined]
    except BaseException as exc:
        if not is_library_failure(exc):
            raise
        log.warning("%s %s: a batch of %d images failed (%s: %s); coding them one at a "
                    "time", codec.name, setting, len(batch), type(exc).__name__, exc)
        log.debug("batch failed", exc_info=True)
        return None
    out = []
    for ready, data, decoded in zip(batch, timing.encoded, timing.decoded):
        row = replace(_cell_row(codec, setting, ready.base), **info)
        try:
            row = _scored(_timed_row(row, timing, len(batch), peak.mb), codec, setting,
                          ready.image, data, decoded, ready.scoring)
        except BaseException as exc:
            row = _failed(row, exc)
        out.append((row, decoded))
    return out


def _encoded_batch(codec: Codec, images: Sequence[Image], setting: str) -> list[bytes]:
    streams = codec.encode_batch(images, setting)  # type: ignore[attr-defined]
    if len(streams) != len(images) or not all(isinstance(d, (bytes, bytearray))
                                              for d in streams):
        raise TypeError(f"{codec.name}.encode_batch did not return bytes for each of "
                        f"{len(images)} images")
    return [bytes(data) for data in streams]


def _region(job: Job, unit: WorkUnit, dataset: Dataset, image: Image) -> Region:
    """The image's diagnostic region; a failure to make it is a note, never a failed image."""
    def native_shape() -> tuple[int, int]:
        probe = dataset.probe(unit.record)
        return probe.height, probe.width

    try:
        return image_region(unit.record, image.pixels.shape, job.masks, native_shape)
    except Exception as exc:  # a broken region costs its metrics, not the image's rows
        log.debug("region failed", exc_info=True)
        return Region(None, None, f"region could not be made: {type(exc).__name__}: {exc}")


class _VisualKeeper:
    """Keeps, per codec (and train dataset), the decoded cell nearest the target ratio:
    the ``target:ratio=30`` cell when the run has one (``run --target``)."""

    def __init__(self, image: Image, ratio: float = TARGET_RATIO):
        self.image = image
        self.target_bpp = image.bit_depth / ratio
        self.matched = Target("ratio", ratio).setting
        self._rows: list[ResultRow] = []
        self._best: dict[tuple[str, str | None], tuple[float, int, np.ndarray]] = {}

    def offer(self, row: ResultRow, decoded: np.ndarray | None) -> None:
        self._rows.append(row)
        lossy = row.psnr is not None and math.isfinite(row.psnr)
        if row.status != "ok" or decoded is None or not lossy or not row.bpp:
            return
        distance = abs(math.log(row.bpp / self.target_bpp))
        if row.setting == self.matched:  # the rate-matched cell (run --target) wins
            distance = -1.0
        key = (row.codec, row.train_dataset)
        if key not in self._best or distance < self._best[key][0]:
            self._best[key] = (distance, len(self._rows) - 1, decoded)

    def rows(self) -> Iterator[ResultRow]:
        chosen = {index: decoded for _, index, decoded in self._best.values()}
        original_done = False
        for index, row in enumerate(self._rows):
            if index in chosen:
                crops: tuple[VisualCrop, ...] = display_crops(
                    self.image.pixels, chosen[index], self.image.bit_depth)
                if not original_done:  # the original travels with the first chosen cell
                    crops += display_crops(self.image.pixels, None, self.image.bit_depth)
                    original_done = True
                row = replace(row, visuals=crops)
            yield row


# -- building a unit's inputs by name (in worker processes) ----------------------------
class _Built(threading.local):
    """Datasets and codecs a worker has built, per thread (codecs may hold state)."""

    def __init__(self) -> None:
        self.datasets: dict[tuple[str, str | None], Any] = {}
        self.codecs: dict[tuple[str, str, str], Any] = {}


_built = _Built()


def code_unit_by_name(job: Job, unit: WorkUnit) -> list[ResultRow]:
    """:func:`code_unit` in a worker: build the dataset and codecs by registry name."""
    return code_units_by_name(replace(job, learned_batch=1), (unit,))


def code_units_by_name(job: Job, units: Sequence[WorkUnit]) -> list[ResultRow]:
    """:func:`code_units` in a worker: build the datasets and codecs by registry name.

    Datasets and codecs are built once per worker thread and reused for later units.
    """
    from medbench.codecs import CodecContext, _openjpeg, get_codec
    from medbench.datasets import get_dataset

    _openjpeg.honour(job.openjpeg)  # before any codec of this worker imports glymur
    datasets = {}
    for spec in {unit.dataset for unit in units}:
        key = (spec, job.data_root)
        if key not in _built.datasets:
            root = Path(job.data_root) if job.data_root else None
            _built.datasets[key] = get_dataset(spec, root)
        datasets[spec] = _built.datasets[key]
    context = CodecContext(models_dir=Path(job.models_dir), device=job.device,
                           milestones=job.milestones, trusted_byo=job.trusted_byo)
    codecs: dict[str, Codec | Exception] = {}
    for name in {name for unit in units for name, _ in unit.cells}:
        ckey = (name, job.models_dir, job.device, job.milestones, job.trusted_byo)
        if ckey not in _built.codecs:
            try:
                _built.codecs[ckey] = get_codec(name, context)
            except Exception as exc:  # reported per cell, the other codecs go on
                _built.codecs[ckey] = exc
        codecs[name] = _built.codecs[ckey]
    return list(code_units(job, units, datasets, codecs))
