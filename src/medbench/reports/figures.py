"""Report figures with matplotlib (object API and the Agg canvas: no pyplot state).

RD curves are written as PNG and SVG; the heatmaps and visual comparisons as PNG. Figures
are kept small (a few hundred kB at most) because the HTML page embeds them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medbench.reports.curves import ANCHOR, CLINICAL_RATIOS, Curve, clinical_bpp
from medbench.reports.format import fmt

DPI = 100
_STYLES = ["-", "--", "-.", ":"]

#: Fixed colour and marker of every known codec, so a codec looks the same in every report:
#: JPEG 2000 (the anchor) black squares; classical codecs cool colours (blues, greens,
#: purples); learned codecs warm ones (reds, oranges, pinks).
CODEC_STYLES: dict[str, tuple[str, str]] = {
    "jpeg2000": ("#000000", "s"),
    "htj2k": ("#7f7f7f", "h"),
    "jpeg": ("#1f77b4", "o"),
    "jpeg12": ("#17becf", "v"),
    "jpegls": ("#2ca02c", "^"),
    "jpegxl": ("#9467bd", "D"),
    "webp": ("#006d77", "P"),
    "avif": ("#3949ab", "X"),
    "png": ("#6b8e23", "*"),
    "ae": ("#d62728", "o"),
    "cnn": ("#ff7f0e", "^"),
    "dcae": ("#e377c2", "D"),
}
#: Where codecs not in :data:`CODEC_STYLES` (new or user codecs) draw their style from,
#: by a hash of the name: the same name always gets the same style, within its family.
FAMILY_COLORS = {
    "classical": ["#08519c", "#41ab5d", "#6a51a3", "#3182bd", "#00818a", "#54278f"],
    "learned": ["#a50f15", "#d94801", "#c51b8a", "#8c510a", "#e7298a", "#fd8d3c"],
}
FAMILY_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def codec_style(codec: str, kind: str = "classical") -> tuple[str, str]:
    """(colour, marker) of ``codec``: fixed for known codecs, hashed within its family."""
    if codec in CODEC_STYLES:
        return CODEC_STYLES[codec]
    family = "learned" if kind == "learned" else "classical"
    h = zlib.crc32(codec.encode("utf-8"))  # stable across runs (unlike hash())
    colors = FAMILY_COLORS[family]
    return colors[h % len(colors)], FAMILY_MARKERS[(h // len(colors)) % len(FAMILY_MARKERS)]


def coinciding(dataset_curves: list[Curve]) -> list[tuple[str, str]]:
    """Pairs ``(later, earlier)`` of curve labels whose RD points are the same numbers.

    e.g. ``jpeg12`` and ``jpeg`` on 8-bit images: the later curve would hide exactly
    under the earlier one, so the figure draws it dashed with hollow markers.
    """
    pairs = []
    for i, c in enumerate(dataset_curves):
        for earlier in dataset_curves[:i]:
            a, b = c.points, earlier.points
            if len(a) and len(a) == len(b) and all(
                np.allclose(a[m].to_numpy(float), b[m].to_numpy(float), rtol=1e-6,
                            equal_nan=True) for m in ("bpp", "psnr", "ms_ssim_db")):
                pairs.append((c.label, earlier.label))
                break
    return pairs


def _save(fig: Figure, stem: Path, formats: tuple[str, ...]) -> list[Path]:
    FigureCanvasAgg(fig)
    paths = []
    for ext in formats:
        path = stem.with_suffix(f".{ext}")
        meta = {"Date": None} if ext == "svg" else {"Software": None}
        fig.savefig(path, dpi=DPI, format=ext, metadata=meta, bbox_inches="tight")
        paths.append(path)
    return paths


def rd_figure(dataset: str, dataset_curves: list[Curve], stem: Path,
              formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """PSNR and MS-SSIM (dB) against bpp for one dataset, with clinical-ratio lines.

    About 1200 px wide (the page's width), legend on the right. Each codec has its fixed
    style (:func:`codec_style`); a learned codec's train datasets differ by line style; a
    curve that coincides with an earlier one (:func:`coinciding`) is dashed, hollow.
    """
    fig = Figure(figsize=(12, 3.6))
    axes = fig.subplots(1, 2)
    trains = sorted({c.train_dataset for c in dataset_curves if c.train_dataset})
    hidden = dict(coinciding(dataset_curves))
    for ax, metric, label in ((axes[0], "psnr", "PSNR (dB)"),
                              (axes[1], "ms_ssim_db", "MS-SSIM (dB) = -10·log10(1 - MS-SSIM)")):
        for c in dataset_curves:
            pts = c.points[np.isfinite(c.points[metric].to_numpy(float))]
            if pts.empty:
                continue
            color, marker = codec_style(c.codec, c.kind)
            style = _STYLES[trains.index(c.train_dataset) % len(_STYLES)] if c.train_dataset \
                else "-"
            kw = {"markersize": 4.5, "linewidth": 1.4}
            if c.codec == ANCHOR:
                kw = {"markersize": 5.5, "linewidth": 2.2, "zorder": 5}
            if c.label in hidden:  # same points as another curve: keep both visible
                kw = {"markersize": 9, "linewidth": 1.4, "markerfacecolor": "none",
                      "markeredgewidth": 1.4, "zorder": 6}
                style = (0, (4, 3))
            ax.plot(pts["bpp"], pts[metric], linestyle=style, marker=marker, color=color,
                    label=c.label + (f" (= {hidden[c.label]})" if c.label in hidden else ""),
                    **kw)
        _off_scale(ax, metric, dataset_curves)
        depths = sorted({d for c in dataset_curves for d in c.bit_depths})
        for ratio in CLINICAL_RATIOS:
            for depth in depths:
                bpp = clinical_bpp(depth, ratio)
                ax.axvline(bpp, color="0.45", linestyle=":", linewidth=1)
                text = f"{ratio}:1" + (f" @{depth}-bit" if len(depths) > 1 else "")
                ax.annotate(text, (bpp, 0.02), xycoords=("data", "axes fraction"),
                            rotation=90, fontsize=8, color="0.3", ha="right", va="bottom")
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (bpp, from real bytes)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", linewidth=0.3, alpha=0.6)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.83, 0.5),
                   fontsize=8.5, frameon=False, ncol=1 if len(labels) <= 16 else 2,
                   title=f"RD on {dataset}\n(dotted: clinical ratios)", title_fontsize=9)
    fig.subplots_adjust(left=0.05, right=0.82, bottom=0.13, top=0.97, wspace=0.22)
    return _save(fig, stem, formats)


#: Axis tops of the RD figure: near-lossless points above them (a codec's finest setting
#: where most images decode exactly) would squash every lossy curve into a strip.
OFF_SCALE_DB = {"psnr": 70.0, "ms_ssim_db": 50.0}


def _off_scale(ax, metric: str, dataset_curves: list[Curve]) -> None:
    """Cap ``ax`` at :data:`OFF_SCALE_DB` when some point lies above it, and name those
    points (codec, bpp, value) in the corner, so nothing is hidden silently."""
    cap = OFF_SCALE_DB[metric]
    above = [(c.label, float(b), float(v)) for c in dataset_curves
             for b, v in zip(c.points["bpp"], c.points[metric])
             if np.isfinite(v) and v > cap]
    if not above:
        return
    ax.set_ylim(ax.get_ylim()[0], cap)  # after plotting: the bottom stays the data's
    text = "off scale: " + ", ".join(f"{name} {v:.0f} dB at {b:.2f} bpp"
                                     for name, b, v in above[:3])
    text += f" (+{len(above) - 3} more)" if len(above) > 3 else ""
    ax.annotate(text, (0.01, 0.98), xycoords="axes fraction", ha="left", va="top",
                fontsize=7, color="0.3")


def heatmap_figure(codec: str, grid: pd.DataFrame, stem: Path, title: str,
                   formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Train × test heatmap with the value written in each cell."""
    values = grid.to_numpy(dtype=float)
    fig = Figure(figsize=(1.6 + 1.2 * max(1, values.shape[1]), 1.2 + 0.7 * max(1, values.shape[0])))
    ax = fig.subplots()
    finite = values[np.isfinite(values)]
    vmin, vmax = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=vmin,
                      vmax=vmax if vmax > vmin else vmin + 1, aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in grid.columns], fontsize=8)
    ax.set_yticks(range(values.shape[0]), [str(i) for i in grid.index], fontsize=8)
    ax.set_xlabel("test dataset")
    ax.set_ylabel("train dataset")
    for (i, j), v in np.ndenumerate(values):
        text = fmt(float(v), "{:.2f}")
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="white" if np.isfinite(v) and v < (vmin + vmax) / 2 else "black")
    fig.colorbar(image, ax=ax, fraction=0.05)
    ax.set_title(title, fontsize=9)
    return _save(fig, stem, formats)


