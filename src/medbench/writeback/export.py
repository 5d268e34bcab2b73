"""Write a run's coded images back as DICOM files (``dicom-export``, ``run --write-dicom``).

Each ``ok`` row whose codec declares a DICOM transfer syntax for its setting
(:meth:`~medbench.codecs.base.Codec.dicom_syntax`) becomes one encapsulated DICOM file,
``OUT/<dataset>/<codec>_<setting>/<image_id>.dcm``, beside a lossless RLE reference of
the image as it was coded (``OUT/<dataset>/reference_rle/<image_id>.dcm``) and an
``index.csv`` listing every row: written, or skipped with the reason.

The image is re-coded from its source through the run's stored arguments
(:class:`~medbench.benchmark.runner.RunConfig`), and the stream is written only when its
SHA-256 equals the row's ``stream_sha256``: the file then holds exactly the bitstream
whose size and errors the row reports. A codec whose stream is no DICOM transfer syntax
(WebP, AVIF, PNG, learned codecs) and a re-coded stream that differs from the measured
one (a non-deterministic encoder) are listed as skipped, never written. A rate-matched
row (``setting=target:ratio=10``, ``run --target``) is re-coded at the setting its search
chose for that image (its ``knob``) and written under ``<codec>_target_ratio=10``.

Nothing the run did not score is written: an image whose source file changed since the
run (its SHA-256 differs from the one the run recorded) is skipped whole, its reference
too, and a reference is written only beside a coded file whose stream matched. One
image that cannot be read or re-coded is skipped with the reason; the others are
written, and ``index.csv`` is written whatever happens. An export that writes no coded
file at all is an error, naming why (:mod:`.folder` has the folder's rules).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.benchmark.targets import parse_target_setting
from medbench.codecs.base import Codec
from medbench.errors import MedbenchError, UnsupportedInput, is_library_failure
from medbench.writeback.folder import (
    INDEX,
    INDEX_COLUMNS,
    check_out_folder,
    clear_previous,
    coded_path,
    holds_export_of,
    reference_path,
    safe,
    write_index,
)
from medbench.writeback.header import RLE_LOSSLESS, CodedImage, build_dataset

log = logging.getLogger(__name__)

__all__ = ["INDEX", "INDEX_COLUMNS", "ExportResult", "ExportWriteError", "check_out_folder",
           "check_run_export", "codecs_writable", "export_run", "write_encapsulated",
           "write_reference"]


class ExportWriteError(MedbenchError):
    """A file of the export could not be written (disk full, folder made read-only)."""


@dataclass
class ExportResult:
    """What an export wrote, and the (codec, setting) cells it skipped with the reason."""

    out: Path
    run_id: str
    written: list[Path] = field(default_factory=list)
    references: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    index: Path | None = None


def export_run(results: Path, out: Path, *, run_id: str | None = None,
               codec: str | None = None, setting: str | None = None,
               overwrite: bool = False, echo: Callable[[str], Any] = log.info,
               option: str = "--out", overwrite_option: str = "--overwrite") -> ExportResult:
    """Write the DICOM files of a finished run (see the module docstring).

    Parameters
    ----------
    results
        The run's results folder (holding ``results.sqlite``).
    out
        The folder the DICOM files go to: new, empty, or (``overwrite``) replaced: the
        files an earlier export listed in its ``index.csv`` are removed first.
    run_id
        The run; default the latest in ``results``.
    codec, setting
        Only this codec (and this one of its settings); default every codec and setting.
    overwrite
        Write into a folder that already holds files.
    echo
        Where one-line progress messages go.
    option, overwrite_option
        The command's options for ``out`` and ``overwrite``, named in messages.

    Returns
    -------
    ExportResult

    Raises
    ------
    MedbenchError
        The folder holds files or lies in a dataset's folder, the run or codec is unknown,
        the setting is none of the codec's or no DICOM transfer syntax, or nothing could
        be written (``index.csv`` says why, row by row).
    """
    from medbench.benchmark.runner import RunConfig, check_inside_datasets, plan_run
    from medbench.benchmark.store import ResultsStore
    from medbench.codecs import CodecContext, get_codec

    store = ResultsStore.open_existing(results)
    try:
        run_id = store.run_or_latest(run_id)
        check_out_folder(out, overwrite, option=option, overwrite_option=overwrite_option,
                         run_id=run_id)
        info = store.run_info(run_id)
        config = RunConfig.from_dict(info["arguments"], where=f"run {run_id} in {results}")
        if info["status"] != "finished":  # said, so a partial export is not taken for whole
            echo(f"note: run {run_id} is {info['status']}, not finished: only the cells it "
                 "coded are exported (continue it with `medbench run --resume`)")
        rows = store.frame(run_id)
        images = store.run_images(run_id)
    finally:
        store.close()
    rows = rows[rows["status"] == "ok"]
    knobs = rows["knob"] if "knob" in rows else [None] * len(rows)
    rows = rows.assign(coded=[_coded(s, k) for s, k in zip(rows["setting"], knobs)])
    context = CodecContext(models_dir=Path(config.models_dir), device=config.device)
    names = sorted(set(rows["codec"])) if codec is None else [codec]
    if setting is not None and setting.startswith("target:"):
        try:
            _is_target(setting)
        except MedbenchError:  # its message names --target, an option of `run`
            raise MedbenchError(
                f"--setting {setting!r} names no target cell; write one target as `run "
                "--target` made it, e.g. --setting target:ratio=10") from None
    if codec is not None:
        instance = get_codec(codec, context)  # an unknown name raises UnknownNameError
        if setting is not None and not _is_target(setting):
            try:
                instance.check_setting(setting)
            except ValueError as exc:
                raise MedbenchError(str(exc)) from None
        rows = rows[rows["codec"] == codec]
    if setting is not None:
        rows = rows[rows["setting"] == setting]
    if rows.empty:
        what = " ".join(x for x in (codec, setting) if x) or "any codec"
        raise MedbenchError(f"run {run_id} in {results} has no ok row of {what}; "
                            "nothing to export")

    result = ExportResult(Path(out), run_id)
    codecs: dict[str, Codec] = {name: get_codec(name, context) for name in names}
    syntaxes = _syntaxes(rows, codecs, result)
    if codec is not None and setting is not None and not syntaxes:
        raise MedbenchError(f"{codec} {setting}: {result.skipped[0]}")
    index: list[dict[str, Any]] = []
    wanted = rows[[c is not None and (n, c, int(b)) in syntaxes for n, c, b in
                   zip(rows["codec"], rows["coded"], rows["bit_depth"])]]
    plan = None
    if not wanted.empty:
        config.codecs = sorted(set(wanted["codec"]))
        config.datasets = sorted(set(wanted["dataset"]))
        chosen = {(d, i) for d, i, _, _ in images} or None
        plan = plan_run(config, Path(results), echo=echo, chosen=chosen,
                        check=lambda plan: check_inside_datasets(
                            Path(out), plan, option,
                            [Path(out) / safe(spec) for spec in plan.datasets]))
    if overwrite or holds_export_of(Path(out), run_id):  # no old series beside the new
        clear_previous(Path(out))
    try:
        if plan is not None:
            hashes = {(d, i): h for d, i, _, h in images if h}
            _write_units(plan, wanted, codecs, syntaxes, run_id, result, index, hashes)
    finally:
        for row in rows.itertuples():
            if row.coded is None or (row.codec, row.coded, int(row.bit_depth)) not in syntaxes:
                index.append(_entry(row, "skipped", note=_reason_of(result, row)))
        result.index = write_index(Path(out), index, run_id)
    if not result.written:
        reasons = sorted({e["note"] for e in index if e["note"]}) or ["no row was written"]
        raise MedbenchError(f"no DICOM file was written to {out}: {reasons[0]}"
                            + (f" (and {len(reasons) - 1} other reason(s))"
                               if len(reasons) > 1 else "")
                            + f"; {result.index} lists every row")
    return result


def check_run_export(plan: Any, folder: Path, overwrite: bool, out: Path,
                     run_id: str | None) -> None:
    """Before ``run --write-dicom`` codes anything: the folder lies outside the datasets'
    folders and apart from the results folder ``out``, can take this run's files, and
    some codec of ``plan`` writes a DICOM transfer syntax.

    Raises
    ------
    MedbenchError
        Naming ``--write-dicom``, what is wrong and what to give instead.
    """
    from medbench.benchmark.runner import check_inside_datasets

    check_inside_datasets(folder, plan, "--write-dicom",
                          [folder / safe(spec) for spec in plan.datasets])
    results = Path(out).resolve()
    if folder.resolve() == results or folder.resolve() in results.parents:
        raise MedbenchError(
            f"--write-dicom {folder} holds --out {out}: the run's results would be files "
            "of the DICOM folder; give --write-dicom a folder of its own (e.g. "
            f"{Path(out) / 'dicom'})")
    check_out_folder(folder, overwrite, option="--write-dicom",
                     overwrite_option="--overwrite-dicom", run_id=run_id)
    if not codecs_writable(plan.codecs, plan.config.protocol_obj().bit_depth):
        names = ", ".join(codec.name for codec in plan.codecs)
        raise MedbenchError(
            f"--write-dicom {folder}: none of the codecs {names} writes a DICOM transfer "
            "syntax (see README, For PACS engineers), so nothing would be written; add "
            "e.g. jpeg2000, jpegls or htj2k to --codecs, or drop --write-dicom")


def codecs_writable(codecs: list[Codec], bit_depth: int | None) -> bool:
    """Whether any of ``codecs`` writes a DICOM transfer syntax at any of its settings,
    for images of ``bit_depth`` (None: any depth from 1 to 16)."""
    depths = [bit_depth] if bit_depth is not None else range(1, 17)
    for codec in codecs:
        for setting in codec.settings():
            for bits in depths:
                try:
                    if codec.dicom_syntax(setting, bits) is not None:
                        return True
                except UnsupportedInput:
                    continue
                except Exception:  # noqa: BLE001 -- a codec that cannot say is not refused
                    return True
    return False


def _syntaxes(rows: Any, codecs: dict[str, Codec],
              result: ExportResult) -> dict[tuple[str, str, int], str]:
    """``(codec, coded setting, bit_depth)`` → transfer syntax; the others noted as
    skipped. The coded setting is the row's ``coded`` column (:func:`_coded`)."""
    syntaxes: dict[tuple[str, str, int], str] = {}
    seen = set()
    for name, setting, coded, bits in rows[["codec", "setting", "coded",
                                            "bit_depth"]].itertuples(index=False):
        key = (name, coded, int(bits))
        if (setting, *key) in seen:  # a target cell's note names it, so it is its own
            continue
        seen.add((setting, *key))
        label = _label(name, setting, coded, bits)
        if coded is None:
            result.skipped.append(f"{label}: the row names no knob (the setting it was "
                                  "coded at); re-run it with this medbench version to "
                                  "export it")
            continue
        try:
            syntax = codecs[name].dicom_syntax(coded, int(bits))
        except UnsupportedInput as exc:
            result.skipped.append(f"{label}: {exc}")
            continue
        if syntax is None:
            result.skipped.append(f"{label}: its bitstream is no DICOM transfer syntax, so "
                                  "it cannot be encapsulated")
            continue
        syntaxes[key] = syntax
    return syntaxes


