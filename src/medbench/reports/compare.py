"""Regression check: did a codec, a model or the harness change between two runs?

``medbench compare BASELINE NEW`` compares two results (a results folder, a
``results.sqlite`` or a ``results.csv``) in two halves.

Image by image (:mod:`medbench.reports.streams`): each dataset × codec × train dataset ×
setting must hold the same images on both sides; where both rows of an image name the
same ``codec_library`` their streams must be identical (``stream_sha256`` and ``bytes``);
a row whose ``bpp`` is not its ``bytes`` over its pixels, or whose ``stream_sha256``
matches while its ``bytes`` do not, is inconsistent and always fails. Cells coded by
another library, or read from results that predate these columns, fall back to:

Per setting, the means (:func:`~medbench.reports.means.setting_means`) over the images
both sides hold. A cell *regresses* when

- its mean PSNR over the images that did not decode exactly drops by more than
  ``psnr_tol`` dB (default 0.05), or so does the PSNR of its pooled MSE (over all
  images, exact ones with MSE 0): an exactly decoded image makes neither ``inf``, so a
  drop on every other image is never hidden,
- its mean MS-SSIM drops by more than ``ms_ssim_tol`` (default 0.001),
- its mean bpp grows by more than ``bpp_tol`` percent (default 1 %),
- it has more error rows, or fewer ``ok`` images, than in BASELINE,
- or it is in one of the two results only (unless missing cells are allowed).

A mean bpp that *drops* by more than ``bpp_tol`` percent is reported as a rate
improvement, and fails under ``strict``: fewer bytes at a fixed setting is what an
undercounted rate looks like, so it should be explained before it is believed. Other
improvements never fail. At a fixed setting a codec that spends more bits is worse even
if its quality rose (the rate is what the setting pins), which is why both directions
are checked independently. Timing columns never fail a check.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medbench.benchmark.metrics import psnr_from_mse
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.errors import MedbenchError
from medbench.reports.format import fmt
from medbench.reports.pairing import Pair, Side, StoreRun, check_duplicates, open_store_run
from medbench.reports.streams import CELL, ImageFindings, check_images

#: Columns a results CSV must have.
REQUIRED = ["dataset", "codec", "setting", "image_id", "status", "bpp", "psnr", "ms_ssim"]
COMPARED = ["images", "errors", "exact_images", "bpp", "psnr", "psnr_pooled", "ms_ssim"]

DEFAULT_PSNR_TOL = 0.05  # dB
DEFAULT_MS_SSIM_TOL = 0.001
DEFAULT_BPP_TOL = 1.0  # percent


@dataclass(frozen=True)
class Tolerances:
    """How much worse a cell may get before it counts as a regression."""

    psnr: float = DEFAULT_PSNR_TOL
    ms_ssim: float = DEFAULT_MS_SSIM_TOL
    bpp_percent: float = DEFAULT_BPP_TOL
    allow_missing: bool = False
    #: A mean bpp down by more than ``bpp_percent`` fails too (else it is reported).
    strict: bool = False

    def __post_init__(self) -> None:
        for name in ("psnr", "ms_ssim", "bpp_percent"):
            value = getattr(self, name)
            if not value >= 0:
                raise MedbenchError(f"tolerance {name} must be >= 0, got {value}")


@dataclass
class Comparison:
    """The per-cell table of changes and the regressions found in it."""

    table: pd.DataFrame
    regressions: list[str] = field(default_factory=list)
    baseline: str = ""
    new: str = ""
    allow_missing: bool = False  # cells and images in one result only are listed, not failures
    #: Rate improvements beyond the tolerance (failures instead, under ``strict``).
    improvements: list[str] = field(default_factory=list)
    #: Why some cells were held to the tolerances only (other library, nothing recorded).
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.regressions


def load_results(path: Path) -> tuple[pd.DataFrame, str]:
    """Rows of a results folder (its store's latest run, else its results.csv), a
    ``.sqlite`` store (latest run) or a CSV file, and a label saying which."""
    side, label = open_results(path)
    if isinstance(side, StoreRun):
        store = ResultsStore.open_existing(side.path)
        try:
            return store.frame(side.run_id), label
        finally:
            store.close()
    return side, label


def open_results(path: Path) -> tuple[Side, str]:
    """As :func:`load_results`, but a store's run is left where it is (checked, not
    loaded): :func:`compare` reads it in SQL, in memory that does not grow with its rows."""
    path = Path(path)
    if path.is_dir():
        if (path / STORE_NAME).is_file():
            return _latest_run(path / STORE_NAME)
        if (path / "results.csv").is_file():
            return _read_csv(path / "results.csv"), str(path / "results.csv")
        raise MedbenchError(
            f"{path} holds neither {STORE_NAME} nor results.csv; give a results folder "
            "written by `medbench run --out` or a results CSV file"
        )
    if not path.is_file():
        raise MedbenchError(f"{path} does not exist; give a results folder or a results CSV file")
    if path.suffix in (".sqlite", ".db"):
        return _latest_run(path)
    return _read_csv(path), str(path)


def _latest_run(store_path: Path) -> tuple[StoreRun, str]:
    run = open_store_run(store_path)
    return run, f"{store_path} (run {run.run_id})"


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        rows = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MedbenchError(f"{path} is not a readable results CSV ({exc})") from None
    missing = [c for c in REQUIRED if c not in rows.columns]
    if missing:
        raise MedbenchError(
            f"{path} lacks the result columns {', '.join(missing)}; give a results.csv "
            "written by `medbench run`"
        )
    return rows


def compare(baseline: Side, new: Side, tolerances: Tolerances | None = None) -> Comparison:
    """Per-cell changes from ``baseline`` to ``new`` rows and the regressions among them.

    Parameters
    ----------
    baseline, new : pandas.DataFrame or StoreRun
        Result rows of the two runs (e.g. from :func:`load_results`), or a store's run
        left in the store (:func:`open_results`): compared in SQL either way
        (:mod:`medbench.reports.pairing`), in memory that grows with the cells.
    tolerances : Tolerances, optional
        How much worse a cell may get; the defaults when omitted.

    Returns
    -------
    Comparison
        ``table`` has one line per cell in either result (BASELINE's order, cells only
        in NEW last): the :data:`COMPARED` columns of both sides (suffixes ``_base`` and
        ``_new``), the changes ``d_bpp_pct``, ``d_psnr`` (finite per-image mean),
        ``d_psnr_pooled`` and ``d_ms_ssim``, ``streams`` (how the cell's streams compared,
        :mod:`medbench.reports.streams`) and a ``verdict``; ``regressions`` lists every
        failed check as ``"<dataset> <codec> <setting>: <problem>"``, ``improvements``
        the rate improvements that did not fail, ``notes`` the cells held to tolerances.

    Raises
    ------
    MedbenchError
        When one side holds two rows for one image and cell (several runs mixed).
    """
    tol = tolerances or Tolerances()
    for side, rows in (("BASELINE", baseline), ("NEW", new)):
        if isinstance(rows, pd.DataFrame):
            check_duplicates(rows, side)
    with Pair(baseline, new) as pair:
        try:
            lines = pair.lines()
            images = check_images(pair, lines)
        except sqlite3.DatabaseError as exc:  # damage the opening check did not see
            raise pair.damaged(exc) from None
    # Means over the images both sides hold; an image on one side only is its own finding.
    table = _table(_means(lines, "base"), _means(lines, "new"))
    verdicts, streams, regressions, improvements = [], [], [], []
    for _, row in table.iterrows():
        key = tuple(row[c] for c in CELL)
        failures, missing, improved = _problems(row, tol, images, key)
        allowed = missing if tol.allow_missing else []
        failures = failures + ([] if tol.allow_missing else missing)
        if tol.strict:
            failures, improved = failures + improved, []
        cell = f"{row['dataset']} {row['codec']} {row['setting']}"
        regressions += [f"{cell}: {p}" for p in failures]
        improvements += [f"{cell}: {p}" for p in improved]
        verdicts.append(_verdict(failures, allowed, improved))
        streams.append(images.streams.get(key, "-"))
    table["streams"] = streams
    table["verdict"] = verdicts
    return Comparison(table.drop(columns="_merge"), regressions,
                      allow_missing=tol.allow_missing, improvements=improvements,
                      notes=images.notes)


def _table(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """The two sides' means side by side, with the changes."""
    # Keep BASELINE's order (settings low to high rate), cells new in NEW at the end.
    before["order"] = range(len(before))
    after["order"] = range(len(before), len(before) + len(after))
    table = before.merge(after, on=CELL, how="outer", suffixes=("_base", "_new"), indicator=True)
    table["order"] = table["order_base"].fillna(table["order_new"])
    table = table.sort_values("order", kind="stable").drop(
        columns=["order", "order_base", "order_new"]
    ).reset_index(drop=True)
    table["d_bpp_pct"] = 100.0 * (table["bpp_new"] - table["bpp_base"]) / table["bpp_base"]
    table["d_psnr"] = _difference(table["psnr_new"], table["psnr_base"])
    table["d_psnr_pooled"] = _difference(table["psnr_pooled_new"], table["psnr_pooled_base"])
    table["d_ms_ssim"] = table["ms_ssim_new"] - table["ms_ssim_base"]
    return table


