"""From the sites a run observed to the ``observer`` table: d', AUC, their ratio to the original.

One row per dataset × codec (× train dataset) × setting × observer × diameter × contrast,
plus the uncoded original (``codec = "original"``, empty setting). For a coded cell, the
sites are those both the cell and the original observed (an image the cell could not code
drops out of *both*), so ``dprime_ratio`` compares the same sites, cut from the same
places, coded and not. The CHO is fitted with two-fold cross-validation by patient
(:mod:`~medbench.benchmark.observers.detectability`) on the cell's own decodes: the
observer trained on the images it reads, as a reader adapts to a codec's look. On a
lossless cell every channel vector equals the original's bit for bit, the same code runs
on the same numbers with the same bootstrap draws, so ``dprime_ratio`` is exactly 1.0.

Columns (:data:`COLUMNS`): ``dprime`` with ``dprime_low``/``dprime_high`` (95 % cluster
bootstrap over patients, see ``ci_method``), ``auc`` (Mann–Whitney), ``n_present`` and
``n_absent`` (sites; each gives one region of each), ``n_images``, ``n_groups``,
``dprime_original`` on the same sites and ``dprime_ratio`` with its interval from the same
replicates, the setting's mean ``bpp`` and ``ratio`` over the images used, ``n_skipped``
(sites of this condition skipped on the originals: saturation, no room), and ``note``
(the spacing used and why sites were skipped).

Images a learned model trained on are left out of every row of their dataset (every
codec, the original too), as the reports leave them out (``medbench.reports.seen``), and
the note says how many.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd

from medbench.benchmark.observers import detectability as det

#: Bootstrap replicates of every interval.
REPLICATES = 1000
#: Fewest patient groups for an interval: a percentile bootstrap of fewer undercovers
#: (the reports' rule for every other interval).
MIN_GROUPS = 10
OBSERVERS = ("cho", "npwe")
ORIGINAL = "original"

#: The ``observer`` table: column → SQL type, in export order (``report/observer.csv``).
COLUMNS: dict[str, str] = {
    "run_id": "TEXT", "dataset": "TEXT", "codec": "TEXT", "train_dataset": "TEXT",
    "setting": "TEXT", "setting_rank": "INTEGER", "observer": "TEXT",
    "diameter_mm": "REAL", "contrast": "REAL", "dprime": "REAL", "dprime_low": "REAL",
    "dprime_high": "REAL", "auc": "REAL", "n_present": "INTEGER", "n_absent": "INTEGER",
    "n_images": "INTEGER", "n_groups": "INTEGER", "dprime_original": "REAL",
    "dprime_ratio": "REAL", "dprime_ratio_low": "REAL", "dprime_ratio_high": "REAL",
    "bpp": "REAL", "ratio": "REAL", "ci_method": "TEXT", "n_skipped": "INTEGER",
    "note": "TEXT",
}


def _seed(seed: int, *parts: object) -> list[int]:
    return [seed, zlib.crc32("\0".join(str(p) for p in parts).encode())]


def _seen_images(results: pd.DataFrame) -> set[tuple[str, str]]:
    """``(dataset, image_id)`` of images a learned model trained on (any row says so)."""
    if results.empty or "seen_in_training" not in results:
        return set()
    flagged = results["seen_in_training"].map(lambda v: v is True or v == 1)
    return set(map(tuple, results.loc[flagged, ["dataset", "image_id"]].astype(str).values))


def _sites(frame: pd.DataFrame, groups: dict[str, int], halves: dict[str, int],
           contrasts: list[float], observer: str) -> det.Sites:
    """The observer's data for ``frame`` (one size; its contrasts are the conditions)."""
    group = frame["group_id"].astype(str).map(groups).to_numpy(dtype=np.int64)
    half = frame["group_id"].astype(str).map(halves).to_numpy(dtype=np.int64)
    condition = frame["contrast"].map({c: i for i, c in enumerate(contrasts)}).to_numpy(
        dtype=np.int64)
    if observer == "cho":
        width = len(frame["cho_present"].iloc[0]) if len(frame) else 0
        present = np.stack(frame["cho_present"].to_list()) if len(frame) else np.zeros((0, width))
        absent = np.stack(frame["cho_absent"].to_list()) if len(frame) else np.zeros((0, width))
    else:
        present = frame["npwe_present"].to_numpy(dtype=np.float64)
        absent = frame["npwe_absent"].to_numpy(dtype=np.float64)
    return det.Sites(group, half, present, absent, condition)


