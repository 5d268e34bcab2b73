"""``medbench report``: every table, figure and the HTML page of one run, from the store.

Writes into ``OUT`` (default ``RESULTS_DIR/report``)::

    index.html            the self-contained page (figures embedded)
    report.md             all sections as Markdown (figures linked from figures/)
    summary.csv/.md       dataset × codec × setting, means with 95 % CI
    targets.csv/.md       every codec at exactly matched rate (run --target), ranked
    rd_points.csv         the points of every RD curve
    bd_rate.csv/.md       BD-rate / BD-PSNR against JPEG 2000
    generalization.csv/.md  learned codecs, train × test at a matched rate
    table1.csv/.md        the seed paper's Table 1 beside our measurement
    body_parts.csv/.md, body_part_settings.csv
    errors.csv            every row that is not ``ok``
    seen_in_training.csv  rows of images a learned model trained on (left out of the rest)
    observer.csv          d', AUC, d' coded / original per nodule size and contrast
                          (run --observer nodules)
    figures/              rd_<dataset>.png/.svg, generalization_<codec>.png/.svg,
                          visual_<dataset>.png
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from medbench import __version__, text
from medbench.benchmark.store import ResultsStore
from medbench.reports import html as H
from medbench.reports.bd import METHOD, MIN_OVERLAP, bd_table
from medbench.reports.bd_ci import RESAMPLES, bd_intervals_in_store
from medbench.reports.bodyparts import body_parts_in_store
from medbench.reports.budget import budget_section
from medbench.reports.curves import ANCHOR, CLINICAL_RATIOS, curve_points_frame, curves_from_means
from medbench.reports.diagnostic import diagnostic_section
from medbench.reports.figures import coinciding, heatmap_figure, rd_figure, visual_figure
from medbench.reports.format import MISSING, fmt, html_table, markdown, text_frame
from medbench.reports.generalization import generalization_table, learned_curves, matrix
from medbench.reports.headline import UNRELIABLE, headline
from medbench.reports.headline import to_html as headline_html
from medbench.reports.headline import to_markdown as headline_markdown
from medbench.reports.means import MIN_GROUPS
from medbench.reports.observer import OBSERVER_CSV, observer_table
from medbench.reports.readers import find_studies, readers_section
from medbench.reports.run_rows import (
    MATCHED_COLUMNS,
    VERDICT_COLUMNS,
    DatasetFacts,
    StoreRows,
)
from medbench.reports.seen import SEEN_CSV, seen_in_store
from medbench.reports.store_means import (
    StoreMeans,
    curve_depths,
    has_seen_images,
    is_target,
    kept_lines_where,
    means_in_store,
    report_means,
    report_rows_where,
)
from medbench.reports.summary import COLUMNS as SUMMARY
from medbench.reports.summary import MODEL_COLUMNS
from medbench.reports.table1 import DATASETS as TABLE1_DATASETS
from medbench.reports.table1 import paper_codecs, table1_comparison
from medbench.reports.targets import EMPTY as TARGETS_EMPTY
from medbench.reports.targets import TABLE as TARGET_COLUMNS
from medbench.reports.targets import about as target_about
from medbench.reports.targets import targets_table
from medbench.reports.visual import visual_comparisons

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    ("dataset", "dataset", "{}"), ("codec", "codec", "{}"), ("train_dataset", "train", "{}"),
    ("setting", "setting", "{}"), ("images", "n", "{}"), ("errors", "err", "{}"),
    ("unsupported", "unsup.", "{}"), ("bpp", "bpp", "pm{:.3f}"),
    ("psnr", "PSNR dB", "pm{:.2f}"), ("exact_images", "exact", "{}"),
    ("psnr_pooled", "PSNR pooled dB", "{:.2f}"), ("ssim", "SSIM", "pm{:.4f}"),
    ("ms_ssim", "MS-SSIM", "pm{:.4f}"), ("encode_ms", "enc ms", "pm{:.2f}"),
    ("decode_ms", "dec ms", "pm{:.2f}"), ("peak_mem_mb", "peak MiB", "{:.1f}"),
    ("params", "params", "{:,.0f}"), ("kmac_per_pixel_enc", "kMAC/px enc", "{:.2f}"),
    ("kmac_per_pixel_dec", "kMAC/px dec", "{:.2f}"),
]
#: The BD table's value columns: (column, header, format, the overlap that makes it reliable,
#: the columns of its bootstrap interval or None).
BD_VALUES = [
    ("bd_rate_psnr", "BD-rate PSNR %", "{:+.1f}", "quality_overlap",
     ("bd_rate_psnr_low", "bd_rate_psnr_high")),
    ("bd_psnr", "BD-PSNR dB", "{:+.2f}", "rate_overlap",
     ("bd_psnr_low", "bd_psnr_high")),
    ("bd_rate_msssim", "BD-rate MS-SSIM %", "{:+.1f}", "msssim_overlap", None),
]
GEN_COLUMNS = [
    ("codec", "codec", "{}"), ("train_dataset", "train", "{}"), ("test_dataset", "test", "{}"),
    ("common_bpp", "at bpp", "{:.3f}"), ("psnr_at_bpp", "PSNR dB", "{:.2f}"),
    ("ms_ssim_db_at_bpp", "MS-SSIM dB", "{:.2f}"),
    ("anchor_psnr_at_bpp", "JPEG 2000 PSNR", "{:.2f}"),
    ("bd_rate_psnr", "BD-rate vs JPEG 2000 %", "{:+.1f}"), ("bd_reliable", "BD reliable", "{}"),
    ("points", "points", "{}"), ("note", "note", "{}"),
]
TABLE1_COLUMNS = [
    ("method", "method", "{}"), ("dataset", "dataset", "{}"),
    ("paper_epochs", "paper epochs", "{}"), ("paper_mse", "paper MSE", "{:g}"),
    ("paper_psnr", "paper PSNR", "{:.2f}"),
    ("paper_psnr_from_mse", "PSNR from paper MSE", "{:.2f}"),
    ("paper_ms_ssim", "paper MS-SSIM", "{:.2f}"), ("setting", "our setting", "{}"),
    ("protocol", "protocol", "{}"), ("images", "n", "{}"), ("epochs", "our epochs", "{:g}"),
    ("bpp", "bpp", "{:.3f}"), ("mse_01", "MSE [0,1]", "{:.2g}"), ("psnr", "PSNR", "{:.2f}"),
    ("exact_images", "exact", "{:.0f}"), ("psnr_pooled", "PSNR of MSE [0,1]", "{:.2f}"),
    ("ms_ssim", "MS-SSIM", "{:.4f}"), ("jpeg2000_psnr_at_bpp", "JPEG 2000 PSNR at bpp", "{:.2f}"),
    ("training", "training budget", "{}"), ("note", "note", "{}"),
]


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    out: Path
    run_id: str
    index: Path
    markdown: dict[str, str] = field(default_factory=dict)  # section id -> Markdown
    notes: list[str] = field(default_factory=list)


def slug(name: str) -> str:
    """A file-name-safe form of a dataset or codec name (``folder:/a/b`` -> ``folder_a_b``)."""
    return text.slug(name, fill="_", default="unnamed")


def load_run(results: Path, run_id: str | None = None,
             visuals: bool = False) -> tuple[pd.DataFrame, dict]:
    """The rows and run information of ``run_id`` (default: the latest run in ``results``).

    With ``visuals``, ``info["visuals"]`` holds the pixels stored for the visual comparison.
    ``info["means"]`` holds the setting means of the rows the report shows, computed in
    the store (:func:`~medbench.reports.store_means.report_means`).
    The store is opened read-only: a report never writes to it.
    """
    store = ResultsStore.open_existing(Path(results))
    try:
        run_id = store.run_or_latest(run_id)
        info = store.run_info(run_id)
        info["runs_in_store"] = len(store.runs())
        info["observer"] = observer_table(store, run_id)  # run --observer; empty without
        rows = store.frame(run_id)
        info["means"] = store.compute(report_means, run_id)  # computed in SQL
        if visuals:
            info["visuals"] = store.visuals(run_id)
    finally:
        store.close()
    return rows, info


def build_report(results: Path, out: Path | None = None, run_id: str | None = None,
                 visual: bool = True) -> Report:
    """Write every report file for one run, from the results store alone.

    Parameters
    ----------
    results
        A results folder (or its ``results.sqlite``); opened read-only.
    out
        Report folder; default ``results/report``.
    run_id
        The run to report; default the latest in the store.
    visual
        Draw the visual comparison from the pixels the run stored.

    Returns
    -------
    Report
        Where ``index.html`` and the other files are, the Markdown of each section and
        notes on what could not be shown.
    """
    store = ResultsStore.open_existing(Path(results))
    try:  # every section selects what it reads in the store: no run is held whole
        with store.snapshot():  # all of one state of a store a run may still be writing
            return _build(store, Path(results), out, run_id, visual)
    finally:
        store.close()


def row_selections(store: ResultsStore, run_id: str
                   ) -> tuple[dict[str, tuple[str, list]], bool]:
    """The SQL condition and parameters of each part of run ``run_id`` a report reads
    (:func:`~medbench.reports.store_means.report_rows_where`), by part name, and whether
    the run has images a model trained on (finding out reads the run once)."""
    seen = store.compute(has_seen_images, run_id)
    return {part: store.compute(report_rows_where, run_id, part, seen)
            for part in ("settings", "targets", "all", "kept", "milestones")}, seen


def _build(store: ResultsStore, results: Path, out: Path | None, run_id: str | None,
           visual: bool) -> Report:
    run_id = store.run_or_latest(run_id)
    info = store.run_info(run_id)
    info["runs_in_store"] = len(store.runs())
    info["observer"] = observer_table(store, run_id)  # run --observer; empty without
    if visual:
        info["visuals"] = store.visuals(run_id)
    where, seen_any = row_selections(store, run_id)
    out = Path(out) if out is not None else results / "report"
    out.mkdir(parents=True, exist_ok=True)
    # Images a learned model trained on: out of every comparison, listed on their own.
    seen, seen_notes = seen_in_store(store, run_id, seen_any)
    seen.to_csv(out / SEEN_CSV, index=False)
    # The report's rows (no seen image, no milestone checkpoint), answered in the store;
    # rate-matched cells: their own table and the summary only.
    # The per-patient lines the store keeps as rows are written, where they stand for
    # the rows (benchmark.lines): facts and means without reading every row.
    lines = store.compute(kept_lines_where, run_id, "all", seen_any)
    rows = StoreRows(store, *where["settings"], kept_run=run_id if lines else None)
    facts = rows.all_facts()
    # The rows' setting means, and by body part in the same pass where rows name one.
    parts = "body_part" if any(f.body_parts for f in facts.values()) else None
    found = store.compute(means_in_store, *where["all"], lambda key: not is_target(key[3]),
                          parts, lambda setting: not is_target(setting), True, lines)
    targeted = found.table["setting"].map(is_target).astype(bool)
    settings = rows.means = found.table.loc[~targeted]
    all_curves = curves_from_means(settings, curve_depths(found))
    bd = bd_intervals_in_store(found, bd_table(all_curves))  # how much each moves with the sample
    studies, study_notes = find_studies(Path(results), info["run_id"])
    verdicts = VERDICT_COLUMNS if len(info["observer"]) or studies else []
    matched = store.frame_where(*where["targets"], columns=MATCHED_COLUMNS + verdicts)
    at_targets = targets_table(matched, found.table.loc[targeted].reset_index(drop=True))
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    report = Report(out, info["run_id"], out / "index.html")
    md, sections = report.markdown, []
    learned = any(f.trained for f in facts.values())

    # -- headline: the answer first ------------------------------------------------------------
    incomplete = _incomplete(info, store, where["kept"], results)
    lines = headline(rows, all_curves, bd, at_targets, seen_notes, incomplete)
    report.notes += [f"{d}: {n}" for d, n in seen_notes.items()]
    md["headline"] = headline_markdown(lines)
    sections.append(H.Section("headline", headline_html(lines)))

    # -- diagnostic quality: is the nodule still there? -----------------------------------------
    if len(info["observer"]):
        info["observer"].to_csv(out / OBSERVER_CSV, index=False)
    md["diagnostic"], body = diagnostic_section(info["observer"], rows, at_targets, matched,
                                                figures)
    sections.append(H.Section("diagnostic", body))

    # -- readers' thresholds: an analysed reader study of this run (medbench study) ---------
    report.notes += study_notes
    md["readers"], body = readers_section(studies, matched, info["observer"])
    sections.append(H.Section("readers", body))

    # -- every codec at exactly matched rate (run --target) -------------------------------------
    at_targets.to_csv(out / "targets.csv", index=False)
    if len(at_targets):
        learned_targets = bool(at_targets["train_dataset"].notna().any())
        target_text = text_frame(at_targets, [c for c in TARGET_COLUMNS
                                              if learned_targets or c[0] != "train_dataset"])
        md["targets"] = target_about() + "\n\n" + markdown(target_text)
        targets_section = H.Section("targets", H.paragraph(target_about(), "note")
                                    + _html(target_text))
    else:
        md["targets"] = TARGETS_EMPTY + "\n"
        targets_section = H.Section("targets", H.paragraph(TARGETS_EMPTY, "empty"))
    (out / "targets.md").write_text(md["targets"])

    # -- RD curves -----------------------------------------------------------------------------
    curve_points_frame(all_curves).to_csv(out / "rd_points.csv", index=False)
    ratio_text = "; ".join(CLINICAL_RATIOS.values())
    rd_body, rd_md = [], []
    for dataset in sorted({c.dataset for c in all_curves}):
        group = [c for c in all_curves if c.dataset == dataset]
        paths = rd_figure(dataset, group, figures / f"rd_{slug(dataset)}")
        same = "".join(f" {a} coincides with {b} (the same points): drawn dashed with hollow "
                       f"markers." for a, b in coinciding(group))
        caption = (f"{dataset}: PSNR and MS-SSIM (dB) against bpp, one line per codec (per "
                   f"train dataset for learned codecs); lossless settings are left out. "
                   f"JPEG 2000, the anchor, is black with squares; classical codecs cool "
                   f"colours, learned codecs warm ones. Dotted lines: {ratio_text}, at "
                   f"bpp = bit depth / ratio.{same}")
        rd_body.append(H.figure(paths[0], caption, f"RD curves on {dataset}"))
        rd_md.append(f"![RD curves on {dataset}](figures/{paths[0].name})\n\n{caption}\n")
        for c in group:
            report.notes += [f"{c.dataset}/{c.label}: {n}" for n in c.notes]
    md["rd-curves"] = "\n".join(rd_md) or "(no successful rows)\n"
    sections.append(H.Section("rd-curves", "".join(rd_body) or H.paragraph("(no successful rows)",
                                                                             "empty")))

    # -- BD-rate -------------------------------------------------------------------------------
    bd.to_csv(out / "bd_rate.csv", index=False)
    bd_text, bd_classes = bd_cells(bd)
    bd_about = (f"Bjøntegaard deltas against {ANCHOR} on each dataset (bjontegaard package, "
                f"{METHOD} interpolation of each curve's upper envelope, lossless points "
                f"excluded). Negative BD-rate = fewer bits for the same quality; positive "
                f"BD-PSNR = more dB at the same rate. † unreliable (greyed): the two curves "
                f"overlap less than {MIN_OVERLAP:.0%} of their joint range along the axis the "
                f"value averages over (the overlap is given); without overlap a value is not "
                f"computed. [low, high] after a value: its 95 % interval, the values' spread "
                f"when the images (patients, where the dataset groups them) are drawn "
                f"again: a percentile bootstrap of "
                f"{RESAMPLES} resamples, both curves recomputed each time (bd_rate.csv: "
                f"bd_ci_method; none with fewer than {MIN_GROUPS} groups). The integration "
                f"intervals are in bd_rate.csv.")
    if incomplete:  # BD values of a partial run move when it is completed
        bd_about = f"{incomplete} {bd_about}"
    md["bd-rate"] = bd_about + "\n\n" + markdown(bd_text)
    (out / "bd_rate.md").write_text(md["bd-rate"])
    sections.append(H.Section("bd-rate", H.paragraph(bd_about, "note")
                              + html_table(bd_text, "fit", bd_classes)))
    sections.append(targets_section)  # after the BD table: the first screen stays the answer

    # -- summary -------------------------------------------------------------------------------
    summary = found.table[SUMMARY]  # the settings and the rate-matched cells
    summary.to_csv(out / "summary.csv", index=False)
    exact = bool((summary["exact_images"] > 0).any())
    cols = [c for c in SUMMARY_COLUMNS if (learned or c[0] not in ("train_dataset",
                                                                    *MODEL_COLUMNS))
            and (exact or c[0] != "exact_images")]
    summary_text = text_frame(summary, cols) if len(summary) else pd.DataFrame()
    md["summary"] = markdown(summary_text)
    (out / "summary.md").write_text(md["summary"])
    about = ("Means over images, ± the half-width of the 95 % confidence interval of the "
             "mean: Student-t where every image is its own patient/group (assuming "
             "independent images where the dataset names no patients), else a cluster "
             f"bootstrap over groups (2000 seeded resamples, at least {MIN_GROUPS} groups; "
             "with fewer no interval is given; summary.csv: ci_method, groups, group_kind). "
             "n: images coded, err: error rows, unsup.: images the codec refused. "
             "PSNR dB: mean over the images that did not decode exactly (exact: how many "
             "did, shown when any did; inf when all did). PSNR pooled dB: the PSNR of the "
             "mean MSE over all images, each divided by its peak² (2^bits - 1)². "
             "peak MiB: the most resident memory one image's encode and decode added "
             "(Linux peak RSS, reset per cell; weights loaded before it not included).")
    if learned:
        about += (" params, kMAC/px: the learned model's parameters and thousands of "
                  "multiply-accumulates per pixel of its encoder and decoder, counted from "
                  "its conv, transposed-conv, linear and GDN layers (not entropy coding).")
    about += _interval_notes(summary)
    batched = summary[summary["batch_size"] > 1] if len(summary) else summary
    if len(batched):  # run --learned-batch: say which latencies are per-image shares
        about += (" enc/dec ms of " + ", ".join(sorted(set(batched["codec"])))
                  + f" are amortized: the time of a batch of up to "
                  f"{int(batched['batch_size'].max())} images divided by its size.")
    sections.append(H.Section("summary",
                              H.paragraph(about, "note") + _html(summary_text)))

    # -- visual --------------------------------------------------------------------------------
    shown = _visual_rows(store, run_id, where["all"], info.get("visuals", []))
    datasets = sorted(set(facts) | {str(d) for d in matched["dataset"]})
    md["visual"], body = _visual(shown, datasets, bool(len(matched)), info, figures, visual,
                                 report.notes)
    sections.append(H.Section("visual", body))

    # -- generalization ------------------------------------------------------------------------
    gen = generalization_table(all_curves, bd)
    gen.to_csv(out / "generalization.csv", index=False)
    md["generalization"], body = _generalization(gen, all_curves, figures)
    (out / "generalization.md").write_text(md["generalization"])
    sections.append(H.Section("generalization", body))

    # -- learned vs classical by training budget ----------------------------------------------
    md["budget"], body = _budget(store, where, out, figures)
    sections.append(H.Section("budget", body))

    # -- Table 1 -------------------------------------------------------------------------------
    paper = [c for c in paper_codecs() if any(c in f.codecs for f in facts.values())]
    condition, params = where["settings"]  # the paper's codecs' rows only: few
    marks = ", ".join("?" for _ in paper)
    ours = store.frame_where(f"({condition}) AND codec IN ({marks})", [*params, *paper]) \
        if paper else store.frame_where("0")
    t1 = table1_comparison(ours, all_curves, datasets=sorted(facts))
    t1.to_csv(out / "table1.csv", index=False)
    md["table1"], body = _table1(t1, sorted(facts))
    (out / "table1.md").write_text(md["table1"])
    sections.append(H.Section("table1", body))

    # -- body parts ----------------------------------------------------------------------------
    md["body-parts"], body = _body_parts(store, where["settings"], facts, out, learned,
                                         found.parts, rows.kept_run)
    sections.append(H.Section("body-parts", body))

    # -- errors --------------------------------------------------------------------------------
    bad = store.frame_where(f"({where['kept'][0]}) AND status != 'ok'", where["kept"][1])
    md["errors"], body = _errors(bad, out, report.notes)
    sections.append(H.Section("errors", body))

    # -- metadata, last and folded -------------------------------------------------------------
    meta_frame = _metadata_frame(info, facts)
    md["metadata"] = markdown(meta_frame)
    sections.append(H.Section("metadata", _html(meta_frame)))

    order = H.page_order(diagnostic_measured=bool(len(info["observer"])),
                         readers_measured=bool(studies))
    sections.sort(key=lambda section: order.index(section.id))
    title = f"medbench report — run {info['run_id']}"
    report.index.write_text(H.page(title, sections), encoding="utf-8")
    doc = [f"# {title}\n"]
    for s in sections:
        doc.append(f"## {s.title}\n\n{md[s.id]}")
    (out / "report.md").write_text("\n".join(doc), encoding="utf-8")
    return report


def _interval_notes(summary: pd.DataFrame) -> str:
    """Per dataset, what its intervals assumed or why it has none (said once, not per line)."""
    notes = []
    for dataset, lines in summary.groupby("dataset", sort=True) if len(summary) else []:
        methods = [str(m) for m in lines["ci_method"].dropna()]
        none = next((m for m in methods if m.startswith("none: ") and "images from" in m), None)
        assumed = next((m for m in methods if "assuming independent" in m), None)
        if none:
            notes.append(f"{dataset}: no intervals: {none[len('none: '):]}.")
        elif assumed:
            notes.append(f"{dataset}: intervals assume independent images (the dataset names "
                         f"no patients; `--groups`/`--group-by` give them for folder:).")
    return (" " + " ".join(notes)) if notes else ""


def _incomplete(info: dict, store: ResultsStore, kept: tuple[str, list],
                results: Path) -> str | None:
    """A warning when the run did not finish: what is there, and that it may change."""
    status = info.get("status")
    if status == "finished":
        return None
    cells, images = store.compute(lambda db: db.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT image_id) FROM results WHERE {kept[0]}",
        kept[1]).fetchone())
    return (f"⚠ This run did not finish (status {status}): {cells} cells of {images} images "
            f"are in the store; images or settings may be missing, and every number below "
            f"may change when it is completed (`medbench run --out {results} --resume`).")


def bd_cells(bd: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The BD table as text, and the CSS classes of its cells.

    A value whose curves overlap less than :data:`MIN_OVERLAP` along its axis reads
    ``+535.3 † (40 % overlap)`` and has the class ``unreliable`` (greyed on the page).
    The dataset column shows only with several datasets, the note column only when a row
    has a note other than the unreliable flag (e.g. too few points).
    """
    text: dict[str, list[str]] = {}
    classes: dict[str, list[str]] = {}
    if bd["dataset"].nunique() > 1:
        text["dataset"] = [str(d) for d in bd["dataset"]]
    text["codec"] = [c if pd.isna(t) or not t else f"{c} (train {t})"
                     for c, t in zip(bd["codec"], bd["train_dataset"])]
    text["points"] = [fmt(v, "{:.0f}") for v in bd["points"]]
    for key in text:
        classes[key] = ["num" if key == "points" else ""] * len(bd)
    for column, header, spec, overlap_column, ends in BD_VALUES:
        text[header], classes[header] = [], []
        lows = bd[ends[0]] if ends and ends[0] in bd else [math.nan] * len(bd)
        highs = bd[ends[1]] if ends and ends[1] in bd else [math.nan] * len(bd)
        for value, share, low, high in zip(bd[column], bd[overlap_column], lows, highs):
            cell, cls = fmt(value, spec), "num"
            if cell != MISSING and pd.notna(low) and pd.notna(high):
                cell += f" [{fmt(low, spec)}, {fmt(high, spec)}]"
            if cell != MISSING and pd.notna(share) and share < MIN_OVERLAP:
                cell += f" {UNRELIABLE} ({share:.0%} overlap)"
                cls += " unreliable"
            text[header].append(cell)
            classes[header].append(cls)
    notes = [n if isinstance(n, str) and not n.startswith("unreliable") else ""
             for n in bd["note"]]
    if any(notes):
        text["note"], classes["note"] = notes, [""] * len(bd)
    return pd.DataFrame(text), pd.DataFrame(classes)