#: The sums of one side's setting means, per line of :meth:`Pair.lines`.
_SUMS = ["rows", "images", "errors", "exact", "psnr_any", "psnr_sum", "psnr_n", "bpp_sum",
         "bpp_n", "ms_ssim_sum", "ms_ssim_n", "nmse_sum", "nmse_n"]


def _means(lines: pd.DataFrame, side: str) -> pd.DataFrame:
    """One side's setting means over the images both sides hold, as
    :func:`~medbench.reports.means.setting_means` computes them (the compared columns,
    the same order), from the sums SQL took; "" for a missing train dataset.

    A cell that shares no image with the other side keeps all its rows. Rows without a
    train dataset (an image no worker could read) count on the line of the one train
    dataset the other rows of their dataset, codec and setting name, as in
    ``setting_means``.
    """
    cell = ["dataset", "codec", "train", "setting"]
    if lines.empty:
        return pd.DataFrame(columns=[*CELL, *COMPARED])
    mine = lines.rename(columns={f"{k}_{side}": k for k in [*_SUMS, "ord", "rank"]})
    mine = mine[mine["rows"] > 0]
    shared_cells = set(map(tuple, mine.loc[mine["shared"] == 1, cell].to_numpy()))
    in_shared = pd.Series([tuple(k) in shared_cells for k in mine[cell].to_numpy()],
                          index=mine.index, dtype=bool)
    used = mine[(mine["shared"] == 1) | ~in_shared]  # shared rows, where the cell has any
    sums = used.groupby(cell, sort=False).agg(
        **{k: (k, "sum") for k in _SUMS}, ord=("ord", "min"), rank=("rank", "min")
    ).reset_index()
    sums["train"] = _known_train(sums)
    sums = sums.groupby(cell, sort=False).agg(
        **{k: (k, "sum") for k in _SUMS}, ord=("ord", "min"), rank=("rank", "min")
    ).reset_index()
    out = pd.DataFrame({"dataset": sums["dataset"], "codec": sums["codec"],
                        "train_dataset": sums["train"], "setting": sums["setting"]})
    out["images"] = sums["images"].astype(float)
    out["errors"] = sums["errors"].astype(float)
    out["exact_images"] = sums["exact"].astype(float)
    out["bpp"] = _ratio(sums["bpp_sum"], sums["bpp_n"])
    psnr = _ratio(sums["psnr_sum"], sums["psnr_n"])
    every_exact = (sums["psnr_any"] > 0) & (sums["exact"] == sums["psnr_any"])
    out["psnr"] = psnr.where(~every_exact, math.inf)
    nmse = _ratio(sums["nmse_sum"], sums["images"]).where(
        (sums["images"] > 0) & (sums["nmse_n"] == sums["images"]), math.nan)
    out["psnr_pooled"] = [psnr_from_mse(v, 1.0) for v in nmse]
    out["ms_ssim"] = _ratio(sums["ms_ssim_sum"], sums["ms_ssim_n"])
    rank = pd.to_numeric(sums["rank"], errors="coerce").fillna(0)
    # setting_means' order: dataset, codec, train dataset, setting rank; ties in the
    # order the settings first appear among the rows.
    out = out.assign(_rank=rank.to_numpy(), _first=sums["ord"].to_numpy())
    out = out.sort_values(["dataset", "codec", "train_dataset", "_rank", "_first"],
                          kind="stable").drop(columns=["_rank", "_first"])
    return out.reset_index(drop=True)


