"""Learned vs classical by training budget: BD-rate and BD-PSNR against JPEG 2000 of each
learned codec's milestone checkpoints, as a function of the budget that trained them.

``medbench train --budget``/``--steps`` keeps checkpoints at doubling budgets with every
model, and ``medbench run --milestones`` codes them as settings ``<model>@<budget>``
(``dcae`` setting ``nih-l16-lam0.01@4m``). Milestones of one label across a codec's λ
models form one RD curve (the codec as it stood after that budget); each such curve is
compared with JPEG 2000 on the same images exactly as in the BD-rate section
(:func:`~medbench.reports.bd.bd_against`). The other report sections leave milestone rows
out (:func:`split_milestones`): they describe the finished models.

Where the trend would cross JPEG 2000 is said only when the points support it
(:func:`crossing`): at least :data:`MIN_TREND_POINTS` budgets, BD-PSNR rising at every
doubling, and a straight line in log-budget reaching 0 dB within :data:`MAX_REACH` times
the largest budget measured. Otherwise the section says it is not predictable.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medbench.reports.bd import bd_against
from medbench.reports.curves import ANCHOR, Curve, curves

#: Separates a model from its milestone label in a setting name.
SEPARATOR = "@"
#: Fewest milestone budgets a crossing is predicted from.
MIN_TREND_POINTS = 3
#: A predicted crossing further than this factor beyond the largest budget is not given.
MAX_REACH = 4.0
COLUMNS = ["dataset", "codec", "train_dataset", "milestone", "budget", "unit", "device_s",
           "steps", "images_seen", "models", "points", "bd_rate_psnr", "bd_psnr",
           "reliable", "note"]
HOW_TO = ("No milestone rows in this run. Train with `medbench train --budget 20m` (or "
          "`--steps N`), which keeps checkpoints at 1, 2, 4 … minutes with each model, then "
          "run `medbench run --milestones` to code them and see how the verdict moves with "
          "training budget.")
_LABEL = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|steps)$")
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def is_milestone(setting: str) -> bool:
    """Whether a learned setting names a milestone checkpoint (``<model>@<budget>``)."""
    return SEPARATOR in str(setting)


def split_milestones(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of finished models and classical codecs, rows of milestone checkpoints).

    A learned ``--target`` row coded at a milestone (``knob`` ``<model>@<budget>``, which
    stores from before milestones were kept out of rate matching may hold) is in neither:
    it is no finished model's point, and no budget's point at a setting of its own.
    """
    if rows.empty or "setting" not in rows:
        return rows, rows.iloc[0:0]
    learned = (rows["codec_kind"].fillna("learned").eq("learned") if "codec_kind" in rows
               else pd.Series(True, index=rows.index))
    mask = rows["setting"].astype(str).str.contains(SEPARATOR, regex=False) & learned
    knob = (rows["knob"].fillna("").astype(str).str.contains(SEPARATOR, regex=False)
            if "knob" in rows else pd.Series(False, index=rows.index))
    return rows[~mask & ~(knob & learned)], rows[mask]


def label_amount(label: str) -> tuple[float, str]:
    """(amount, unit) of a milestone label: seconds for ``4m``, steps for ``64steps``;
    (NaN, "") for a label of another form."""
    match = _LABEL.match(label)
    if not match:
        return math.nan, ""
    value, unit = float(match.group(1)), match.group(2)
    return (value, "steps") if unit == "steps" else (value * _SECONDS[unit], "s")


def budget_table(rows: pd.DataFrame, anchors: dict[str, Curve] | None = None
                 ) -> pd.DataFrame:
    """BD-rate and BD-PSNR against JPEG 2000 of every milestone curve in ``rows``.

    Parameters
    ----------
    rows : pandas.DataFrame
        A run's rows: the anchor's and the milestone checkpoints' (others are ignored).
    anchors : dict of str to Curve, optional
        Each dataset's anchor curve, where the caller has it (a report computes it in
        the store; ``rows`` then need only be the milestones').

    Returns
    -------
    pandas.DataFrame
        One line per dataset × codec × train dataset × milestone label (:data:`COLUMNS`),
        sorted by budget; ``device_s``, ``steps`` and ``images_seen`` are the means over
        the label's models of what their ``model_info`` budget records.
    """
    main, milestones = split_milestones(rows)
    ok = milestones[milestones["status"] == "ok"] if len(milestones) else milestones
    if ok.empty:
        return pd.DataFrame(columns=COLUMNS)
    if anchors is None:
        anchors = {c.dataset: c for c in curves(main[main["codec"] == ANCHOR])
                   if not c.train_dataset}
    labels = ok["setting"].astype(str).str.rsplit(SEPARATOR, n=1).str[-1]
    out = []
    for label, part in ok.groupby(labels, sort=False):
        amount, unit = label_amount(str(label))
        spent = _spent(part)
        for curve in curves(part):
            anchor = anchors.get(curve.dataset)
            if anchor is None:
                bd = {"note": f"no {ANCHOR} rows on {curve.dataset}", "reliable": False}
            else:
                bd = bd_against(anchor, curve)
            key = (curve.dataset, curve.codec, curve.train_dataset)
            out.append({
                "dataset": curve.dataset, "codec": curve.codec,
                "train_dataset": curve.train_dataset, "milestone": str(label),
                "budget": amount, "unit": unit, **spent.get(key, {}),
                "models": int(curve.points["setting"].nunique()),
                "points": bd.get("points", len(curve.points)),
                "bd_rate_psnr": bd.get("bd_rate_psnr", math.nan),
                "bd_psnr": bd.get("bd_psnr", math.nan),
                "reliable": bool(bd.get("reliable", False)), "note": bd.get("note", ""),
            })
    table = pd.DataFrame(out, columns=COLUMNS)
    return table.sort_values(["dataset", "codec", "train_dataset", "unit", "budget"],
                             kind="stable", na_position="last").reset_index(drop=True)