def _html(frame: pd.DataFrame) -> str:
    return html_table(frame)


def _metadata_frame(info: dict, facts: dict[str, DatasetFacts]) -> pd.DataFrame:
    runs = info.get("runs_in_store", 1)
    items = [("run", info["run_id"]), ("status", info.get("status")),
             ("runs in store", f"this store holds {runs} run{'s' * (runs != 1)}; this report "
                               f"shows run {info['run_id']}"),
             ("started", info.get("started_at")), ("finished", info.get("finished_at")),
             ("rows", sum(f.rows for f in facts.values())),
             ("datasets", ", ".join(sorted(facts))),
             ("codecs", ", ".join(sorted({c for f in facts.values() for c in f.codecs})))]
    for key, value in sorted(info.get("arguments", {}).items()):
        items.append((f"argument {key}", value))
    for key, value in sorted(info.get("environment", {}).items()):
        items.append((f"environment {key}", value))
    items.append(("report written", datetime.now(timezone.utc).isoformat(timespec="seconds")
                  + f" by medbench {__version__}"))
    text = [(k, v if isinstance(v, str) else json.dumps(v, default=str)) for k, v in items]
    return pd.DataFrame(text, columns=["field", "value"])


def _generalization(gen: pd.DataFrame, all_curves, figures: Path) -> tuple[str, str]:
    about = ("For each learned codec: the model trained on one dataset (rows) measured on "
             "each test dataset (columns), at a matched rate: PSNR read off its RD curve at one "
             "bpp common to all of that codec's curves, and BD-rate against JPEG 2000 on the "
             "test dataset.")
    if gen.empty:
        text = "No learned-codec rows (with a train dataset) in this run."
        return text + "\n", H.paragraph(text, "empty")
    trains, tests = sorted(set(gen["train_dataset"])), sorted(set(gen["test_dataset"]))
    if len(trains) < 2 and len(tests) < 2:
        text = (f"The generalization matrix compares learned models trained on one dataset "
                f"and tested on others; this run trained on {', '.join(trains)} and tested on "
                f"{', '.join(tests)} only: train on or test with a second dataset to fill it "
                f"(one cell is in generalization.csv).")
        return text + "\n", H.paragraph(text, "empty")
    parts_md, parts_html = [about + "\n"], [H.paragraph(about, "note")]
    table = text_frame(gen, GEN_COLUMNS)
    for codec in sorted(learned_curves(all_curves)):
        bpp = gen.loc[gen["codec"] == codec, "common_bpp"].iloc[0]
        for value, label, spec in (("psnr_at_bpp", f"PSNR (dB) at {bpp:.3f} bpp", "{:.2f}"),
                                   ("bd_rate_psnr", "BD-rate vs JPEG 2000 (%)", "{:+.1f}")):
            grid = matrix(gen, codec, value)
            cell_map = grid.map if hasattr(grid, "map") else grid.applymap  # pandas < 2.1
            shown = cell_map(lambda v, s=spec: fmt(v, s)).reset_index()
            parts_md.append(f"**{codec}: {label}** (rows: train, columns: test)\n\n"
                            + markdown(shown))
            parts_html.append(f"<h3>{H.esc(codec)}: {H.esc(label)}</h3>" + _html(shown))
        grid = matrix(gen, codec, "psnr_at_bpp")
        paths = heatmap_figure(codec, grid, figures / f"generalization_{slug(codec)}",
                               f"{codec}: PSNR (dB) at {bpp:.3f} bpp")
        parts_html.append(H.figure(paths[0], f"{codec}: train × test, PSNR at {bpp:.3f} bpp"))
        parts_md.append(f"![{codec} generalization](figures/{paths[0].name})\n")
    parts_md.append(markdown(table))
    parts_html.append("<h3>All cells</h3>" + _html(table))
    return "\n".join(parts_md), "".join(parts_html)