def _known_train(sums: pd.DataFrame) -> pd.Series:
    """``train``, "" replaced by the one train dataset the other lines of the same
    dataset, codec and setting name (``setting_means``' ``_with_known_train_dataset``)."""
    keys = ["dataset", "codec", "setting"]
    named = sums[sums["train"] != ""].groupby(keys)["train"].unique()
    named = {k: v[0] for k, v in named.items() if len(v) == 1}
    return pd.Series([named.get((d, c, s), t) if t == "" else t for d, c, s, t in
                      sums[[*keys, "train"]].to_numpy()], index=sums.index, dtype=object)


def _ratio(total: pd.Series, count: pd.Series) -> pd.Series:
    total = pd.to_numeric(total, errors="coerce").astype(float)
    count = pd.to_numeric(count, errors="coerce").astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (total / count).where(count > 0, math.nan)


def _difference(new: pd.Series, base: pd.Series) -> pd.Series:
    """``new - base``, with equal infinities (lossless PSNR) counted as no change."""
    same = (new == base) & new.map(lambda v: isinstance(v, float) and math.isinf(v))
    return (new - base).where(~same, 0.0)


def _problems(row: pd.Series, tol: Tolerances, images: ImageFindings, key: tuple
              ) -> tuple[list[str], list[str], list[str]]:
    """A cell's failures, its missing cells or images, and its rate improvements."""
    if row["_merge"] == "left_only":
        return [], ["missing in NEW"], []
    if row["_merge"] == "right_only":
        return [], ["missing in BASELINE"], []
    problems = list(images.failures.get(key, []))
    if row["d_psnr"] < -tol.psnr or _lost(row["psnr_base"], row["psnr_new"]):
        problems.append(f"PSNR {row['d_psnr']:+.3f} dB (tolerance -{tol.psnr:g})")
    if row["d_psnr_pooled"] < -tol.psnr or _lost(row["psnr_pooled_base"],
                                                  row["psnr_pooled_new"]):
        problems.append(f"PSNR of pooled MSE {row['d_psnr_pooled']:+.3f} dB "
                        f"(tolerance -{tol.psnr:g})")
    if row["d_ms_ssim"] < -tol.ms_ssim or _lost(row["ms_ssim_base"], row["ms_ssim_new"]):
        problems.append(f"MS-SSIM {row['d_ms_ssim']:+.4f} (tolerance -{tol.ms_ssim:g})")
    if row["d_bpp_pct"] > tol.bpp_percent or _lost(row["bpp_base"], row["bpp_new"]):
        problems.append(f"bpp {row['d_bpp_pct']:+.2f} % (tolerance +{tol.bpp_percent:g} %)")
    if row["errors_new"] > row["errors_base"]:
        problems.append(f"errors {int(row['errors_base'])} -> {int(row['errors_new'])}")
    if row["images_new"] < row["images_base"]:
        problems.append(f"ok images {int(row['images_base'])} -> {int(row['images_new'])}")
    improved = []
    if row["d_bpp_pct"] < -tol.bpp_percent:
        improved.append(f"bpp {row['d_bpp_pct']:+.2f} %, a rate improvement beyond the "
                        f"tolerance -{tol.bpp_percent:g} % (fails under --strict)")
    return problems, list(images.missing.get(key, [])), improved


