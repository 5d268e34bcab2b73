"""Per-setting means of result rows: the one place every report table averages images.

The summary, the RD curves, Table 1, the body-part breakdown and ``medbench compare`` all
read their per-setting numbers from :func:`setting_means`, so they agree on what "the
PSNR of a setting" is, in particular when some images decode exactly (PSNR ``inf``).

Confidence intervals (95 %, as half-widths) respect how images were sampled. Where every
image is its own group (patient, report), images are independent and the interval is
Student-t (``t(0.975, n-1) · s / sqrt(n)``). Where images share a group (200 NIH images
of 128 patients), images of one patient are not independent and an i.i.d. interval is too
narrow; the interval is then a *cluster bootstrap*: groups are resampled with replacement
(:data:`BOOTSTRAP_RESAMPLES` times, seeded, so a report is reproducible), the mean over
the images of the drawn groups is taken each time, and the half-width is half the
distance between the 2.5th and 97.5th percentiles of those means. ``ci_method`` says
which was used.

References
----------
A. C. Davison, D. V. Hinkley, *Bootstrap Methods and their Application*, Cambridge
University Press, 1997, section 3.8 (resampling clusters), doi:10.1017/CBO9780511802843.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from medbench.benchmark.metrics import psnr_from_mse

#: One line of :func:`setting_means` per value of these columns.
KEYS = ["dataset", "codec", "train_dataset", "setting"]
#: Metrics averaged per setting; each also gets a ``<name>_ci`` half-width column.
METRICS = ("bpp", "psnr", "ssim", "ms_ssim", "encode_ms", "decode_ms")
CONFIDENCE = 0.95
#: Resamples of the cluster bootstrap, and its seed.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20031
COLUMNS = [
    *KEYS, "codec_kind", "setting_rank", "images", "errors", "unsupported", "exact_images",
    "max_abs_error", *[c for m in METRICS for c in (m, f"{m}_ci")], "psnr_pooled", "nmse",
    "groups", "ci_method", "batch_size",
]


def setting_means(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per dataset × codec × train dataset × setting: counts, means and intervals.

    Parameters
    ----------
    rows : pandas.DataFrame
        Result rows (the ``results.csv`` columns). Needs ``dataset``, ``codec``,
        ``setting`` and ``status``; ``train_dataset``, ``setting_rank``, ``mse``,
        ``bit_depth`` and the metric columns are used when present.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, one line per setting that has any row (also when none
        is ``ok``), ordered by dataset, codec, train dataset and ``setting_rank`` (low to
        high rate; ties keep the order of ``rows``). ``train_dataset`` is None for
        classical codecs.

        - ``images``, ``errors``, ``unsupported``: rows of each status.
        - ``bpp``, ``ssim``, ``ms_ssim``, ``encode_ms``, ``decode_ms``: means over the
          ``ok`` images (NaN values skipped), ``max_abs_error`` their maximum.
        - ``psnr``: the mean over the ``ok`` images whose PSNR is finite;
          ``exact_images`` counts those that decoded exactly (PSNR ``inf``) and are left
          out of it. ``psnr`` is ``inf`` when every image decoded exactly.
        - ``nmse``: the pooled normalised MSE, the mean over all ``ok`` images of
          ``mse / peak²`` with ``peak = 2**bit_depth - 1`` of each image's own bit depth
          (so settings that mix bit depths pool errors on one [0, 1] scale, the scale
          Table 1 of the seed paper uses); NaN if any ``ok`` image lacks ``mse`` or
          ``bit_depth``.
        - ``psnr_pooled``: the PSNR of ``nmse`` with peak 1. Exact images count with MSE
          0, so it is finite unless every image decoded exactly (then ``inf``).
        - ``<metric>_ci``: the 95 % half-width (:func:`ci_halfwidth`) over the same
          values the mean used (for ``psnr``: the finite ones): Student-t when every
          image is its own group, else a cluster bootstrap over groups.
        - ``groups``: distinct ``group_id`` values among the ``ok`` images (images when
          the rows carry none); ``ci_method``: ``student-t`` or
          ``cluster bootstrap (2000 resamples of N groups)``.
        - ``batch_size``: the most images coded together (``run --learned-batch``); above
          1, ``encode_ms``/``decode_ms`` are amortized per image (batch time / batch).
    """
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = rows.copy()
    for column in ("train_dataset", "setting_rank", "codec_kind"):
        if column not in rows:
            rows[column] = None
    rows["train_dataset"] = _with_known_train_dataset(rows)
    out = []
    for key, group in rows.groupby(KEYS, sort=False, dropna=False):
        out.append({**dict(zip(KEYS, key)), **_line(group)})
    table = pd.DataFrame(out, columns=COLUMNS)
    table["train_dataset"] = table["train_dataset"].map(lambda v: None if pd.isna(v) else v)
    order = table.assign(train_key=table["train_dataset"].fillna(""))
    order = order.sort_values(["dataset", "codec", "train_key", "setting_rank"], kind="stable")
    return table.loc[order.index].reset_index(drop=True)


