"""Per-setting means of result rows: the one place every report table averages images.

The summary, the RD curves, Table 1, the body-part breakdown and ``medbench compare`` all
read their per-setting numbers from :func:`setting_means`, so they agree on what "the
PSNR of a setting" is, in particular when some images decode exactly (PSNR ``inf``).

Confidence intervals (95 %, as half-widths) respect how images were sampled, and say
what they assumed (``ci_method``, decided on the values each metric actually averages:
PSNR leaves out exact images). Each row names its group (``group_id``) and what that group
is (``group_kind``: patient, report, radiograph; ``image`` where the dataset knows none).

- Every value from its own group: Student-t (``t(0.975, n-1) · s / sqrt(n)``). Where the
  dataset knows no grouping (``group_kind`` ``image``: MXID, ``folder:`` without
  ``--groups``), the label says the interval *assumes* the images are independent.
- Values sharing groups (200 NIH images of 128 patients): images of one patient are not
  independent, and an i.i.d. interval is too narrow. With at least :data:`MIN_GROUPS`
  groups the interval is a *cluster bootstrap*: groups are resampled with replacement
  (:data:`BOOTSTRAP_RESAMPLES` times, seeded, so a report is reproducible), the mean over
  the images of the drawn groups is taken each time, and the half-width is half the
  distance between the 2.5th and 97.5th percentiles of those means. With fewer groups a
  percentile bootstrap undercovers badly (its resamples can only recombine a handful of
  values), so no interval is given and ``ci_method`` says why (``sample``: 11 tiles of 2
  radiographs).

References
----------
A. C. Davison, D. V. Hinkley, *Bootstrap Methods and their Application*, Cambridge
University Press, 1997, section 3.8 (resampling clusters), doi:10.1017/CBO9780511802843.
A. C. Cameron, J. B. Gelbach, D. L. Miller, "Bootstrap-based improvements for inference
with clustered errors", Rev. Econ. Stat. 90(3), 2008, doi:10.1162/rest.90.3.414.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from medbench.benchmark.metrics import psnr_from_mse

#: One line of :func:`setting_means` per value of these columns.
KEYS = ["dataset", "codec", "train_dataset", "setting"]
#: Metrics averaged per setting; each also gets a ``<name>_ci`` half-width column.
METRICS = ("bpp", "psnr", "ssim", "ms_ssim", "encode_ms", "decode_ms")
#: The perceptual and display-referred metrics (``run --metrics``, ``--display``), averaged
#: the same way where rows have them (their columns follow the others').
MORE_METRICS = ("vif", "gmsd", "haarpsi", "fsim", "display_psnr", "display_ssim")
#: PSNRs whose exact images (inf) are left out of the mean, as ``psnr``'s are.
_PSNRS = ("psnr", "display_psnr")
#: Complexity per setting: the model's (one value per setting) and the largest peak
#: memory of its images (what a machine must hold for the worst image).
COMPLEXITY = ("params", "kmac_per_pixel_enc", "kmac_per_pixel_dec", "peak_mem_mb")
CONFIDENCE = 0.95
#: Resamples of the cluster bootstrap, and its seed.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20031
#: Draws held at once by a bootstrap (memory: 8 bytes each, three arrays of them).
BLOCK = 2**22
#: Fewest groups a cluster bootstrap is computed from (Davison & Hinkley 1997, 3.8, and
#: Cameron, Gelbach & Miller 2008: percentile cluster bootstraps undercover with few
#: clusters); with fewer, no interval is given.
MIN_GROUPS = 10
#: ``group_kind`` of a dataset that knows no grouping: each image its own group.
NO_GROUPING = "image"
COLUMNS = [
    *KEYS, "codec_kind", "setting_rank", "images", "errors", "unsupported", "exact_images",
    "max_abs_error", *[c for m in METRICS for c in (m, f"{m}_ci")], "psnr_pooled", "nmse",
    "groups", "group_kind", "ci_method", "batch_size",
    *[c for m in MORE_METRICS for c in (m, f"{m}_ci")], *COMPLEXITY,
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
          the rows carry none), ``group_kind`` what they are; ``ci_method``: how the
          intervals were computed, on the values each metric used (:func:`interval`;
          one text per method where metrics differ, e.g. when PSNR leaves out exact
          images and keeps too few groups).
        - ``batch_size``: the most images coded together (``run --learned-batch``); above
          1, ``encode_ms``/``decode_ms`` are amortized per image (batch time / batch).
        - ``params``, ``kmac_per_pixel_enc``/``_dec`` (learned models) and
          ``peak_mem_mb``: their largest value over the ``ok`` images (NaN where no row
          has one).
    """
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = rows.copy()
    for column in ("train_dataset", "setting_rank", "codec_kind"):
        if column not in rows:
            rows[column] = None
    rows["train_dataset"] = _with_known_train_dataset(rows)
    out = []
    pending = Bootstraps()  # every setting's cluster bootstraps, drawn together at the end
    for key, group in rows.groupby(KEYS, sort=False, dropna=False):
        out.append({**dict(zip(KEYS, key)), **_line(group, pending)})
    pending.run()
    for line in out:
        for name, found in line.pop("_intervals").items():
            line[f"{name}_ci"] = found.result().halfwidth
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
    # A join, not a lookup per row: one Python call per row took minutes at 10⁶ rows.
    found = known.index.get_indexer(pd.MultiIndex.from_frame(rows[keys]))
    values = np.asarray(known.to_numpy(), dtype=object)
    fill = pd.Series(np.where(found >= 0, values[found.clip(0)], None), index=rows.index,
                     dtype=object)
    return rows["train_dataset"].where(rows["train_dataset"].notna(), fill)


