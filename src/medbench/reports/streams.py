"""The per-image half of ``medbench compare``: the same images, and the same bytes where
the same library coded them.

Setting means cannot see that the images changed, nor that bytes were miscounted while
the bitstreams stayed what they were. So rows of the two results are also matched image
by image, on :data:`IMAGE_KEY` (dataset, codec, train dataset, setting, image), and per
cell:

- **images**: a cell must hold the same images on both sides; an image on one side only
  is *missing* (``--allow-missing`` lists it without failing);
- **consistency**, whatever coded the rows: a row's ``bpp`` must be
  ``8·bytes/(height·width)``, and two rows with the same ``stream_sha256`` must have the
  same ``bytes`` (the same stream has one length);
- **identity**, where both rows of an image name the same ``codec_library``: that library
  writes identical streams for identical input (the column's promise,
  :meth:`medbench.codecs.base.Codec.library`), so ``stream_sha256`` and ``bytes`` must be
  equal: any byte that changed is a finding, however small;
- otherwise (another library on one side, or rows from before medbench recorded these
  columns) streams are not compared: the cell is held to the tolerances of its setting
  means only, and a note says which libraries (or that none were recorded).

Streams are matched only where both rows are ``ok`` (an error row holds no stream; the
setting means count errors).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import pandas as pd

from medbench.errors import MedbenchError

#: A cell of the comparison; ``train_dataset`` is "" for classical codecs.
CELL = ["dataset", "codec", "train_dataset", "setting"]
#: What matches a row of BASELINE with a row of NEW.
IMAGE_KEY = [*CELL, "image_id"]
#: Columns read from each side (any of them may be absent from an older results CSV).
COLUMNS = [*IMAGE_KEY, "status", "bytes", "bpp", "height", "width", "stream_sha256",
           "codec_library"]
#: Image ids named in one finding; the rest are counted.
EXAMPLES = 3
#: Relative difference between ``bpp`` and ``8·bytes/(h·w)`` that is more than rounding.
BPP_RTOL = 1e-9

#: Values of a cell's ``streams`` column.
IDENTICAL, DIFFER, OTHER_LIBRARY, NOT_RECORDED = ("identical", "DIFFER", "other library",
                                                  "not recorded")


@dataclass
class ImageFindings:
    """What the per-image checks found, per cell (keys: the :data:`CELL` values)."""

    #: Findings that fail the comparison.
    failures: dict[tuple, list[str]] = field(default_factory=dict)
    #: Images on one side only (failures unless missing images are allowed).
    missing: dict[tuple, list[str]] = field(default_factory=dict)
    #: How the cell's streams compared: :data:`IDENTICAL`, :data:`DIFFER`,
    #: :data:`OTHER_LIBRARY`, :data:`NOT_RECORDED`, or "-" (no ``ok`` pair).
    streams: dict[tuple, str] = field(default_factory=dict)
    #: Which cells fell back to the tolerances, and why (libraries named), once each.
    notes: list[str] = field(default_factory=list)


def check_images(baseline: pd.DataFrame, new: pd.DataFrame) -> ImageFindings:
    """Match ``baseline`` and ``new`` rows image by image and check them (module notes).

    Parameters
    ----------
    baseline, new : pandas.DataFrame
        Result rows of one run each (``results.csv`` columns; ``stream_sha256``,
        ``codec_library``, ``bytes``, ``height`` and ``width`` are used when present).

    Returns
    -------
    ImageFindings
        Per cell present on both sides. Cells found on one side only are not listed (the
        setting means report them as a whole).

    Raises
    ------
    MedbenchError
        When one side holds two rows for the same image and cell (several runs mixed).
    """
    findings = ImageFindings()
    base, after = _rows(baseline, "BASELINE"), _rows(new, "NEW")
    for side, rows in (("BASELINE", baseline), ("NEW", new)):
        absent = [c for c in ("stream_sha256", "codec_library") if c not in rows.columns]
        if absent:
            findings.notes.append(
                f"{side} has no {' or '.join(absent)} column (results written before "
                "medbench recorded them): streams are not compared; cells are held to the "
                "tolerances only")
    merged = base.merge(after, on=IMAGE_KEY, how="outer", suffixes=("_base", "_new"),
                        indicator=True)
    flags = _flags(merged)
    for cell, group in flags.groupby(CELL, sort=False, dropna=False):
        _check_cell(cell, group, findings)
    return findings


def shared_images(rows: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rows`` whose image is in ``other`` too (same cell and ``image_id``),
    and every row of a cell that has no image in common with ``other``.

    Setting means compared over these rows compare the same images on both sides: an
    image on one side only is a finding of its own (:func:`check_images`), not a shift of
    the means.
    """
    keys, others = _keys(rows, IMAGE_KEY), set(_keys(other, IMAGE_KEY))
    shared = keys.isin(others)
    cells = _keys(rows, CELL)
    return rows[shared | ~cells.isin(set(cells[shared]))]


