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
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.benchmark.targets import parse_target_setting
from medbench.codecs.base import Codec
from medbench.errors import MedbenchError, UnsupportedInput
from medbench.writeback.header import RLE_LOSSLESS, CodedImage, build_dataset

log = logging.getLogger(__name__)

INDEX = "index.csv"
INDEX_COLUMNS = ("dataset", "image_id", "codec", "setting", "status", "transfer_syntax",
                 "file", "stream_sha256", "note", "knob")


@dataclass
class ExportResult:
    """What an export wrote, and the (codec, setting) cells it skipped with the reason."""

    out: Path
    run_id: str
    written: list[Path] = field(default_factory=list)
    references: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    index: Path | None = None


def check_out_folder(out: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds other files, unless ``overwrite``.

    Raises
    ------
    MedbenchError
        ``out`` is a file, or a folder that is not empty (without ``overwrite``).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MedbenchError(f"DICOM output {out} is a file; give a folder")
    if out.is_dir() and not overwrite and any(out.iterdir()):
        raise MedbenchError(
            f"DICOM output folder {out} already holds files; choose an empty folder or "
            "pass --overwrite to replace what it holds"
        )


def export_run(results: Path, out: Path, *, run_id: str | None = None,
               codec: str | None = None, setting: str | None = None,
               overwrite: bool = False, echo: Callable[[str], Any] = log.info) -> ExportResult:
    """Write the DICOM files of a finished run (see the module docstring).

    Parameters
    ----------
    results
        The run's results folder (holding ``results.sqlite``).
    out
        The folder the DICOM files go to: new, empty, or (``overwrite``) replaced.
    run_id
        The run; default the latest in ``results``.
    codec, setting
        Only this codec (and this one of its settings); default every codec and setting.
    overwrite
        Write into a folder that already holds files, replacing files of the same name.
    echo
        Where one-line progress messages go.

    Returns
    -------
    ExportResult

    Raises
    ------
    MedbenchError
        The folder holds files, the run or codec is unknown, the setting is none of the
        codec's, or the setting is no DICOM transfer syntax.
    """
    from medbench.benchmark.runner import RunConfig, plan_run
    from medbench.benchmark.store import ResultsStore
    from medbench.codecs import CodecContext, get_codec

    check_out_folder(out, overwrite)
    store = ResultsStore.open_existing(results)
    try:
        run_id = run_id or store.latest_run()
        if run_id is None:
            raise MedbenchError(f"{results} holds no run; run `medbench run --out {results}`")
        config = RunConfig.from_dict(store.run_info(run_id)["arguments"])
        rows = store.frame(run_id)
    finally:
        store.close()
    rows = rows[rows["status"] == "ok"]
    rows = rows.assign(coded=[_coded(s, k) for s, k in
                              zip(rows["setting"], rows.get("knob", [None] * len(rows)))])
    context = CodecContext(models_dir=Path(config.models_dir), device=config.device)
    names = sorted(set(rows["codec"])) if codec is None else [codec]
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
    wanted = rows[[(c, s, int(b)) in syntaxes for c, s, b in
                   zip(rows["codec"], rows["coded"], rows["bit_depth"])]]
    if not wanted.empty:
        config.codecs = sorted(set(wanted["codec"]))
        config.datasets = sorted(set(wanted["dataset"]))
        plan = plan_run(config, Path(results), echo=echo)
        _write_units(plan, wanted, codecs, syntaxes, run_id, result, index)
    for row in rows.itertuples():
        key = (row.codec, row.coded, int(row.bit_depth))
        if key not in syntaxes:
            index.append(_entry(row, "skipped", note=_reason_of(result, row)))
    result.index = _write_index(Path(out), index)
    return result


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


def _coded(setting: str, knob: Any) -> str:
    """The codec setting a row was coded at: its ``knob`` for a ``target:…`` cell."""
    if _is_target(setting):
        if not isinstance(knob, str) or not knob:
            raise MedbenchError(f"the {setting} row names no knob (the setting it was coded "
                                "at); re-run it with this medbench version to export it")
        return knob
    return setting


def _label(codec: str, setting: str, coded: str, bits: Any) -> str:
    at = f" at {coded}" if coded != setting else ""
    return f"{codec} {setting}{at} ({int(bits)}-bit)"


def _reason_of(result: ExportResult, row: Any) -> str:
    prefix = f"{_label(row.codec, row.setting, row.coded, row.bit_depth)}: "
    for note in result.skipped:
        if note.startswith(prefix):
            return note[len(prefix):]
    return ""


def _write_units(plan: Any, rows: Any, codecs: dict[str, Codec],
                 syntaxes: dict[tuple[str, str, int], str], run_id: str,
                 result: ExportResult, index: list[dict[str, Any]]) -> None:
    """Re-code each image of ``rows`` and write the files whose stream matches its row."""
    from medbench.datasets.cache import prepare_image

    protocol = plan.config.protocol_obj()
    by_image = {key: group for key, group in rows.groupby(["dataset", "image_id"])}
    for unit in plan.units:
        group = by_image.get((unit.dataset, unit.record.image_id))
        if group is None:
            continue
        dataset = plan.datasets[unit.dataset]
        image = prepare_image(dataset, unit.record, protocol)
        source = dataset.source_file(unit.record)
        if source is not None and not _is_dicom(source):
            source = None
        folder = Path(result.out) / _safe(unit.dataset)
        for row in group.itertuples():
            codec = codecs[row.codec]
            stream = codec.encode(image, row.coded)
            digest = hashlib.sha256(stream).hexdigest()
            if row.stream_sha256 and digest != row.stream_sha256:
                note = ("re-coding gave another bitstream than the measured one (SHA-256 "
                        f"{digest[:12]}… vs {row.stream_sha256[:12]}…): the encoder is not "
                        "deterministic here, so no file is written")
                result.skipped.append(f"{_label(row.codec, row.setting, row.coded, row.bit_depth)}"
                                      f" {row.image_id}: {note}")
                index.append(_entry(row, "skipped", note=note))
                continue
            syntax = syntaxes[(row.codec, row.coded, int(row.bit_depth))]
            coded = CodedImage(image, unit.dataset, row.codec, row.setting, syntax,
                               codec.is_lossless(row.coded), stream, run_id, protocol,
                               knob=row.coded if row.coded != row.setting else "")
            path = folder / _safe(f"{row.codec}_{row.setting}") / f"{_safe(row.image_id)}.dcm"
            write_encapsulated(coded, source, path)
            result.written.append(path)
            note = "" if row.stream_sha256 else "the run recorded no stream_sha256 to check"
            index.append(_entry(row, "written", syntax, path, digest, note))
        reference = folder / "reference_rle" / f"{_safe(unit.record.image_id)}.dcm"
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
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _is_dicom(path: Path) -> bool:
    from medbench.datasets.formats import sniff

    return sniff(path) == "dicom"


def _safe(name: str) -> str:
    """A file or folder name: ``folder:/data/x`` → ``folder_data_x``."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(name)).strip("_.") or "_"


def _entry(row: Any, status: str, syntax: str = "", path: Path | None = None,
           digest: str = "", note: str = "") -> dict[str, Any]:
    return {"dataset": row.dataset, "image_id": row.image_id, "codec": row.codec,
            "setting": row.setting, "status": status, "transfer_syntax": syntax,
            "file": str(path) if path else "", "stream_sha256": digest, "note": note,
            # the setting a rate-matched cell (target:…) was coded at on this image
            "knob": row.coded if row.coded != row.setting else ""}


def _write_index(out: Path, entries: list[dict[str, Any]]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / INDEX
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(entries)
    return path