def _line(group: pd.DataFrame, pending: Bootstraps) -> dict:
    """The counts and means of one setting's rows; its intervals are left in
    ``_intervals``, to be read once ``pending`` has run."""
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
    kind = group_kind(ok)
    line["groups"] = int(groups.nunique())
    line["group_kind"] = kind
    methods: dict[str, str] = {}
    metrics = {}
    for name in (*METRICS, *MORE_METRICS):
        values = _numbers(ok, name)
        if name in _PSNRS:  # exact images: no finite value to average
            values = values[values != math.inf]
        line[name] = _mean(values)
        metrics[name] = values
    found = _intervals(metrics, groups, kind, CONFIDENCE, pending)
    line["_intervals"] = found
    for name, values in metrics.items():
        if values.notna().any():  # a metric no row has says nothing about the method
            methods[name] = found[name].how
    line["ci_method"] = _methods_text(methods)
    for name in _PSNRS:  # every image exact: no finite value to average
        raw = _numbers(ok, name).dropna()
        if len(raw) and (raw == math.inf).all():
            line[name] = math.inf
    batch = _numbers(ok, "batch_size").max() if len(ok) else math.nan
    line["batch_size"] = 1 if pd.isna(batch) else int(batch)
    for name in COMPLEXITY:
        line[name] = _numbers(ok, name).max() if len(ok) else math.nan
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


def _methods_text(methods: dict[str, str]) -> str:
    """One method for every metric, or ``psnr: …; bpp, ssim, …: …`` where they differ."""
    if not methods:
        return "none: no values"
    by_method: dict[str, list[str]] = {}
    for metric, method in methods.items():
        by_method.setdefault(method, []).append(metric)
    if len(by_method) == 1:
        return next(iter(by_method))
    return "; ".join(f"{', '.join(metrics)}: {method}" for method, metrics in by_method.items())


def group_kind(rows: pd.DataFrame) -> str | None:
    """What the rows' groups are (their ``group_kind``; several kinds joined by ``/``),
    None when no row says."""
    if "group_kind" not in rows:
        return None
    kinds = sorted({str(k) for k in rows["group_kind"].dropna().unique()})
    return "/".join(kinds) or None


def _groups(ok: pd.DataFrame) -> pd.Series:
    """Each ``ok`` row's group (patient, report...), its image id where there is none."""
    images = ok["image_id"].astype(str) if "image_id" in ok else pd.Series(
        [str(i) for i in ok.index], index=ok.index)
    if "group_id" not in ok:
        return images
    return ok["group_id"].where(ok["group_id"].notna(), images).astype(str)


@dataclass(frozen=True)
class Interval:
    """A 95 % half-width and how it was computed (``ci_method`` text)."""

    halfwidth: float
    method: str


