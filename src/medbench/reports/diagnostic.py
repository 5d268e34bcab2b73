"""The report's "Diagnostic quality" section: is the nodule still there?

Fidelity numbers are not the clinical answer. This section sets beside them what a run
measured of diagnostic quality (``run --observer nodules``, ``--metrics``, ``--display``):

- **Detectability against rate**: d' coded / d' original (``dprime_ratio``, with its 95 %
  interval) of each codec against bpp, one panel per nodule size, one row per observer
  (channelized Hotelling, NPWE), at the middle contrast of the run.
- **Task-lossless limits** (:func:`~medbench.reports.observer.task_lossless_limits`): the
  highest compression ratio at which each codec keeps detectability (lower end of the
  interval of ``dprime_ratio`` ≥ 0.95 at every contrast), per nodule size, beside the
  guideline ratios (10:1, German consensus, CR/DR; 30:1, Canadian Association of
  Radiologists, chest).
- **Verdicts at 10:1 and 30:1** (from the rate-matched ``--target`` rows): per codec,
  whether detectability is kept, and which full-reference metrics would call the image
  lossless by the conventions of :data:`LOSSLESS_CALLS` (stated beside the table: they are
  medbench's conventions for "no visible difference", not clinical standards) and which
  would not, so a reader sees where a metric's verdict and the task's part ways.
- **Rankings that disagree**: where PSNR ranks two codecs one way at a clinical ratio and
  detectability the other, one sentence says so.
- **Raw values are not what a viewer shows**: for images deeper than 8 bits scored without
  ``--display``, a note says the metrics are on raw values, not on the displayed window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medbench.reports import html as H
from medbench.reports.curves import CLINICAL_RATIOS
from medbench.reports.figures import detectability_figure
from medbench.reports.format import html_table, markdown
from medbench.reports.observer import MARGIN, task_lossless_limits
from medbench.reports.run_rows import DatasetFacts, FrameRows, StoreRows, as_rows
from medbench.text import slug

ORIGINAL = "original"
#: Smallest difference in mean d' coded / original that counts as ranking two codecs
#: differently (the task-lossless margin's size: smaller is within the noise of 18 images).
MIN_GAP = 0.05


@dataclass(frozen=True)
class LosslessCall:
    """When a metric calls a coded image lossless: its mean at least (or at most) ``value``."""

    column: str
    label: str
    value: float
    higher_is_better: bool
    basis: str

    def calls(self, mean: float) -> bool | None:
        if mean is None or not isinstance(mean, (int, float)) or math.isnan(mean):
            return None
        return mean >= self.value if self.higher_is_better else mean <= self.value

    def rule(self) -> str:
        return f"{self.label} {'≥' if self.higher_is_better else '≤'} {self.value:g}"


#: medbench's conventions for "a metric calls this lossless" (no visible difference). PSNR's
#: is an error of about one display step; the others are set about as strict (each near
#: its value where PSNR is 45 dB on JPEG 2000-coded chest radiographs at 256², so that the
#: table compares verdicts rather than leniencies; MS-SSIM and GMSD saturate early). They
#: are stated in the report and are not clinical standards, which is the point of setting
#: them beside the task's verdict.
SAME_STRICTNESS = "about as strict as PSNR 45 dB on chest radiographs"
LOSSLESS_CALLS = (
    LosslessCall("psnr", "PSNR", 45.0, True,
                 "an RMS error of at most 1.4 of 255 grey levels, about one display step"),
    LosslessCall("ssim", "SSIM", 0.98, True, SAME_STRICTNESS),
    LosslessCall("ms_ssim", "MS-SSIM", 0.995, True, SAME_STRICTNESS),
    LosslessCall("vif", "VIF", 0.90, True, SAME_STRICTNESS),
    LosslessCall("gmsd", "GMSD", 0.005, False, SAME_STRICTNESS),
    LosslessCall("haarpsi", "HaarPSI", 0.98, True, SAME_STRICTNESS),
    LosslessCall("fsim", "FSIM", 0.99, True, SAME_STRICTNESS),
)


def diagnostic_section(table: pd.DataFrame, rows: pd.DataFrame | FrameRows | StoreRows,
                       targets: pd.DataFrame, matched: pd.DataFrame, figures: Path
                       ) -> tuple[str, str]:
    """Markdown and HTML of the section (module notes) for one run.

    Parameters
    ----------
    table
        The run's ``observer`` table (:func:`~medbench.reports.observer.observer_table`);
        empty when the run had no observer experiment.
    rows
        The report's result rows (images a model trained on already left out), or what
        answers for them (:mod:`~medbench.reports.run_rows`).
    targets
        The rate-matched table (:func:`~medbench.reports.targets.targets_table`).
    matched
        Its rows (``target:`` settings), whose metric means the verdicts read.
    figures
        Folder of the report's figures.
    """
    md: list[str] = []
    body: list[str] = []
    source = as_rows(rows)
    facts = {d: source.facts(d) for d in source.datasets()}
    display = _display_note(list(facts.values()))
    if table is None or table.empty:
        text = ("No detection experiment in this run: `medbench run --observer nodules` "
                "measures how well simulated nodules stay detectable after coding (model "
                "observers, d' coded / original).")
        md.append(text)
        body.append(H.paragraph(text, "empty"))
    else:
        for dataset in sorted({str(d) for d in table["dataset"]}):
            part = table[table["dataset"] == dataset]
            d_targets = targets[targets["dataset"] == dataset] if len(targets) else targets
            d_matched = matched[matched["dataset"] == dataset] if len(matched) else matched
            depth = _bit_depth(facts.get(dataset, DatasetFacts()))
            m, h = _dataset_part(dataset, part, depth, d_targets, d_matched, figures)
            md.append(m)
            body.append(h)
    if display:
        md.append(display)
        body.append(H.paragraph(display, "note warn"))
    return "\n\n".join(md) + "\n", "".join(body)


def _dataset_part(dataset: str, table: pd.DataFrame, depth: int,
                  targets: pd.DataFrame, matched: pd.DataFrame,
                  figures: Path) -> tuple[str, str]:
    coded = table[table["codec"] != ORIGINAL]
    contrasts = sorted({float(c) for c in table["contrast"].dropna()})
    middle = contrasts[len(contrasts) // 2] if contrasts else math.nan
    sizes = sorted({float(d) for d in table["diameter_mm"].dropna()})
    notes = _notes(table)
    intro = (f"simulated nodules of {', '.join(f'{s:g}' for s in sizes)} mm "
             f"at contrasts {', '.join(f'{c:g}' for c in contrasts)} (peak added signal, "
             f"fraction of the image's peak) inserted in the lung fields, each image coded "
             f"with and without them; d' of a channelized Hotelling observer (trained and "
             f"tested on separate patients) and of a non-prewhitening observer with an eye "
             f"filter (NPWE), coded over original on the same sites, with 95 % intervals "
             f"(bootstrap over patients; observer.csv).")
    md, html = [f"**{dataset}**: {intro}"], [f"<p><b>{H.esc(dataset)}</b>: {H.esc(intro)}</p>"]
    if notes:
        md.append("Notes: " + "; ".join(notes[:4]))
        html.append(H.notes(notes[:4]))
    path = detectability_figure(dataset, coded, middle, depth, MARGIN,
                                figures / f"detectability_{slug(dataset, fill='_')}")
    caption = (f"{dataset}: d' coded / original against bpp at contrast {middle:g}, per nodule "
               f"size (columns) and observer (rows), with 95 % intervals; 1 = detectability "
               f"kept, dashed {MARGIN:g} = the task-lossless margin. Dotted: "
               + "; ".join(f"{r}:1" for r in CLINICAL_RATIOS) + ".")
    md.append(f"![detectability on {dataset}](figures/{path.name})\n\n{caption}")
    html.append(H.figure(path, caption, f"detectability on {dataset}"))

    limits = limits_table(coded)
    about = (f"Task-lossless limit: the highest compression ratio at which a codec keeps "
             f"detectability of a nodule size at every contrast (the lower end of the 95 % "
             f"interval of d' coded / original ≥ {MARGIN:g}), by the CHO and the NPWE; "
             f"'–': not even the least compressed setting (lossless settings only count "
             f"where the codec has one). Beside the guideline ratios: "
             + "; ".join(CLINICAL_RATIOS.values()) + ".")
    md += [about, markdown(limits)]
    html += [H.paragraph(about, "note"), html_table(limits)]

    verdicts = verdict_table(table, targets, matched)
    if len(verdicts):
        rules = f"{LOSSLESS_CALLS[0].rule()} dB ({LOSSLESS_CALLS[0].basis}); " + ", ".join(
            c.rule() for c in LOSSLESS_CALLS[1:]) + f" ({SAME_STRICTNESS})"
        about = ("At exactly 10:1 and 30:1 (rate-matched rows): does each codec keep "
                 "detectability (kept: every size, contrast and observer shown within 5 % "
                 "of the original; lost: a loss of more than 5 % shown for one of them; "
                 "else not shown either way), and which "
                 "metrics would call the image lossless by medbench's conventions — "
                 f"{rules}. These are conventions for 'no visible difference', not clinical "
                 "standards: where a metric says lossless and the task does not, the metric "
                 "is the one to distrust.")
        md += [about, markdown(verdicts)]
        html += [H.paragraph(about, "note"), html_table(verdicts)]
    else:
        text = ("Run with `--target ratio=10,30` to see, at exactly the guideline ratios, "
                "which codecs keep detectability and which metrics would call them lossless.")
        md.append(text)
        html.append(H.paragraph(text, "empty"))
    for sentence in disagreements(table, targets):
        md.append(sentence)
        html.append(H.paragraph(sentence, "warn"))
    return "\n\n".join(md), "".join(html)


def _notes(table: pd.DataFrame) -> list[str]:
    """The table's notes said once each: its spacing assumptions as they are, and the
    conditions short of sites as one count (the rows hold each in full)."""
    fragments = {part.strip() for note in table["note"].dropna()
                 for part in str(note).split(" | ") if part.strip()}
    short = [f for f in fragments if f.startswith("skipped:")]
    out = sorted(f for f in fragments if not f.startswith("skipped:"))
    if short:
        skipped = pd.to_numeric(table.loc[table["codec"] == ORIGINAL, "n_skipped"],
                                errors="coerce").sum()
        out.append(f"{int(skipped)} planned sites did not fit (lung fields, edges, spacing "
                   f"between sites, saturation); each row's note says where")
    return out


def limits_table(coded: pd.DataFrame) -> pd.DataFrame:
    """Per codec: the task-lossless limit for each observer and nodule size, and whether
    it reaches each guideline ratio (at every size, by both observers)."""
    limits = task_lossless_limits(coded)
    if limits.empty:
        return pd.DataFrame()
    limits["label"] = [_label(c, t) for c, t in zip(limits["codec"], limits["train_dataset"])]
    out = []
    for label, part in limits.groupby("label", sort=True):
        line: dict[str, object] = {"codec": label}
        for _, row in part.sort_values(["observer", "diameter_mm"]).iterrows():
            key = f"{row['observer'].upper()} {row['diameter_mm']:g} mm"
            line[key] = ("–" if pd.isna(row["limit_ratio"]) else
                         f"{row['limit_ratio']:.1f}:1 ({row['limit_setting']})")
        # A size or observer with no task-lossless setting at all is the worst limit.
        worst = math.nan if part["limit_ratio"].isna().any() else part["limit_ratio"].min()
        for ratio in CLINICAL_RATIOS:
            line[f"keeps it at {ratio}:1"] = "yes" if not pd.isna(worst) and worst >= ratio \
                else "no"
        out.append(line)
    return pd.DataFrame(out)


def verdict_table(table: pd.DataFrame, targets: pd.DataFrame,
                  matched: pd.DataFrame) -> pd.DataFrame:
    """Per codec at each ``target:ratio`` point: detectability kept or not, and the
    metrics that would and would not call it lossless (:data:`LOSSLESS_CALLS`, on the
    means of the rate-matched rows ``matched``)."""
    if targets is None or targets.empty:
        return pd.DataFrame()
    out = []
    for _, line in targets.iterrows():
        setting = f"target:ratio={str(line['target']).split(':')[0]}"
        if not str(line["target"]).endswith(":1"):
            continue
        mine = table[(table["codec"] == line["codec"]) & (table["setting"] == setting)]
        train = line.get("train_dataset")
        if isinstance(train, str):
            mine = mine[mine["train_dataset"] == train]
        kept = _kept(mine)
        means = _means(matched, line["codec"], train, setting)
        calls = {c.label: c.calls(means.get(c.column)) for c in LOSSLESS_CALLS}
        yes = [k for k, v in calls.items() if v]
        no = [k for k, v in calls.items() if v is False]
        out.append({
            "target": line["target"], "codec": _label(line["codec"], train),
            "detectability": kept, "min d' ratio": _min_ratio(mine),
            "metrics calling it lossless": ", ".join(yes) or "none",
            "metrics that do not": ", ".join(no) or "none",
        })
    return pd.DataFrame(out)


def _means(rows: pd.DataFrame, codec: str, train: object, setting: str) -> dict[str, float]:
    """Mean of each :data:`LOSSLESS_CALLS` metric over one cell's ``ok`` rows (finite
    values: an exact image's infinite PSNR is no evidence of a lossy one's quality)."""
    if rows is None or rows.empty:
        return {}
    mine = rows[(rows["codec"] == codec) & (rows["setting"] == setting)
                & (rows["status"] == "ok")]
    if "train_dataset" in mine:
        mine = mine[mine["train_dataset"] == train] if isinstance(train, str) \
            else mine[mine["train_dataset"].isna()]
    out = {}
    for call in LOSSLESS_CALLS:
        if call.column in mine:
            values = pd.to_numeric(mine[call.column], errors="coerce")
            values = values[values.abs() != math.inf].dropna()
            if len(values):
                out[call.column] = float(values.mean())
    return out


def _kept(mine: pd.DataFrame) -> str:
    """``kept`` where every condition's interval of d' coded / original lies at or above
    the margin, ``lost`` where some condition's lies wholly below it (a loss of more than
    5 % is shown), else ``not shown either way`` (the interval straddles the margin)."""
    if mine.empty:
        return "not measured"
    low = pd.to_numeric(mine["dprime_ratio_low"], errors="coerce")
    high = pd.to_numeric(mine["dprime_ratio_high"], errors="coerce")
    if low.isna().any() or high.isna().any():
        return "no interval"
    if (low >= MARGIN).all():
        return "kept"
    return "lost" if (high < MARGIN).any() else "not shown either way"


def _min_ratio(mine: pd.DataFrame) -> str:
    values = pd.to_numeric(mine.get("dprime_ratio"), errors="coerce").dropna() \
        if len(mine) else pd.Series(dtype=float)
    return f"{values.min():.2f}" if len(values) else "–"


def disagreements(table: pd.DataFrame, targets: pd.DataFrame) -> list[str]:
    """One sentence per clinical target where PSNR and detectability (mean d' coded /
    original over sizes, contrasts and both observers) order two codecs differently."""
    if targets is None or targets.empty:
        return []
    out = []
    for target, group in targets.groupby("target", sort=False):
        if not str(target).endswith(":1"):
            continue
        setting = f"target:ratio={str(target).split(':')[0]}"
        scores = []
        for _, line in group.iterrows():
            mine = table[(table["codec"] == line["codec"]) & (table["setting"] == setting)]
            train = line.get("train_dataset")
            if isinstance(train, str):
                mine = mine[mine["train_dataset"] == train]
            ratio = pd.to_numeric(mine.get("dprime_ratio"), errors="coerce").dropna() \
                if len(mine) else pd.Series(dtype=float)
            if len(ratio) and not pd.isna(line["psnr"]):
                scores.append((_label(line["codec"], train), float(line["psnr"]),
                               float(ratio.mean())))
        flips = [(a, b) for i, a in enumerate(scores) for b in scores[i + 1:]
                 if (a[1] - b[1]) * (a[2] - b[2]) < 0 and abs(a[2] - b[2]) >= MIN_GAP]
        if flips:
            pairs = "; ".join(
                f"{hi[0]} {hi[1]:.2f} dB over {lo[0]} {lo[1]:.2f} dB, yet d' ratio "
                f"{hi[2]:.2f} against {lo[2]:.2f}"
                for hi, lo in (sorted(pair, key=lambda s: -s[1]) for pair in flips[:3]))
            more = f" (and {len(flips) - 3} more pairs)" if len(flips) > 3 else ""
            dataset = str(group["dataset"].iloc[0])
            out.append(f"{dataset}, at exactly {target}: PSNR and detectability rank codecs "
                       f"differently — {pairs}{more} (mean d' coded / original over sizes, "
                       f"contrasts and both observers, pairs at least {MIN_GAP:g} apart; "
                       f"point estimates, observer.csv has the intervals).")
    return out


def _display_note(facts: list[DatasetFacts]) -> str | None:
    """A note when images deeper than 8 bits were scored on raw values only."""
    deep = [f for f in facts if any(d > 8 for d in f.depth_rows)]
    if not deep or any(f.deep_windowed for f in deep):
        return None
    return ("The metrics of this run are on raw values of images deeper than 8 bits; a "
            "radiologist reads a window of them (a viewer shows 8 bits of a window "
            "center/width), so they are not what a viewer shows: `--display "
            "lung|mediastinum|bone|dicom` adds display_psnr, display_ssim and the others "
            "on the windowed image.")


def _bit_depth(facts: DatasetFacts) -> int:
    """The most common bit depth of a dataset's rows (the smallest of equally common)."""
    if not facts.depth_rows:
        return 0
    most = max(facts.depth_rows.values())
    return min(d for d, n in facts.depth_rows.items() if n == most)


def _label(codec: object, train: object) -> str:
    return str(codec) + (f" ({train})" if isinstance(train, str) and train else "")


def metric_calls(matched: pd.DataFrame, codec: str, setting: str,
                 train: object = None) -> tuple[list[str], list[str]]:
    """The metrics that would call one rate-matched cell lossless by :data:`LOSSLESS_CALLS`
    and those that would not (on the means of its ``ok`` rows); others lack a value."""
    means = _means(matched, codec, train, setting)
    calls = {c.label: c.calls(means.get(c.column)) for c in LOSSLESS_CALLS}
    return [k for k, v in calls.items() if v], [k for k, v in calls.items() if v is False]


def detectability_at(table: pd.DataFrame, codec: str, setting: str) -> str:
    """Whether the model observers kept detectability at one cell: ``kept``, ``lost``,
    ``not shown either way``, ``no interval`` or ``not measured``."""
    if table is None or table.empty or "codec" not in table:
        return "not measured"
    return _kept(table[(table["codec"] == codec) & (table["setting"] == setting)])
