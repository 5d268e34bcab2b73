"""Visual comparison at a matched rate, from the pixels the run stored.

While a run codes the few images chosen for this comparison, it stores, per codec (and
train dataset), the decoded pixels of the setting whose bpp on that image is nearest
the target rate (the 30:1 clinical ratio for the image's bit depth), beside the original:
a 1:1 crop of the most detailed region (the whole image when it is small) and the whole
image downscaled for display (:mod:`medbench.benchmark.visuals`). This module only reads
them, so a report can be rebuilt from a copied results folder with the data and codecs
gone. Panel titles give the rate and PSNR recorded in the cell's result row. When the
run has rate-matched cells (``run --target ratio=30``), those are shown: every codec at
exactly the target on that image, titled with the knob the search chose; a codec that
missed the target (outside its tolerance) is marked MISSED and named in the notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medbench.benchmark.targets import Target
from medbench.benchmark.visuals import TARGET_RATIO
from medbench.reports.curves import ANCHOR, clinical_bpp
from medbench.reports.figures import Panel

MAX_CODECS = 8


@dataclass
class Visual:
    """Panels for one dataset (one entry per image) and what was left out."""

    dataset: str
    target: str
    images: list[tuple[str, list[Panel]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _codec_order(keys: list[tuple[str, str | None, str]]) -> list[tuple[str, str | None, str]]:
    """JPEG 2000 first, then the learned codecs, then JPEG, then the other classical ones.

    The figure has room for :data:`MAX_CODECS`; the seed paper's comparison (learned
    codecs against JPEG and JPEG 2000) must not be the part that is cut.
    """

    def rank(key):
        codec, train, kind = key
        group = 0 if codec == ANCHOR else 1 if kind == "learned" else 2 if codec == "jpeg" else 3
        return (group, codec, train or "")

    return sorted(keys, key=rank)


def visual_comparisons(rows: pd.DataFrame, views: list[dict[str, Any]],
                       ratio: int = TARGET_RATIO, datasets: list[str] | None = None
                       ) -> list[Visual]:
    """One :class:`Visual` per dataset of the run.

    Parameters
    ----------
    rows
        The run's result rows (the store's columns).
    views
        The run's stored pixels (:meth:`medbench.benchmark.store.ResultsStore.visuals`).
    ratio
        The clinical ratio the reconstructions were matched to.
    datasets
        The run's datasets, where ``rows`` are only those of the images stored.

    Returns
    -------
    list of Visual
        Panels per image, original first; notes on what could not be shown.
    """
    out = []
    if datasets is None:
        datasets = sorted({str(d) for d in rows["dataset"].dropna()})
    for dataset in sorted(datasets):
        mine = [v for v in views if v["dataset"] == dataset and v["role"] == "crop"]
        wholes = {v["image_id"]: v for v in views
                  if v["dataset"] == dataset and v["role"] == "whole" and v["codec"] == ""}
        visual = Visual(dataset, target=f"{ratio}:1")
        originals = [v for v in mine if v["codec"] == ""]
        if not originals:
            visual.notes.append(f"{dataset}: the run stored no pixels for a visual comparison "
                                "(no image was coded successfully, or the store predates it)")
        present = set(rows.loc[rows["dataset"] == dataset, "image_id"].astype(str))
        for original in originals:
            if str(original["image_id"]) not in present:  # its rows were left out
                visual.notes.append(f"{dataset}: {original['image_id']} is not shown: its "
                                    "rows are left out of this report (a learned model "
                                    "trained on it)")
                continue
            _add_image(visual, original, mine, rows[rows["dataset"] == dataset], ratio,
                       wholes.get(original["image_id"]))
        out.append(visual)
    return out


def _add_image(visual: Visual, original: dict[str, Any], views: list[dict[str, Any]],
               rows: pd.DataFrame, ratio: int, whole: dict[str, Any] | None = None) -> None:
    image_id = original["image_id"]
    mine = rows[(rows["image_id"] == image_id) & (rows["status"] == "ok")]
    ref = original["pixels"]
    depth = int(original["bit_depth"])
    target = clinical_bpp(depth, ratio)
    matched = Target("ratio", ratio).setting
    part = mine["body_part"].dropna()
    height, width = (int(mine[c].dropna().iloc[0]) if mine[c].notna().any() else 0
                     for c in ("height", "width"))
    region = ("" if ref.shape == (height, width) else
              f"\n1:1 crop {ref.shape[1]}×{ref.shape[0]} at ({original['left']}, "
              f"{original['top']})")
    caption = (f"{image_id}" + (f" ({part.iloc[0]})" if len(part) else "")
               + f"\n{width}×{height}, {depth}-bit" + region
               + f"\ntarget {target:.3g} bpp ({ratio}:1)")
    panels = []
    if whole is not None and height and width:  # the whole film, the crop outlined on it
        scale = whole["pixels"].shape[0] / height
        box = (original["top"] * scale, original["left"] * scale,
               ref.shape[0] * scale, ref.shape[1] * scale)
        panels.append(Panel(f"whole image ({width}×{height}, shown reduced)",
                            whole["pixels"], depth, box=box))
    panels.append(Panel("original" + (", 1:1 crop" if whole is not None else ""), ref, depth))
    candidates = []
    for view in views:
        if view["image_id"] != image_id or view["codec"] == "":
            continue
        match = mine[(mine["codec"] == view["codec"]) & (mine["setting"] == view["setting"])]
        if match.empty:
            continue
        candidates.append((match.iloc[0], view))
    best: dict[tuple[str, str | None, str], tuple[float, pd.Series, dict]] = {}
    for row, view in candidates:  # after a resume a codec may have several: nearest wins
        train = row["train_dataset"] if isinstance(row["train_dataset"], str) else None
        kind = row["codec_kind"] if isinstance(row["codec_kind"], str) else ""
        key = (str(row["codec"]), train, kind)
        distance = abs(math.log(float(row["bpp"]) / target)) if row["bpp"] > 0 else math.inf
        if row["setting"] == matched:  # rate-matched on this image (run --target) wins
            distance = -1.0
        if key not in best or distance < best[key][0]:
            best[key] = (distance, row, view)
    keys = _codec_order(list(best))
    if len(keys) > MAX_CODECS:
        left = ", ".join(c + (f"/{t}" if t else "") for c, t, _ in keys[MAX_CODECS:])
        visual.notes.append(f"{visual.dataset}/{image_id}: only {MAX_CODECS} codecs shown; "
                            f"left out: {left}")
        keys = keys[:MAX_CODECS]
    for key in keys:
        _, row, view = best[key]
        codec, train, _ = key
        decoded = view["pixels"]
        if decoded.shape != ref.shape:
            visual.notes.append(f"{visual.dataset}/{image_id}: stored {codec} pixels have shape "
                                f"{decoded.shape}, the original {ref.shape}; left out")
            continue
        error = np.abs(decoded.astype(np.float64) - ref.astype(np.float64))
        setting = str(row["setting"])
        if setting == matched:  # the knob the search chose, and whether it got there
            knob = row.get("knob")
            setting = str(knob) if isinstance(knob, str) else setting
            if row.get("target_met") is not None and not _true(row.get("target_met")):
                setting += f"\nMISSED {ratio}:1"
                visual.notes.append(f"{visual.dataset}/{image_id}: {codec} missed "
                                    f"{ratio}:1: {row.get('target_note')}")
        title = (f"{codec}" + (f"\ntrain {train}" if train else "")
                 + f"\n{setting}\n{float(row['bpp']):.3f} bpp, "
                 + f"{float(row['psnr']):.1f} dB")
        panels.append(Panel(title, decoded, depth, error))
    visual.images.append((caption, panels))


def _true(value: Any) -> bool:
    """A stored boolean (1/0, True/False; NaN counts as not known, so not a miss)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return bool(value)