def _lost(base: float, new: float) -> bool:
    """A value that existed in BASELINE and is NaN in NEW (e.g. every image failed)."""
    return not pd.isna(base) and pd.isna(new)


def format_comparison(result: Comparison) -> str:
    """A fixed-width text table of the changes, one line per cell, verdict last."""
    if result.table.empty:
        return "(no results on either side)"
    header = ["dataset", "codec", "setting", "n", "bpp", "Δbpp %", "ΔPSNR dB", "ΔMS-SSIM",
              "streams", "verdict"]
    lines = [header]
    for _, row in result.table.iterrows():
        n_base, n_new = _count(row["images_base"]), _count(row["images_new"])
        lines.append([
            str(row["dataset"]), str(row["codec"]), str(row["setting"]),
            n_new if n_base == n_new else f"{n_base}->{n_new}",
            _fmt(row["bpp_base"], "{:.3f}"),
            _fmt(row["d_bpp_pct"], "{:+.2f}"),
            _fmt(row["d_psnr"], "{:+.3f}"),
            _fmt(row["d_ms_ssim"], "{:+.5f}"),
            str(row["streams"]),
            str(row["verdict"]),
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        cells = [c.ljust(w) if i < 3 or i == 8 else c.rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells + [line[-1]]))
    out.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(out)


def _verdict(failures: list[str], allowed: list[str], improved: list[str]) -> str:
    """``ok``, or ``FAIL: …``, ``allowed: …`` (missing, under --allow-missing) and
    ``improved: …`` (a rate improvement that does not fail), in that order."""
    parts = [f"{label}: {'; '.join(items)}" for label, items in
             (("FAIL", failures), ("allowed", allowed), ("improved", improved)) if items]
    return " | ".join(parts) or "ok"


def _count(value: float) -> str:
    return fmt(value, "{:.0f}")


def _fmt(value: float, pattern: str) -> str:
    if abs(value) < 1e-9:  # summation-order noise of the means, not a change
        value = 0.0
    return fmt(value, pattern)
