"""Rate matching (``run --target``): the rule, its tolerance, bounded search, the table."""

from __future__ import annotations

import pandas as pd
import pytest

from medbench.benchmark.cells import code_cell
from medbench.benchmark.runner import RunConfig, run
from medbench.benchmark.targets import MAX_ENCODES, RATE_TOLERANCE, Target, match, parse_targets
from medbench.codecs import get_codec
from medbench.codecs.jpeg2000 import Jpeg2000Codec
from medbench.codecs.learned.codec import PRETRAINED_DIR as SHIPPED
from medbench.errors import MedbenchError
from medbench.image import Image
from medbench.reports.build import build_report
from medbench.reports.targets import targets_table

CODECS = ["jpeg2000", "jpegxl", "htj2k", "avif", "jpeg12", "jpegls"]


def _next_integer_exceeds(codec, image, setting: str, budget_bpp: float) -> bool:
    """Whether the next integer knob value towards more bytes breaks the budget."""
    knob = codec.knob(image.bit_depth)
    value = int(setting.split("=")[1])
    step = -1 if knob.larger_is_smaller else 1
    nxt = value + step
    if not knob.low <= nxt <= knob.high:
        return True
    data = codec.encode(image, knob.setting_for(nxt))
    return len(data) * 8 / image.pixels.size > budget_bpp


def _within(ratio: float, target: float) -> bool:
    return target <= ratio <= target / (1 - RATE_TOLERANCE) + 1e-9


def _check_ratio_row(row, codec, image, target: float) -> None:
    """target_met means within 2 % or, on an integer knob, the best integer (met, with a
    note); any other row outside says why, and only for a good reason."""
    assert row.status == "ok", row.error
    assert row.ratio >= target  # never above the allowed rate
    knob = codec.knob(image.bit_depth)
    if _within(row.ratio, target):
        assert row.target_met and row.target_note is None, row.target_note
    elif knob.integer:  # the best integer: the next one breaks the rule
        assert row.target_met and row.target_note.startswith("best integer"), row.target_note
        assert _next_integer_exceeds(codec, image, row.knob, image.bit_depth / target)
    else:
        assert not row.target_met and "cannot spend the bytes" in row.target_note


def test_parse_targets():
    assert parse_targets("ratio=10,30") == [Target("ratio", 10), Target("ratio", 30)]
    assert parse_targets("bpp=0.25,psnr=40") == [Target("bpp", 0.25), Target("psnr", 40)]
    assert Target("ratio", 10).setting == "target:ratio=10"
    for bad in ("10", "ratio=abc", "ratio=0.5", "ssim=0.9", "psnr=-1"):
        with pytest.raises(MedbenchError):
            parse_targets(bad)


@pytest.mark.parametrize("name", [*CODECS, "hevc"])
def test_ratio_10_on_a_native_12_bit_image(make_image, name):
    image = make_image(128, 12, seed=3)
    codec = get_codec(name)
    row = code_cell(codec, "target:ratio=10", image, repeats=0)
    assert row.setting == "target:ratio=10" and row.knob
    _check_ratio_row(row, codec, image, 10)


def test_psnr_target_is_the_smallest_rate_reaching_it(make_image):
    image = make_image(128, 12, seed=4)
    row = code_cell(get_codec("htj2k"), "target:psnr=45", image, repeats=0)
    assert row.status == "ok" and row.target_met
    assert 45 <= row.psnr <= 45.1 or row.target_note


def test_jpeg2000_lands_within_tolerance_where_its_default_steps_miss(make_image):
    """OpenJPEG's own answer at ratio=10 (the best 64×64 code-blocks allow) is 16 % below
    10:1 on this image; the search lands within 2 % with finer code-blocks."""
    image = make_image(96, 8, seed=0)
    codec = get_codec("jpeg2000")
    default = len(codec.encode(image, "ratio=10")) * 8 / image.pixels.size
    assert default < 0.9 * image.bit_depth / 10

    class DefaultBlocksOnly(Jpeg2000Codec):
        finer_knobs = None  # the search before finer code-blocks

    before = match(DefaultBlocksOnly(), image, Target("ratio", 10))
    assert not before.met and "rate jumps across the tolerance" in before.note
    found = match(codec, image, Target("ratio", 10))
    assert found.met and found.note is None and found.setting.endswith(",cb=32")
    ratio = image.pixels.size * 8 / (len(codec.encode(image, found.setting)) * 8)
    assert _within(ratio, 10), ratio
    assert found.encodes <= MAX_ENCODES * (1 + len(codec.finer_knobs(8)))


