"""The answer first: a few lines per dataset that open the report.

Per dataset: which codecs ran on how many images (and patients, where images share a
``group_id``) at what protocol; the best codec at each clinical ratio, read off every RD
curve at that ratio's bpp; how each learned codec stands against JPEG 2000 (BD-PSNR)
and at what training budget, with a warning when that budget is tiny or its validation
loss ran far above its training loss.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from medbench.reports import html as H
from medbench.reports.bd import MIN_OVERLAP
from medbench.reports.curves import (
    ANCHOR,
    CLINICAL_RATIOS,
    Curve,
    clinical_bpp,
    image_values_at,
)
from medbench.reports.format import html_table, markdown
from medbench.reports.means import NO_GROUPING, interval
from medbench.reports.run_rows import DatasetFacts, FrameRows, StoreRows, as_rows
from medbench.reports.table1 import parent_budget
from medbench.reports.targets import TIE

#: The mark of a BD value whose curves overlap too little (the BD table uses it too).
UNRELIABLE = "†"

#: A learned model trained for less than any of these is flagged as a tiny budget.
MIN_EPOCHS = 5
MIN_STEPS = 1000
MIN_WALL_S = 60.0
#: Validation loss above this multiple of the training loss (last epoch) is flagged.
MAX_VAL_OVER_TRAIN = 1.5
#: Codecs named after the best at a clinical ratio.
RUNNERS_UP = 2


@dataclass
class Learned:
    """One learned curve: BD-PSNR against JPEG 2000, training budget, warnings."""

    label: str
    against_anchor: str
    budget: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class DatasetHeadline:
    dataset: str
    lines: list[str] = field(default_factory=list)
    learned: list[Learned] = field(default_factory=list)


def headline(rows: pd.DataFrame | FrameRows | StoreRows, all_curves: list[Curve],
             bd: pd.DataFrame,
             targets: pd.DataFrame | None = None,
             left_out: dict[str, str] | None = None,
             incomplete: str | None = None) -> list[DatasetHeadline]:
    """The headline of every dataset in ``rows``, in dataset order.

    Parameters
    ----------
    rows : pandas.DataFrame or FrameRows or StoreRows
        The run's result rows, or what answers for them
        (:mod:`~medbench.reports.run_rows`: a report of a store selects what it reads).
    all_curves : list of Curve
        Their RD curves (:func:`~medbench.reports.curves.curves`).
    bd : pandas.DataFrame
        Their BD table against JPEG 2000 (:func:`~medbench.reports.bd.bd_table`).
    targets : pandas.DataFrame, optional
        The rate-matched table (:func:`~medbench.reports.targets.targets_table`); where
        it has a dataset's lines, the best codecs at each target are read from it rather
        than off the RD curves.
    left_out : dict of str to str, optional
        Per dataset, what was left out of ``rows`` and why (images a learned model
        trained on, :func:`~medbench.reports.seen.leave_out_seen`), said second.
    incomplete : str, optional
        Said first of every dataset: the run did not finish, so its numbers may change.
    """
    out = []
    left_out = left_out or {}
    source = as_rows(rows)
    for dataset in sorted(set(source.datasets()) | set(left_out)):
        facts = source.facts(dataset)
        first = [incomplete] if incomplete else []
        if not facts.rows:  # every image was left out: say so, and nothing else
            out.append(DatasetHeadline(dataset, [*first, left_out[dataset]]))
            continue
        group = [c for c in all_curves if c.dataset == dataset]
        h = DatasetHeadline(dataset, [*first, _what_ran(facts)])
        if dataset in left_out:
            h.lines.append(left_out[dataset])
        matched = (targets[targets["dataset"] == dataset] if targets is not None
                   and len(targets) else None)
        if matched is not None and len(matched):
            h.lines += _best_matched(matched)
        else:
            h.lines += [_best_at(group, ratio, source) for ratio in CLINICAL_RATIOS]
        h.learned = _learned(source, group, bd[bd["dataset"] == dataset] if len(bd) else bd)
        if not h.learned:
            h.lines.append("No learned codec in this run.")
        out.append(h)
    return out


def _what_ran(facts: DatasetFacts) -> str:
    """``9 classical codecs (…) and 3 learned (…) on 2 test images (2 patients) at …``."""
    learned = sorted(c for c, k in facts.kinds.items() if k == "learned")
    classical = sorted(c for c in facts.kinds if c not in learned)
    parts = []
    if classical:
        parts.append(f"{len(classical)} classical codec{_s(classical)} ({', '.join(classical)})")
    if learned:
        parts.append(f"{len(learned)} learned ({', '.join(learned)})")
    codecs = " and ".join(parts) or "no codec with a successful row"
    failed = sorted(facts.codecs - set(facts.kinds))
    if failed:
        codecs += f"; no successful row from {', '.join(failed)}"
    images, splits = facts.images, facts.splits
    text = f"{codecs} on {images} {'/'.join(splits) + ' ' if splits else ''}image{_s(images)}"
    if facts.groups is not None:
        kind = facts.group_kind  # patients, reports, radiographs: what the dataset groups by
        noun = kind if kind and kind != NO_GROUPING else "group"
        text += f" from {facts.groups} {noun}{_s(facts.groups)}"
    return text + f" at {_protocol(facts)}."


def _protocol(facts: DatasetFacts) -> str:
    """``protocol paper (256×256, 8-bit)``, or the range of sizes of native images."""
    if facts.sizes == 1:
        size = f"{facts.width[0]}×{facts.height[0]}"
    elif facts.sizes:
        size = (f"{facts.width[0]}–{facts.width[1]} × "
                f"{facts.height[0]}–{facts.height[1]} px")
    else:
        size = "size unknown"
    depths = sorted(facts.depth_rows)
    depth = "/".join(str(d) for d in depths) + "-bit" if depths else "bit depth unknown"
    return f"protocol {', '.join(facts.protocols) or 'unknown'} ({size}, {depth})"


def _best_matched(table: pd.DataFrame) -> list[str]:
    """One line per target of a dataset's rate-matched table: the best codecs, what the
    paired differences say of them, and what the data do not support.

    "At exactly" is said only where the best codec met the target within its tolerance on
    every image; codecs above the target rate on some image are never called best; a
    runner-up whose paired difference to the codec above it includes 0 is called tied.
    """
    lines = []
    for target, group in table.groupby("target", sort=False):
        ranked = group.sort_values("rank")
        finite = ranked[ranked["psnr"].map(lambda p: isinstance(p, float) and math.isfinite(p))]
        if finite.empty:
            lines.append(f"At {target}: no codec decoded with a finite PSNR.")
            continue
        fair = finite[[_complete(r) for r in finite["rule"]]]
        if fair.empty:
            lines.append(f"At {target}: no codec stayed at or below the target's rate on every "
                         f"image, so none is called best (see the rate-matched table).")
            continue
        exact = any(_complete(m) for m in fair["met"])
        by = "bpp" if str(target).endswith("PSNR") else "PSNR"
        text = (f"At exactly {target} (rate-matched per image): best {by} " if exact else
                f"At {target} no codec met the target within its tolerance on every image; "
                f"at or below its rate, best {by} ")
        entries = fair.iloc[:1 + RUNNERS_UP]
        parts = []
        for i, (_, line) in enumerate(entries.iterrows()):
            part = _matched_name(line, by)
            above = entries.iloc[i - 1] if i else None
            if above is not None and str(above["vs_next"] or "").endswith(f"({TIE})"):
                part += f" (tied with {_label(above)}: {above['vs_next'][:-6]}, paired)"
            elif i == 0 and len(entries) > 1 and "±" in str(line["vs_next"]) \
                    and not str(line["vs_next"]).endswith(f"({TIE})"):
                part += f" ({line['vs_next']} over {line['next']}, paired)"
            parts.append(part)
        text += parts[0] + (", then " + ", ".join(parts[1:]) if parts[1:] else "")
        missed = [_label(r) for _, r in ranked.iterrows() if not _complete(r["met"])]
        if missed:
            text += f"; missed the target's tolerance on some images: {', '.join(missed)}"
        lines.append(text + ".")
    return lines


def _complete(count: object) -> bool:
    """Whether a ``k/n`` count is all of at least one."""
    done, _, total = str(count).partition("/")
    return done == total and total not in ("", "0")


def _label(line: pd.Series) -> str:
    train = line["train_dataset"]
    return str(line["codec"]) + (f" ({train})" if isinstance(train, str) else "")


def _matched_name(line: pd.Series, by: str) -> str:
    """``avif 46.94 dB``; a codec off the tolerance also says where it landed."""
    value = f"{line['bpp']:.4f} bpp" if by == "bpp" else f"{line['psnr']:.2f} dB"
    text = f"{_label(line)} {value}"
    if not _complete(line["met"]) and isinstance(line["ratio"], float) \
            and math.isfinite(line["ratio"]):
        text += f" at {line['ratio']:.1f}:1"
    return text


def _best_at(group: list[Curve], ratio: int, source: FrameRows | StoreRows) -> str:
    """The codecs with the highest PSNR on their RD curve at the ``ratio``:1 bpp, and
    whether the best is told apart from the next on the same images (:func:`_paired`)."""
    depths = sorted({d for c in group for d in c.bit_depths})
    if len(depths) != 1:
        why = "images of several bit depths" if depths else "no RD curve"
        return f"{ratio}:1: not read off ({why}; see the per-body-part table)."
    bpp = clinical_bpp(depths[0], ratio)
    head = f"At {ratio}:1 ({bpp:.3g} bpp)"
    values = [(c.at(bpp, "psnr"), c) for c in group if len(c.points)]
    reached = sorted([(v, c) for v, c in values if math.isfinite(v)],
                     key=lambda vc: -vc[0])
    if not reached:
        rates = [r for c in group for r in c.points["bpp"] if r > 0]
        span = f" (their rates span {min(rates):.3g}–{max(rates):.3g} bpp)" if rates else ""
        return f"{head}: no codec's RD curve reaches this rate{span}."
    best, others = reached[0], reached[1:1 + RUNNERS_UP]
    text = f"{head}: best PSNR {best[1].label} {best[0]:.2f} dB"
    if others:  # is the best told apart from the next on the same images?
        after_best, after_runner = _paired_text(
            best[1], others[0][1], _paired(source, best[1], others[0][1], bpp))
        runner = f"{others[0][1].label} {others[0][0]:.2f}{after_runner}"
        text += after_best + ", then " + ", ".join(
            [runner] + [f"{c.label} {v:.2f}" for v, c in others[1:]])
    anchor = [(v, c) for v, c in values if c.codec == ANCHOR and not c.train_dataset]
    if anchor and all(c.codec != ANCHOR for _, c in [best, *others]):
        text += ("; JPEG 2000 " + (f"{anchor[0][0]:.2f} dB" if math.isfinite(anchor[0][0])
                                   else "does not reach this rate"))
    return text + f" ({len(reached)} of {len(values)} curves reach this rate)."


def _paired(source: FrameRows | StoreRows, a: Curve, b: Curve, bpp: float
            ) -> tuple[float, float, int] | None:
    """``a`` minus ``b`` at ``bpp``, image by image (each read off its own RD curve): the
    mean difference, its 95 % half-width (NaN: too few images or groups) and the images;
    None where no image has both. Only the two curves' rows are read."""
    rows_a, rows_b = (source.curve_rows(c.dataset, c.codec, c.train_dataset,
                                        list(dict.fromkeys(c.points["setting"])))
                      for c in (a, b))
    diff = (image_values_at(rows_a, a, bpp) - image_values_at(rows_b, b, bpp)).dropna()
    if diff.empty:
        return None
    first = pd.concat([rows_a, rows_b]).drop_duplicates("image_id")  # an image's group
    groups = None
    if "group_id" in first:
        groups = first.set_index(first["image_id"].astype(str))["group_id"].reindex(diff.index)
        groups = groups.where(groups.notna(), pd.Series(diff.index, index=diff.index))
    found = interval(diff, groups, source.facts(a.dataset).group_kind)
    return float(diff.mean()), found.halfwidth, len(diff)