def _table1(t1: pd.DataFrame, datasets: list[str]) -> tuple[str, str]:
    """Table 1 beside our rows, or one line when none of its datasets was run."""
    ran = set(datasets) & set(TABLE1_DATASETS.values())
    if not ran:
        text = ("Table 1 of the seed paper (Fettah et al., TACC 2024) compares AE, CNN and DCAE "
                "trained and tested on MXID, OPEN-I and JSRT; this run has none of them: run "
                "mxid, openi or jsrt (medbench run --datasets jsrt ...) to fill it.")
        return text + "\n", H.paragraph(text, "empty")
    t1_text = text_frame(t1, TABLE1_COLUMNS)
    about = ("The seed paper's Table 1 (Fettah et al., TACC 2024) gives no rate. Beside each "
             "of its rows: our rows for the same codec trained and tested on that dataset, "
             "their bpp, and JPEG 2000's PSNR at that bpp on the same images. PSNR is our mean "
             "over images that did not decode exactly (exact: how many did). MSE [0,1] is "
             "our MSE on the paper's [0, 1] scale, averaged over images; 'PSNR of MSE [0,1]' "
             "and 'PSNR from paper MSE' are 10·log10(1/MSE) of ours and the paper's; the latter "
             "disagrees with the paper's own PSNR column.")
    return (about + "\n\n" + markdown(t1_text),
            H.paragraph(about, "note") + _html(t1_text))


