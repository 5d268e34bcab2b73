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

The rows are matched and counted in SQL (:class:`medbench.reports.pairing.Pair`); this
module turns the per-cell counts, and the few example rows a finding quotes, into text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from medbench.reports.pairing import CELL, EXAMPLES, IMAGE_KEY, QUOTED, Pair

__all__ = ["CELL", "IMAGE_KEY", "ImageFindings", "check_images"]

#: Values of a cell's ``streams`` column.
IDENTICAL, DIFFER, OTHER_LIBRARY, NOT_RECORDED = ("identical", "DIFFER", "other library",
                                                  "not recorded")
#: Counts summed over a cell's lines (:meth:`Pair.lines`).
_COUNTS = ["only_base", "only_new", "ok", "same_library", "other_library", "unrecorded",
           "differ", "same_sha_other_bytes", "bad_bpp_base", "bad_bpp_new",
           "same_library_recorded"]


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


def check_images(pair: Pair, lines: pd.DataFrame) -> ImageFindings:
    """The per-image checks (module notes) from the counts of :meth:`Pair.lines`.

    Returns
    -------
    ImageFindings
        Per cell present on both sides. Cells found on one side only are not listed (the
        setting means report them as a whole).
    """
    findings = ImageFindings()
    for side, label in (("base", "BASELINE"), ("new", "NEW")):
        absent = pair.absent.get(side)
        if absent:
            findings.notes.append(
                f"{label} has no {' or '.join(absent)} column (results written before "
                "medbench recorded them): streams are not compared; cells are held to the "
                "tolerances only")
    if lines.empty:
        return findings
    keys = ["dataset", "codec", "train", "setting"]
    counts = lines.groupby(keys, sort=True)[_COUNTS].sum()
    rows = lines.groupby(keys, sort=True)[["rows_base", "rows_new"]].sum()
    quoted = [f for f in QUOTED if counts[f].any()]
    examples = pair.examples(quoted) if quoted else pd.DataFrame(columns=[*keys, "finding"])
    by_cell = {key: part for key, part in examples.groupby(keys, sort=False)}
    others = lines[lines["other_base"].notna()].sort_values(keys + ["other_base", "other_new"])
    for key, c in counts.iterrows():
        shared = rows.at[key, "rows_base"] - c["only_base"]
        if not shared and (not c["only_base"] or not c["only_new"]):
            continue  # a cell on one side only: the setting means report it
        _check_cell(tuple(key), c, by_cell.get(key), findings)
        _notes(tuple(key), c, others, findings.notes)
    return findings


def _check_cell(key: tuple, c: pd.Series, examples: pd.DataFrame | None,
                findings: ImageFindings) -> None:
    def quote(finding: str) -> pd.DataFrame:
        if examples is None:
            return pd.DataFrame()
        return examples[examples["finding"] == finding]

    failures, missing = [], []
    for flag, side in (("only_base", "NEW"), ("only_new", "BASELINE")):
        if c[flag]:
            ids = list(quote(flag)["image_id"])
            missing.append(f"{_images(int(c[flag]))} missing in {side} "
                           f"({', '.join(ids)}{_more(int(c[flag]))})")
    for side, label in (("base", "BASELINE"), ("new", "NEW")):
        bad = int(c[f"bad_bpp_{side}"])
        if bad:
            shown = ", ".join(_bpp_text(r, side) for r in quote(f"bad_bpp_{side}")
                              .itertuples())
            failures.append(f"inconsistent: {label} bpp is not 8·bytes/(height·width) on "
                            f"{_images(bad)} ({shown}{_more(bad)})")
    same = int(c["same_sha_other_bytes"])
    if same:
        shown = ", ".join(f"{r.image_id}: {_int(r.bytes_base)} vs {_int(r.bytes_new)}"
                          for r in quote("same_sha_other_bytes").itertuples())
        failures.append(f"inconsistent: the same stream_sha256 with other bytes on "
                        f"{_images(same)} ({shown}{_more(same)})")
    differ = int(c["differ"])
    if differ:
        rows = quote("differ")
        shown = ", ".join(_change(r) for r in rows.itertuples())
        library = rows["lib_base"].iloc[0] if len(rows) else "?"
        failures.append(
            f"streams differ on {differ} of {int(c['same_library'])} images coded "
            f"by the same library, {library} ({shown}{_more(differ)})")
    findings.streams[key] = _streams(c)
    if failures:
        findings.failures[key] = failures
    if missing:
        findings.missing[key] = missing


def _streams(c: pd.Series) -> str:
    if c["differ"]:
        return DIFFER
    if not c["ok"]:
        return "-"
    if c["same_library_recorded"] == c["ok"]:
        return IDENTICAL
    return OTHER_LIBRARY if c["other_library"] else NOT_RECORDED


def _notes(key: tuple, c: pd.Series, others: pd.DataFrame, notes: list[str]) -> None:
    """Say once per codec and pair of libraries why its cells fall back to tolerances."""
    codec = key[CELL.index("codec")]
    if c["other_library"]:
        mine = others[(others["dataset"] == key[0]) & (others["codec"] == key[1])
                      & (others["train"] == key[2]) & (others["setting"] == key[3])]
        for lib_b, lib_n in dict.fromkeys(zip(mine["other_base"], mine["other_new"])):
            note = (f"{codec}: coded by another library (BASELINE: {lib_b}; NEW: {lib_n}): "
                    "streams are not compared, its cells are held to the tolerances")
            if note not in notes:
                notes.append(note)
    if c["unrecorded"]:
        note = (f"{codec}: rows without stream_sha256 or codec_library: streams are not "
                "compared, its cells are held to the tolerances")
        if note not in notes:
            notes.append(note)


def _bpp_text(r, side: str) -> str:
    bpp, size = getattr(r, f"bpp_{side}"), getattr(r, f"bytes_{side}")
    pixels = getattr(r, f"height_{side}") * getattr(r, f"width_{side}")
    given = 8.0 * size / pixels if pixels else float("inf")
    return f"{r.image_id}: bpp {bpp:.6g} but {int(size)} bytes give {given:.6g}"


def _change(r) -> str:
    """How one image's stream changed: its length, else its hash."""
    if r.bytes_base != r.bytes_new:
        return f"{r.image_id}: {_int(r.bytes_base)} -> {_int(r.bytes_new)} bytes"
    return (f"{r.image_id}: sha256 {str(r.sha_base)[:12]}… -> "
            f"{str(r.sha_new)[:12]}…")


def _images(n: int) -> str:
    return f"{n} image{'s' if n != 1 else ''}"


def _more(n: int) -> str:
    return f", and {n - EXAMPLES} more" if n > EXAMPLES else ""


def _int(value: float) -> str:
    return "?" if value is None or pd.isna(value) else str(int(value))
