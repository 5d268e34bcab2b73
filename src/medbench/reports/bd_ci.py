"""How much a BD value moves with the sample: a bootstrap over patients (or images).

A BD-rate is computed from two RD curves, each point a mean over the same images; with 18
test images, another 18 would give another value. Bjøntegaard's figure alone hides how
much. :func:`bd_intervals` redraws the images' groups with replacement (patients where
the dataset knows them, else images; :data:`RESAMPLES` times, seeded), recomputes every
curve's per-setting means over the drawn images (mean bpp over all, mean PSNR over those
that did not decode exactly, as :func:`~medbench.reports.means.setting_means` does),
their upper envelopes, and the BD-rate and BD-PSNR against JPEG 2000; the 95 % interval is
the 2.5th to 97.5th percentile of those values. With fewer than
:data:`~medbench.reports.means.MIN_GROUPS` groups no interval is given.

The deltas of each resample are computed as the ``bjontegaard`` package computes them
(monotone piecewise-cubic interpolation of each curve, integrated exactly over the
overlap: :func:`bd_values`, checked against the package in the tests), directly with
scipy, since the package's own call costs ~20 ms and a report makes tens of thousands.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from medbench.reports.curves import ANCHOR, envelope
from medbench.reports.means import MIN_GROUPS, NO_GROUPING, group_kind
from medbench.reports.store_means import StoreMeans

#: Resamples of the bootstrap, and its seed.
RESAMPLES = 500
#: Draws held at once (8 bytes each, twice): resamples are drawn in blocks of this size.
BLOCK = 2**22
SEED = 20240611
CONFIDENCE = 0.95
#: Fewest resamples (share) in which the curves must still overlap for an interval.
MIN_VALID = 0.9
COLUMNS = ["bd_rate_psnr_low", "bd_rate_psnr_high", "bd_psnr_low", "bd_psnr_high",
           "bd_ci_method"]


def bd_values(ar: np.ndarray, ap: np.ndarray, tr: np.ndarray, tp: np.ndarray
              ) -> tuple[float, float]:
    """(BD-rate in %, BD-PSNR in dB) of test against anchor, PCHIP as ``bjontegaard``;
    NaN where the curves do not overlap along the axis a value integrates over.

    Inputs are envelopes: rates and PSNRs strictly increasing, at least two points each.
    """
    la, lt = np.log10(ar), np.log10(tr)
    rate = psnr = math.nan
    lo, hi = max(ap[0], tp[0]), min(ap[-1], tp[-1])
    if hi > lo:  # BD-rate: log-rate as a function of PSNR, averaged over the PSNR overlap
        gap = (PchipInterpolator(tp, lt).integrate(lo, hi)
               - PchipInterpolator(ap, la).integrate(lo, hi)) / (hi - lo)
        rate = (10.0 ** gap - 1.0) * 100.0
    lo, hi = max(la[0], lt[0]), min(la[-1], lt[-1])
    if hi > lo:  # BD-PSNR: PSNR as a function of log-rate, averaged over the rate overlap
        psnr = (PchipInterpolator(lt, tp).integrate(lo, hi)
                - PchipInterpolator(la, ap).integrate(lo, hi)) / (hi - lo)
    return float(rate), float(psnr)


def bd_intervals(rows: pd.DataFrame, bd: pd.DataFrame, resamples: int = RESAMPLES
                 ) -> pd.DataFrame:
    """``bd`` (:func:`~medbench.reports.bd.bd_table` of ``rows``' curves) with the 95 %
    bootstrap interval of each BD-rate (PSNR) and BD-PSNR.

    Parameters
    ----------
    rows : pandas.DataFrame
        The result rows the curves were drawn from (``ok`` rows count).
    bd : pandas.DataFrame
        The BD table.
    resamples : int
        Bootstrap resamples.

    Returns
    -------
    pandas.DataFrame
        ``bd`` with :data:`COLUMNS`: the interval's ends (NaN where none) and how it was
        computed, or why there is none.
    """
    if bd.empty or rows.empty:
        return _empty(bd)
    ok = rows[rows["status"] == "ok"]

    def dataset(name: str) -> tuple[int, str | None, Resampled]:
        data = ok[ok["dataset"] == name]
        names, index = np.unique(_groups(data).to_numpy(dtype=str), return_inverse=True)
        group_of = pd.Series(index, index=data.index)
        return len(names), group_kind(data), lambda weights, codec, train: \
            _resampled_curve(data, group_of, weights, codec, train)

    return _with_intervals(bd, dataset, resamples)


def bd_intervals_in_store(found: StoreMeans, bd: pd.DataFrame,
                          resamples: int = RESAMPLES) -> pd.DataFrame:
    """:func:`bd_intervals` from what the store gave (:func:`~.store_means.means_in_store`
    with the settings' groups kept): the same resamples of the same groups, each
    setting's means resampled from its per-group sums instead of its rows."""
    if bd.empty or not found.groups:
        return _empty(bd)

    def dataset(name: str) -> tuple[int, str | None, Resampled]:
        keys = [k for k in found.groups if k[0] == name]
        names = np.unique(np.concatenate([found.groups[k]["grp"].to_numpy(dtype=str)
                                          for k in keys])) if keys else np.array([], str)
        kind = "/".join(sorted({kd for k in keys for kd in found.kinds[k]})) or None

        sums_of: dict[tuple, list] = {}  # per curve, its settings' per-group sums

        def settings_sums(codec: str, own: str) -> list:
            if (codec, own) not in sums_of:
                found_sums = []
                for key in (k for k in keys if k[1] == codec and k[2] == own):
                    g = found.groups[key]
                    where = np.searchsorted(names, g["grp"].to_numpy(dtype=str))
                    sums = {}
                    for m in ("bpp", "psnr"):
                        n = g[f"{m}_n"].to_numpy(dtype=float)
                        total = np.where(n > 0, g[f"{m}_s"].to_numpy(dtype=float), 0.0)
                        sums[m] = (np.bincount(where, total, minlength=len(names)),
                                   np.bincount(where, n, minlength=len(names)))
                    if sums["psnr"][1].any():  # lossless: no place on a PSNR curve
                        found_sums.append(sums)
                sums_of[(codec, own)] = found_sums
            return sums_of[(codec, own)]

        def curve(weights: np.ndarray, codec: str, train: str | None) -> list:
            points = []  # in any order: each resample's envelope sorts them by rate
            for sums in settings_sums(codec, train if _named(train) else ""):
                with np.errstate(invalid="ignore", divide="ignore"):
                    points.append(tuple(weights @ total / (weights @ count)
                                        for total, count in (sums["bpp"], sums["psnr"])))
            return points

        return len(names), kind, curve

    return _with_intervals(bd, dataset, resamples)


#: A curve's resampled points: (weights, codec, train dataset) -> per setting, its mean
#: bpp and PSNR in every resample.
Resampled = Callable[[np.ndarray, str, "str | None"], list]


def _empty(bd: pd.DataFrame) -> pd.DataFrame:
    out = bd.copy()
    for column in COLUMNS:
        out[column] = None if column == "bd_ci_method" else math.nan
    return out


def _with_intervals(bd: pd.DataFrame, dataset: Callable[[str], tuple[int, str | None,
                                                                    Resampled]],
                    resamples: int) -> pd.DataFrame:
    """``bd`` with its intervals; ``dataset(name)`` gives a dataset's number of groups,
    their kind and its curves' resampled points."""
    out = _empty(bd)
    for name, lines in out.groupby("dataset", sort=False):
        groups, kind, resampled = dataset(name)
        noun = kind if kind and kind != NO_GROUPING else "image"
        if groups < MIN_GROUPS:
            out.loc[lines.index, "bd_ci_method"] = (
                f"none: only {groups} {noun}s (a bootstrap needs at least {MIN_GROUPS})")
            continue
        tested = [(i, (line["codec"], line["train_dataset"] if _named(line["train_dataset"])
                       else None)) for i, line in lines.iterrows()
                  if not (line["codec"] == ANCHOR and not _named(line["train_dataset"]))]
        curves: dict[tuple, list] = {}
        rng = np.random.default_rng(SEED)
        # The resamples are drawn a block at a time (the generator's stream does not
        # depend on how it is cut): at 10⁵ patients all 500 at once took 0.8 GB.
        step = max(1, BLOCK // groups)
        for start in range(0, resamples, step):
            draws = rng.integers(0, groups, size=(min(step, resamples - start), groups))
            weights = np.stack([np.bincount(d, minlength=groups) for d in draws]).astype(float)
            for key in dict.fromkeys([(ANCHOR, None), *(key for _, key in tested)]):
                part = resampled(weights, *key)
                curves[key] = part if not start else [
                    tuple(np.concatenate([a, b]) for a, b in zip(before, more))
                    for before, more in zip(curves[key], part)]
        anchor = curves[(ANCHOR, None)]
        for i, key in tested:
            line = lines.loc[i]
            test = curves[key]
            rates, psnrs = _deltas(anchor, test)
            method = (f"bootstrap ({resamples} resamples of {groups} {noun}s, "
                      f"percentile)")
            for values, low, high, need in ((rates, "bd_rate_psnr_low", "bd_rate_psnr_high",
                                             line["bd_rate_psnr"]),
                                            (psnrs, "bd_psnr_low", "bd_psnr_high",
                                             line["bd_psnr"])):
                valid = values[np.isfinite(values)]
                if pd.isna(need) or len(valid) < MIN_VALID * resamples:
                    continue
                tail = (1 - CONFIDENCE) / 2 * 100
                out.at[i, low], out.at[i, high] = np.percentile(valid, [tail, 100 - tail])
            out.at[i, "bd_ci_method"] = method
    return out


def _named(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _groups(rows: pd.DataFrame) -> pd.Series:
    images = rows["image_id"].astype(str)
    if "group_id" not in rows:
        return images
    return rows["group_id"].where(rows["group_id"].notna(), images).astype(str)


def _resampled_curve(rows: pd.DataFrame, group_of: pd.Series, weights: np.ndarray,
                     codec: str, train: str | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per lossy setting of one curve, its mean bpp and PSNR in every resample."""
    own = rows[rows["codec"] == codec]
    if "train_dataset" in own:
        own = own[own["train_dataset"] == train] if _named(train) \
            else own[own["train_dataset"].isna()]
    points = []
    groups = weights.shape[1]
    for _, setting in own.groupby("setting", sort=False):
        bpp = pd.to_numeric(setting["bpp"], errors="coerce")
        psnr = pd.to_numeric(setting["psnr"], errors="coerce")
        finite = psnr.notna() & np.isfinite(psnr)
        if not finite.any():  # lossless: no place on a PSNR curve
            continue
        where = group_of[setting.index].to_numpy()
        has_bpp = bpp.notna().to_numpy()
        sums = np.bincount(where[has_bpp], bpp[has_bpp].to_numpy(), minlength=groups)
        counts = np.bincount(where[has_bpp], minlength=groups)
        f = finite.to_numpy()
        psums = np.bincount(where[f], psnr[f].to_numpy(), minlength=groups)
        pcounts = np.bincount(where[f], minlength=groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            points.append((weights @ sums / (weights @ counts),
                           weights @ psums / (weights @ pcounts)))
    return points


def _deltas(anchor: list[tuple[np.ndarray, np.ndarray]],
            test: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """BD-rate and BD-PSNR of ``test`` against ``anchor`` in every resample."""
    resamples = len(anchor[0][0]) if anchor else 0
    rates, psnrs = np.full(resamples, math.nan), np.full(resamples, math.nan)
    if not anchor or not test:
        return rates, psnrs
    a_bpp, a_psnr = np.array([p[0] for p in anchor]), np.array([p[1] for p in anchor])
    t_bpp, t_psnr = np.array([p[0] for p in test]), np.array([p[1] for p in test])
    for b in range(resamples):
        ar, ap = envelope(a_bpp[:, b], a_psnr[:, b])
        tr, tp = envelope(t_bpp[:, b], t_psnr[:, b])
        if len(ar) >= 2 and len(tr) >= 2:
            rates[b], psnrs[b] = bd_values(ar, ap, tr, tp)
    return rates, psnrs
