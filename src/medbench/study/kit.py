"""``medbench study make``: a blinded reading kit from the pixels a run kept.

A kit is one folder:

- ``index.html``: the reading page (:mod:`medbench.study.page`) with the *blinded*
  manifest inside it: per trial an id (``t001`` … in reading order), the opaque token of
  its image file, the image size, bit depth and a default window. Nothing in it says which
  codec, ratio or side a trial holds.
- ``images/<token>.js``: one file per trial holding every pane the trial shows (2afc: left
  and right; revealed: the original on top, then left and right; rating: one image),
  zlib-compressed behind a 4-byte length, **padded with zeros
  to the same length for every trial of the kit**, base64-encoded inside a one-line
  script. Scripts, because a page opened from ``file://`` may load scripts but may not
  read files (``fetch``) nor read back pixels drawn from ``<img>`` files; one file per
  trial (originals are not shared between trials), so a file seen in many trials cannot
  mark the original. Each pane is stored as row differences split into low and high
  byte planes (:func:`_planes`), which zlib packs ~35 % tighter than bare 16-bit values.
  Equal sizes because a smooth decode compresses better than its original: per-image
  PNGs would give the codec away by their byte count.
- ``key.json`` (and ``key.csv``, the same trials as a table): what each trial is (image,
  codec, ratio, achieved ratio, which side the original or the coded image is on), the
  run it came from and the kit id. The page never loads them: **keep them, hand readers the
  rest of the folder.**

Trials (:func:`plan_trials`): every chosen image once at every codec × ratio, in rounds
that each hold every codec × ratio once (a Latin square over images, so a round shows
different images where there are enough), shuffled within the round by ``--seed`` and
never one image twice in a row where the round allows it; the
original's side is balanced within each codec × ratio (half left, half right, seeded).
Catch trials (2afc, revealed: the original against itself) are spread evenly; the rating
protocol rates every chosen original once instead, as the reference its ratings are read
against.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import shutil
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from medbench.benchmark import pixels as kept_files
from medbench.benchmark.store import ResultsStore
from medbench.benchmark.targets import parse_target_setting, parse_targets
from medbench.study import StudyError
from medbench.study.page import render

PROTOCOLS = {
    "2afc": "Which image is the original?",
    "revealed": "The original is shown above. Which of the two images below is coded?",
    "rating": "How acceptable is this image for diagnosis? 1 unacceptable … 5 excellent",
}
KEY_NAME = "key.json"
KEY_CSV = "key.csv"
IMAGES_DIR = "images"
KIT_FORMAT = "medbench-study-kit"
#: Percentiles of the original that give a trial's default window (its 1st–99th spread,
#: less the collimator edges and markers); the reader changes it at will.
WINDOW_PERCENTILES = (0.5, 99.5)


@dataclass
class Trial:
    """One trial: what it shows (key side) and how the page finds it (blinded side)."""

    id: str
    kind: str  # "test", "catch" (original against itself) or "reference" (rating: original)
    dataset: str
    image_id: str
    codec: str | None
    ratio: float | None
    setting: str | None
    achieved_ratio: float | None
    panes: list[str]  # what each pane shows, in file order: "original" or "coded"
    correct: str | None  # the right answer ("left"/"right"); None for catch and rating
    token: str = ""
    window: list[int] = field(default_factory=list)
    height: int = 0
    width: int = 0
    bit_depth: int = 0


@dataclass(frozen=True)
class KitSummary:
    folder: Path
    kit_id: str
    trials: int
    catch: int
    file_bytes: int
    total_bytes: int
    notes: list[str]


def make_kit(results: Path, out: Path, codecs: list[str], target: str, n_images: int,
             protocol: str = "2afc", seed: int = 0, catch: float = 0.1,
             run_id: str | None = None) -> KitSummary:
    """Write a reading kit into ``out`` (see the module notes) and return what it holds.

    Raises
    ------
    StudyError
        The run kept no pixels, lacks a codec or ratio, holds fewer usable images than
        ``n_images``, or ``out`` is not an empty folder.
    """
    if protocol not in PROTOCOLS:
        raise StudyError(f"--protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if not 0 <= catch < 1:
        raise StudyError(f"--catch {catch} must lie in [0, 1): the share of catch trials")
    ratios = _ratios(target)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudyError(f"the kit folder {out} is not empty; choose a new --out (a kit is "
                         f"written whole, never over another)")
    store = ResultsStore.open_existing(results)
    try:
        run_id = store.run_or_latest(run_id)
        kept = store.kept_pixels(run_id)
        rows = store.frame(run_id)
        info = store.run_info(run_id)
    finally:
        store.close()
    cells, images, notes = _usable(results, run_id, kept, rows, codecs, ratios, n_images)
    rng = np.random.default_rng([seed, 22])
    chosen = sorted(rng.choice(len(images), size=n_images, replace=False).tolist())
    picked = [images[i] for i in chosen]
    trials = plan_trials(picked, cells, protocol, catch, rng)
    protocol_name = info["arguments"].get("protocol")
    if protocol_name != "native":
        notes.append(f"the run coded its images under the {protocol_name!r} protocol "
                     f"(resized or reduced), not at native size and bit depth: readers see "
                     f"what the run scored, which is not what a clinic shows (run with "
                     f"--protocol native for a clinical study)")
    final, out = out, out.parent / f".{out.name}.partial"
    shutil.rmtree(out, ignore_errors=True)  # a kit cut short earlier
    out.mkdir(parents=True)
    try:
        sizes = _write_images(results, out, trials, kept, rows, rng)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    manifest = blinded_manifest(trials, protocol)
    kit_id = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    manifest["kit_id"] = kit_id
    (out / "index.html").write_text(render(manifest), encoding="utf-8")
    key = {
        "format": KIT_FORMAT, "version": 1, "kit_id": kit_id, "protocol": protocol,
        "question": PROTOCOLS[protocol], "seed": seed, "catch": catch,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results": str(Path(results).resolve()), "run_id": run_id,
        "run_protocol": protocol_name, "codecs": codecs, "ratios": ratios,
        "images": [f"{d}/{i}" for d, i in picked], "file_bytes": sizes[0],
        "files": sizes[1], "trials": [asdict(t) for t in trials],
    }
    (out / KEY_NAME).write_text(json.dumps(key, indent=1), encoding="utf-8")
    _write_key_csv(out / KEY_CSV, trials)
    if final.exists():  # an empty folder the user made
        final.rmdir()
    out.rename(final)  # whole or absent: a kit cut short is never taken for one
    out = final
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    n_catch = sum(t.kind == "catch" for t in trials)
    return KitSummary(out, kit_id, len(trials), n_catch, sizes[0], total, notes)


def _ratios(target: str) -> list[float]:
    targets = parse_targets(target)
    if any(t.kind != "ratio" for t in targets):
        raise StudyError(f"--target {target!r}: a study shows compression ratios; write "
                         f"ratio=10,20,30 (targets the run coded with --target)")
    return sorted(t.value for t in targets)


def _usable(results: Path, run_id: str, kept: pd.DataFrame, rows: pd.DataFrame,
            codecs: list[str], ratios: list[float], n_images: int
            ) -> tuple[list[tuple[str, float, str]], list[tuple[str, str]], list[str]]:
    """The (codec, ratio, setting) cells and the images that have a kept decode at every
    one of them that met its target; notes say what was left out and why."""
    if kept.empty:
        raise StudyError(f"run {run_id} in {results} kept no pixels; run it with "
                         f"`medbench run --keep-pixels --target ratio=10,20,30 ...` "
                         f"(native protocol for a clinical study)")
    in_run = sorted(set(rows["codec"]))
    cells = []
    for codec in codecs:
        if codec not in in_run:
            raise StudyError(f"codec {codec!r} is not in run {run_id} of {results}; it "
                             f"holds {', '.join(in_run)}")
        for ratio in ratios:
            setting = next((s for s in set(rows.loc[rows["codec"] == codec, "setting"])
                            if (t := parse_target_setting(s)) is not None
                            and t.kind == "ratio" and math.isclose(t.value, ratio)), None)
            if setting is None:
                raise StudyError(f"run {run_id} of {results} has no {codec} cell at "
                                 f"{ratio:g}:1; run it with --target ratio="
                                 f"{','.join(f'{r:g}' for r in ratios)} --keep-pixels")
            cells.append((codec, ratio, setting))
    have = {(r.dataset, r.image_id, r.codec, r.setting) for r in kept.itertuples()}
    met = {(r.dataset, r.image_id, r.codec, r.setting) for r in rows.itertuples()
           if r.status == "ok" and r.target_met == 1}
    failed = {(r.dataset, r.image_id, r.codec, r.setting) for r in rows.itertuples()
              if r.status != "ok"}
    coded = {(r.dataset, r.image_id, r.codec, r.setting) for r in rows.itertuples()}
    originals = [(r.dataset, r.image_id) for r in kept.itertuples() if r.codec == ""]
    images, missed, unkept, not_coded, unfinished = [], 0, 0, 0, 0
    for dataset, image_id in originals:
        keys = [(dataset, image_id, codec, setting) for codec, _, setting in cells]
        if any(k in failed for k in keys):
            not_coded += 1
        elif not all(k in coded for k in keys):
            unfinished += 1
        elif not all(k in met for k in keys):
            missed += 1
        elif not all(k in have for k in keys):
            unkept += 1
        else:
            images.append((dataset, image_id))
    notes = []
    if not_coded:
        notes.append(f"{not_coded} image(s) left out: some codec did not code them (an error "
                     f"or unsupported row; see the run's error column)")
    if unfinished:
        notes.append(f"{unfinished} image(s) left out: the run has not coded all their cells "
                     f"yet (finish it with `medbench run --out {results} --resume`)")
    if missed:
        notes.append(f"{missed} image(s) left out: some codec missed its target ratio on "
                     f"them (target_met = 0; see the run's target_note)")
    if unkept:
        notes.append(f"{unkept} image(s) left out: some chosen cell kept no pixels")
    if len(images) < n_images:
        fix = (f"ask for --images {len(images)} or fewer, or run more images" if images
               else "choose codecs and ratios the run met on its images")
        raise StudyError(f"run {run_id} of {results} has {len(images)} image(s) kept at every "
                         f"chosen codec and ratio ({'; '.join(notes) or 'no others'}); {fix}")
    return cells, sorted(images), notes


def plan_trials(images: list[tuple[str, str]], cells: list[tuple[str, float, str]],
                protocol: str, catch: float, rng: np.random.Generator) -> list[Trial]:
    """Trials in reading order (module notes), ids ``t001``…; no tokens nor windows yet."""
    n = len(images)
    sides = {}  # per cell, the original's side for each image: half left, half right
    for j, cell in enumerate(cells):
        side = np.array(["left", "right"] * ((n + 1) // 2))[:n]
        if n % 2 and j % 2:  # an odd count: alternate which side has the extra one
            side = np.where(side == "left", "right", "left")
        sides[cell] = rng.permutation(side).tolist()
    rounds = []
    for r in range(n):
        block = []
        for j, (codec, ratio, setting) in enumerate(cells):
            k = (r + j) % n  # Latin square: each cell sees every image once
            block.append(_trial(protocol, images[k], codec, ratio, setting,
                                sides[codec, ratio, setting][k]))
        rounds.append([block[i] for i in rng.permutation(len(block))])
    order: list[Trial] = []
    for block in rounds:  # one image twice in a row makes the second trial easier
        for i in range(len(block)):
            before = order[-1].image_id if order else None
            if block[i].image_id == before:
                swap = next((j for j in range(i + 1, len(block))
                             if block[j].image_id != before), None)
                if swap is not None:
                    block[i], block[swap] = block[swap], block[i]
            order.append(block[i])
    extra = []
    if protocol == "rating":  # every original rated once, as the reference
        extra = [Trial("", "reference", d, i, None, None, None, None, ["original"], None)
                 for d, i in images]
    elif catch > 0:
        count = max(1, round(catch * len(order) / (1 - catch)))
        extra = [Trial("", "catch", *images[int(rng.integers(n))], None, None, None, None,
                       ["original"] * (3 if protocol == "revealed" else 2), None)
                 for _ in range(count)]
    base = len(order)  # spread evenly: the m-th extra trial lands in the m-th stretch
    slots = [int((m + rng.random()) * base / max(len(extra), 1)) for m in range(len(extra))]
    shuffled = [extra[i] for i in rng.permutation(len(extra))]
    for slot, trial in sorted(zip(slots, shuffled), key=lambda pair: -pair[0]):
        order.insert(slot, trial)
    for index, trial in enumerate(order, start=1):
        trial.id = f"t{index:03d}"
    return order


def _trial(protocol: str, image: tuple[str, str], codec: str, ratio: float, setting: str,
           original_side: str) -> Trial:
    coded_side = "right" if original_side == "left" else "left"
    if protocol == "rating":
        return Trial("", "test", *image, codec, ratio, setting, None, ["coded"], None)
    pair = ["original", "coded"] if original_side == "left" else ["coded", "original"]
    if protocol == "revealed":  # the question asks for the coded one
        return Trial("", "test", *image, codec, ratio, setting, None, ["original", *pair],
                     coded_side)
    return Trial("", "test", *image, codec, ratio, setting, None, pair, original_side)


def _write_images(results: Path, out: Path, trials: list[Trial], kept: pd.DataFrame,
                  rows: pd.DataFrame, rng: np.random.Generator) -> tuple[int, dict[str, str]]:
    """Write every trial's image file, all padded to one length; returns that file size
    and ``{file: sha256}`` (what ``analyze`` checks the kit folder against)."""
    entries = {(r.dataset, r.image_id, r.codec, r.setting): r for r in kept.itertuples()}
    achieved = {(r.dataset, r.image_id, r.codec, r.setting): r.ratio for r in rows.itertuples()}
    tokens: set[str] = set()
    folder = out / IMAGES_DIR
    folder.mkdir()
    payloads: list[Path] = []
    originals: dict[tuple[str, str], np.ndarray] = {}
    for trial in trials:
        if (trial.dataset, trial.image_id) not in originals:  # trials come image by image
            originals = {(trial.dataset, trial.image_id): _load(
                results, entries[trial.dataset, trial.image_id, "", ""])} | originals
            if len(originals) > 8:  # bounded memory for 2048² images
                originals.pop(next(reversed(originals)))
        original = originals[trial.dataset, trial.image_id]
        coded = None
        if trial.codec is not None:
            key = (trial.dataset, trial.image_id, trial.codec, trial.setting)
            coded = _load(results, entries[key])
            trial.achieved_ratio = float(achieved[key])
        panes = [original if p == "original" else coded for p in trial.panes]
        while (token := rng.bytes(10).hex()) in tokens:
            pass
        tokens.add(token)
        trial.token = token
        trial.height, trial.width = original.shape
        trial.bit_depth = int(entries[trial.dataset, trial.image_id, "", ""].bit_depth)
        low, high = np.percentile(original, WINDOW_PERCENTILES)
        trial.window = [int(round((low + high) / 2)), max(1, int(round(high - low)))]
        part = folder / f".{token}.part"
        part.write_bytes(zlib.compress(b"".join(_planes(p) for p in panes), 6))
        payloads.append(part)
    longest = max(p.stat().st_size for p in payloads)
    files = {}
    for trial, part in zip(trials, payloads):
        data = part.read_bytes()
        padded = len(data).to_bytes(4, "little") + data + bytes(longest - len(data))
        text = (f'medbenchKitPut("{trial.token}","'
                f'{base64.b64encode(padded).decode("ascii")}");\n')
        name = f"{IMAGES_DIR}/{trial.token}.js"
        (out / name).write_text(text, encoding="ascii")
        files[name] = hashlib.sha256(text.encode("ascii")).hexdigest()
        part.unlink()
    return (out / name).stat().st_size, files


def _planes(pixels: np.ndarray) -> bytes:
    """One pane as the page decodes it: each row's differences from its left neighbour
    (mod 2**16; the first from 0), low bytes of all pixels, then high bytes. Radiographs
    are smooth along a row, so this compresses ~35 % better than the bare values."""
    values = pixels.astype(np.int32)
    delta = np.diff(values, axis=1, prepend=0).astype("<u2")
    return delta.view(np.uint8).reshape(-1, 2).T.tobytes()


def _load(results: Path, entry) -> np.ndarray:
    return kept_files.read(results, entry.path, entry.sha256, entry.dtype, int(entry.height),
                           int(entry.width))


def blinded_manifest(trials: list[Trial], protocol: str) -> dict:
    """What the page is given: nothing that says a trial's codec, ratio, kind or side."""
    return {"format": KIT_FORMAT, "version": 1, "protocol": protocol,
            "question": PROTOCOLS[protocol],
            "trials": [{"id": t.id, "file": f"{IMAGES_DIR}/{t.token}.js", "token": t.token,
                        "height": t.height, "width": t.width, "bit_depth": t.bit_depth,
                        "panes": len(t.panes), "window": t.window} for t in trials]}


def _write_key_csv(path: Path, trials: list[Trial]) -> None:
    columns = ["id", "kind", "dataset", "image_id", "codec", "ratio", "setting",
               "achieved_ratio", "panes", "correct", "token"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for t in trials:
            values = asdict(t)
            values["panes"] = "/".join(t.panes)
            writer.writerow(["" if values[c] is None else values[c] for c in columns])
