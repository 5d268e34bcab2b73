"""The "At 10:1 / 30:1" table: every codec at exactly matched rate (``run --target``).

Per dataset and target, one line per codec (and train dataset): mean PSNR, MS-SSIM and
the diagnostic-region metrics (``roi_psnr``, ``roi_ssim``) with 95 % confidence
intervals (:func:`~medbench.reports.means.setting_means`: Student-t where every image is
its own group, else the cluster bootstrap), the achieved mean ratio and how many images
met the target within its tolerance, ranked by PSNR. The rows are the ``target:…`` cells
(:mod:`medbench.benchmark.targets`), coded per image at the setting that hits the target.
Every codec keeps its line; a line whose codec missed the tolerance on any image is marked
``†`` and its note says why (best integer, cannot spend the bytes, rate jumps...).
"""

from __future__ import annotations

import math

import pandas as pd

from medbench.benchmark.targets import (
    PREFIX,
    PSNR_TOLERANCE,
    RATE_TOLERANCE,
    Target,
    parse_target_setting,
)
from medbench.reports.means import group_kind, interval, setting_means

#: What fills the table when a run has no target rows.
EMPTY = "No rate-matched rows in this run: `medbench run --target ratio=10,30` fills this table."
COLUMNS = ["dataset", "target", "rank", "codec", "train_dataset", "images", "met", "ratio",
           "bpp", "psnr", "psnr_ci", "ms_ssim", "ms_ssim_ci", "roi_psnr", "roi_psnr_ci",
           "roi_ssim", "roi_ssim_ci", "ci_method", "note", "rule", "mark"]
#: ``mark`` of a line whose codec missed the tolerance on some image.
OFF = "†"
#: (column, header, format) of the rendered table; ``pm`` formats add the ``_ci``.
TABLE = [
    ("dataset", "dataset", "{}"), ("target", "target", "{}"), ("rank", "#", "{}"),
    ("codec", "codec", "{}"), ("train_dataset", "train", "{}"), ("images", "n", "{}"),
    ("mark", OFF, "{}"), ("met", "met", "{}"), ("rule", "≤ rate", "{}"),
    ("ratio", "ratio", "{:.2f}"), ("psnr", "PSNR dB", "pm{:.2f}"),
    ("ms_ssim", "MS-SSIM", "pm{:.4f}"), ("roi_psnr", "ROI PSNR dB", "pm{:.2f}"),
    ("roi_ssim", "ROI SSIM", "pm{:.4f}"), ("note", "note", "{}"),
]


def target_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rate-matched rows (``setting`` starting ``target:``) of ``rows``."""
    if rows.empty or "setting" not in rows:
        return rows.iloc[0:0]
    return rows[rows["setting"].astype(str).str.startswith(PREFIX)]


def targets_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per dataset × target × codec (× train dataset), ranked by PSNR.

    Parameters
    ----------
    rows : pandas.DataFrame
        Result rows; only the ``target:…`` ones are used.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`. ``met``: ``k/n``, images whose coded point obeys the
        target's rule *within its tolerance* (``target_met``); ``rule``: ``k/n``, images
        whose point obeys the rule (rate not above the target, PSNR not below it), within
        the tolerance or not; ``mark``: :data:`OFF` when ``met`` is short of ``n``;
        ``ratio``/``bpp``: achieved means; ``rank``: 1 = highest mean PSNR within the
        dataset and target among the codecs that met the target on every image, then
        those that obeyed the rule on every image, then the others; ``note``: the first
        reason the tolerance was missed, when any image missed it.
    """
    rows = target_rows(rows)
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    means = setting_means(rows)
    out = []
    for _, line in means.iterrows():
        keys = ((rows["dataset"] == line["dataset"]) & (rows["codec"] == line["codec"])
                & (rows["setting"] == line["setting"]))
        if pd.isna(line["train_dataset"]):
            keys &= rows["train_dataset"].isna()
        else:
            keys &= rows["train_dataset"] == line["train_dataset"]
        group = rows[keys]
        ok = group[group["status"] == "ok"]
        met = pd.to_numeric(ok.get("target_met"), errors="coerce").fillna(0).astype(bool)
        notes = [n for n in ok.get("target_note", pd.Series(dtype=object)).dropna()
                 if not bool(met.loc[ok["target_note"] == n].all())]
        errors = group.loc[group["status"] != "ok", "error"].dropna()
        target = parse_target_setting(line["setting"])
        obeys = sum(_obeys(target, r) for _, r in ok.iterrows())
        entry = {
            "dataset": line["dataset"], "codec": line["codec"],
            "train_dataset": line["train_dataset"],
            "target": target.describe(),
            "images": int(line["images"]), "met": f"{int(met.sum())}/{len(ok)}",
            "rule": f"{obeys}/{len(ok)}",
            "mark": OFF if int(met.sum()) < len(group) or not len(group) else "",
            "ratio": _mean(ok, "ratio"), "bpp": line["bpp"],
            "psnr": line["psnr"], "psnr_ci": line["psnr_ci"],
            "ms_ssim": line["ms_ssim"], "ms_ssim_ci": line["ms_ssim_ci"],
            "ci_method": line["ci_method"],
            "note": notes[0] if notes else (errors.iloc[0] if len(errors) else None),
        }
        for name in ("roi_psnr", "roi_ssim"):
            entry[name], entry[f"{name}_ci"] = _region_mean(ok, name)
        out.append(entry)
    table = pd.DataFrame(out)
    # Codecs at the target on every image rank first, then those below its rate on some
    # (they had fewer bytes, never more), then those above it or with errors.
    table["_tier"] = [0 if _all(m) else 1 if _all(r) else 2
                      for m, r in zip(table["met"], table["rule"])]
    table["_order"] = table["psnr"].fillna(-math.inf)
    table = table.sort_values(["dataset", "target", "_tier", "_order"],
                              ascending=[True, True, True, False], kind="stable")
    table["rank"] = table.groupby(["dataset", "target"]).cumcount() + 1
    return table[COLUMNS].reset_index(drop=True)