def _spent(part: pd.DataFrame) -> dict[tuple, dict[str, float]]:
    """Mean recorded budget (device s, steps, images seen) per dataset × codec × train."""
    out: dict[tuple, dict[str, float]] = {}
    if "model_info" not in part:
        return out
    for key, group in part.groupby(["dataset", "codec", "train_dataset"], dropna=False):
        budgets = {}
        for setting, info in group.groupby("setting")["model_info"].first().items():
            try:
                value = json.loads(info).get("budget") if isinstance(info, str) else None
            except (ValueError, AttributeError):
                value = None
            if isinstance(value, dict):
                budgets[setting] = value
        stats = {}
        for name, field in (("device_s", "wall_s"), ("steps", "steps"),
                            ("images_seen", "images_seen")):
            values = [b[field] for b in budgets.values()
                      if isinstance(b.get(field), (int, float))]
            stats[name] = float(np.mean(values)) if values else math.nan
        out[tuple(None if pd.isna(k) else k for k in key)] = stats
    return out


def crossing(budgets: np.ndarray, bd_psnr: np.ndarray) -> tuple[float | None, str]:
    """The budget at which BD-PSNR would reach 0 dB if the trend held, and why (not).

    Parameters
    ----------
    budgets, bd_psnr : numpy.ndarray
        One codec's milestone budgets (positive) and BD-PSNR values, in the same order.

    Returns
    -------
    (float or None, str)
        The predicted budget (None unless the points support one) and one sentence.
    """
    keep = np.isfinite(budgets) & np.isfinite(bd_psnr) & (budgets > 0)
    x, y = np.asarray(budgets, float)[keep], np.asarray(bd_psnr, float)[keep]
    order = np.argsort(x)
    x, y = x[order], y[order]
    if len(x) and y[-1] >= 0:
        first = x[np.argmax(y >= 0)]
        return float(first), "at or above JPEG 2000 (BD-PSNR ≥ 0) from this budget on"
    if len(x) < MIN_TREND_POINTS:
        return None, (f"not predictable from these points (fewer than {MIN_TREND_POINTS} "
                      f"budgets)")
    if not np.all(np.diff(y) > 0):
        return None, "not predictable from these points (BD-PSNR does not rise at every step)"
    slope, intercept = np.polyfit(np.log2(x), y, 1)
    if slope <= 0:
        return None, "not predictable from these points (no upward trend)"
    at = float(2 ** (-intercept / slope))
    if at > MAX_REACH * x[-1]:
        return None, (f"not predictable from these points (the trend, {slope:+.2f} dB per "
                      f"doubling, reaches 0 dB beyond {MAX_REACH:g}× the largest budget)")
    return at, (f"would reach JPEG 2000 at about this budget if the trend held "
                f"({slope:+.2f} dB per doubling of the budget)")


def trend_table(table: pd.DataFrame) -> pd.DataFrame:
    """One line per dataset × codec × train dataset × unit: the latest BD-PSNR and the
    predicted crossing (:func:`crossing`)."""
    out = []
    keys = ["dataset", "codec", "train_dataset", "unit"]
    for key, group in table.groupby(keys, dropna=False, sort=True):
        at, why = crossing(group["budget"].to_numpy(float), group["bd_psnr"].to_numpy(float))
        unit = key[3]
        out.append({**dict(zip(keys, key)), "milestones": len(group),
                    "largest": group["milestone"].iloc[-1],
                    "bd_psnr_largest": group["bd_psnr"].iloc[-1],
                    "crosses_at": _format_amount(at, unit) if at is not None else "",
                    "verdict": why})
    return pd.DataFrame(out)


