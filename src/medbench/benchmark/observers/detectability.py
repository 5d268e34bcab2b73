"""Detectability from test statistics: d', AUC, the CHO template, and their bootstrap.

Each site of the experiment gives an observer two numbers (or channel vectors): one for
the region with the nodule (*present*) and one for the same region without it (*absent*),
both cut from decodes of the same codec and setting. From those:

- **d'** (detectability index) ``(μ_p - μ_a) / sqrt((σ_p² + σ_a²) / 2)`` of the test
  statistics (sample variances, ``ddof=1``), the index of Barrett & Myers (2004, eq.
  13.22) and of ICRU Report 54;
- **AUC** the Mann–Whitney estimate ``P(t_p > t_a) + ½ P(t_p = t_a)`` over all
  present–absent pairs, the area under the empirical ROC curve (Hanley & McNeil 1982);
- the **channelized Hotelling** template ``w_c = S⁻¹ (v̄_p,c - v̄_a,c)`` of condition ``c``
  (one contrast of one nodule size), fitted on training channel vectors (Barrett & Myers
  2004, §13.2.9). ``S`` is the pooled within-class covariance of the channel vectors of
  *all* the conditions given together (the contrasts of one size: the same background
  ensemble, cut the same way), which triples the samples behind the ``J × J``
  covariance; the mean difference is each condition's own. Each template is scaled so
  that ``wᵀ S w = 1``, which makes the statistics of templates fitted on different
  images comparable (d' does not depend on the scale).

**Cross-validation.** The run's patient groups are split in two halves by a seeded draw
(:func:`halves`). The CHO is fitted on one half's channel vectors and applied to the other
half's, then the halves swap; the test statistics of both halves are pooled. So every
statistic comes from an image the template did not see (no resubstitution bias), and
all the run's patients count, not half of them.

**Bootstrap.** Intervals resample patient groups with replacement, within each half
(:func:`replicate_weights`), and recompute d' from the test statistics of the drawn
patients' sites; the coded and original statistics are reweighted by the *same* draw, so
the ratio's interval reflects their pairing. The CHO templates stay those of the point
estimate: the intervals say how d' depends on which patients were tested, given the
observer. (Refitting the CHO inside each replicate, tried on the NIH images, trains it on
about 63 % distinct patients with duplicates, a worse observer than the data's; its
replicates sat well below the estimate and their spread made even a near-lossless decode
look ±15 % uncertain.) The intervals are **bias-corrected percentile** intervals (BC,
Efron & Tibshirani 1993, §14.3), 95 %, which equal plain percentile intervals when the
replicates centre on the estimate.

References
----------
Barrett HH, Myers KJ. *Foundations of Image Science*. Wiley, 2004, ch. 13.
Hanley JA, McNeil BJ. The meaning and use of the area under a receiver operating
characteristic (ROC) curve. Radiology 1982;143(1):29–36. doi:10.1148/radiology.143.1.7063747
Efron B, Tibshirani RJ. *An Introduction to the Bootstrap*. Chapman & Hall, 1993.
doi:10.1201/9780429246593
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


def dprime(present: np.ndarray, absent: np.ndarray) -> float:
    """``(mean_p - mean_a) / sqrt((var_p + var_a) / 2)``; NaN with fewer than 2 of either
    or no spread.

    Parameters
    ----------
    present, absent
        Test statistics of the signal-present and signal-absent regions.
    """
    present, absent = np.asarray(present, np.float64), np.asarray(absent, np.float64)
    if present.size < 2 or absent.size < 2:
        return float("nan")
    spread = np.sqrt((present.var(ddof=1) + absent.var(ddof=1)) / 2)
    if spread == 0:
        return float("nan")
    return float((present.mean() - absent.mean()) / spread)


def auc(present: np.ndarray, absent: np.ndarray) -> float:
    """Mann–Whitney AUC: the fraction of (present, absent) pairs ranked right, ties ½."""
    present, absent = np.asarray(present, np.float64), np.asarray(absent, np.float64)
    if present.size == 0 or absent.size == 0:
        return float("nan")
    ordered = np.sort(absent)
    below = np.searchsorted(ordered, present, side="left")
    ties = np.searchsorted(ordered, present, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (present.size * absent.size))


def dprime_se(value: float, n_present: int, n_absent: int) -> float:
    """Approximate standard error of a d' estimate from normal statistics of equal variance:
    ``sqrt(1/n_p + 1/n_a + d'²/(2 (n_p + n_a)))`` (the sampling error tests allow)."""
    return float(np.sqrt(1 / n_present + 1 / n_absent + value**2 / (2 * (n_present + n_absent))))


def halves(groups: Sequence[str], seed: int) -> dict[str, int]:
    """Group → half (0 or 1): the sorted groups shuffled by ``seed``, then alternated, so
    the halves differ in size by at most one and the draw does not depend on row order."""
    unique = sorted(set(groups))
    order = np.random.default_rng([seed, len(unique)]).permutation(len(unique))
    return {unique[i]: rank % 2 for rank, i in enumerate(order)}


@dataclass(frozen=True)
class Sites:
    """One observer's data: per site, its group, half and condition, and the
    present/absent statistics (NPWE: ``(n,)``) or channel vectors (CHO: ``(n, J)``)."""

    group: np.ndarray  # (n,) integer group index
    half: np.ndarray  # (n,) 0 or 1
    present: np.ndarray
    absent: np.ndarray
    #: (n,) condition index 0..C-1 (the CHO pools its covariance over them); None: one.
    condition: np.ndarray | None = field(default=None)

    @property
    def channelized(self) -> bool:
        return self.present.ndim == 2

    @property
    def labels(self) -> np.ndarray:
        if self.condition is None:
            return np.zeros(self.group.size, dtype=np.int64)
        return self.condition

    @property
    def conditions(self) -> int:
        return int(self.labels.max()) + 1 if self.group.size else 0

    @property
    def groups(self) -> int:
        return int(self.group.max()) + 1 if self.group.size else 0


def _group_sums(sites: Sites, data: np.ndarray, keep: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group and condition: sites, sum and sum of outer products of ``data[keep]``."""
    shape = (sites.groups, sites.conditions)
    group, label, rows = sites.group[keep], sites.labels[keep], data[keep]
    n = np.zeros(shape)
    np.add.at(n, (group, label), 1.0)
    first = np.zeros((*shape, rows.shape[1]))
    np.add.at(first, (group, label), rows)
    second = np.zeros((*shape, rows.shape[1], rows.shape[1]))
    np.add.at(second, (group, label), rows[:, :, None] * rows[:, None, :])
    return n, first, second


def _weighted_templates(sites: Sites, train: np.ndarray, weight: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """CHO templates of replicates and their thresholds, both ``(B, C, J)``: ``weight`` is
    ``(B, G)`` group multiplicities, ``train`` the boolean mask of the training sites.

    The statistic of a channel vector ``v`` is ``wᵀ (v - m)``, ``m`` the midpoint of the
    training class means, so the statistics of the two halves' templates share their
    origin and can be pooled (without it each half's statistics would carry their own
    constant offset ``wᵀ m``, which pooling would count as variance).

    Channel statistics are summed per group first, so a replicate costs ``O(G C J²)``.
    The covariance is pooled within class over conditions (module notes). Both classes
    are first shifted by their condition's mean absent vector (a constant: covariances and
    the mean difference are unchanged), so the one-pass moments do not cancel
    catastrophically when the channel responses sit far from zero.
    """
    labels = sites.labels
    shift = np.zeros((sites.conditions, sites.absent.shape[1]))
    for c in range(sites.conditions):
        if np.any(labels == c):
            shift[c] = sites.absent[labels == c].mean(axis=0)
    means, scatter, dof = [], 0.0, 0.0
    for data in (sites.present - shift[labels], sites.absent - shift[labels]):
        n, first, second = _group_sums(sites, data, train)
        count = weight @ n  # (B, C)
        total = np.einsum("bg,gcj->bcj", weight, first, optimize=False)
        mean = total / np.maximum(count, 1)[..., None]  # 0 where a condition has none
        moment = np.einsum("bg,gcij->bcij", weight, second, optimize=False)
        scatter = scatter + (moment - count[..., None, None] * mean[..., :, None]
                             * mean[..., None, :]).sum(axis=1)
        dof = dof + np.maximum(count - 1, 0).sum(axis=1)
        means.append(mean)
    pooled = scatter / dof[:, None, None]  # (B, J, J)
    difference = means[0] - means[1]  # (B, C, J)
    template = np.linalg.solve(pooled[:, None], difference[..., None])[..., 0]
    scale = np.sqrt(np.einsum("bci,bij,bcj->bc", template, pooled, template, optimize=False))
    midpoint = (means[0] + means[1]) / 2 + shift[None]
    # No mean difference in training (a codec that erased the nodules there): a zero
    # template, whose statistic cannot tell the regions apart.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale[..., None] > 0, template / scale[..., None], 0.0), midpoint


def statistics(sites: Sites, weight: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Test statistics ``(present, absent)``, each ``(B, n)``, for group multiplicities
    ``weight`` (``(B, G)``; None: every group once, ``B = 1``).

    NPWE statistics are returned as they are. CHO channel vectors are turned into
    statistics by the template of their condition fitted on the *other* half
    (cross-validation, module notes) with the same multiplicities, measured from that
    template's threshold (:func:`_weighted_templates`).
    """
    n = sites.group.size
    weight = np.ones((1, sites.groups)) if weight is None else weight
    if not sites.channelized:
        shape = (weight.shape[0], n)
        return np.broadcast_to(sites.present, shape), np.broadcast_to(sites.absent, shape)
    present = np.empty((weight.shape[0], n))
    absent = np.empty((weight.shape[0], n))
    for half in (0, 1):
        test = sites.half == half
        if not test.any():
            continue
        templates, midpoints = _weighted_templates(sites, ~test, weight)
        labels = sites.labels[test]
        templates, midpoints = templates[:, labels], midpoints[:, labels]
        present[:, test] = np.einsum("bnj,bnj->bn", templates,
                                     sites.present[test][None] - midpoints, optimize=False)
        absent[:, test] = np.einsum("bnj,bnj->bn", templates,
                                    sites.absent[test][None] - midpoints, optimize=False)
    return present, absent


def point(sites: Sites) -> tuple[np.ndarray, np.ndarray]:
    """Per condition, ``(d', AUC)`` of all sites (CHO: cross-validated statistics)."""
    present, absent = statistics(sites)
    labels = sites.labels
    d = np.array([dprime(present[0, labels == c], absent[0, labels == c])
                  for c in range(sites.conditions)])
    a = np.array([auc(present[0, labels == c], absent[0, labels == c])
                  for c in range(sites.conditions)])
    return d, a


def replicate_weights(sites: Sites, replicates: int, seed: int | Sequence[int]) -> np.ndarray:
    """``(B, G)`` group multiplicities of ``replicates`` cluster-bootstrap draws: the groups
    of each half are drawn with replacement, as many as the half holds."""
    rng = np.random.default_rng(seed)
    weight = np.zeros((replicates, sites.groups))
    for half in (0, 1):
        groups = np.unique(sites.group[sites.half == half])
        if groups.size == 0:
            continue
        draws = groups[rng.integers(0, groups.size, size=(replicates, groups.size))]
        np.add.at(weight, (np.arange(replicates)[:, None], draws), 1)
    return weight


def _weighted_dprime(present: np.ndarray, absent: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """d' of ``(B, n)`` statistics under ``(B, n)`` site multiplicities (sample variances)."""
    out = []
    for t in (present, absent):
        count = weight.sum(axis=1)
        mean = (weight * t).sum(axis=1) / count
        var = (weight * (t - mean[:, None]) ** 2).sum(axis=1) / (count - 1)
        out.append((mean, var))
    (mp, vp), (ma, va) = out
    return (mp - ma) / np.sqrt((vp + va) / 2)


def bootstrap_dprime(sites: Sites, weight: np.ndarray) -> np.ndarray:
    """d' of each bootstrap replicate and condition, ``(B, C)`` (``weight`` from
    :func:`replicate_weights`).

    The test statistics are those of the point estimate (CHO: the cross-validated
    templates fitted on all the sites, module notes); a replicate reweights the sites by
    how often their patient was drawn.
    """
    present, absent = statistics(sites)
    per_site = weight[:, sites.group]
    labels = sites.labels
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([_weighted_dprime(present[:, labels == c], absent[:, labels == c],
                                          per_site[:, labels == c])
                         for c in range(sites.conditions)], axis=1)


def bc_interval(values: np.ndarray, estimate: float, level: float = 0.95
                ) -> tuple[float, float]:
    """Bias-corrected percentile interval of the finite bootstrap ``values`` around
    ``estimate`` (Efron & Tibshirani 1993, §14.3): the percentiles
    ``Φ(2 z₀ ± z_{1-α/2})`` with ``z₀ = Φ⁻¹(share of values below the estimate)``.
    NaN, NaN when no value is finite or the estimate is not."""
    from scipy.stats import norm

    finite = values[np.isfinite(values)]
    if finite.size == 0 or not np.isfinite(estimate):
        return float("nan"), float("nan")
    share = (np.count_nonzero(finite < estimate) + 0.5 * np.count_nonzero(finite == estimate)) \
        / finite.size
    share = min(max(share, 0.5 / finite.size), 1 - 0.5 / finite.size)
    z0 = norm.ppf(share)
    tail = norm.ppf((1 + level) / 2)
    low, high = norm.cdf(2 * z0 - tail), norm.cdf(2 * z0 + tail)
    return (float(np.percentile(finite, 100 * low)), float(np.percentile(finite, 100 * high)))