def _keys(rows: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One hashable key per row from ``columns`` (absent or empty values as "")."""
    parts = [rows[c].map(lambda v: "" if pd.isna(v) else str(v)) if c in rows.columns
             else pd.Series("", index=rows.index) for c in columns]
    return pd.Series(list(zip(*parts)), index=rows.index, dtype=object)


def _rows(rows: pd.DataFrame, side: str) -> pd.DataFrame:
    """The :data:`COLUMNS` of ``rows`` (absent ones empty), keys as text."""
    frame = rows.reindex(columns=COLUMNS).copy()
    for column in IMAGE_KEY:
        frame[column] = frame[column].map(lambda v: "" if pd.isna(v) else str(v))
    for column in ("stream_sha256", "codec_library", "status"):
        frame[column] = frame[column].map(lambda v: None if pd.isna(v) or v == "" else str(v))
    for column in ("bytes", "bpp", "height", "width"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    twice = frame.duplicated(IMAGE_KEY, keep=False)
    if twice.any():
        first = frame[twice].iloc[0]
        raise MedbenchError(
            f"{side} holds {int(twice.sum())} rows that share a cell and image (e.g. "
            f"{first['dataset']} {first['codec']} {first['setting']} {first['image_id']}); "
            "give the rows of one run (a results folder, or one run's results.csv)")
    return frame


def _flags(m: pd.DataFrame) -> pd.DataFrame:
    """``m`` (the outer merge) with one boolean column per finding."""
    m = m.copy()
    m["only_base"] = m["_merge"] == "left_only"
    m["only_new"] = m["_merge"] == "right_only"
    ok = (m["_merge"] == "both") & (m["status_base"] == "ok") & (m["status_new"] == "ok")
    lib_b, lib_n = m["codec_library_base"], m["codec_library_new"]
    sha_b, sha_n = m["stream_sha256_base"], m["stream_sha256_new"]
    has_lib = ok & lib_b.notna() & lib_n.notna()
    has_sha = sha_b.notna() & sha_n.notna()
    bytes_differ = m["bytes_base"].notna() & m["bytes_new"].notna() & \
        (m["bytes_base"] != m["bytes_new"])
    m["ok"] = ok
    m["same_library"] = has_lib & (lib_b == lib_n)
    m["other_library"] = has_lib & (lib_b != lib_n)
    m["unrecorded"] = ok & ~(has_lib & has_sha)
    m["differ"] = m["same_library"] & ((has_sha & (sha_b != sha_n)) | bytes_differ)
    m["same_sha_other_bytes"] = has_sha & (sha_b == sha_n) & bytes_differ
    for side in ("base", "new"):
        m[f"bad_bpp_{side}"] = _bpp_mismatch(m, side)
    return m


def _bpp_mismatch(m: pd.DataFrame, side: str) -> pd.Series:
    """Rows of one side whose ``bpp`` is not ``8·bytes/(height·width)``."""
    expected = 8.0 * m[f"bytes_{side}"] / (m[f"height_{side}"] * m[f"width_{side}"])
    known = (m[f"status_{side}"] == "ok") & expected.notna() & m[f"bpp_{side}"].notna()
    off = (m[f"bpp_{side}"] - expected).abs() > BPP_RTOL * expected.abs().clip(lower=1e-12)
    return known & off


def _check_cell(cell: Hashable, g: pd.DataFrame, findings: ImageFindings) -> None:
    key = tuple(cell) if isinstance(cell, tuple) else (cell,)
    if g["only_base"].all() or g["only_new"].all():
        return  # a cell on one side only: the setting means report it
    failures, missing = [], []
    for flag, side in (("only_base", "NEW"), ("only_new", "BASELINE")):
        if g[flag].any():
            ids = g.loc[g[flag], "image_id"]
            missing.append(f"{_images(len(ids))} missing in {side} ({_examples(ids)})")
    for side, label in (("base", "BASELINE"), ("new", "NEW")):
        bad = g[g[f"bad_bpp_{side}"]]
        if len(bad):
            shown = ", ".join(_bpp_text(r, side) for r in bad.head(EXAMPLES).itertuples())
            failures.append(f"inconsistent: {label} bpp is not 8·bytes/(height·width) on "
                            f"{_images(len(bad))} ({shown}{_more(len(bad))})")
    same = g[g["same_sha_other_bytes"]]
    if len(same):
        shown = ", ".join(f"{r.image_id}: {_int(r.bytes_base)} vs {_int(r.bytes_new)}"
                          for r in same.head(EXAMPLES).itertuples())
        failures.append(f"inconsistent: the same stream_sha256 with other bytes on "
                        f"{_images(len(same))} ({shown}{_more(len(same))})")
    differ = g[g["differ"]]
    if len(differ):
        shown = ", ".join(_change(r) for r in differ.head(EXAMPLES).itertuples())
        failures.append(
            f"streams differ on {len(differ)} of {int(g['same_library'].sum())} images coded "
            f"by the same library, {differ['codec_library_base'].iloc[0]} ({shown}"
            f"{_more(len(differ))})")
    findings.streams[key] = _streams(g)
    _notes(key, g, findings.notes)
    if failures:
        findings.failures[key] = failures
    if missing:
        findings.missing[key] = missing


def _streams(g: pd.DataFrame) -> str:
    if g["differ"].any():
        return DIFFER
    if not g["ok"].any():
        return "-"
    if (g["same_library"] & ~g["unrecorded"]).sum() == g["ok"].sum():
        return IDENTICAL
    return OTHER_LIBRARY if g["other_library"].any() else NOT_RECORDED


def _notes(key: tuple, g: pd.DataFrame, notes: list[str]) -> None:
    """Say once per codec and pair of libraries why its cells fall back to tolerances."""
    codec = key[CELL.index("codec")]
    other = g[g["other_library"]]
    for (lib_b, lib_n), _ in other.groupby(["codec_library_base", "codec_library_new"]):
        note = (f"{codec}: coded by another library (BASELINE: {lib_b}; NEW: {lib_n}): "
                "streams are not compared, its cells are held to the tolerances")
        if note not in notes:
            notes.append(note)
    if g["unrecorded"].any():
        note = (f"{codec}: rows without stream_sha256 or codec_library: streams are not "
                "compared, its cells are held to the tolerances")
        if note not in notes:
            notes.append(note)


def _bpp_text(r, side: str) -> str:
    bpp, size = getattr(r, f"bpp_{side}"), getattr(r, f"bytes_{side}")
    pixels = getattr(r, f"height_{side}") * getattr(r, f"width_{side}")
    return f"{r.image_id}: bpp {bpp:.6g} but {int(size)} bytes give {8.0 * size / pixels:.6g}"


def _change(r) -> str:
    """How one image's stream changed: its length, else its hash."""
    if r.bytes_base != r.bytes_new:
        return f"{r.image_id}: {_int(r.bytes_base)} -> {_int(r.bytes_new)} bytes"
    return (f"{r.image_id}: sha256 {str(r.stream_sha256_base)[:12]}… -> "
            f"{str(r.stream_sha256_new)[:12]}…")


def _images(n: int) -> str:
    return f"{n} image{'s' if n != 1 else ''}"


def _examples(ids: pd.Series) -> str:
    return ", ".join(ids.head(EXAMPLES)) + _more(len(ids))


def _more(n: int) -> str:
    return f", and {n - EXAMPLES} more" if n > EXAMPLES else ""


def _int(value: float) -> str:
    return "?" if pd.isna(value) else str(int(value))