def test_jpeg2000_code_block_setting():
    """``ratio=R,cb=N`` codes with N×N code-blocks; ``cb=64`` is the default's stream."""
    import numpy as np

    from tests.conftest import radiograph_like

    image = Image(radiograph_like(64, 12, 1), 12, "x")
    codec = Jpeg2000Codec()
    assert codec.encode(image, "ratio=20,cb=64") == codec.encode(image, "ratio=20")
    finer = codec.encode(image, "ratio=20,cb=16")
    assert finer != codec.encode(image, "ratio=20")
    assert np.abs(codec.decode(finer).astype(int) - image.pixels).max() < 4096
    with pytest.raises(ValueError, match="code-block size"):
        codec.encode(image, "ratio=20,cb=48")


def test_integer_knob_outside_2_percent_is_its_best_integer(make_image):
    """JPEG-LS near=22 lands 5.8 % below 10:1 and near=21 is above it: the best integer,
    the integer knobs' tolerance, so target_met is true and the note says how far."""
    image = make_image(64, 8, seed=2)
    codec = get_codec("jpegls")
    found = match(codec, image, Target("ratio", 10))
    assert found.met and found.setting == "near=22"
    assert found.note.startswith("best integer 10.61:1 at near=22, 5.8 % below the target "
                                 "rate (tolerance 2 %); near=21 gives 9.85:1, beyond 10:1")
    row = code_cell(codec, "target:ratio=10", image, repeats=0)
    assert row.status == "ok" and row.target_met is True and row.knob == "near=22"
    _check_ratio_row(row, codec, image, 10)


def test_unreachable_target_is_a_row_that_says_so(make_image):
    image = make_image(64, 8)
    row = code_cell(get_codec("png"), "target:ratio=30", image, repeats=0)
    assert row.status == "ok" and row.target_met is False
    assert "png cannot reach 30:1 on this image: closest" in row.target_note
    assert row.knob == "lossless" and row.ratio < 30


class _Counting:
    """A codec wrapper that counts encodes (the search must stay bounded)."""

    def __init__(self, codec):
        self.codec, self.encodes = codec, 0

    def __getattr__(self, name):
        return getattr(self.codec, name)

    def encode(self, image, setting):
        self.encodes += 1
        return self.codec.encode(image, setting)


@pytest.mark.parametrize("name", ["jpegxl", "avif", "jpegls", "hevc"])
def test_search_is_bounded(make_image, name):
    image = make_image(96, 8, seed=1)
    counting = _Counting(get_codec(name))
    for target in parse_targets("ratio=7,1000,bpp=0.3,psnr=80"):
        counting.encodes = 0
        found = match(counting, image, target)
        assert counting.encodes == found.encodes <= MAX_ENCODES


def test_a_codec_error_during_search_is_an_error_row(make_image):
    class Broken(_Counting):
        def encode(self, image, setting):
            raise RuntimeError("boom")

    row = code_cell(Broken(get_codec("jpegxl")), "target:ratio=10", make_image(64, 8),
                    repeats=0)
    assert row.status == "error" and "boom" in row.error


def test_run_on_sample_and_the_table(tmp_path):
    config = RunConfig(codecs=CODECS + ["png"], limit=2, target="ratio=10", repeats=0,
                       use_cache=False)
    result = run(config, tmp_path / "r")
    rows = result.rows[result.rows["setting"] == "target:ratio=10"]
    assert set(rows["codec"]) == set(CODECS) | {"png"}
    assert len(rows) == 2 * 7
    for _, r in rows[rows["codec"] != "png"].iterrows():
        assert r["status"] == "ok" and r["ratio"] >= 10, r["error"]
        if r["codec"] in ("jpeg2000", "jpegxl", "htj2k"):  # continuous knobs: within 2 %
            assert bool(r["target_met"]) and _within(r["ratio"], 10), r["target_note"]
        elif not _within(r["ratio"], 10):  # integer knobs: else the best integer
            assert bool(r["target_met"]), r["target_note"]
            assert r["target_note"].startswith("best integer"), r["target_note"]
    png = rows[rows["codec"] == "png"]
    assert not png["target_met"].astype(bool).any()
    table = targets_table(result.rows)
    assert list(table["codec"])[-1] == "png"  # it missed: ranked last
    line = table.set_index("codec").loc["png"]
    assert line["mark"] == "†" and line["rule"] == "0/2" and "cannot reach" in line["note"]
    for codec in ("jpeg2000", "jpegxl", "htj2k"):
        assert table.set_index("codec").loc[codec, "mark"] == ""
    report = build_report(tmp_path / "r")
    page = report.index.read_text()
    assert 'id="targets"' in page and "At 10:1 / 30:1" in page
    assert "missed the tolerance on some image" in report.markdown["targets"]
    assert "rate-matched per image" in report.markdown["headline"]


def test_table_says_how_to_fill_it(tmp_path):
    run(RunConfig(codecs=["jpeg"], limit=1, repeats=0, use_cache=False), tmp_path / "r")
    report = build_report(tmp_path / "r", visual=False)
    assert "--target ratio=10,30" in report.markdown["targets"]
    assert targets_table(pd.DataFrame()).empty