def _is_target(setting: str) -> bool:
    return parse_target_setting(setting) is not None


def _coded(setting: str, knob: Any) -> str | None:
    """The codec setting a row was coded at: its ``knob`` for a ``target:…`` cell (None
    when a target row names none)."""
    if _is_target(setting):
        return knob if isinstance(knob, str) and knob else None
    return setting


def _label(codec: str, setting: str, coded: str | None, bits: Any) -> str:
    at = f" at {coded}" if coded is not None and coded != setting else ""
    return f"{codec} {setting}{at} ({int(bits)}-bit)"


def _reason_of(result: ExportResult, row: Any) -> str:
    prefix = f"{_label(row.codec, row.setting, row.coded, row.bit_depth)}: "
    for note in result.skipped:
        if note.startswith(prefix):
            return note[len(prefix):]
    return ""


def _write_units(plan: Any, rows: Any, codecs: dict[str, Codec],
                 syntaxes: dict[tuple[str, str, int], str], run_id: str,
                 result: ExportResult, index: list[dict[str, Any]],
                 hashes: dict[tuple[str, str], str]) -> None:
    """Re-code each image of ``rows`` and write the files whose stream matches its row;
    an image that is gone, changed or unreadable is skipped with the reason."""
    by_image = {key: group for key, group in rows.groupby(["dataset", "image_id"])}
    planned = set()
    for unit in plan.units:
        key = (unit.dataset, unit.record.image_id)
        group = by_image.get(key)
        if group is None:
            continue
        planned.add(key)
        try:
            problem = _changed_source(plan.datasets[unit.dataset], unit.record, hashes.get(key),
                                      run_id)
            if problem is None:
                _write_image(plan, unit, group, codecs, syntaxes, run_id, result, index)
                continue
        except ExportWriteError:
            raise
        except OSError as exc:
            problem = f"its source cannot be read ({exc.strerror or exc})"
        except BaseException as exc:  # noqa: B036 -- pyo3 panics are BaseException
            if not is_library_failure(exc):
                raise
            problem = str(exc) if isinstance(exc, MedbenchError) else \
                f"{type(exc).__name__}: {exc}"
        _skip_image(group, f"image {unit.record.image_id}: {problem}", result, index)
    for key, group in by_image.items():
        if key not in planned:
            _skip_image(group, f"image {key[1]} of {key[0]} is no longer present in the "
                        "dataset, so it cannot be re-coded", result, index)


