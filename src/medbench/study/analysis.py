"""``medbench study analyze``: readers' answers turned into thresholds, with intervals.

Paired protocols (``2afc``, ``revealed``), per codec × ratio, pooled over readers and per
reader:

- **Proportion correct** with its exact Clopper–Pearson 95 % interval (Clopper & Pearson
  1934) and the one-sided exact binomial test against chance (0.5).
- **Verdict**: ``visually lossless`` where the proportion is not above chance at
  α = 0.05 (one-sided), else ``detected``. "Not above chance" is only as strong as the
  trials behind it, so ``detectable from`` gives the smallest proportion correct these
  trials would have shown as above chance, and a cell with so few trials that no answer
  could be above chance (n ≤ 4) says ``too few trials``, never "visually lossless".
- **Highest visually lossless ratio** per codec: the highest ratio tested below which
  (and at which) no ratio was detected; **75 % threshold**: the ratio where pooled
  proportion correct crosses 0.75 (the usual 2AFC threshold, d' ≈ 0.95), by linear
  interpolation in log ratio between the two tested ratios around it, where the data
  cross it and every ratio has at least :data:`MIN_FOR_75` trials; otherwise "not
  reached up to R:1", "reached at the lowest ratio tested" or "not estimated".
- **Catch trials** (the original against itself): the share answered "left", with its
  interval, per reader: a side bias or inattention shows there. They never count in a
  proportion correct.
- **Agreement**: Fleiss' kappa (Fleiss 1971) of readers on correct/incorrect over the
  test trials every reader answered.

Rating protocol: mean rating with its Student-t 95 % interval per codec × ratio and for
the originals, pooled and per reader; agreement by Kendall's W (with the tie correction)
over the trials every reader rated.

Intervals treat trials as independent; trials of one image or one reader are not, so
pooled intervals are narrower than a multi-reader multi-case analysis would give: use
``--format imrmc`` (:mod:`medbench.study.imrmc`) for that.

References
----------
Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the case
of the binomial. Biometrika 1934;26:404-413. doi:10.1093/biomet/26.4.404
Fleiss JL. Measuring nominal scale agreement among many raters. Psychol Bull
1971;76:378-382. doi:10.1037/h0031619
Kendall MG, Babington Smith B. The problem of m rankings. Ann Math Stat 1939;10:275-287.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from medbench.study import StudyError
from medbench.study.answers import Answers

ALPHA = 0.05
LEVEL = 0.95
THRESHOLD = 0.75
#: Fewest pooled trials per codec × ratio for a 75 % crossing: below, a proportion's
#: interval spans most of [0.5, 1] and any crossing is noise.
MIN_FOR_75 = 20
STUDY_JSON = "study.json"


@dataclass
class Analysis:
    """What ``analyze`` found: the tables and the sentences of ``study.md``."""

    key: dict
    trials: pd.DataFrame  # one row per reader × trial answered
    cells: pd.DataFrame  # per scope (pooled or reader) × codec × ratio
    thresholds: pd.DataFrame  # per codec (pooled)
    catch: pd.DataFrame  # per reader (paired protocols)
    agreement: str
    notes: list[str] = field(default_factory=list)


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact two-sided interval of a binomial proportion ``k / n``."""
    if n == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return low, high


def above_chance_p(k: int, n: int) -> float:
    """One-sided exact binomial p-value of ``k`` correct of ``n`` against 0.5."""
    return float(stats.binomtest(k, n, 0.5, alternative="greater").pvalue) if n else math.nan


def detectable_from(n: int) -> float:
    """Smallest proportion correct of ``n`` trials that tests above chance at ALPHA."""
    for k in range(n + 1):
        if above_chance_p(k, n) < ALPHA:
            return k / n
    return math.nan