def _all(count: str) -> bool:
    """Whether a ``k/n`` count is all of at least one."""
    done, total = count.split("/")
    return done == total and total != "0"


def _obeys(target: Target, row: pd.Series) -> bool:
    """Whether a coded point obeys the target's rule (tolerance aside)."""
    value = pd.to_numeric(row.get(target.kind), errors="coerce")  # ratio, bpp or psnr
    if pd.isna(value):
        return False
    if target.kind == "ratio":
        return bool(value >= target.value * (1 - 1e-12))
    if target.kind == "bpp":
        return bool(value <= target.value * (1 + 1e-12))
    return bool(value >= target.value)


def _mean(ok: pd.DataFrame, column: str) -> float:
    values = pd.to_numeric(ok.get(column), errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def _region_mean(ok: pd.DataFrame, column: str) -> tuple[float, float]:
    """Mean and 95 % half-width of a region metric over the images that have a region
    (finite values; clustered by group where images share one, like the other columns)."""
    if column not in ok:
        return math.nan, math.nan
    values = pd.to_numeric(ok[column], errors="coerce")
    values = values[values.notna() & (values.abs() != math.inf)]
    if values.empty:
        return math.nan, math.nan
    groups = None
    if "group_id" in ok:
        ids = ok.loc[values.index, "group_id"]
        images = ok.loc[values.index, "image_id"].astype(str)
        groups = ids.where(ids.notna(), images).astype(str)
    return float(values.mean()), interval(values, groups, group_kind(ok)).halfwidth


def about() -> str:
    """The paragraph above the table (its caption): the rule, the tolerance, the marks."""
    return (
        "Each codec coded every image at the setting that hits the target on that image "
        "(`run --target`). The rule: rates never exceed the target (achieved ratio ≥ "
        f"target ratio). met: images within the tolerance, at most "
        f"{100 * RATE_TOLERANCE:g} % below the target rate (at most {PSNR_TOLERANCE:g} dB "
        "above a PSNR target), or on an integer knob (quality, JPEG-LS near) the best "
        "integer, whose next value breaks the rule (its note says how far it lies); "
        "≤ rate: images that obey the rule, within the tolerance or not. "
        f"{OFF} marks a codec that missed the tolerance on some image, and its note says "
        "why: a codec that cannot spend the bytes or whose rate jumps across the tolerance, a "
        "codec without a rate knob (learned models) at its nearest setting, or a target "
        "it cannot reach (above the rate). Means ± the 95 % CI half-width (Student-t "
        "where every image is its own patient/group, else a cluster bootstrap over "
        "groups; targets.csv: ci_method), ranked by PSNR: codecs within the tolerance on "
        "every image first, then those below the target rate on some, then the others. "
        "ROI: inside the diagnostic regions (nodules, --masks), over the images that have "
        "one.")


__all__ = ["EMPTY", "OFF", "about", "target_rows", "targets_table"]
