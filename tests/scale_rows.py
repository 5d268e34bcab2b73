"""A store of a few thousand rows that holds every kind of row a report treats apart.

Made from a real run's rows (``tests/reference/sample-regression.csv``: classical codecs,
learned hyperprior models, rate-matched ``target:`` cells, four tiles of two radiographs),
replicated under new image and group ids, with each copy's values moved a little so that
means, intervals and rankings are not all ties. Beside them: two datasets (one grouped by
patient, so intervals are cluster bootstraps; one whose images are their own groups, so
they are Student-t), images that decode exactly, error and unsupported rows, images a
learned model trained on (``seen_in_training``) and a second body part.

The report of this store before and after a change of how reports are computed must print
the same numbers (``tests/test_reports_same_numbers.py``).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from medbench.benchmark.rows import COLUMNS
from medbench.benchmark.store import STORE_NAME, ResultsStore

SEED_ROWS = Path(__file__).parent / "reference" / "sample-regression.csv"
RUN_ID = "20261206T000000Z-scale0"
#: Copies per dataset: the grouped one has COPIES // GROUP patients of GROUP copies.
COPIES = 24
GROUP = 2


def scale_rows(copies: int = COPIES, seed: int = 7, shift: float = 0.0,
               library: str | None = None) -> pd.DataFrame:
    """The fixture's rows; a second, changed run: ``shift`` dB added to every PSNR, JPEG
    rows coded by another ``library`` (compared by means, not streams)."""
    base = pd.read_csv(SEED_ROWS)
    rng = np.random.default_rng(seed)
    frames = []
    for dataset, kind in (("nih", "patient"), ("mxid", "image")):
        for k in range(copies):
            f = base.copy()
            f["dataset"] = dataset
            f["image_id"] = f["image_id"] + f"-{dataset}{k:03d}"
            f["group_kind"] = kind
            f["group_id"] = (f"p{k // GROUP:03d}" if kind == "patient" else f["image_id"])
            f["body_part"] = "CHEST" if k % 3 else "HAND"
            # One move per image (the same on every setting) and a little per row.
            per_image = f["image_id"].map({i: rng.normal(0, 0.6) for i in f["image_id"]})
            delta = per_image + rng.normal(0, 0.1, len(f)) + shift
            finite = np.isfinite(f["psnr"])
            f.loc[finite, "psnr"] = f.loc[finite, "psnr"] + delta[finite]
            f.loc[finite, "mse"] = f.loc[finite, "mse"] * 10 ** (-delta[finite] / 10)
            # bytes move, bpp follows them (compare checks that it does)
            f["bytes"] = (f["bytes"] * (1 + rng.normal(0, 0.02, len(f)))).round()
            f["bpp"] = 8 * f["bytes"] / (f["height"] * f["width"])
            f["ratio"] = f["bit_depth"] / f["bpp"]
            f["ms_ssim"] = 1 - (1 - f["ms_ssim"]) * 10 ** (-delta / 20)
            f["encode_ms"] = f["encode_ms"] * (1 + rng.uniform(0, 0.5, len(f)))
            frames.append(f)
    rows = pd.concat(frames, ignore_index=True)
    rows["run_id"] = RUN_ID
    for column in ("error", "seen_in_training", "lossless_exact"):  # all empty in the seed
        rows[column] = rows[column].astype(object)
    _plant(rows, rng)
    if library is not None:
        rows.loc[rows["codec"] == "jpeg", "codec_library"] = library
    return rows


def _plant(rows: pd.DataFrame, rng: np.random.Generator) -> None:
    """Exact images at a high JPEG 2000 rate, errors, refusals and seen images."""
    high = (rows["codec"] == "jpeg2000") & (rows["setting"] == "ratio=5")
    exact = high & (rng.uniform(size=len(rows)) < 0.3)
    rows.loc[exact, ["psnr", "mse", "max_abs_error"]] = [math.inf, 0.0, 0]
    rows.loc[exact, "lossless_exact"] = True
    jpeg = rows.index[(rows["codec"] == "jpeg") & (rows["setting"] == "q=50")]
    failed = jpeg[:5]
    metrics = ["bytes", "bpp", "ratio", "mse", "psnr", "ssim", "ms_ssim", "max_abs_error",
               "encode_ms", "decode_ms", "stream_sha256"]
    rows.loc[failed, metrics] = None
    rows.loc[failed, "status"] = "error"
    rows.loc[failed, "error"] = "RuntimeError: planted failure"
    refused = rows.index[(rows["codec"] == "jpeg") & (rows["setting"] == "q=95")][-3:]
    rows.loc[refused, metrics] = None
    rows.loc[refused, "status"] = "unsupported"
    rows.loc[refused, "error"] = "jpeg: 16-bit images are not supported"
    learned = rows.index[(rows["codec"] == "hyperprior") & (rows["dataset"] == "mxid")]
    rows.loc[learned[:2], "seen_in_training"] = True


def write_store(folder: Path, rows: pd.DataFrame) -> Path:
    """A results folder holding ``rows`` as one finished run (fixed ids and times)."""
    folder.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(folder / STORE_NAME)
    store.close()
    db = sqlite3.connect(folder / STORE_NAME)
    with db:
        db.execute("INSERT INTO runs VALUES (?, ?, ?, 'finished', ?, ?)",
                   (RUN_ID, "2026-12-06T00:00:00+00:00", "2026-12-06T01:00:00+00:00",
                    json.dumps({"datasets": ["nih", "mxid"], "protocol": "paper"}),
                    json.dumps({"python": "3.x"})))
        names = [c for c in COLUMNS if c in rows]
        values = rows[names].astype(object).where(rows[names].notna(), None)
        db.executemany(f"INSERT INTO results ({', '.join(names)}) VALUES "
                       f"({', '.join('?' for _ in names)})",
                       [[_sql(v) for v in r] for r in values.itertuples(index=False)])
    db.close()
    return folder


def _sql(value: object) -> object:
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def as_older_store(db: sqlite3.Connection) -> None:
    """Take out of a store what this version adds beside the rows (the kept per-patient
    lines, their triggers, the index of seen images), as a store an older version wrote:
    its columns can then be dropped too."""
    from medbench.benchmark import lines

    for name, kind in db.execute("SELECT name, type FROM sqlite_master WHERE type IN "
                                 "('trigger', 'index', 'table')").fetchall():
        if name.startswith(lines.TABLE) or name in (lines.STALE, "results_seen"):
            db.execute(f"DROP {kind.upper()} IF EXISTS {name}")
    db.commit()
