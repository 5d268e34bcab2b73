"""One image → its result rows: the per-image pipeline every executor runs.

A :class:`~medbench.benchmark.rows.WorkUnit` (one image and the cells still to do) is
coded by :func:`code_unit`: read and prepare the image under the run's protocol, then for
each ``(codec, setting)`` cell encode, decode, measure (:func:`~medbench.benchmark.metrics.measure`,
the only distortion and rate code) and time it. Every row of a run is made here, through
the :class:`~medbench.benchmark.rows.ResultRow` constructors; executors only decide where
this runs and move the rows.

For the few images a run shows in its visual comparison (:attr:`Job.visual_images`), the
cells of each codec nearest the target ratio also keep their decoded pixels (a crop at
1:1 and the whole image, downscaled when large: :mod:`medbench.benchmark.visuals`), so
that ``medbench report`` needs neither the data nor the codecs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medbench.benchmark.metrics import Reference, measure, region_metrics
from medbench.benchmark.regions import Region, image_region
from medbench.benchmark.rows import ResultRow, VisualCrop, WorkUnit, error_rows
from medbench.benchmark.targets import Target, match, parse_target_setting
from medbench.benchmark.timing import timed_pair
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
               base: ResultRow | None, reference: Reference | None = None,
               region: np.ndarray | None = None) -> tuple[ResultRow, np.ndarray | None]:
    """:func:`code_cell` and the decoded pixels (None when nothing decoded).

    ``reference``: the image's :class:`~medbench.benchmark.metrics.Reference`, shared by
    its cells so the original's SSIM statistics are computed once per image. ``region``:
    the image's region mask; its ``roi_*`` metrics are measured on the same decoded pixels.
    """
    base = (base or ResultRow(image_id=image.image_id)).with_image(image)
    row = base.for_cell(codec.name, setting, None, codec.kind,
                        codec_conventions=codec.conventions or None)
    decoded = None
    try:
        target = parse_target_setting(setting)
        if target is not None:  # a rate-matching cell: search first, then code as usual
            codec.check(image)
            found = match(codec, image, target)
            setting = found.setting
            row = replace(row, knob=setting, target_met=found.met, target_note=found.note)
        row = replace(row, **codec.setting_info(setting))
        codec.check(image)
        timing = timed_pair(lambda: _encoded(codec, image, setting), codec.decode, repeats)
        data, decoded = timing.encoded, timing.decoded
        row = replace(row, **measure(reference or image.pixels, decoded, len(data),
                                     image.bit_depth),
                      encode_ms=timing.encode_ms, decode_ms=timing.decode_ms,
                      timed_calls=timing.calls, stream_sha256=hashlib.sha256(data).hexdigest())
        if region is not None:
            row = replace(row, **region_metrics(image.pixels, decoded, region,
                                                data_range=float((1 << image.bit_depth) - 1)))
        if codec.is_lossless(setting) and not row.lossless_exact:
            row = row.failed(f"lossless setting did not decode bit-exact "
                             f"(max_abs_error={row.max_abs_error})")
        bound = codec.max_error(setting)
        if row.status == "ok" and bound is not None and row.max_abs_error > bound:
            row = row.failed(f"setting {setting} promises max_abs_error <= {bound} but the "
                             f"image decoded with max_abs_error={row.max_abs_error}")
    except UnsupportedInput as exc:
        row = row.refused(str(exc))
    except BaseException as exc:  # one bad cell never ends a run (Ctrl-C does)
        if not is_library_failure(exc):
            raise
        log.debug("cell failed", exc_info=True)
        row = row.failed(f"{type(exc).__name__}: {exc}")
    return row, decoded


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
    kinds = {n: c.kind for n, c in codecs.items() if not isinstance(c, Exception)}
    base = ResultRow.for_unit(unit, job.run_id, job.protocol)
    try:
        cache = PreparedCache(job.cache_dir) if job.cache_dir else None
        image = prepare_image(dataset, unit.record, job.protocol, cache)
    except BaseException as exc:  # one bad image never ends a run (Ctrl-C does)
        if not is_library_failure(exc):
            raise
        message = str(exc) if isinstance(exc, MedbenchError) else f"{type(exc).__name__}: {exc}"
        yield from error_rows(unit, job.run_id, job.ranks, f"image could not be read: {message}",
                              kinds, job.protocol)
        return
    region = _region(job, unit, dataset, image)
    base = replace(base.with_image(image), roi=region.label, roi_note=region.note)
    visual = (unit.dataset, unit.record.image_id) in job.visual_images
    keeper = _VisualKeeper(image) if visual else None
    reference = Reference(image.pixels)
    for name, setting in unit.cells:
        rank = job.ranks.get((name, setting))
        codec = codecs[name]
        if isinstance(codec, Exception):
            yield base.for_cell(name, setting, rank).failed(
                f"codec {name} could not be created on this worker: {codec}")
            continue
        if before_cell is not None:
            before_cell(name, setting)
        row, decoded = _code_cell(codec, setting, image, job.repeats, base, reference,
                                  region.mask)
        row = replace(row, setting_rank=rank)
        if keeper is None:
            yield row
        else:  # a visual image: its rows wait until each codec's nearest cell is known
            keeper.offer(row, decoded)
    if keeper is not None:
        yield from keeper.rows()


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
    """:func:`code_unit` in a worker: build the dataset and codecs by registry name.

    Datasets and codecs are built once per worker thread and reused for later units.
    """
    from medbench.codecs import CodecContext, get_codec
    from medbench.datasets import get_dataset

    key = (unit.dataset, job.data_root)
    if key not in _built.datasets:
        root = Path(job.data_root) if job.data_root else None
        _built.datasets[key] = get_dataset(unit.dataset, root)
    context = CodecContext(models_dir=Path(job.models_dir), device=job.device,
                           milestones=job.milestones)
    codecs: dict[str, Codec | Exception] = {}
    for name in {name for name, _ in unit.cells}:
        ckey = (name, job.models_dir, job.device, job.milestones)
        if ckey not in _built.codecs:
            try:
                _built.codecs[ckey] = get_codec(name, context)
            except Exception as exc:  # reported per cell, the other codecs go on
                _built.codecs[ckey] = exc
        codecs[name] = _built.codecs[ckey]
    return list(code_unit(job, unit, _built.datasets[key], codecs))
