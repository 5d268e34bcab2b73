"""Visual comparison at a matched rate: re-code a few test images, show errors.

The store keeps numbers, not pixels, so the images are read again through the dataset
registry with the run's own arguments (datasets, data root, protocol) and each codec codes
them again at the setting whose *recorded* bpp on that image is nearest the target rate
(by default the 30:1 clinical ratio for the image's bit depth). If the data are gone or a
codec is missing here, that part is skipped with a note, never an error: the rest of the
report does not depend on it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medbench.reports.curves import ANCHOR, clinical_bpp
from medbench.reports.figures import Panel

log = logging.getLogger(__name__)

N_IMAGES = 2
TARGET_RATIO = 30
MAX_CODECS = 8


@dataclass
class Visual:
    """Panels for one dataset (one entry per image) and what was left out."""

    dataset: str
    target: str
    images: list[tuple[str, list[Panel]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def choose_images(rows: pd.DataFrame, n: int = N_IMAGES) -> list[str]:
    """Images coded by the most codecs, different body parts first, then by id."""
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return []
    curve_key = ok["codec"].astype(str) + "|" + ok["train_dataset"].astype(str)
    cover = curve_key.groupby(ok["image_id"]).nunique()
    parts = ok.groupby("image_id")["body_part"].first()
    order = sorted(cover.index, key=lambda i: (-cover[i], str(i)))
    chosen: list[str] = []
    seen: set[str] = set()
    for image_id in order:  # one per body part first
        part = str(parts.get(image_id))
        if part not in seen:
            chosen.append(image_id)
            seen.add(part)
    chosen += [i for i in order if i not in chosen]
    return chosen[:n]


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


def visual_comparisons(rows: pd.DataFrame, arguments: dict[str, Any],
                       n_images: int = N_IMAGES, ratio: int = TARGET_RATIO) -> list[Visual]:
    """One :class:`Visual` per dataset of the run."""
    out = []
    for dataset in sorted({str(d) for d in rows["dataset"].dropna()}):
        out.append(_visual_for(dataset, rows[rows["dataset"] == dataset], arguments, n_images,
                               ratio))
    return out


def _visual_for(spec: str, rows: pd.DataFrame, arguments: dict[str, Any], n_images: int,
                ratio: int) -> Visual:
    from medbench.benchmark.runner import RunConfig
    from medbench.datasets import get_dataset

    visual = Visual(spec, target=f"{ratio}:1")
    image_ids = choose_images(rows, n_images)
    if not image_ids:
        visual.notes.append(f"{spec}: no successfully coded images")
        return visual
    try:
        config = RunConfig.from_dict(arguments)
        protocol = config.protocol_obj()
        dataset = get_dataset(spec, Path(config.data_root) if config.data_root else None)
        records = {r.image_id: r for r in dataset.records()}
    except Exception as exc:  # data root gone, dataset plugin missing, ...
        visual.notes.append(f"{spec}: the images could not be read again ({exc}); "
                            "visual comparison skipped")
        return visual
    codecs: dict[str, Any] = {}
    for image_id in image_ids:
        record = records.get(image_id)
        if record is None:
            visual.notes.append(f"{spec}: image {image_id} is no longer in the dataset")
            continue
        try:
            image = protocol.apply(dataset.load(record))
        except Exception as exc:
            visual.notes.append(f"{spec}: image {image_id} could not be read again ({exc})")
            continue
        mine = rows[(rows["image_id"] == image_id) & (rows["status"] == "ok")]
        target = clinical_bpp(image.bit_depth, ratio)
        part = mine["body_part"].dropna()
        caption = (f"{image_id}" + (f" ({part.iloc[0]})" if len(part) else "")
                   + f"\n{image.width}×{image.height}, {image.bit_depth}-bit"
                   + f"\ntarget {target:.3g} bpp ({ratio}:1)")
        panels = [Panel("original", image.pixels, image.bit_depth)]
        triples = mine[["codec", "train_dataset", "codec_kind"]].itertuples(index=False)
        keys = _codec_order(list({
            (c, t if isinstance(t, str) else None, k if isinstance(k, str) else "")
            for c, t, k in triples
        }))
        # Only codecs with a lossy point on this image (a lossless-only codec has no error).
        cells = [(c, t, cell) for c, t, _ in keys
                 if (cell := _nearest_setting(mine, c, t, target)) is not None]
        if len(cells) > MAX_CODECS:
            left = ", ".join(c + (f"/{t}" if t else "") for c, t, _ in cells[MAX_CODECS:])
            visual.notes.append(f"{spec}/{image_id}: only {MAX_CODECS} codecs shown; "
                                f"left out: {left}")
            cells = cells[:MAX_CODECS]
        for codec_name, train, cell in cells:
            panel = _recode(codecs, config, codec_name, train, cell, image, visual.notes, spec)
            if panel is not None:
                panels.append(panel)
        visual.images.append((caption, panels))
    return visual


def _nearest_setting(mine: pd.DataFrame, codec: str, train: str | None,
                     target: float) -> pd.Series | None:
    sub = mine[mine["codec"] == codec]
    sub = sub[sub["train_dataset"] == train] if train else sub[sub["train_dataset"].isna()]
    sub = sub[np.isfinite(pd.to_numeric(sub["psnr"], errors="coerce").to_numpy(float))]
    sub = sub[sub["bpp"] > 0]
    if sub.empty:
        return None
    distance = np.abs(np.log(sub["bpp"].to_numpy(float) / target))
    return sub.iloc[int(np.argmin(distance))]


def _recode(codecs: dict, config, codec_name: str, train: str | None, cell: pd.Series,
            image, notes: list[str], spec: str) -> Panel | None:
    from medbench.codecs import CodecContext, get_codec

    label = codec_name + (f" (train {train})" if train else "")
    try:
        if codec_name not in codecs:
            codecs[codec_name] = get_codec(
                codec_name, CodecContext(models_dir=Path(config.models_dir), device="auto"))
        codec = codecs[codec_name]
        reason = codec.unavailable_reason()
        if reason:
            notes.append(f"{spec}: {label} is not available here ({reason})")
            return None
        data = codec.encode(image, cell["setting"])
        decoded = codec.decode(bytes(data))
    except Exception as exc:
        notes.append(f"{spec}: {label} {cell['setting']} could not code {image.image_id} "
                     f"again ({type(exc).__name__}: {exc})")
        return None
    recorded = int(cell["bytes"]) if pd.notna(cell["bytes"]) else None
    if recorded and abs(len(data) - recorded) > max(8, 0.01 * recorded):
        notes.append(f"{spec}: {label} {cell['setting']} on {image.image_id} gave "
                     f"{len(data)} bytes now, {recorded} in the run")
    error = np.abs(decoded.astype(np.float64) - image.pixels.astype(np.float64))
    bpp = 8.0 * len(data) / (image.height * image.width)
    mse = float(np.mean(error**2))
    psnr = math.inf if mse == 0 else 10 * math.log10((2**image.bit_depth - 1) ** 2 / mse)
    title = f"{codec_name}" + (f"\ntrain {train}" if train else "") + \
        f"\n{cell['setting']}\n{bpp:.3f} bpp, {psnr:.1f} dB"
    return Panel(title, decoded, image.bit_depth, error)