def analyze(key: dict, answers: list[Answers]) -> Analysis:
    """The analysis of one kit's answers (module notes)."""
    trials = _trial_table(key, answers)
    notes = []
    for a in answers:
        if a.unanswered:
            notes.append(f"reader {a.reader} left {a.unanswered} of {len(key['trials'])} "
                         f"trials unanswered ({a.path.name}); they are not counted")
    paired = key["protocol"] != "rating"
    tests = trials[trials["kind"] == "test"]
    if tests.empty:  # nothing to measure: every table would be empty
        raise StudyError(f"the answers file(s) {', '.join(str(a.path) for a in answers)} "
                         f"answer no test trial (only catch trials or none); give the "
                         f"files the kit page downloaded after the readers read")
    n_catch = int((trials["kind"] != "test").sum())
    if paired and n_catch:
        notes.append(f"{n_catch} catch answers (the original against itself) are left out of "
                     f"every proportion correct; they measure side bias (see Catch trials)")
    if paired:
        cells = _proportions(tests)
        thresholds = _thresholds(cells[cells["scope"] == "pooled"], key)
        catch = _catch(trials[trials["kind"] == "catch"])
        agreement = _fleiss(tests)
    else:
        cells = _ratings(trials)
        thresholds = pd.DataFrame()
        catch = pd.DataFrame()
        agreement = _kendall(trials)
    return Analysis(key, trials, cells, thresholds, catch, agreement, notes)


def _trial_table(key: dict, answers: list[Answers]) -> pd.DataFrame:
    out = []
    for a in answers:
        for trial in key["trials"]:
            if trial["id"] not in a.answers:
                continue
            value = a.answers[trial["id"]]
            correct = (value == trial["correct"]) if trial["correct"] is not None else None
            out.append({"reader": a.reader, "trial": trial["id"], "kind": trial["kind"],
                        "dataset": trial["dataset"], "image_id": trial["image_id"],
                        "codec": trial["codec"] or "original", "ratio": trial["ratio"],
                        "answer": value, "correct": correct, "ms": a.ms[trial["id"]]})
    return pd.DataFrame(out, columns=["reader", "trial", "kind", "dataset", "image_id",
                                      "codec", "ratio", "answer", "correct", "ms"])


def _proportions(tests: pd.DataFrame) -> pd.DataFrame:
    rows = []
    scopes = [("pooled", tests)] + [(r, g) for r, g in tests.groupby("reader", sort=True)]
    for scope, frame in scopes:
        for (codec, ratio), g in frame.groupby(["codec", "ratio"], sort=True):
            n, k = len(g), int(g["correct"].astype(bool).sum())
            low, high = clopper_pearson(k, n)
            p, least = above_chance_p(k, n), detectable_from(n)
            verdict = ("too few trials" if math.isnan(least)
                       else "detected" if p < ALPHA else "visually lossless")
            rows.append({"scope": scope, "codec": codec, "ratio": float(ratio), "n": n,
                         "correct": k, "proportion": k / n, "ci_low": low, "ci_high": high,
                         "p_above_chance": p, "detectable_from": least, "verdict": verdict,
                         "median_ms": float(g["ms"].median())})
    return pd.DataFrame(rows)


def _thresholds(pooled: pd.DataFrame, key: dict) -> pd.DataFrame:
    rows = []
    for codec, g in pooled.groupby("codec", sort=True):
        g = g.sort_values("ratio")
        highest = None
        for line in g.itertuples():  # up the ratios until one is detected or undecidable
            if line.verdict != "visually lossless":
                break
            highest = line.ratio
        ratios, props = g["ratio"].to_numpy(float), g["proportion"].to_numpy(float)
        rows.append({"codec": codec,
                     "highest_visually_lossless": highest,
                     "first_detected": next((r.ratio for r in g.itertuples()
                                             if r.verdict == "detected"), None),
                     "threshold_75": (_crossing(ratios, props) if g["n"].min() >= MIN_FOR_75
                                      else f"not estimated: fewer than {MIN_FOR_75} trials "
                                           f"per ratio"),
                     "ratios_tested": ", ".join(f"{r:g}:1" for r in ratios)})
    return pd.DataFrame(rows)


