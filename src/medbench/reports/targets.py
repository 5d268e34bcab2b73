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
           "roi_ssim", "roi_ssim_ci", "ci_method", "note", "rule", "mark",
           "next", "psnr_diff_next", "psnr_diff_next_ci", "paired_images", "paired_method",
           "vs_next"]
#: ``vs_next`` of a line whose paired difference to the next line's codec is within its CI.
TIE = "tie"
#: What a target's table is ranked by (the other side of what the target pins).
_RANKED_BY = {"ratio": "psnr", "bpp": "psnr", "psnr": "bpp"}
#: ``mark`` of a line whose codec missed the tolerance on some image.
OFF = "†"
#: (column, header, format) of the rendered table; ``pm`` formats add the ``_ci``.
TABLE = [
    ("dataset", "dataset", "{}"), ("target", "target", "{}"), ("rank", "#", "{}"),
    ("codec", "codec", "{}"), ("train_dataset", "train", "{}"), ("images", "n", "{}"),
    ("mark", OFF, "{}"), ("met", "met", "{}"), ("rule", "≤ rate", "{}"),
    ("ratio", "ratio", "{:.2f}"), ("psnr", "PSNR dB", "pm{:.2f}"),
    ("ms_ssim", "MS-SSIM", "pm{:.4f}"), ("roi_psnr", "ROI PSNR dB", "pm{:.2f}"),
    ("roi_ssim", "ROI SSIM", "pm{:.4f}"), ("vs_next", "vs next ↓ (paired)", "{}"),
    ("note", "note", "{}"),
]