def _with_known_train_dataset(rows: pd.DataFrame) -> pd.Series:
    """``train_dataset``, filled in on rows that lack it (an image no worker could read:
    its error rows never loaded the model) from the other rows of the same dataset,
    codec and setting when those name exactly one; so such errors count on that
    setting's line instead of a line of their own."""
    keys = ["dataset", "codec", "setting"]
    known = rows.dropna(subset=["train_dataset"]).groupby(keys)["train_dataset"].unique()
    known = known[known.map(len) == 1].map(lambda v: v[0])
    if known.empty:
        return rows["train_dataset"]
    fill = pd.Series([known.get(tuple(k)) for k in rows[keys].itertuples(index=False)],
                     index=rows.index, dtype=object)
    return rows["train_dataset"].where(rows["train_dataset"].notna(), fill)


def _line(group: pd.DataFrame) -> dict:
    """The counts and means of one setting's rows."""
    ok = group[group["status"] == "ok"]
    ranks = pd.to_numeric(group["setting_rank"], errors="coerce").dropna()
    kinds = group["codec_kind"].dropna()
    line = {
        "codec_kind": kinds.iloc[0] if len(kinds) else None,
        "setting_rank": int(ranks.min()) if len(ranks) else 0,
        "images": int(len(ok)),
        "errors": int((group["status"] == "error").sum()),
        "unsupported": int((group["status"] == "unsupported").sum()),
        "max_abs_error": _numbers(ok, "max_abs_error").max() if len(ok) else math.nan,
    }
    psnr = _numbers(ok, "psnr")
    exact = psnr == math.inf
    line["exact_images"] = int(exact.sum())
    groups = _groups(ok)
    clustered = groups.nunique() < len(groups)
    line["groups"] = int(groups.nunique())
    line["ci_method"] = (f"cluster bootstrap ({BOOTSTRAP_RESAMPLES} resamples of "
                         f"{groups.nunique()} groups)" if clustered else "student-t")
    for name in METRICS:
        values = psnr[~exact] if name == "psnr" else _numbers(ok, name)
        line[name] = _mean(values)
        line[f"{name}_ci"] = ci_halfwidth(values, groups[values.index] if clustered else None)
    if len(psnr) and exact.all():  # every image exact: no finite value to average
        line["psnr"] = math.inf
    batch = _numbers(ok, "batch_size").max() if len(ok) else math.nan
    line["batch_size"] = 1 if pd.isna(batch) else int(batch)
    line["nmse"] = _nmse(ok)
    line["psnr_pooled"] = psnr_from_mse(line["nmse"], 1.0)
    return line


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` as floats, NaN where absent or not a number."""
    if column not in frame:
        return pd.Series(math.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(np.mean(values.to_numpy(dtype=float))) if len(values) else math.nan


def _nmse(ok: pd.DataFrame) -> float:
    """Mean of ``mse / peak²`` over ``ok`` images; NaN when any of them lacks a value."""
    if ok.empty:
        return math.nan
    peak = 2.0 ** _numbers(ok, "bit_depth") - 1
    normalised = _numbers(ok, "mse") / peak**2
    return float(normalised.mean()) if normalised.notna().all() else math.nan


def _groups(ok: pd.DataFrame) -> pd.Series:
    """Each ``ok`` row's group (patient, report...), its image id where there is none."""
    images = ok["image_id"].astype(str) if "image_id" in ok else pd.Series(
        [str(i) for i in ok.index], index=ok.index)
    if "group_id" not in ok:
        return images
    return ok["group_id"].where(ok["group_id"].notna(), images).astype(str)


def ci_halfwidth(values: pd.Series | np.ndarray, groups: pd.Series | np.ndarray | None = None,
                 confidence: float = CONFIDENCE) -> float:
    """Half-width of a confidence interval of the mean of ``values``.

    Parameters
    ----------
    values
        Per-image values; NaN values are ignored.
    groups
        The group of each value (same length). None, or all distinct: the Student-t
        interval. Shared groups: the cluster bootstrap of the module docstring.
    confidence
        Coverage of the interval.

    Returns
    -------
    float
        NaN when fewer than two values (or groups) remain, or when any value is infinite
        (the mean is then infinite too).
    """
    series = pd.to_numeric(pd.Series(np.asarray(values, dtype=object).ravel()),
                           errors="coerce").astype(float)
    keep = series.notna().to_numpy()
    arr = series.to_numpy()[keep]
    if len(arr) < 2 or not np.isfinite(arr).all():
        return math.nan
    if groups is not None:
        labels = np.asarray(groups, dtype=object).ravel()[keep]
        if len(set(labels)) < len(labels):
            return _cluster_bootstrap(arr, labels, confidence)
    sem = float(np.std(arr, ddof=1)) / math.sqrt(len(arr))
    return float(stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * sem)


def _cluster_bootstrap(values: np.ndarray, labels: np.ndarray, confidence: float) -> float:
    """Half the central ``confidence`` percentile range of means over resampled groups."""
    _, index = np.unique(labels.astype(str), return_inverse=True)
    sums = np.bincount(index, weights=values)
    counts = np.bincount(index).astype(float)
    if len(sums) < 2:
        return math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(sums), size=(BOOTSTRAP_RESAMPLES, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(high - low) / 2