def _changed_source(dataset: Any, record: Any, recorded: str | None, run_id: str) -> str | None:
    """Why ``record``'s file is not the one run ``run_id`` coded (None: it is, or the run
    recorded no hash to check it by)."""
    if not recorded or dataset.hasher is None:
        return None
    now = dataset.fingerprint(record, fresh=True)
    if now == recorded:
        return None
    return (f"its source file {record.source} changed since run {run_id} coded it "
            f"(SHA-256 {now[:12]}… vs {recorded[:12]}…), so its pixels are not the ones "
            "scored; resume or re-run the run to export it")


def _skip_image(group: Any, note: str, result: ExportResult,
                index: list[dict[str, Any]]) -> None:
    result.skipped.append(note)
    index.extend(_entry(row, "skipped", note=note) for row in group.itertuples())


def _write_image(plan: Any, unit: Any, group: Any, codecs: dict[str, Codec],
                 syntaxes: dict[tuple[str, str, int], str], run_id: str,
                 result: ExportResult, index: list[dict[str, Any]]) -> None:
    """Re-code one image and write its matching coded files, then its reference."""
    from medbench.datasets.cache import prepare_image

    protocol = plan.config.protocol_obj()
    dataset = plan.datasets[unit.dataset]
    image = prepare_image(dataset, unit.record, protocol)
    source = dataset.source_file(unit.record)
    if source is not None and not _is_dicom(source):
        source = None
    entries, written = [], []
    for row in group.itertuples():
        label = _label(row.codec, row.setting, row.coded, row.bit_depth)
        try:
            stream = codecs[row.codec].encode(image, row.coded)
        except BaseException as exc:  # noqa: B036 -- pyo3 panics are BaseException
            if not is_library_failure(exc):
                raise
            note = f"re-coding failed ({type(exc).__name__}: {exc}), so no file is written"
            result.skipped.append(f"{label} {row.image_id}: {note}")
            entries.append(_entry(row, "skipped", note=note))
            continue
        digest = hashlib.sha256(stream).hexdigest()
        if row.stream_sha256 and digest != row.stream_sha256:
            note = ("re-coding gave another bitstream than the measured one (SHA-256 "
                    f"{digest[:12]}… vs {row.stream_sha256[:12]}…): the encoder is not "
                    "deterministic here, so no file is written")
            result.skipped.append(f"{label} {row.image_id}: {note}")
            entries.append(_entry(row, "skipped", note=note))
            continue
        syntax = syntaxes[(row.codec, row.coded, int(row.bit_depth))]
        coded = CodedImage(image, unit.dataset, row.codec, row.setting, syntax,
                           codecs[row.codec].is_lossless(row.coded), stream, run_id, protocol,
                           knob=row.coded if row.coded != row.setting else "")
        path = coded_path(result.out, unit.dataset, row.codec, row.setting, row.image_id)
        write_encapsulated(coded, source, path)
        written.append(path)
        note = "" if row.stream_sha256 else "the run recorded no stream_sha256 to check"
        entries.append(_entry(row, "written", syntax, path, digest, note))
    result.written += written
    index += entries
    if written:  # the image is the one scored: a stream of it matched its row
        reference = reference_path(result.out, unit.dataset, unit.record.image_id)
        write_reference(image, unit.dataset, run_id, protocol, source, reference)
        result.references.append(reference)