def _paired_text(best: Curve, runner: Curve, paired: tuple[float, float, int] | None
                 ) -> tuple[str, str]:
    """What to say after the best codec and after the runner-up."""
    if paired is None:
        return "", ""
    mean, half, count = paired
    if math.isnan(half):
        return (f" ({mean:+.2f} dB over {runner.label} on the same {count} images, too few "
                f"for an interval)", "")
    if abs(mean) <= half:
        return "", f" (tied with {best.label}: {mean:+.2f} ± {half:.2f} dB, paired on " \
                   f"{count} images)"
    return f" ({mean:+.2f} ± {half:.2f} dB over {runner.label}, paired on {count} images)", ""


def _learned(source: FrameRows | StoreRows, group: list[Curve], bd: pd.DataFrame
             ) -> list[Learned]:
    """Each learned curve's BD-PSNR against JPEG 2000, its training budget and warnings."""
    out = []
    for c in group:
        if not (c.kind == "learned" or c.train_dataset):
            continue
        infos = [_parse(i) for i in source.model_infos(c.dataset, c.codec, c.train_dataset)]
        infos = [i for i in infos if i]
        out.append(Learned(c.label, _bd_text(c, bd), _budget_text(infos) or "not recorded",
                           _warnings(infos)))
    return out


def _bd_text(c: Curve, bd: pd.DataFrame) -> str:
    """``-3.14 dB [-3.60, -2.71]`` (its 95 % bootstrap interval, where there is one), with
    ``† (38% overlap)`` when unreliable."""
    match = bd[(bd["codec"] == c.codec)
               & (bd["train_dataset"].fillna("") == (c.train_dataset or ""))] if len(bd) else bd
    if match.empty:
        return "no BD value"
    row = match.iloc[0]
    value = row["bd_psnr"]
    if pd.isna(value):
        return f"not computed ({row.get('note') or 'no overlap'})"
    text = f"{value:+.2f} dB"
    low, high = row.get("bd_psnr_low"), row.get("bd_psnr_high")
    if low is not None and high is not None and pd.notna(low) and pd.notna(high):
        text += f" [{low:+.2f}, {high:+.2f}]"
    overlap = row["rate_overlap"]
    if pd.notna(overlap) and overlap < MIN_OVERLAP:
        text += f" {UNRELIABLE} ({overlap:.0%} overlap)"
    return text


