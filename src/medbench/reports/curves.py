"""Rate–distortion curves from result rows, and reading values off them.

A curve is one codec on one dataset (for learned codecs: one codec *per train dataset*),
one point per setting: its line of :func:`~medbench.reports.means.setting_means` (mean bpp
and MS-SSIM over the images that setting coded, mean PSNR over those that did not decode
exactly). Lossless points (PSNR = inf) are kept aside as ``lossless_bpp``: they show in
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

from medbench.reports.means import setting_means

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
    points: pd.DataFrame  # POINT_COLUMNS
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
    return pchip_at(np.log10(rate), metric, float(np.log10(np.clip(bpp, lo, hi))))


def curves(rows: pd.DataFrame) -> list[Curve]:
    """RD curves of every dataset × codec × train dataset in ``rows``.

    Parameters
    ----------
    rows : pandas.DataFrame
        Result rows; only ``ok`` rows count.

    Returns
    -------
    list of Curve
        Sorted by dataset, codec and train dataset. Each point is one line of
        :func:`~medbench.reports.means.setting_means` (mean bpp over all images, PSNR
        over the images that did not decode exactly, ``psnr_pooled`` beside it); a
        setting whose every image decoded exactly is the curve's ``lossless_bpp``
        instead of a point.
    """
    means = setting_means(rows)
    ok = rows[rows["status"] == "ok"]
    ok_train = (ok["train_dataset"].fillna("") if "train_dataset" in ok
                else pd.Series("", index=ok.index))
    depths = {key: tuple(sorted({int(b) for b in part["bit_depth"].dropna()}))
              for key, part in ok.groupby([ok["dataset"], ok["codec"], ok_train])} \
        if len(ok) and "bit_depth" in ok else {}
    return curves_from_means(means, depths)


def curves_from_means(means: pd.DataFrame,
                      depths: dict[tuple[str, str, str], tuple[int, ...]]) -> list[Curve]:
    """:func:`curves` from the rows' :func:`~medbench.reports.means.setting_means` and
    the bit depths of each curve's ``ok`` images (keyed by dataset, codec and train
    dataset, "" for none)."""
    means = means[means["images"] > 0]
    if means.empty:
        return []
    means = means.assign(train_key=means["train_dataset"].fillna(""))
    out = []
    for (dataset, codec, train), lines in means.groupby(
        ["dataset", "codec", "train_key"], sort=True
    ):
        out.append(_curve(dataset, codec, train or None, lines,
                          depths.get((dataset, codec, train), ())))
    return out


POINT_COLUMNS = ["setting", "rank", "bpp", "psnr", "psnr_pooled", "exact_images", "ms_ssim",
                 "ms_ssim_db", "images"]


def _curve(dataset: str, codec: str, train: str | None, lines: pd.DataFrame,
           depths: tuple[int, ...]) -> Curve:
    lossless = lines[lines["psnr"] == math.inf]
    lossy = lines[lines["psnr"] != math.inf]
    notes = [
        f"{line.setting}: {line.exact_images} of {line.images} images decoded exactly "
        "and are left out of its mean PSNR"
        for line in lossy.itertuples() if line.exact_images
    ]
    points = pd.DataFrame({
        "setting": lossy["setting"], "rank": lossy["setting_rank"].astype(int),
        "bpp": lossy["bpp"].astype(float), "psnr": lossy["psnr"].astype(float),
        "psnr_pooled": lossy["psnr_pooled"].astype(float),
        "exact_images": lossy["exact_images"].astype(int),
        "ms_ssim": lossy["ms_ssim"].astype(float),
        "ms_ssim_db": msssim_db(lossy["ms_ssim"].to_numpy(float)),
        "images": lossy["images"].astype(int),
    }, columns=POINT_COLUMNS)
    points = points.sort_values("bpp", kind="stable").reset_index(drop=True)
    lossless_bpp = float(lossless["bpp"].iloc[-1]) if len(lossless) else None
    kinds = lines["codec_kind"].dropna()
    kind = str(kinds.iloc[0]) if len(kinds) else ""
    return Curve(dataset, codec, train, kind, points, depths, lossless_bpp, notes)


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


def image_values_at(rows: pd.DataFrame, curve: Curve, bpp: float,
                    metric: str = "psnr") -> pd.Series:
    """Each image's ``metric`` at ``bpp``, read off that image's own RD curve.

    The image's points are the curve's lossy settings as coded on that image (its own
    bpp and PSNR), through the same envelope and PCHIP as :meth:`Curve.at`; NaN where the
    image's curve does not reach ``bpp``. Two codecs' values on the same images give a
    paired comparison at one rate, which the means of their curves cannot.

    Returns
    -------
    pandas.Series
        Indexed by image id.
    """
    ok = rows[(rows["status"] == "ok") & (rows["dataset"] == curve.dataset)
              & (rows["codec"] == curve.codec)
              & rows["setting"].isin(set(curve.points["setting"]))]
    if "train_dataset" in ok:
        ok = ok[ok["train_dataset"] == curve.train_dataset] if curve.train_dataset \
            else ok[ok["train_dataset"].isna()]
    return values_by_image(ok["image_id"], ok["bpp"], ok[metric], bpp)


def values_by_image(images: pd.Series, rates: pd.Series, values: pd.Series, bpp: float
                    ) -> pd.Series:
    """:func:`image_values_at` of one curve's ``ok`` rows given as their image ids, rates
    and metric values: each image's envelope read at ``bpp`` (:func:`interpolate_at`,
    through :func:`pchip_at`: at 10⁶ rows an interpolator built per image took two
    minutes)."""
    ids = np.asarray(images, dtype=object).astype(str)
    order = np.argsort(ids, kind="stable")  # an image's rows keep their order
    ids = ids[order]
    rate = pd.to_numeric(pd.Series(rates)).to_numpy(float)[order]
    value = pd.to_numeric(pd.Series(values)).to_numpy(float)[order]
    names, starts = np.unique(ids, return_index=True)
    ends = np.append(starts[1:], len(ids))
    out = np.empty(len(names))
    for i, (a, b) in enumerate(zip(starts, ends)):
        r, v = envelope(rate[a:b], value[a:b])
        out[i] = interpolate_at(r, v, bpp)
    return pd.Series(out, index=names, dtype=float)


def pchip_at(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """The value at ``at`` (within ``x``'s range) of SciPy's ``PchipInterpolator(x, y)``,
    the same operations in the same order (its derivatives, Moler's end conditions, its
    Hermite coefficients and its polynomial evaluation), without building it."""
    n = len(x)
    k = min(max(int(np.searchsorted(x, at, side="right")) - 1, 0), n - 2)
    h = x[1:] - x[:-1]
    m = (y[1:] - y[:-1]) / h
    if n == 2:
        d0 = d1 = m[0]
    else:
        d0 = _edge(h[0], h[1], m[0], m[1]) if k == 0 else _inner(h, m, k)
        d1 = _edge(h[-1], h[-2], m[-1], m[-2]) if k + 1 == n - 1 else _inner(h, m, k + 1)
    hk = h[k]
    t = (d0 + d1 - 2 * m[k]) / hk
    c0, c1, c2, c3 = t / hk, (m[k] - d0) / hk - t, d0, y[k]
    s = at - x[k]
    return float(c3 + c2 * s + c1 * (s * s) + c0 * (s * s * s))


def _inner(h: np.ndarray, m: np.ndarray, j: int) -> float:
    """PCHIP's derivative at interior point ``j``: 0 where the slopes change sign or
    vanish, else their weighted harmonic mean."""
    if np.sign(m[j]) != np.sign(m[j - 1]) or m[j] == 0 or m[j - 1] == 0:
        return 0.0
    w1, w2 = 2 * h[j] + h[j - 1], h[j] + 2 * h[j - 1]
    return 1.0 / ((w1 / m[j - 1] + w2 / m[j]) / (w1 + w2))


def _edge(h0: float, h1: float, m0: float, m1: float) -> float:
    """PCHIP's one-sided three-point derivative at an end, kept shape-preserving."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > 3.0 * abs(m0):
        return 3.0 * m0
    return d
