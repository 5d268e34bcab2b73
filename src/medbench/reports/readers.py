"""The report's "Readers' thresholds" section: what radiologists saw, beside the metrics.

A reader study (:mod:`medbench.study`) analysed into a folder inside the results folder
(``medbench study analyze KIT ANSWERS… --out RESULTS/<folder>``, or a kit made inside it)
leaves ``study.json`` there. The report reads it as a file, as it reads the store: it
never imports the study package. For the run it reports, each study's codecs and ratios
get, side by side:

- the readers' pooled proportion correct with its exact 95 % interval and verdict
  (``visually lossless``, ``detected``, ``too few trials``) and each codec's highest
  visually lossless ratio;
- which metrics would call the same rate-matched cells lossless by the conventions of the
  Diagnostic quality section (:data:`medbench.reports.diagnostic.LOSSLESS_CALLS`), and
  whether the model observers kept detectability there, where the run measured it.

A rating study shows its mean ratings instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medbench.reports import html as H
from medbench.reports.diagnostic import detectability_at, metric_calls
from medbench.reports.format import html_table, markdown

STUDY_JSON = "study.json"
HOW = ("No reader study has been analysed for this run. Make one from its kept pixels: "
       "`medbench run --keep-pixels --target ratio=10,20,30 …`, then `medbench study make "
       "RESULTS --codecs … --target ratio=10,20,30 --images N --out RESULTS/study`, hand "
       "readers the kit, and `medbench study analyze RESULTS/study answers-*.json`.")


def find_studies(results: Path, run_id: str) -> tuple[list[dict], list[str]]:
    """Analysed studies of ``run_id`` in ``results`` (``study.json`` one or two folders
    down), and notes on files that could not be read."""
    found, notes = [], []
    for path in sorted({*Path(results).glob(f"*/{STUDY_JSON}"),
                        *Path(results).glob(f"*/*/{STUDY_JSON}")}):
        try:
            study = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # not JSON, UTF-8; too deep
            notes.append(f"{path} could not be read ({str(exc)[:120]}); run `medbench "
                         f"study analyze` again into that folder")
            continue
        if isinstance(study, dict) and study.get("run_id") == run_id:
            found.append(dict(study, path=str(path.relative_to(results))))
    return found, notes


def readers_section(studies: list[dict], matched: pd.DataFrame,
                    observer: pd.DataFrame) -> tuple[str, str]:
    """Markdown and HTML of the section (module notes)."""
    if not studies:
        return HOW + "\n", H.paragraph(HOW, "empty")
    md, body = [], []
    for study in studies:
        try:
            title = (f"Study {study['kit_id']} ({study['protocol']}, "
                     f"{len(study['readers'])} reader(s); {study['path']})")
            table = _paired(study, matched, observer) if study["protocol"] != "rating" \
                else _rating(study)
            about = _about(study)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # edited, other
            text = (f"{study.get('path', STUDY_JSON)} could not be shown ({type(exc).__name__}"
                    f": {exc}); run `medbench study analyze` again into that folder.")
            md.append(text + "\n")
            body.append(H.paragraph(text, "note"))
            continue
        md.append(f"### {title}\n\n{about}\n\n{markdown(table)}")
        body.append(f"<h3>{H.esc(title)}</h3>" + H.paragraph(about, "note")
                    + html_table(table, "fit"))
    return "\n".join(md), "".join(body)


def _paired(study: dict, matched: pd.DataFrame, observer: pd.DataFrame) -> pd.DataFrame:
    highest = {t["codec"]: t.get("highest_visually_lossless") for t in study["thresholds"]}
    rows = []
    for cell in study["cells"]:
        if cell["scope"] != "pooled":
            continue
        codec, ratio = cell["codec"], float(cell["ratio"])
        setting = f"target:ratio={ratio:g}"
        yes, no = metric_calls(matched, codec, setting)
        best = highest.get(codec)
        rows.append({
            "codec": codec, "ratio": f"{ratio:g}:1",
            "readers correct": f"{cell['correct']}/{cell['n']} = {cell['proportion']:.2f} "
                               f"[{cell['ci_low']:.2f}, {cell['ci_high']:.2f}]",
            "readers' verdict": cell["verdict"],
            "highest visually lossless": f"{best:g}:1" if best else "none tested",
            "metrics calling it lossless": ", ".join(yes) or "none",
            "metrics that do not": ", ".join(no) or "none",
            "model observers": detectability_at(observer, codec, setting),
        })
    return pd.DataFrame(rows)


def _rating(study: dict) -> pd.DataFrame:
    rows = []
    for cell in study["cells"]:
        if cell["scope"] == "pooled":
            ratio = cell.get("ratio")
            rows.append({"codec": cell["codec"],
                         "ratio": "" if ratio is None else f"{float(ratio):g}:1",
                         "n": cell["n"],
                         "mean rating": f"{_num(cell['mean_rating'])} "
                                        f"[{_num(cell['ci_low'])}, {_num(cell['ci_high'])}]"})
    return pd.DataFrame(rows)


def _num(value) -> str:
    """``value`` to 2 decimals; a NaN the study wrote as null (one rating: no interval)
    as "n/a"."""
    return "n/a" if value is None else f"{float(value):.2f}"


def _about(study: dict) -> str:
    text = (f"Readers: {', '.join(study['readers'])}. {study['agreement']}. ")
    if study["protocol"] == "rating":
        return text + "Mean rating (1 unacceptable … 5 excellent), Student-t 95 % interval."
    return text + ("Proportion correct pooled over readers, exact 95 % interval; visually "
                   "lossless: not above chance (one-sided exact binomial test, α = 0.05); "
                   "too few trials: no answer of so few trials could be. The metrics' "
                   "calls and the model observers' verdict are those of the Diagnostic "
                   "quality section, on the same rate-matched cells. Intervals treat "
                   "trials as independent (study.imrmc for an MRMC analysis).")