def _parse(info: object) -> dict:
    if not isinstance(info, str) or not info:
        return {}
    try:
        data = json.loads(info)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _get(info: dict, key: str) -> float | str | None:
    """``key`` at the top of ``info`` or in its ``budget`` block."""
    for source in (info, info.get("budget") or {}):
        if isinstance(source, dict) and source.get(key) is not None:
            return source[key]
    return None


def _numbers(infos: list[dict], key: str, parents: bool = True) -> list[float]:
    """Each model's ``key``; with ``parents``, its steps and seconds include those of the
    model it was started from (``train --init``: the record's ``parent`` budget), so a
    fine-tuned model's budget is all the training it had."""
    out = []
    for info in infos:
        value = _get(info, key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            if parents and key != "epochs":
                value += _parent(info, key)
            out.append(float(value))
    return out


def _parent(info: dict, key: str) -> float:
    """``key`` of the budget of the model ``info``'s model was started from (0: none)."""
    return float(parent_budget(info).get(key, 0.0))


def _span(values: list[float], unit: str, spec: str = "{:.0f}") -> str:
    lo, hi = min(values), max(values)
    text = spec.format(lo) if lo == hi else f"{spec.format(lo)}–{spec.format(hi)}"
    return f"{text} {unit}"


def _budget_text(infos: list[dict]) -> str:
    """``78–120 epochs, 4212–6000 steps, 30–45 s, cpu, 3 models``; no epochs where a
    model was started from another (whose epochs its record does not keep)."""
    inherited = [_parent(i, "steps") for i in infos if _parent(i, "steps")]
    units = (("steps", "steps"), ("wall_s", "s")) if inherited else \
        (("epochs", "epochs"), ("steps", "steps"), ("wall_s", "s"))
    parts = [_span(v, unit) for key, unit in units if (v := _numbers(infos, key))]
    if not parts:
        return ""
    devices = sorted({str(_get(i, "device")) for i in infos if _get(i, "device")})
    parts += ["/".join(devices)] if devices else []
    text = ", ".join(parts + ([f"{len(infos)} models"] if len(infos) > 1 else []))
    if inherited:  # say how much of it the starting model had
        text += f" (incl. {_span(inherited, 'steps')} of the model{_s(inherited)} started from)"
    return text


def _warnings(infos: list[dict]) -> list[str]:
    """A tiny training budget, and validation loss far above training loss."""
    out = []
    tiny = []
    for key, limit, unit in (("epochs", MIN_EPOCHS, "epochs"), ("steps", MIN_STEPS, "steps"),
                             ("wall_s", MIN_WALL_S, "s")):
        values = _numbers(infos, key)
        if values and min(values) < limit:
            tiny.append(f"{min(values):.0f} {unit} < {limit:g}")
    if tiny:
        out.append("tiny budget (" + ", ".join(tiny) + ")")
    for info in infos:
        history = info.get("history")
        if not isinstance(history, list) or not history or not isinstance(history[-1], dict):
            continue
        last = history[-1]
        train, val = last.get("train_loss"), last.get("loss")
        if isinstance(train, (int, float)) and isinstance(val, (int, float)) and train > 0 \
                and val > MAX_VAL_OVER_TRAIN * train:
            name = info.get("model_id") or "a model"
            out.append(f"validation far below its training trend ({name}: validation loss "
                       f"{val:.3g} is {val / train:.1f}× its training loss at the last epoch)")
    return out


def _s(n: object) -> str:
    count = n if isinstance(n, int) else len(n)  # type: ignore[arg-type]
    return "" if count == 1 else "s"


LEARNED_HEADER = ["learned codec", "BD-PSNR vs JPEG 2000", "training budget", "warning"]
#: Said once under the learned codecs when one of them has a tiny budget.
TINY_NOTE = (f"tiny budget: under {MIN_EPOCHS} epochs, {MIN_STEPS} steps or {MIN_WALL_S:g} s of "
             "training; such numbers show this model, not what its architecture can do.")


def _learned_frame(h: DatasetHeadline) -> pd.DataFrame:
    return pd.DataFrame([[x.label, x.against_anchor, x.budget, "; ".join(x.warnings)]
                         for x in h.learned], columns=LEARNED_HEADER)


def _tiny(h: DatasetHeadline) -> bool:
    return any(w.startswith("tiny budget") for x in h.learned for w in x.warnings)


def to_markdown(items: list[DatasetHeadline]) -> str:
    """The headline as Markdown: a list per dataset, its learned codecs as a table."""
    if not items:
        return "(no rows)\n"
    out = []
    for h in items:
        out += [f"- **{h.dataset}**: {h.lines[0]}"] + [f"- {line}" for line in h.lines[1:]]
        out.append("")
        if h.learned:
            out.append(markdown(_learned_frame(h)))
        if _tiny(h):
            out.append(f"⚠ {TINY_NOTE}\n")
    return "\n".join(out)


def to_html(items: list[DatasetHeadline]) -> str:
    """The headline as HTML; warnings are ``<td class="warn">``."""
    if not items:
        return H.paragraph("(no rows)", "empty")
    out = []
    for h in items:
        lis = f"<li><b>{H.esc(h.dataset)}</b>: {H.esc(h.lines[0])}</li>" + "".join(
            f"<li>{H.esc(line)}</li>" for line in h.lines[1:])
        table = ""
        if h.learned:
            frame = _learned_frame(h)
            classes = frame.copy()
            classes.loc[:, :] = ""
            classes[LEARNED_HEADER[1]] = ["unreliable" if UNRELIABLE in x.against_anchor
                                          else "" for x in h.learned]
            classes["warning"] = "warn"
            table = html_table(frame, "fit", classes)
            if _tiny(h):
                table += H.paragraph(f"⚠ {TINY_NOTE}", "note warn")
        out.append(f'<div class="headline"><ul>{lis}</ul>{table}</div>')
    return "".join(out)