def interval(values: pd.Series | np.ndarray, groups: pd.Series | np.ndarray | None = None,
             kind: str | None = None, confidence: float = CONFIDENCE) -> Interval:
    """Half-width of a confidence interval of the mean of ``values``, and what it assumed.

    Parameters
    ----------
    values
        Per-image values; NaN values are ignored (the method is decided on the rest).
    groups
        The group of each value (same length); None: each value its own group.
    kind
        What a group is (``patient``, ``report``, ``radiograph``); None or
        :data:`NO_GROUPING`: the dataset knows none, and a Student-t interval says it
        assumes independence.
    confidence
        Coverage of the interval.

    Returns
    -------
    Interval
        Student-t where every value has its own group; the cluster bootstrap of the module
        notes where values share groups and there are at least :data:`MIN_GROUPS`; else a
        NaN half-width, as when fewer than two values remain or any is infinite, with the
        reason in ``method``.
    """
    return _decide(values, groups, kind, confidence).result()


def intervals(metrics: dict[str, pd.Series], groups: pd.Series, kind: str | None,
              confidence: float = CONFIDENCE) -> dict[str, Interval]:
    """:func:`interval` of each metric's values (indexed like ``groups``, a subset of it),
    the same numbers, their bootstraps drawn together (:class:`Bootstraps`)."""
    pending = Bootstraps()
    decided = _intervals(metrics, groups, kind, confidence, pending)
    pending.run()
    return {name: decision.result() for name, decision in decided.items()}


def _intervals(metrics: dict[str, pd.Series], groups: pd.Series, kind: str | None,
               confidence: float, pending: Bootstraps) -> dict[str, _Decision]:
    """Each metric's decision (:func:`_decide`); its bootstrap, if it needs one, is left
    to ``pending``."""
    # The groups' numbers in sorted order of their names, once for all metrics: each
    # metric's subset then numbers its groups as np.unique of the names would.
    codes = pd.Series(pd.factorize(groups.astype(str), sort=True)[0], index=groups.index)
    decided = {name: _decide(values, codes[values.index], kind, confidence, coded=True)
               for name, values in metrics.items()}
    for decision in decided.values():
        if decision.interval is None:  # a bootstrap to draw
            pending.add(decision)
    return decided


class Bootstraps:
    """Cluster bootstraps of many metrics and settings, computed together.

    A bootstrap draws its resamples from a generator started afresh with
    :data:`BOOTSTRAP_SEED`, so two bootstraps over the same number of groups draw the
    same group numbers: one matrix of how often each group was drawn in each resample
    serves every metric of every setting with that many groups, and the resampled means
    of all of them are one matrix product (at 10⁶ rows, 23 settings and 11,000 patients a
    setting, drawing each setting's resamples again took most of a report's time). The
    numbers are the ones each bootstrap alone gives (sums taken in another order: equal
    to about 1e-15).
    """

    def __init__(self) -> None:
        self._jobs: dict[tuple[int, float], list[tuple[_Decision, np.ndarray, np.ndarray]]] = {}

    def add(self, decision: _Decision) -> None:
        """Keep what ``decision``'s bootstrap needs: its sums and image counts per group
        (its per-image values are let go: at 10⁶ rows they were 0.4 GB until run)."""
        sums = np.bincount(decision.index, weights=decision.values)
        counts = np.bincount(decision.index).astype(float)
        decision.values = decision.index = None
        self._jobs.setdefault((len(counts), decision.confidence), []).append(
            (decision, sums, counts))

    def run(self) -> None:
        """Compute every added decision's interval."""
        jobs, self._jobs = self._jobs, {}
        for (groups, confidence), same in jobs.items():
            if groups < 2:
                halves = np.full(len(same), math.nan)
            else:
                halves = _resampled_halfwidths(np.stack([s for _, s, _ in same]),
                                               np.stack([c for _, _, c in same]), confidence)
            for (decision, _, _), half in zip(same, halves):
                decision.interval = Interval(float(half), decision.method)


@dataclass
class _Decision:
    """How one metric's interval is computed: already (``interval``), or by the cluster
    bootstrap of ``values`` over the groups ``index`` numbers (``method`` its text)."""

    interval: Interval | None
    values: np.ndarray | None = None
    index: np.ndarray | None = None
    method: str = ""
    confidence: float = CONFIDENCE

    @property
    def how(self) -> str:
        """The ``ci_method`` text, known before a bootstrap is drawn."""
        return self.interval.method if self.interval is not None else self.method

    def result(self) -> Interval:
        if self.interval is None:  # interval(): a bootstrap of its own
            half = _cluster_bootstraps(self.values[None, :], self.index, self.confidence)[0]
            return Interval(float(half), self.method)
        return self.interval