def _visual_rows(store: ResultsStore, run_id: str, where: tuple[str, list],
                 views: list[dict]) -> pd.DataFrame:
    """The report's rows of the images the run stored pixels of (few: read by key)."""
    images = sorted({(str(v["dataset"]), str(v["image_id"])) for v in views})
    if not images:
        return store.frame_where("0")
    pairs = " OR ".join("(run_id = ? AND dataset = ? AND image_id = ?)" for _ in images)
    return store.frame_where(f"({where[0]}) AND ({pairs})",  # by key: the run_id too
                             [*where[1], *(x for d, i in images for x in (run_id, d, i))])


def _visual(rows: pd.DataFrame, datasets: list[str], rate_matched: bool, info: dict,
            figures: Path, enabled: bool, notes: list[str]) -> tuple[str, str]:
    """The section, from the rows of the images shown (``datasets``: the report's;
    ``rate_matched``: whether the run has rate-matched cells)."""
    if not enabled:
        text = "Visual comparison not requested (--no-visual)."
        return text + "\n", H.paragraph(text, "empty")
    if not datasets:
        return "(no rows)\n", H.paragraph("(no rows)", "empty")
    md, body = [], []
    for v in visual_comparisons(rows, info.get("visuals", []), datasets=datasets):
        notes += v.notes
        if not v.images:
            text = f"{v.dataset}: no images to show. " + " ".join(v.notes)
            md.append(text + "\n")
            body.append(H.paragraph(text, "empty"))
            continue
        path = visual_figure(v.images, figures / f"visual_{slug(v.dataset)}")[0]
        how = ("coded at exactly the target on that image (run --target; title: the knob "
               "the search chose, MISSED where it could not get there)"
               if rate_matched else
               "at the setting whose bpp on that image is nearest")
        caption = (f"{v.dataset}: original, each codec's reconstruction {how} the "
                   f"{v.target} clinical ratio, and the "
                   f"absolute error (one scale per image, in grey levels), as the run stored "
                   f"them (a 1:1 crop of the most detailed region of large images). Titles "
                   f"give the rate and whole-image PSNR of the cell's result row.")
        md.append(f"![visual comparison on {v.dataset}](figures/{path.name})\n\n{caption}\n")
        body.append(H.figure(path, caption, f"visual comparison on {v.dataset}")
                    + H.notes(v.notes))
    return "\n".join(md), "".join(body)


