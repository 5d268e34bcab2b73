"""Rate–distortion curves from result rows, and reading values off them.

A curve is one codec on one dataset (for learned codecs: one codec *per train dataset*),
one point per setting: the mean bpp and the mean PSNR (dB) / MS-SSIM over the images that
setting coded. Lossless points (PSNR = inf) are kept aside as ``lossless_bpp``: they show in
tables but have no place on a PSNR axis, in curve fitting or in BD computations.

Values between points are read with monotone piecewise-cubic (PCHIP) interpolation of the
metric against log10(bpp), on the curve's *upper envelope* (points that a cheaper point
beats are dropped), and never extrapolated beyond the measured range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

#: Clinically accepted lossy compression ratios for radiographs, with their source.
CLINICAL_RATIOS: dict[int, str] = {
    10: "10:1 (German consensus conference, CR/DR)",
    30: "30:1 (Canadian Association of Radiologists, chest CR/DR)",
}
ANCHOR = "jpeg2000"


def clinical_bpp(bit_depth: int, ratio: float) -> float:
    """The bpp a ``ratio``:1 compression means for ``bit_depth``-bit images."""
    return float(bit_depth) / float(ratio)


def msssim_db(value: float | np.ndarray) -> float | np.ndarray:
    """MS-SSIM on a dB scale, ``-10·log10(1 - x)`` (inf for x = 1)."""
    x = np.asarray(value, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -10.0 * np.log10(1.0 - x)
    return float(out) if out.ndim == 0 else out


@dataclass
class Curve:
    """One RD line: the points of one codec (and train dataset) on one dataset."""

    dataset: str
    codec: str
    train_dataset: str | None
    kind: str
    points: pd.DataFrame  # setting, bpp, psnr, ms_ssim, ms_ssim_db, images
    bit_depths: tuple[int, ...] = ()
    lossless_bpp: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if not self.train_dataset:
            return self.codec
        return f"{self.codec} (train {self.train_dataset})"

    @property
    def key(self) -> tuple[str, str | None]:
        return (self.codec, self.train_dataset)

    def envelope(self, metric: str = "psnr") -> tuple[np.ndarray, np.ndarray]:
        """(bpp, metric) of the upper envelope, both strictly increasing."""
        return envelope(self.points["bpp"].to_numpy(float), self.points[metric].to_numpy(float))

    def at(self, bpp: float, metric: str = "psnr") -> float:
        """``metric`` interpolated at ``bpp``; NaN outside the measured range."""
        rate, value = self.envelope(metric)
        return interpolate_at(rate, value, bpp)


def envelope(rate: np.ndarray, metric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points sorted by rate that each improve on every cheaper point.

    BD interpolation needs curves strictly increasing in both rate and metric; averaging
    over few images can make a higher setting look slightly worse, and such a point is
    dominated anyway.
    """
    keep = np.isfinite(rate) & np.isfinite(metric) & (rate > 0)
    rate, metric = rate[keep], metric[keep]
    order = np.lexsort((-metric, rate))  # by rate; at equal rate the best metric first
    out_r: list[float] = []
    out_m: list[float] = []
    for r, m in zip(rate[order], metric[order]):
        if out_m and m <= out_m[-1]:  # no better than a cheaper (or equal-rate) point
            continue
        out_r.append(float(r))
        out_m.append(float(m))
    return np.array(out_r), np.array(out_m)


def interpolate_at(rate: np.ndarray, metric: np.ndarray, bpp: float) -> float:
    """PCHIP of ``metric`` against log10(rate) at ``bpp``; NaN outside the range."""
    if len(rate) == 0 or not bpp > 0:
        return math.nan
    lo, hi = rate[0], rate[-1]
    if bpp < lo * (1 - 1e-9) or bpp > hi * (1 + 1e-9):
        return math.nan
    if len(rate) == 1:
        return float(metric[0])
    f = PchipInterpolator(np.log10(rate), metric)
    return float(f(np.log10(np.clip(bpp, lo, hi))))


def curves(rows: pd.DataFrame) -> list[Curve]:
    """RD curves of every dataset × codec × train dataset in ``rows`` (``ok`` rows only)."""
    ok = rows[rows["status"] == "ok"].copy()
    if ok.empty:
        return []
    ok["train_key"] = ok["train_dataset"].where(ok["train_dataset"].notna(), "")
    if "setting_rank" not in ok:
        ok["setting_rank"] = 0
    out = []
    for (dataset, codec, train), group in ok.groupby(
        ["dataset", "codec", "train_key"], sort=True
    ):
        out.append(_curve(dataset, codec, train or None, group))
    return out


def _curve(dataset: str, codec: str, train: str | None, group: pd.DataFrame) -> Curve:
    points = []
    lossless_bpp = None
    notes = []
    for setting, rows in group.groupby("setting", sort=False):
        psnr = pd.to_numeric(rows["psnr"], errors="coerce")
        finite = rows[np.isfinite(psnr.to_numpy(float))]
        if finite.empty:  # every image exact: a lossless point
            lossless_bpp = float(rows["bpp"].mean())
            continue
        if len(finite) < len(rows):
            notes.append(
                f"{setting}: {len(rows) - len(finite)} of {len(rows)} images decoded exactly "
                "and are left out of its mean"
            )
        ms = float(pd.to_numeric(finite["ms_ssim"], errors="coerce").mean())
        points.append(
            {
                "setting": setting,
                "rank": int(rows["setting_rank"].min()) if rows["setting_rank"].notna().any()
                else 0,
                "bpp": float(finite["bpp"].mean()),
                "psnr": float(psnr[finite.index].mean()),
                "ms_ssim": ms,
                "ms_ssim_db": msssim_db(ms),
                "images": int(len(finite)),
            }
        )
    frame = pd.DataFrame(
        points, columns=["setting", "rank", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "images"]
    ).sort_values("bpp", kind="stable").reset_index(drop=True)
    depths = tuple(sorted({int(b) for b in group["bit_depth"].dropna()}))
    kind = str(group["codec_kind"].dropna().iloc[0]) if group["codec_kind"].notna().any() else ""
    return Curve(dataset, codec, train, kind, frame, depths, lossless_bpp, notes)


def curve_points_frame(all_curves: list[Curve]) -> pd.DataFrame:
    """Every point of every curve in one long table (the data behind the RD figures)."""
    frames = []
    for c in all_curves:
        f = c.points.copy()
        f.insert(0, "train_dataset", c.train_dataset)
        f.insert(0, "codec", c.codec)
        f.insert(0, "dataset", c.dataset)
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["dataset", "codec", "train_dataset", "setting", "bpp"])
    return pd.concat(frames, ignore_index=True)