def _decide(values: pd.Series | np.ndarray, groups: pd.Series | np.ndarray | None,
            kind: str | None, confidence: float, coded: bool = False) -> _Decision:
    """How ``values``' interval is computed (``coded``: ``groups`` are integers numbering
    the groups in sorted order of their names, see :func:`_intervals`)."""
    given = np.asarray(values).ravel()
    if given.dtype.kind == "f":  # already numbers (the common case): no conversion
        keep = ~np.isnan(given)
        arr = given[keep]
    else:
        series = pd.to_numeric(pd.Series(given.astype(object)), errors="coerce").astype(float)
        keep = series.notna().to_numpy()
        arr = series.to_numpy()[keep]
    if groups is None:
        labels = np.arange(len(arr))
    elif coded:
        labels = np.asarray(groups).ravel()[keep]
    else:
        labels = np.asarray(groups, dtype=object).ravel()[keep].astype(str)
    names, index = np.unique(labels, return_inverse=True)
    count, distinct = len(arr), len(names)
    noun = kind if kind and kind != NO_GROUPING else "group"
    if count < 2:
        return _Decision(Interval(math.nan, f"none: {count} value{'s' * (count != 1)}"))
    if not np.isfinite(arr).all():
        return _Decision(Interval(math.nan, "none: infinite values"))
    if distinct == count:
        sem = float(np.std(arr, ddof=1)) / math.sqrt(count)
        half = float(stats.t.ppf(0.5 + confidence / 2, count - 1) * sem)
        if not kind or kind == NO_GROUPING:
            return _Decision(Interval(half, "student-t, assuming independent images (no "
                                            "patient grouping known)"))
        return _Decision(Interval(half, f"student-t (one image per {kind})"))
    if distinct < MIN_GROUPS:
        return _Decision(Interval(math.nan, f"none: {count} images from only {distinct} "
                                            f"{noun}s (a cluster bootstrap needs at least "
                                            f"{MIN_GROUPS})"))
    return _Decision(None, arr, index.ravel(), f"cluster bootstrap ({BOOTSTRAP_RESAMPLES} "
                                               f"resamples of {distinct} {noun}s)",
                     confidence)


def ci_halfwidth(values: pd.Series | np.ndarray, groups: pd.Series | np.ndarray | None = None,
                 confidence: float = CONFIDENCE) -> float:
    """The half-width of :func:`interval` (its method aside).

    Returns
    -------
    float
        NaN when fewer than two values (or fewer than :data:`MIN_GROUPS` shared groups)
        remain, or when any value is infinite (the mean is then infinite too).
    """
    return interval(values, groups, None, confidence).halfwidth


def _resampled_halfwidths(sums: np.ndarray, counts: np.ndarray, confidence: float
                          ) -> np.ndarray:
    """:func:`_cluster_bootstraps` of many metrics over the same number of groups: row
    ``i`` of ``sums`` and ``counts`` (each ``metrics × groups``) is one metric's sum and
    image count per group (in ``np.unique`` order of its groups)."""
    metrics, groups = sums.shape
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = np.empty((metrics, BOOTSTRAP_RESAMPLES))
    # Drawn in blocks of resamples (the generator's stream does not depend on how it is
    # cut): each block's draws become counts per group, and the sums and image counts
    # of every metric over each resample are one matrix product.
    step = max(1, BLOCK // groups)
    for start in range(0, BOOTSTRAP_RESAMPLES, step):
        stop = min(BOOTSTRAP_RESAMPLES, start + step)
        draws = rng.integers(0, groups, size=(stop - start, groups))
        offsets = (np.arange(stop - start) * groups)[:, None]
        drawn = np.bincount((draws + offsets).ravel(), minlength=(stop - start) * groups)
        drawn = drawn.reshape(stop - start, groups).astype(float)
        means[:, start:stop] = (sums @ drawn.T) / (counts @ drawn.T)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail], axis=1)
    return (high - low) / 2


def _cluster_bootstraps(values: np.ndarray, index: np.ndarray, confidence: float
                        ) -> np.ndarray:
    """Half the central ``confidence`` percentile range of means over resampled groups,
    for each row of ``values`` (metrics of the same images; ``index``: each image's group
    number, as ``np.unique`` gives them)."""
    sums = np.stack([np.bincount(index, weights=v) for v in values])
    counts = np.bincount(index).astype(float)
    if sums.shape[1] < 2:
        return np.full(len(values), math.nan)
    return _resampled_halfwidths(sums, np.broadcast_to(counts, sums.shape), confidence)