def _budget(store: ResultsStore, where: dict[str, tuple[str, list]], out: Path,
            figures: Path) -> tuple[str, str]:
    """The training-budget section (:func:`budget_inputs`)."""
    return budget_section(*budget_inputs(store, where), out, figures)


def budget_inputs(store: ResultsStore, where: dict[str, tuple[str, list]]
                  ) -> tuple[pd.DataFrame, dict]:
    """The milestone checkpoints' rows and each dataset's anchor curve (computed in the
    store, only when there are milestones): what
    :func:`~medbench.reports.budget.budget_table` reads."""
    milestones = store.frame_where(*where["milestones"])
    anchors: dict = {}
    if (milestones["status"] == "ok").any():
        condition, params = where["all"]
        found = store.compute(means_in_store, f"({condition}) AND codec = ?", [*params, ANCHOR])
        anchors = {c.dataset: c for c in curves_from_means(found.table,
                                                           curve_depths(found, targets=True))
                   if not c.train_dataset}
    return milestones, anchors


def _body_parts(store: ResultsStore, where: tuple[str, list], facts: dict[str, DatasetFacts],
                out: Path, learned: bool, found: StoreMeans | None,
                kept_run: str | None = None) -> tuple[str, str]:
    if not any(f.body_parts for f in facts.values()):
        text = "No rows carry a body part."
        return text + "\n", H.paragraph(text, "empty")
    table, settings = store.compute(body_parts_in_store, *where, found, kept_run)
    table.to_csv(out / "body_parts.csv", index=False)
    settings.to_csv(out / "body_part_settings.csv", index=False)
    cols = [("dataset", "dataset", "{}"), ("body_part", "body part", "{}"),
            ("codec", "codec", "{}")]
    if learned:
        cols.append(("train_dataset", "train", "{}"))
    cols += [("images", "n", "{}"), ("bit_depth", "bits", "{}")]
    for r in CLINICAL_RATIOS:
        cols += [(f"psnr_at_{r}to1", f"PSNR at {r}:1", "{:.2f}"),
                 (f"ms_ssim_db_at_{r}to1", f"MS-SSIM dB at {r}:1", "{:.2f}")]
    cols += [("bd_rate_psnr", "BD-rate vs JPEG 2000 %", "{:+.1f}"),
             ("bd_reliable", "BD reliable", "{}")]
    text = text_frame(table, cols)
    values = text[[header for key, header, _ in cols if key.startswith(("psnr_", "ms_ssim_",
                                                                          "bd_rate"))]]
    if (values == MISSING).all().all():
        line = ("Rows carry body parts, but no body part's RD curves reach a clinical ratio "
                "or overlap JPEG 2000's; per-setting means are in body_part_settings.csv.")
        return line + "\n", H.paragraph(line, "empty")
    classes = pd.DataFrame("", index=text.index, columns=text.columns)
    bd_header = "BD-rate vs JPEG 2000 %"
    classes[bd_header] = "num"  # a † makes the column look non-numeric: keep it right-aligned
    shaky = [r is not None and not pd.isna(r) and not r for r in table["bd_reliable"]]
    for i, bad in enumerate(shaky):
        if bad and text.at[i, bd_header] != MISSING:
            text.at[i, bd_header] += f" {UNRELIABLE}"
            classes.at[i, bd_header] = "num unreliable"
    about = ("Each body part's own RD curves, read at the clinical ratios' bpp for the images' "
             "bit depth (– where a curve does not reach that rate), and BD-rate against "
             f"JPEG 2000 on the same images ({UNRELIABLE}: unreliable, the curves overlap "
             f"too little). Per-setting means: body_part_settings.csv.")
    md = about + "\n\n" + markdown(text)
    (out / "body_parts.md").write_text(md)
    return md, H.paragraph(about, "note") + html_table(text, classes=classes)


