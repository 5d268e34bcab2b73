"""``run --keep-pixels`` and ``study make``: the kit shows the pixels the run scored, in a
seeded, balanced order, and nothing in what readers get tells a trial's codec or side."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from medbench.benchmark import pixels as kept_files
from medbench.benchmark.store import ResultsStore
from medbench.study import StudyError
from medbench.study.kit import make_kit, plan_trials
from tests.study_kit import invoke, kept_run


@pytest.fixture
def made(tmp_path_factory):
    return kept_run(tmp_path_factory)


def test_kept_pixels_are_the_decodes_the_run_scored(made):
    results, _ = made
    store = ResultsStore.open_existing(results)
    run_id = store.latest_run()
    kept, rows = store.kept_pixels(run_id), store.frame(run_id)
    store.close()
    originals = {(r.dataset, r.image_id): kept_files.read(results, r.path, r.sha256, r.dtype,
                                                          r.height, r.width)
                 for r in kept.itertuples() if r.codec == ""}
    coded = kept[kept["codec"] != ""]
    assert len(originals) == 6 and len(coded) == 6 * 2 * 2  # every target cell of 6 images
    for r in coded.itertuples():
        pixels = kept_files.read(results, r.path, r.sha256, r.dtype, r.height, r.width)
        original = originals[r.dataset, r.image_id]
        row = rows[(rows.image_id == r.image_id) & (rows.codec == r.codec)
                   & (rows.setting == r.setting)].iloc[0]
        mse = float(np.mean((pixels.astype(np.float64) - original) ** 2))
        assert mse == pytest.approx(row["mse"], rel=1e-12)
        assert r.bit_depth == row["bit_depth"] > 8 and r.dtype == "<u2"


def test_a_damaged_kept_file_is_refused_naming_it(made, tmp_path):
    results, _ = made
    store = ResultsStore.open_existing(results)
    entry = next(store.kept_pixels(store.latest_run()).itertuples())
    store.close()
    copy = tmp_path / entry.path
    copy.parent.mkdir(parents=True)
    copy.write_bytes((results / entry.path).read_bytes()[:-40])  # cut short
    with pytest.raises(kept_files.KeptPixelsError, match=re.escape(str(copy))):
        kept_files.read(tmp_path, entry.path, entry.sha256, entry.dtype, entry.height,
                        entry.width)


def test_keep_pixels_without_a_target_is_refused(tmp_path):
    out = invoke("run", "--codecs", "jpeg2000", "--keep-pixels", "--out", tmp_path / "r",
                 code=2)
    assert "--keep-pixels" in out and "--target ratio=10,20,30" in out


def test_nothing_in_the_readers_files_tells_a_trial(made):
    _, kit = made
    key = json.loads((kit / "key.json").read_text())
    page = (kit / "index.html").read_text()
    files = sorted((kit / "images").iterdir())
    assert len(files) == len(key["trials"]) == 3 * 4 + 1  # 3 images x 4 cells + 1 catch
    # one size for every file, names opaque and equal in length
    assert len({f.stat().st_size for f in files}) == 1
    assert all(re.fullmatch(r"[0-9a-f]{20}\.js", f.name) for f in files)
    # ...though what they hold compresses differently by codec: the padding is needed
    lengths = {int.from_bytes(__import__("base64").b64decode(
        f.read_text().split('"')[3])[:4], "little") for f in files}
    assert len(lengths) > 3
    for trial in key["trials"]:
        for secret in (trial["codec"], trial["image_id"], trial["setting"]):
            if secret:
                assert secret not in page
        assert f'"id":"{trial["id"]}"' in page
    manifest = json.loads(re.search(r"const KIT = (\{.*?\});</script>", page).group(1))
    assert {k for t in manifest["trials"] for k in t} == {
        "id", "file", "token", "height", "width", "bit_depth", "panes", "window"}
    windows = {}  # a trial's default window is its image's, whatever the codec
    for t, k in zip(manifest["trials"], key["trials"]):
        windows.setdefault(k["image_id"], set()).add(tuple(t["window"]))
    assert all(len(w) == 1 for w in windows.values())
    assert "jpeg" not in page.lower() and "key.json" not in page
    assert "<img" not in page and "fetch(" not in page and "http" not in page.lower()


def test_trials_are_seeded_and_balanced():
    images = [("d", f"i{k}") for k in range(6)]
    cells = [(c, r, f"target:ratio={r:g}") for c in ("a", "b") for r in (10.0, 20.0, 30.0)]

    def plan(seed):
        return plan_trials(images, cells, "2afc", 0.1, np.random.default_rng(seed))

    trials = plan(1)
    tests = [t for t in trials if t.kind == "test"]
    assert len(tests) == 36 and sum(t.kind == "catch" for t in trials) == 4
    per_cell = Counter((t.codec, t.ratio) for t in tests)
    assert set(per_cell.values()) == {6}
    assert all(Counter((t.codec, t.ratio, t.image_id) for t in tests).values())
    assert len({(t.codec, t.ratio, t.image_id) for t in tests}) == 36
    sides = Counter((t.codec, t.ratio, t.correct) for t in tests)
    assert set(sides.values()) == {3}  # the original left in half of each cell's trials
    # every round of six trials holds every codec x ratio once
    for start in range(0, 36, 6):
        block = [t for t in trials if t.kind == "test"][start:start + 6]
        assert len({(t.codec, t.ratio) for t in block}) == 6
    for seed in range(10):  # never one image twice in a row
        shown = [t.image_id for t in plan(seed) if t.kind == "test"]
        assert all(a != b for a, b in zip(shown, shown[1:])), seed
    again = plan(1)
    assert [(t.id, t.codec, t.ratio, t.image_id, t.correct) for t in again] == \
        [(t.id, t.codec, t.ratio, t.image_id, t.correct) for t in trials]
    assert [t.image_id for t in plan(2)] != [t.image_id for t in trials]


def test_revealed_and_rating_kits(made, tmp_path):
    results, _ = made
    revealed = make_kit(results, tmp_path / "rev", ["jpeg2000"], "ratio=10", 2, "revealed",
                        seed=1, catch=0.3)
    key = json.loads((tmp_path / "rev" / "key.json").read_text())
    for t in key["trials"]:
        assert len(t["panes"]) == 3 and t["panes"][0] == "original"
        if t["kind"] == "test":  # the right answer is the side of the coded image
            assert t["panes"][1 if t["correct"] == "left" else 2] == "coded"
    assert revealed.catch == 1
    rating = make_kit(results, tmp_path / "rate", ["jpeg2000", "jpegxl"], "ratio=20", 3,
                      "rating", seed=1)
    key = json.loads((tmp_path / "rate" / "key.json").read_text())
    kinds = Counter(t["kind"] for t in key["trials"])
    assert kinds == {"test": 6, "reference": 3} and rating.catch == 0
    assert all(len(t["panes"]) == 1 for t in key["trials"])


@pytest.mark.parametrize("change, message", [
    (dict(codecs=["png"]), "codec 'png' is not in run"),
    (dict(target="ratio=15"), "no jpeg2000 cell at 15:1"),
    (dict(target="bpp=1"), "a study shows compression ratios"),
    (dict(n_images=9), "has 6 image(s) kept at every chosen codec and ratio"),
])
def test_make_refuses_what_the_run_cannot_give(made, tmp_path, change, message):
    results, _ = made
    options = dict(codecs=["jpeg2000"], target="ratio=10", n_images=2) | change
    with pytest.raises(StudyError, match=re.escape(message)):
        make_kit(results, tmp_path / "kit", **options)


def test_make_needs_kept_pixels_and_an_empty_folder(made, tmp_path):
    results, kit = made
    with pytest.raises(StudyError, match="is not empty"):
        make_kit(results, kit, ["jpeg2000"], "ratio=10", 2)
    plain = tmp_path / "plain"
    invoke("run", "--codecs", "jpeg2000", "--datasets", "sample", "--limit", "1", "--size",
           "64", "--target", "ratio=10", "--out", plain, "--no-report", "--no-progress",
           "--repeats", "0")
    with pytest.raises(StudyError, match="kept no pixels; run it with `medbench run "
                                         "--keep-pixels"):
        make_kit(plain, tmp_path / "kit", ["jpeg2000"], "ratio=10", 1)


def test_an_image_a_codec_failed_on_is_said_as_not_coded_not_as_a_missed_target():
    import pandas as pd

    from medbench.study.kit import _usable

    kept = pd.DataFrame({"dataset": ["d"] * 3, "image_id": ["a", "a", "b"],
                         "codec": ["", "c", ""], "setting": ["", "target:ratio=10", ""]})
    rows = pd.DataFrame({"dataset": ["d", "d"], "image_id": ["a", "b"], "codec": ["c", "c"],
                         "setting": ["target:ratio=10"] * 2, "status": ["ok", "unsupported"],
                         "target_met": [1, None]})
    cells, images, notes = _usable("R", "run", kept, rows, ["c"], [10.0], 1)
    assert images == [("d", "a")]
    assert notes == ["1 image(s) left out: some codec did not code them (an error or "
                     "unsupported row; see the run's error column)"]


def test_an_image_an_interrupted_run_has_not_finished_is_said_as_unfinished():
    import pandas as pd

    from medbench.study.kit import _usable

    kept = pd.DataFrame({"dataset": ["d"] * 3, "image_id": ["a", "a", "b"],
                         "codec": ["", "c", ""], "setting": ["", "target:ratio=10", ""]})
    rows = pd.DataFrame({"dataset": ["d"], "image_id": ["a"], "codec": ["c"],
                         "setting": ["target:ratio=10"], "status": ["ok"], "target_met": [1]})
    cells, images, notes = _usable("R", "run", kept, rows, ["c"], [10.0], 1)
    assert images == [("d", "a")]
    assert notes == ["1 image(s) left out: the run has not coded all their cells yet (finish "
                     "it with `medbench run --out R --resume`)"]