def _unusable(sites: det.Sites, label: int) -> str | None:
    """Why condition ``label`` of these sites supports no d' (None: it does)."""
    mine = sites.labels == label
    if np.count_nonzero(mine) < 2:
        return f"{np.count_nonzero(mine)} site(s): too few for a d'"
    if sites.channelized:
        need = sites.present.shape[1] + 2
        for half in (0, 1):
            train = sites.half != half
            if np.count_nonzero(train & mine) < 2 or np.count_nonzero(train) < need:
                return (f"the CHO needs training sites in both halves of the patients "
                        f"(at least 2 of this condition and {need} in all); add images or "
                        "--nodule-sites")
    return None


def _estimates(coded: det.Sites, original: det.Sites | None, seed: list[int],
               replicates: int, conditions: int) -> list[dict[str, object]]:
    """Per condition (``conditions`` of them, labelled 0..): d', AUC and (with
    ``original``) the ratio, with bootstrap intervals."""
    out: list[dict[str, object]] = []
    for label in range(conditions):
        mine = coded.labels == label
        out.append({"n_present": int(mine.sum()), "n_absent": int(mine.sum()),
                    "n_groups": int(np.unique(coded.group[mine]).size)})
    reasons = [_unusable(coded, label) for label in range(conditions)]
    if all(reasons):
        for row, reason in zip(out, reasons):
            row["ci_method"] = f"none: {reason}"
        return out
    try:
        d, a = det.point(coded)
        reference = det.point(original)[0] if original is not None else None
    except np.linalg.LinAlgError:
        for row in out:
            row["ci_method"] = "none: the CHO's channel covariance is singular on these sites"
        return out
    draws = ratios = None
    groups = int(np.unique(coded.group).size)
    if groups >= MIN_GROUPS:
        weight = det.replicate_weights(coded, replicates, seed)
        draws = det.bootstrap_dprime(coded, weight)
        if original is not None:
            base = det.bootstrap_dprime(original, weight)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratios = np.where(base > 0, draws / base, np.nan)
    for label, (row, reason) in enumerate(zip(out, reasons)):
        if reason is not None:
            row["ci_method"] = f"none: {reason}"
            continue
        row["dprime"], row["auc"] = float(d[label]), float(a[label])
        mine = coded.labels == label
        if np.array_equal(coded.present[mine], coded.absent[mine]):
            # The decodes with and without nodules are the same here: nothing to detect.
            row["dprime"], row["auc"] = 0.0, 0.5
            row["extra_note"] = ("the decodes with and without nodules are identical at "
                                 "every site: d' 0")
        if reference is not None:
            row["dprime_original"] = float(reference[label])
            row["dprime_ratio"] = _ratio(row["dprime"], row["dprime_original"])
        if draws is None:
            row["ci_method"] = (f"none: {groups} patient groups (< {MIN_GROUPS}; a percentile "
                                "bootstrap of so few undercovers)")
            continue
        row["dprime_low"], row["dprime_high"] = det.bc_interval(draws[:, label], row["dprime"])
        if ratios is not None:
            row["dprime_ratio_low"], row["dprime_ratio_high"] = det.bc_interval(
                ratios[:, label], row["dprime_ratio"])
        kept = int(np.isfinite(draws[:, label]).sum())
        row["ci_method"] = (f"cluster bootstrap over {groups} patient groups ({kept} of "
                            f"{replicates} replicates usable), bias-corrected percentile 95 %"
                            + ("; CHO templates of the estimate (2-fold by patient)"
                               if coded.channelized else ""))
    return out