def target_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rate-matched rows (``setting`` starting ``target:``) of ``rows``."""
    if rows.empty or "setting" not in rows:
        return rows.iloc[0:0]
    return rows[rows["setting"].astype(str).str.startswith(PREFIX)]


def targets_table(rows: pd.DataFrame, means: pd.DataFrame | None = None) -> pd.DataFrame:
    """One line per dataset × target × codec (× train dataset), ranked by PSNR.

    Parameters
    ----------
    rows : pandas.DataFrame
        Result rows; only the ``target:…`` ones are used.
    means : pandas.DataFrame, optional
        Their :func:`~medbench.reports.means.setting_means`, where the caller has them
        (a report computes them in the store).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`. ``met``: ``k/n``, images whose coded point obeys the
        target's rule *within its tolerance* (``target_met``); ``rule``: ``k/n``, images
        whose point obeys the rule (rate not above the target, PSNR not below it), within
        the tolerance or not; ``mark``: :data:`OFF` when ``met`` is short of ``n``;
        ``ratio``/``bpp``: achieved means; ``rank``: 1 = highest mean PSNR (for a PSNR
        target: lowest mean bpp) within the dataset and target among the codecs that
        obeyed the rule on every image (at the target, or below its rate: a codec that
        missed the tolerance by spending fewer bytes competes, it did not cheat), then the
        others (above the rate, or failed, on some image); ``note``: the first reason the
        tolerance was missed, when any image missed it. ``next``, ``psnr_diff_next``
        (± ``psnr_diff_next_ci``, on ``paired_images``, ``paired_method``) and
        ``vs_next``: this line against the next-ranked one on the same images (in bpp for
        a PSNR target), ``tie`` where the interval includes 0.
    """
    rows = target_rows(rows)
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    if means is None:
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
        notes = _missed_notes(ok, met)
        errors = group.loc[group["status"] != "ok", "error"].dropna()
        target = parse_target_setting(line["setting"])
        obeys = int(_obeys(target, ok).sum())
        entry = {
            "dataset": line["dataset"], "codec": line["codec"],
            "train_dataset": line["train_dataset"],
            "target": target.describe(), "_setting": line["setting"],
            "_metric": _RANKED_BY[target.kind],
            "images": int(line["images"]), "met": f"{int(met.sum())}/{len(ok)}",
            "rule": f"{obeys}/{len(ok)}",
            "mark": OFF if int(met.sum()) < len(group) or not len(group) else "",
            "ratio": _mean(ok, "ratio"), "bpp": line["bpp"],
            "psnr": line["psnr"], "psnr_ci": line["psnr_ci"],
            "ms_ssim": line["ms_ssim"], "ms_ssim_ci": line["ms_ssim_ci"],
            "ci_method": line["ci_method"],
            "note": notes[0] if notes else (errors.iloc[0] if len(errors) else None),
            # Ranked first: at or below the target's rate on every image, none failed.
            "_tier": 0 if len(group) and obeys == len(group) else 1,
        }
        for name in ("roi_psnr", "roi_ssim"):
            entry[name], entry[f"{name}_ci"] = _region_mean(ok, name)
        out.append(entry)
    table = pd.DataFrame(out)
    # Codecs that obeyed the rule on every image (at the target, or below its rate: fewer
    # bytes, never more) rank by PSNR: one that missed the tolerance by spending *fewer*
    # bytes and still has the higher PSNR is the better codec. Codecs above the rate or
    # with errors on some image rank after them.
    # Rate targets rank by PSNR (higher first); a PSNR target ranks by bpp (lower first).
    table["_order"] = [(-line["bpp"] if line["_metric"] == "bpp" else line["psnr"])
                       for _, line in table.iterrows()]
    table["_order"] = table["_order"].fillna(-math.inf)
    table = table.sort_values(["dataset", "target", "_tier", "_order"],
                              ascending=[True, True, True, False], kind="stable")
    table["rank"] = table.groupby(["dataset", "target"]).cumcount() + 1
    table = _paired_with_next(table.reset_index(drop=True), rows)
    return table[COLUMNS].reset_index(drop=True)


def _missed_notes(ok: pd.DataFrame, met: pd.Series) -> list[str]:
    """The rows' distinct ``target_note`` texts, in the order they first appear, of which
    some image missed the tolerance (one pass: a mask per row's note was quadratic, 10 s
    at 10⁵ rows)."""
    if "target_note" not in ok:
        return []
    notes = ok["target_note"]
    all_met = met.groupby(notes).all()  # NaN notes are no group
    return [n for n in pd.unique(notes.dropna()) if not bool(all_met[n])]


def _paired_with_next(table: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Each line's PSNR minus the next-ranked line's, on the images both coded.

    The per-codec intervals are of each mean; whether two neighbours differ is a question
    about the *difference* on the same images, which varies far less from image to image.
    Its interval is :func:`~medbench.reports.means.interval` of the per-image differences
    (Student-t, or the cluster bootstrap over the images' groups); ``vs_next`` reads
    ``tie`` when that interval includes 0.
    """
    values = {name: [] for name in ("next", "psnr_diff_next", "psnr_diff_next_ci",
                                    "paired_images", "paired_method", "vs_next")}
    for i in range(len(table)):
        line = table.iloc[i]
        following = table.iloc[i + 1] if i + 1 < len(table) else None
        if following is None or (following["dataset"], following["target"]) != \
                (line["dataset"], line["target"]):
            for key, empty in (("next", None), ("psnr_diff_next", math.nan),
                               ("psnr_diff_next_ci", math.nan), ("paired_images", 0),
                               ("paired_method", None), ("vs_next", None)):
                values[key].append(empty)
            continue
        metric = line["_metric"]
        mine, theirs = _by_image(rows, line, metric), _by_image(rows, following, metric)
        both = mine.add_suffix("_a").join(theirs.add_suffix("_b"), how="inner")
        diff = both["value_a"] - both["value_b"]
        kinds = rows.loc[rows["dataset"] == line["dataset"], ["group_kind"]] \
            if "group_kind" in rows else rows.iloc[0:0]  # one column: not a copy of the rows
        found = interval(diff, both["group_a"], group_kind(kinds))
        mean = float(diff.mean()) if len(diff) else math.nan
        values["next"].append(_label(following))
        values["psnr_diff_next"].append(mean)
        values["psnr_diff_next_ci"].append(found.halfwidth)
        values["paired_images"].append(int(len(diff)))
        values["paired_method"].append(found.method)
        values["vs_next"].append(_versus(mean, found.halfwidth, _label(following), metric))
    return table.assign(**values)


def _label(line: pd.Series) -> str:
    train = line.get("train_dataset")
    return str(line["codec"]) + (f" ({train})" if isinstance(train, str) and train else "")


def _by_image(rows: pd.DataFrame, line: pd.Series, metric: str) -> pd.DataFrame:
    """Finite ``metric`` (``value``) and group of each ``ok`` image of a table line, by
    image id."""
    keys = ((rows["dataset"] == line["dataset"]) & (rows["codec"] == line["codec"])
            & (rows["status"] == "ok") & (rows["setting"] == line["_setting"]))
    train = line.get("train_dataset")
    if "train_dataset" in rows:
        keys &= (rows["train_dataset"].isna() if not isinstance(train, str)
                 else rows["train_dataset"] == train)
    own = rows[keys]
    value = pd.to_numeric(own[metric], errors="coerce")
    own, value = own[value.notna() & (value.abs() != math.inf)], value.dropna()
    groups = own["group_id"] if "group_id" in own else own["image_id"]
    groups = groups.where(groups.notna(), own["image_id"]).astype(str)
    return pd.DataFrame({"value": value[own.index].to_numpy(), "group": groups.to_numpy()},
                        index=own["image_id"].astype(str).to_numpy())


def _versus(mean: float, half: float, other: str, metric: str = "psnr") -> str | None:
    """``+0.38 ± 0.12 dB``, ``+0.02 ± 0.10 dB (tie)`` or ``+0.02 dB (no interval)``."""
    if math.isnan(mean):
        return f"no image in common with {other}"
    unit, spec = ("bpp", "{:+.4f}") if metric == "bpp" else ("dB", "{:+.2f}")
    text = spec.format(mean)
    if math.isnan(half):
        return f"{text} {unit} (no interval)"
    text += f" ± {spec.format(half)[1:]} {unit}"
    return text + f" ({TIE})" if abs(mean) <= half else text


def _obeys(target: Target, rows: pd.DataFrame) -> pd.Series:
    """Whether each coded point obeys the target's rule (tolerance aside); a missing
    value does not."""
    if target.kind not in rows:
        return pd.Series(False, index=rows.index)
    value = pd.to_numeric(rows[target.kind], errors="coerce")  # ratio, bpp or psnr
    if target.kind == "ratio":
        return (value >= target.value * (1 - 1e-12)).fillna(False)
    if target.kind == "bpp":
        return (value <= target.value * (1 + 1e-12)).fillna(False)
    return (value >= target.value).fillna(False)


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
        "it cannot reach (above the rate). Means ± the 95 % CI half-width of each mean "
        "(targets.csv: ci_method). Ranked by PSNR (a PSNR target: by bpp) among the codecs "
        "at or below the target rate on every image, then the others. vs next: this codec "
        "minus the next one on the same images, ± the 95 % CI of that paired difference "
        "(Student-t, or a cluster bootstrap over patients where images share them); "
        "tie: the interval includes 0, so the data do not tell the two apart. "
        "ROI: inside the diagnostic regions (nodules, --masks), over the images that have "
        "one.")


__all__ = ["EMPTY", "OFF", "TIE", "about", "target_rows", "targets_table"]