@dataclass
class Panel:
    """One reconstruction (or the original) of one image for the visual comparison."""

    title: str
    pixels: np.ndarray
    bit_depth: int
    error: np.ndarray | None = None  # absolute error, None for the original
    #: (top, left, height, width) outlined on the panel: where the 1:1 crop lies.
    box: tuple[float, float, float, float] | None = None


#: Panels per row of the visual comparison, and each panel's side in inches at DPI:
#: 4 × 2.7 in at 100 dpi keeps every crop at 256 px or more in a 1200-px page.
VISUAL_COLUMNS = 4
VISUAL_PANEL_IN = 2.7


def visual_figure(images: list[tuple[str, list[Panel]]], stem: Path) -> list[Path]:
    """Originals and reconstructions, each above its absolute-error map, in rows of
    :data:`VISUAL_COLUMNS` panels large enough to judge detail (≥ 256 px in the report).

    Pixels are shown over the full nominal range ``0..2**bit_depth - 1`` (no per-image
    windowing). The error maps of one image share one scale, stated above each map: the
    median over codecs of their 99.5th-percentile error, so that a few very poor
    reconstructions saturate instead of turning every good one black. A panel with a
    ``box`` (the whole image) shows where the 1:1 crop lies; its error slot carries the
    image's caption, as does the original's when there is no whole-image panel.
    """
    from matplotlib.patches import Rectangle

    layout = [(k, j) for k, (_, panels) in enumerate(images) for j in range(len(panels))]
    rows_per_image = [-(-len(panels) // VISUAL_COLUMNS) for _, panels in images]
    total_rows = 2 * sum(rows_per_image)
    fig = Figure(figsize=(VISUAL_PANEL_IN * VISUAL_COLUMNS, VISUAL_PANEL_IN * 1.12 * total_rows))
    axes = np.atleast_2d(fig.subplots(total_rows, VISUAL_COLUMNS, squeeze=False))
    for ax in axes.ravel():
        ax.set_axis_off()
    first_row = np.cumsum([0, *rows_per_image])[:-1] * 2
    for k, j in layout:
        label, panels = images[k]
        errors = [p.error for p in panels if p.error is not None]
        emax = float(np.median([np.percentile(e, 99.5) for e in errors])) if errors else 1.0
        emax = max(emax, 1.0)
        p = panels[j]
        row = first_row[k] + 2 * (j // VISUAL_COLUMNS)
        top, bottom = axes[row, j % VISUAL_COLUMNS], axes[row + 1, j % VISUAL_COLUMNS]
        top.imshow(p.pixels, cmap="gray", vmin=0, vmax=2**p.bit_depth - 1,
                   interpolation="nearest")
        top.set_title(p.title, fontsize=8)
        if p.box is not None:
            y, x, h, w = p.box
            top.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="red",
                                    linewidth=1.2))
        if p.error is not None:
            bottom.imshow(p.error, cmap="magma", vmin=0, vmax=emax, interpolation="nearest")
            bottom.set_title(f"|error|, 0–{emax:.3g}", fontsize=8)
        elif j == 0:  # the first panel has no error map: its slot carries the caption
            bottom.text(0.5, 0.5, label, transform=bottom.transAxes, fontsize=9,
                        ha="center", va="center", wrap=True)
    fig.subplots_adjust(wspace=0.04, hspace=0.3, left=0.01, right=0.99, top=0.98, bottom=0.01)
    return _save(fig, stem, ("png",))


#: Observer names in figure titles (``run --observer``).
OBSERVER_NAMES = {"cho": "channelized Hotelling (CHO)", "npwe": "NPWE"}

def detectability_figure(dataset: str, coded: pd.DataFrame, contrast: float, bit_depth: int,
                         margin: float, stem: Path) -> Path:
    """d' coded / original against bpp at ``contrast``: columns nodule sizes, rows
    observers, one line per codec (its settings; rate-matched points left out), with the
    task-lossless ``margin`` dashed."""
    plain = coded[~coded["setting"].astype(str).str.startswith("target:")]
    plain = plain[np.isclose(plain["contrast"].astype(float), contrast)]
    sizes = sorted({float(d) for d in plain["diameter_mm"]}) or [0.0]
    observers = [o for o in ("cho", "npwe") if o in set(plain["observer"])] or ["cho"]
    fig = Figure(figsize=(4 * len(sizes) + 2.2, 3.0 * len(observers)))
    axes = np.atleast_2d(fig.subplots(len(observers), len(sizes), squeeze=False))
    for r, observer in enumerate(observers):
        for c, size in enumerate(sizes):
            ax = axes[r][c]
            part = plain[(plain["observer"] == observer) & np.isclose(plain["diameter_mm"], size)]
            for (codec, train), line in part.groupby(
                    [part["codec"], part["train_dataset"].fillna("")], sort=True):
                line = line[line["bpp"] > 0].sort_values("bpp")
                if line.empty:
                    continue
                color, marker = codec_style(str(codec), "learned" if train else "classical")
                low = (line["dprime_ratio"] - line["dprime_ratio_low"]).clip(lower=0)
                high = (line["dprime_ratio_high"] - line["dprime_ratio"]).clip(lower=0)
                ax.errorbar(line["bpp"], line["dprime_ratio"], yerr=[low.fillna(0),
                                                                     high.fillna(0)],
                            color=color, marker=marker, markersize=4, linewidth=1.3,
                            capsize=2, label=str(codec) + (f" ({train})" if train else ""))
            ax.axhline(1.0, color="0.3", linewidth=0.8)
            ax.axhline(margin, color="0.3", linewidth=0.8, linestyle="--")
            for ratio in CLINICAL_RATIOS:
                if bit_depth:
                    ax.axvline(bit_depth / ratio, color="0.45", linestyle=":", linewidth=1)
            ax.set_xscale("log")
            ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=max(1.1, ax.get_ylim()[1]))
            ax.set_title(f"{size:g} mm, {OBSERVER_NAMES.get(observer, observer)}", fontsize=9)
            ax.set_xlabel("bpp")
            if c == 0:
                ax.set_ylabel("d' coded / original")
            ax.grid(True, which="both", linewidth=0.3, alpha=0.6)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.86, 0.5),
                   fontsize=8, frameon=False, title=f"{dataset}, contrast {contrast:g}",
                   title_fontsize=8.5)
    fig.subplots_adjust(left=0.06, right=0.85, bottom=0.12, top=0.92, wspace=0.25,
                        hspace=0.45)
    return _save(fig, stem, ("png",))[0]