def _format_amount(amount: float, unit: str) -> str:
    if unit == "steps":
        return f"{amount:,.0f} steps"
    for name, size in (("h", 3600.0), ("m", 60.0)):
        if amount >= size:
            return f"{amount / size:.3g} {name}"
    return f"{amount:.3g} s"


def budget_figure(table: pd.DataFrame, dataset: str, unit: str, stem: Path) -> Path:
    """BD-PSNR against training budget (log x) for one dataset, one line per codec."""
    fig = Figure(figsize=(5.0, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    part = table[(table["dataset"] == dataset) & (table["unit"] == unit)]
    part = part[np.isfinite(part["bd_psnr"].astype(float)) & (part["budget"] > 0)]
    for (codec, train), group in part.groupby(["codec", "train_dataset"], dropna=False):
        label = codec if pd.isna(train) else f"{codec} (train {train})"
        ax.plot(group["budget"], group["bd_psnr"], marker="o", label=label)
    ax.axhline(0.0, color="black", linewidth=0.8, linestyle="--", label=ANCHOR)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training budget (device s)" if unit == "s" else "training budget (steps)")
    ax.set_ylabel(f"BD-PSNR vs {ANCHOR} (dB)")
    ax.set_title(f"{dataset}: learned vs classical by budget", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    FigureCanvasAgg(fig)
    path = stem.with_suffix(".png")
    fig.savefig(path, dpi=100, format="png", metadata={"Software": None},
                bbox_inches="tight")
    return path


TABLE_COLUMNS = [
    ("dataset", "dataset", "{}"), ("codec", "codec", "{}"), ("train_dataset", "train", "{}"),
    ("milestone", "budget", "{}"), ("device_s", "device s", "{:.0f}"),
    ("steps", "steps", "{:.0f}"), ("images_seen", "images seen", "{:.0f}"),
    ("models", "models", "{}"), ("bd_rate_psnr", "BD-rate PSNR %", "{:+.1f}"),
    ("bd_psnr", "BD-PSNR dB", "{:+.2f}"), ("note", "note", "{}"),
]
TREND_COLUMNS = [
    ("dataset", "dataset", "{}"), ("codec", "codec", "{}"), ("train_dataset", "train", "{}"),
    ("milestones", "milestones", "{}"), ("largest", "largest budget", "{}"),
    ("bd_psnr_largest", "BD-PSNR there dB", "{:+.2f}"),
    ("crosses_at", "reaches JPEG 2000 at", "{}"), ("verdict", "verdict", "{}"),
]


def budget_section(rows: pd.DataFrame, anchors: dict[str, Curve] | None, out: Path,
                   figures: Path) -> tuple[str, str]:
    """Markdown and HTML body of the report section; writes ``budget_curve.csv`` and
    one figure per dataset (and budget unit) into ``figures`` (``rows``, ``anchors``: as
    :func:`budget_table` reads them)."""
    from medbench.reports import html as H
    from medbench.reports.format import html_table, markdown, text_frame

    table = budget_table(rows, anchors)
    table.to_csv(out / "budget_curve.csv", index=False)
    if table.empty:
        return HOW_TO + "\n", H.paragraph(HOW_TO, "empty")
    about = (f"Each learned codec's milestone checkpoints (`run --milestones`): the models "
             f"of one budget label form one RD curve, compared with {ANCHOR} on the same "
             f"images (BD-rate over PSNR, BD-PSNR over bpp, pchip; negative BD-PSNR = below "
             f"{ANCHOR}). device s, steps, images seen: means over the label's models. A "
             f"crossing is predicted only from ≥ {MIN_TREND_POINTS} budgets with BD-PSNR "
             f"rising at each, by a straight line in log-budget reaching 0 dB within "
             f"{MAX_REACH:g}× the largest budget.")
    trend = trend_table(table)
    md, body = [about + "\n"], [H.paragraph(about, "note")]
    for (dataset, unit), part in table.groupby(["dataset", "unit"], sort=True):
        if not unit or not np.isfinite(part["bd_psnr"].astype(float)).any():
            continue  # nothing to draw: no label budget, or no BD value yet
        path = budget_figure(table, dataset, unit,
                             figures / f"budget_{re.sub(r'[^A-Za-z0-9]+', '-', dataset)}_{unit}")
        caption = f"{dataset}: BD-PSNR against {ANCHOR} by training budget (log scale)"
        md.append(f"![{caption}](figures/{path.name})\n")
        body.append(H.figure(path, caption))
    trend_text, table_text = text_frame(trend, TREND_COLUMNS), text_frame(table, TABLE_COLUMNS)
    md += [markdown(trend_text), markdown(table_text)]
    body += ["<h3>Trend</h3>" + html_table(trend_text),
             "<h3>Every milestone</h3>" + html_table(table_text)]
    return "\n".join(md), "".join(body)