def _crossing(ratios: np.ndarray, props: np.ndarray) -> str:
    """Where proportion correct crosses THRESHOLD, interpolated in log ratio."""
    if props[0] >= THRESHOLD:
        return f"reached at the lowest ratio tested, {ratios[0]:g}:1"
    for i in range(1, len(ratios)):
        if props[i] >= THRESHOLD:
            a, b = np.log(ratios[i - 1]), np.log(ratios[i])
            f = (THRESHOLD - props[i - 1]) / (props[i] - props[i - 1])
            return f"{math.exp(a + f * (b - a)):.1f}:1"
    return f"not reached up to {ratios[-1]:g}:1"


def _catch(catch: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for reader, g in catch.groupby("reader", sort=True):
        n, k = len(g), int((g["answer"] == "left").sum())
        low, high = clopper_pearson(k, n)
        rows.append({"reader": reader, "n": n, "left": k, "share_left": k / n,
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def _fleiss(tests: pd.DataFrame) -> str:
    readers = tests["reader"].nunique()
    if readers < 2:
        return "not computed: one reader"
    table = tests.pivot_table(index="trial", columns="reader", values="correct",
                              aggfunc="first").dropna()
    if len(table) < 2:
        return "not computed: fewer than 2 trials answered by every reader"
    ones = table.astype(bool).sum(axis=1).to_numpy(float)
    m, n = readers, len(table)
    kappa = fleiss_kappa(np.stack([ones, m - ones], axis=1))
    return (f"Fleiss' kappa {kappa:.2f} ({m} readers, correct/incorrect on the {n} test "
            f"trials every reader answered; 1 = full agreement, 0 = what chance gives)")


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a subjects × categories table of how many raters chose each
    category (every row sums to the same number of raters, at least 2)."""
    counts = np.asarray(counts, dtype=np.float64)
    n, m = counts.shape[0], counts[0].sum()
    p_j = counts.sum(axis=0) / (n * m)
    p_i = ((counts ** 2).sum(axis=1) - m) / (m * (m - 1))
    p_bar, p_e = p_i.mean(), (p_j ** 2).sum()
    return math.nan if p_e == 1 else float((p_bar - p_e) / (1 - p_e))


def kendall_w(table: np.ndarray) -> float:
    """Kendall's W of a trials × readers table of scores, ranks tied by their mean rank
    and the denominator corrected for ties."""
    table = np.asarray(table, dtype=np.float64)
    n, m = table.shape
    ranks = np.column_stack([stats.rankdata(table[:, j]) for j in range(m)])
    s = ((ranks.sum(axis=1) - m * (n + 1) / 2) ** 2).sum()
    ties = sum(float(((c.astype(float) ** 3) - c).sum())
               for c in (np.unique(table[:, j], return_counts=True)[1] for j in range(m)))
    denominator = m ** 2 * (n ** 3 - n) - m * ties
    return 12 * s / denominator if denominator else math.nan


def _ratings(trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    scopes = [("pooled", trials)] + [(r, g) for r, g in trials.groupby("reader", sort=True)]
    for scope, frame in scopes:
        frame = frame.assign(ratio=frame["ratio"].fillna(1.0))
        for (codec, ratio), g in frame.groupby(["codec", "ratio"], sort=True):
            values = g["answer"].astype(float).to_numpy()
            mean, n = float(values.mean()), len(values)
            half = (float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
                    if n > 1 else math.nan)
            rows.append({"scope": scope, "codec": codec,
                         "ratio": math.nan if codec == "original" else float(ratio), "n": n,
                         "mean_rating": mean, "ci_low": mean - half, "ci_high": mean + half,
                         "median_ms": float(g["ms"].median())})
    return pd.DataFrame(rows)


def _kendall(trials: pd.DataFrame) -> str:
    readers = trials["reader"].nunique()
    if readers < 2:
        return "not computed: one reader"
    table = trials.pivot_table(index="trial", columns="reader", values="answer",
                               aggfunc="first").dropna().astype(float)
    n, m = len(table), readers
    if n < 2:
        return "not computed: fewer than 2 trials rated by every reader"
    w = kendall_w(table.to_numpy())
    return (f"Kendall's W {w:.2f} ({m} readers over the {n} trials every reader rated, "
            f"corrected for ties; 1 = same order, 0 = no agreement)")


def write(analysis: Analysis, out: Path) -> list[Path]:
    """``study.csv``, ``study.md``, ``study.json`` and the figure ``study.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "study.csv", out / "study.md", out / STUDY_JSON]
    analysis.cells.to_csv(paths[0], index=False)
    paths[1].write_text(markdown(analysis), encoding="utf-8")
    summary = {"kit_id": analysis.key["kit_id"], "run_id": analysis.key["run_id"],
               "protocol": analysis.key["protocol"],
               "readers": sorted(analysis.trials["reader"].unique().tolist()),
               "cells": json.loads(analysis.cells.to_json(orient="records")),
               "thresholds": json.loads(analysis.thresholds.to_json(orient="records")),
               "agreement": analysis.agreement, "notes": analysis.notes}
    paths[2].write_text(json.dumps(summary, indent=1), encoding="utf-8")
    if analysis.key["protocol"] != "rating" and len(analysis.cells):
        paths.append(_figure(analysis, out / "study.png"))
    return paths


def markdown(analysis: Analysis) -> str:
    key = analysis.key
    readers = sorted(analysis.trials["reader"].unique())
    lines = [f"# Reader study {key['kit_id']} ({key['protocol']})", "",
             f"Run {key['run_id']}; {len(key['images'])} images, codecs "
             f"{', '.join(key['codecs'])} at {', '.join(f'{r:g}:1' for r in key['ratios'])};"
             f" {len(readers)} reader(s): {', '.join(readers)}.", ""]
    lines += [f"- {n}" for n in analysis.notes] + [""]
    if key["protocol"] != "rating":
        lines += ["Proportion correct with its exact (Clopper–Pearson) 95 % interval; "
                  f"`visually lossless`: not above chance (one-sided exact binomial test, "
                  f"α = {ALPHA}); `detectable from`: the proportion these trials needed to "
                  "show it. Intervals treat trials as independent (see --format imrmc).", "",
                  "## Thresholds", "", _table(analysis.thresholds), "",
                  "## Per codec and ratio", "", _table(_rounded(analysis.cells)), "",
                  "## Catch trials", "", _table(_rounded(analysis.catch)), ""]
    else:
        lines += ["Mean rating (1 unacceptable … 5 excellent) with its Student-t 95 % "
                  "interval.", "", _table(_rounded(analysis.cells)), ""]
    lines += ["## Agreement", "", analysis.agreement, ""]
    return "\n".join(lines)


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.round(3) if len(frame) else frame


def _table(frame: pd.DataFrame) -> str:
    if frame is None or frame.empty:
        return "(none)"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _figure(analysis: Analysis, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled = analysis.cells[analysis.cells["scope"] == "pooled"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for codec, g in pooled.groupby("codec", sort=True):
        g = g.sort_values("ratio")
        err = [g["proportion"] - g["ci_low"], g["ci_high"] - g["proportion"]]
        ax.errorbar(g["ratio"], g["proportion"], yerr=err, marker="o", capsize=3, label=codec)
    ax.axhline(0.5, color="grey", linestyle=":", label="chance (0.5)")
    ax.axhline(THRESHOLD, color="grey", linestyle="--", label="75 % threshold")
    ax.set_xscale("log")
    ratios = sorted(pooled["ratio"].unique())
    ax.set_xticks(ratios, [f"{r:g}:1" for r in ratios])
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("compression ratio")
    ax.set_ylabel("proportion correct (95 % CI)")
    ax.set_title(f"Reader study {analysis.key['kit_id']} ({analysis.key['protocol']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