def _errors(rows: pd.DataFrame, out: Path, notes: list[str]) -> tuple[str, str]:
    bad = rows[rows["status"] != "ok"] if len(rows) else rows
    bad.to_csv(out / "errors.csv", index=False)
    parts_md, parts_html = [], []
    if bad.empty:
        text = "No errors and no refused images."
        parts_md.append(text + "\n")
        parts_html.append(H.paragraph(text, "empty"))
    else:
        grouped = (bad.groupby(["status", "dataset", "codec", "setting", "error"], dropna=False)
                   .agg(images=("image_id", "nunique"), example=("image_id", "first"))
                   .reset_index().sort_values(["status", "dataset", "codec"]))
        cols = [("status", "status", "{}"), ("dataset", "dataset", "{}"),
                ("codec", "codec", "{}"), ("setting", "setting", "{}"),
                ("images", "images", "{}"), ("example", "e.g. image", "{}"),
                ("error", "message", "{}")]
        text = text_frame(grouped, cols)
        about = (f"{len(bad)} rows are not ok ({int((bad['status'] == 'error').sum())} errors, "
                 f"{int((bad['status'] == 'unsupported').sum())} refused as unsupported); "
                 "every row is in errors.csv.")
        parts_md.append(about + "\n\n" + markdown(text))
        parts_html.append(H.paragraph(about) + _html(text))
    if notes:
        parts_md.append("Report notes:\n\n" + "".join(f"- {n}\n" for n in notes))
        parts_html.append("<h3>Report notes</h3>" + H.notes(notes))
    return "\n".join(parts_md), "".join(parts_html)