def write_encapsulated(coded: CodedImage, source: Path | None, path: Path) -> Path:
    """One single-frame encapsulated DICOM holding ``coded.stream`` unchanged."""
    from pydicom.encaps import encapsulate

    ds = build_dataset(coded, source)
    ds.PixelData = encapsulate([coded.stream])  # one fragment, padded to even length
    ds["PixelData"].VR = "OB"
    return _save(ds, path)


def write_reference(image: Any, dataset: str, run_id: str, protocol: Any,
                    source: Path | None, path: Path) -> Path:
    """The coded image itself, RLE Lossless: what every coded file is compared with."""
    import numpy as np

    coded = CodedImage(image, dataset, "reference", "rle", RLE_LOSSLESS, True, b"", run_id,
                       protocol)
    ds = build_dataset(coded, source)
    ds.DerivationDescription = (
        f"medbench run {run_id}: the image as every codec received it (protocol "
        f"{protocol.name}), RLE Lossless.")
    ds.compress(RLE_LOSSLESS, np.ascontiguousarray(image.pixels), encoding_plugin="pydicom")
    return _save(ds, path)


def _save(ds: Any, path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise ExportWriteError(f"cannot write {path} ({exc.strerror or exc}); free space or "
                               "make the folder writable, then export again") from None
    return path


def _is_dicom(path: Path) -> bool:
    from medbench.datasets.formats import sniff

    return sniff(path) == "dicom"


def _entry(row: Any, status: str, syntax: str = "", path: Path | None = None,
           digest: str = "", note: str = "") -> dict[str, Any]:
    return {"dataset": row.dataset, "image_id": row.image_id, "codec": row.codec,
            "setting": row.setting, "status": status, "transfer_syntax": syntax,
            "file": str(path) if path else "", "stream_sha256": digest, "note": note,
            # the setting a rate-matched cell (target:…) was coded at on this image
            "knob": row.coded if row.coded not in (None, row.setting) else ""}