def test_integer_knob_is_the_best_integer(make_image):
    image = Image(make_image(128, 8, seed=2).pixels, 8, "x")
    codec = get_codec("jpeg12")
    row = code_cell(codec, "target:ratio=10", image, repeats=0)
    _check_ratio_row(row, codec, image, 10)


def test_a_codec_that_cannot_spend_the_budget_says_so():
    """A flat image: JPEG 2000's richest lossy codestream is far below 10:1's bytes."""
    import numpy as np

    flat = Image(np.full((64, 64), 117, dtype=np.uint8), 8, "flat")
    found = match(get_codec("jpeg2000"), flat, Target("ratio", 10))
    assert not found.met and found.note is not None  # obeys the rule, far off the target
    assert "cannot spend the bytes of 10:1" in found.note
    assert "below the target rate (tolerance 2 %)" in found.note


def test_target_met_is_decided_on_the_stream_that_was_measured(make_image):
    """The search judged ratio=10.x; the stream then timed and stored is a richer one
    (a codec whose second encode differs): the row must not claim the target."""

    class Drifting(_Counting):
        def __init__(self, codec):
            super().__init__(codec)
            self.seen = set()

        def encode(self, image, setting):
            self.encodes += 1
            if setting in self.seen:  # the harness encodes the chosen setting again
                return self.codec.encode(image, "ratio=8")
            self.seen.add(setting)
            return self.codec.encode(image, setting)

    image = make_image(96, 8, seed=1)
    honest = code_cell(get_codec("jpeg2000"), "target:ratio=10", image, repeats=0)
    assert honest.status == "ok" and honest.target_met is True, honest.target_note
    row = code_cell(Drifting(get_codec("jpeg2000")), "target:ratio=10", image, repeats=0)
    assert row.status == "ok" and row.ratio < 10 and row.knob == honest.knob
    assert row.target_met is False
    assert row.target_note.startswith(f"not met as measured ({row.ratio:.2f}:1): its stream "
                                      f"has {row.bytes} bytes, the search's encode at "
                                      f"{honest.knob} had {honest.bytes}")


def test_milestones_never_stand_in_for_a_model_at_a_target(tmp_path, make_image,
                                                            no_pretrained):
    """A learned codec has no rate knob: its target cell takes the nearest setting among
    its finished models. Here the model's milestone is a richer network, which the rule
    (the largest rate within the budget) would pick if milestones counted."""
    import shutil

    from medbench.codecs import CodecContext

    shipped = SHIPPED / "dcae"
    shutil.copytree(shipped / "nih-l16-lam0.01", tmp_path / "dcae" / "poor")
    shutil.copytree(shipped / "nih-l16-lam1e-05",
                    tmp_path / "dcae" / "poor" / "milestones" / "4m")
    codec = get_codec("dcae", CodecContext(models_dir=tmp_path, device="cpu",
                                           milestones=True))
    assert codec.settings() == ["poor", "poor@4m"]
    image = make_image(64, 8, seed=5)
    target = Target("ratio", 1.5)  # 5.3 bpp: every setting fits, the richest is nearest
    sizes = {s: len(codec.encode(image, s)) for s in codec.settings()}
    assert sizes["poor"] < sizes["poor@4m"] < 8 / 1.5 * 64 * 64 / 8
    found = match(codec, image, target)
    assert found.setting == "poor" and found.encodes == 1  # the milestone was not tried
    assert "cannot spend the bytes of 1.5:1" in found.note and "at poor," in found.note
    row = code_cell(codec, target.setting, image, repeats=0)
    assert row.status == "ok" and row.knob == "poor" and row.bytes == sizes["poor"]


def test_recheck_judges_the_measured_point_by_the_rule_and_tolerance():
    """Same bytes as the search's encode, yet another decode (a decoder that is not
    deterministic): a PSNR target is kept only if the measured PSNR still meets it."""
    from medbench.benchmark.targets import Match, recheck

    psnr40 = Target("psnr", 40)
    found = Match("q=50", True, None, 5, nbytes=900)
    assert recheck(found, psnr40, 8, 900, 0.11, 72.7, 40.05) == (True, None)
    met, note = recheck(found, psnr40, 8, 900, 0.11, 72.7, 39.9)
    assert not met and "breaks the rule of 40 dB PSNR" in note
    met, note = recheck(found, psnr40, 8, 900, 0.11, 72.7, 40.3)
    assert not met and "outside the tolerance of 40 dB PSNR" in note
    best = Match("near=22", True, "best integer …", 5, nbytes=900)  # judged by the search
    assert recheck(best, Target("ratio", 10), 8, 900, 0.75, 10.6, 40.0) == (True,
                                                                          "best integer …")
    missed = Match("lossless", False, "png cannot reach 30:1", 1, nbytes=5000)
    assert recheck(missed, Target("ratio", 30), 8, 5000, 4.0, 2.0, None) == (
        False, "png cannot reach 30:1")