def _ratio(coded: object, original: object) -> float:
    if not isinstance(coded, float) or not isinstance(original, float) \
            or not np.isfinite(original) or original <= 0:
        return float("nan")
    return coded / original


def _notes(skipped: Iterable[str], spacing: Iterable[str], left_out: int) -> str | None:
    parts = []
    counted = Counter(skipped)
    if counted:
        parts.append("skipped: " + "; ".join(f"{n}× {reason}" for reason, n
                                              in counted.most_common(3)))
    sources = sorted(set(spacing))
    if sources:
        parts.append("spacing: " + "; ".join(sources[:2])
                     + (f" (+{len(sources) - 2} more)" if len(sources) > 2 else ""))
    if left_out:
        parts.append(f"{left_out} image(s) a learned model trained on left out")
    return " | ".join(parts) or None


def summarize(sites: pd.DataFrame, results: pd.DataFrame, seed: int, run_id: str = "",
              replicates: int = REPLICATES) -> pd.DataFrame:
    """The ``observer`` table of one run.

    Parameters
    ----------
    sites
        The run's site rows (:meth:`ResultsStore.observer_sites`): ``dataset, image_id,
        group_id, codec, setting, site, diameter_mm, contrast, status, note,
        cho_present, cho_absent, npwe_present, npwe_absent, spacing_source``.
    results
        The run's result rows (for ``train_dataset``, ``setting_rank``, ``bpp``,
        ``ratio`` and ``seen_in_training``).
    seed
        The run's seed: the halves of the CHO's cross-validation and the bootstrap draws.
    run_id
        Written into every row.
    replicates
        Bootstrap replicates.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`COLUMNS`, originals first, then cells by dataset, codec
        and setting rank.
    """
    if sites.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    seen = _seen_images(results)
    keys = list(zip(sites["dataset"].astype(str), sites["image_id"].astype(str)))
    dropped = pd.Series([k in seen for k in keys], index=sites.index)
    left_out = {d: len({k for k, x in zip(keys, dropped) if x and k[0] == d})
                for d in sites["dataset"].unique()}
    sites = sites[~dropped]
    rows = []
    for dataset, data in sites.groupby("dataset", sort=True):
        rows += _dataset_rows(str(dataset), data, results, seed, run_id, replicates,
                              left_out.get(dataset, 0))
    table = pd.DataFrame(rows)
    for name in COLUMNS:
        if name not in table:
            table[name] = None
    table["_original"] = table["codec"] != ORIGINAL
    table = table.sort_values(["dataset", "_original", "codec", "setting_rank", "setting",
                               "observer", "diameter_mm", "contrast"], kind="stable")
    return table[list(COLUMNS)].reset_index(drop=True)


def _dataset_rows(dataset: str, data: pd.DataFrame, results: pd.DataFrame, seed: int,
                  run_id: str, replicates: int, left_out: int) -> list[dict]:
    """The rows of one dataset: per nodule size, the original's, then each cell's."""
    originals = data[data["codec"] == ""]
    ok = originals[(originals["status"] == "ok") & (originals["site"] >= 0)]
    names = sorted(ok["group_id"].astype(str).unique())
    groups = {g: i for i, g in enumerate(names)}
    halves = det.halves(names, seed)
    cells = data[(data["codec"] != "") & (data["status"] == "ok") & (data["site"] >= 0)]
    info = _cell_info(results, dataset)
    rows: list[dict] = []
    for diameter, size in originals.groupby("diameter_mm"):
        contrasts = sorted(size["contrast"].unique())
        common = {c: _condition(size[size["contrast"] == c], run_id, dataset, diameter, c,
                                left_out) for c in contrasts}
        reference = ok[ok["diameter_mm"] == diameter].set_index(["image_id", "site"])
        reference = reference.sort_index()
        for observer in OBSERVERS:
            estimates = _estimates(_sites(reference, groups, halves, contrasts, observer),
                                   None, _seed(seed, dataset, "", "", diameter, observer),
                                   replicates, len(contrasts))
            for contrast, estimate in zip(contrasts, estimates):
                n_images = reference[reference["contrast"] == contrast].index \
                    .get_level_values(0).nunique()
                rows.append(_row(common[contrast], estimate, codec=ORIGINAL, setting="",
                                 observer=observer, n_images=n_images,
                                 dprime_original=estimate.get("dprime"),
                                 dprime_ratio=1.0 if "dprime" in estimate else None))
        mine = cells[cells["diameter_mm"] == diameter]
        for (codec, setting), cell in mine.groupby(["codec", "setting"], sort=True):
            cell = cell.set_index(["image_id", "site"]).sort_index()
            both = cell.index.intersection(reference.index)
            cell, same = cell.loc[both], reference.loc[both]
            extra = info.get((codec, setting), {})
            for observer in OBSERVERS:
                estimates = _estimates(
                    _sites(cell, groups, halves, contrasts, observer),
                    _sites(same, groups, halves, contrasts, observer),
                    _seed(seed, dataset, codec, setting, diameter, observer), replicates,
                    len(contrasts))
                for contrast, estimate in zip(contrasts, estimates):
                    images = cell[cell["contrast"] == contrast].index.get_level_values(0)
                    images = images.unique()
                    rows.append(_row(common[contrast], estimate, codec=codec, setting=setting,
                                     observer=observer, n_images=len(images),
                                     train_dataset=extra.get("train_dataset"),
                                     setting_rank=extra.get("setting_rank"),
                                     **_rates(extra.get("rates"), images)))
    return rows


def _row(common: dict, estimate: dict, **columns: object) -> dict:
    """One output row: the condition's columns, the cell's, then the estimate (whose own
    note, if any, is added to the condition's)."""
    row = {**common, **columns, **estimate}
    extra = row.pop("extra_note", None)
    if extra:
        row["note"] = f"{extra} | {row['note']}" if row.get("note") else extra
    return row


def _condition(rows: pd.DataFrame, run_id: str, dataset: str, diameter: float,
               contrast: float, left_out: int) -> dict[str, object]:
    """The columns every row of one condition shares: skips and the note."""
    skipped = rows[rows["status"] == "skipped"]
    return {"run_id": run_id, "dataset": dataset, "diameter_mm": diameter,
            "contrast": contrast,
            "n_skipped": int((skipped["site"] >= 0).sum())
            + sum(map(_shortfall, skipped.loc[skipped["site"] < 0, "note"])),
            "note": _notes(skipped["note"].dropna(), rows["spacing_source"].dropna(),
                           left_out)}


def _shortfall(note: object) -> int:
    """Sites a condition's ``only N of M sites fit`` note says are missing (0 otherwise)."""
    text = str(note or "")
    if not text.startswith("only "):
        return 0
    try:
        got, _, wanted = text[5:].split(" ", 3)[:3]
        return max(0, int(wanted) - int(got))
    except ValueError:
        return 0


def _cell_info(results: pd.DataFrame, dataset: str) -> dict[tuple[str, str], dict]:
    """Per ``(codec, setting)`` of ``dataset``: train dataset, rank, and per image bpp
    and ratio (ok rows only)."""
    if results.empty:
        return {}
    mine = results[(results["dataset"].astype(str) == dataset) & (results["status"] == "ok")]
    out = {}
    for (codec, setting), rows in mine.groupby(["codec", "setting"], sort=False):
        first = rows.iloc[0]
        out[(codec, setting)] = {
            "train_dataset": first.get("train_dataset"),
            "setting_rank": None if pd.isna(first.get("setting_rank")) else
            int(first.get("setting_rank")),
            "rates": rows.set_index(rows["image_id"].astype(str))[["bpp", "ratio"]]}
    return out


def _rates(rates: pd.DataFrame | None, images: pd.Index) -> dict[str, float | None]:
    """Mean bpp and ratio of the setting over ``images``."""
    if rates is None:
        return {"bpp": None, "ratio": None}
    chosen = rates.reindex([str(i) for i in images]).dropna()
    if chosen.empty:
        return {"bpp": None, "ratio": None}
    return {"bpp": float(chosen["bpp"].mean()), "ratio": float(chosen["ratio"].mean())}
