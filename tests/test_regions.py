"""Diagnostic regions: JSRT nodule discs, ``--masks`` files, and the ``roi_*`` columns."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medbench.benchmark.regions import Region, image_region, mask_from_dir, region_mask
from medbench.benchmark.runner import RunConfig, run
from medbench.codecs import registry
from medbench.codecs.png import PngCodec
from medbench.datasets.base import Record
from medbench.datasets.jsrt import PIXEL_MM, nodule_region, parse_clinical
from tests.fixture_formats import jsrt_picture, write_jsrt_img, write_png

#: CLNDAT rows as distributed (tab-separated): a 15 mm and a 30 mm nodule, and a line
#: whose coordinates lie outside the 2048x2048 film.
CLNDAT = [
    "JPCLN001.IMG\t5\t15\t53\tmale\t1634\t692\tmalignant\tl.upper lobe\tlung cancer",
    "JPCLN002.IMG\t5\t30\t78\tfemale\t400\t1090\tbenign\tr.lower lobe\tgranuloma",
    "JPCLN003.IMG\t2\t18\t60\tmale\t2300\t1233\tmalignant\tl.upper lobe\tadenocarcinoma",
]
CNNDAT = ["JPCNN001.IMG 30 female non-nodule"]


def jsrt_meta(row: str) -> dict:
    clinical = next(iter(parse_clinical(row).values()))
    return {**clinical, **nodule_region(clinical)}


# -- the JSRT nodule as a disc ------------------------------------------------------------
def test_a_nodule_is_a_disc_of_its_size_at_its_position_on_the_prepared_image():
    meta = jsrt_meta(CLNDAT[0])
    assert meta["roi_discs"] == ((1634.0, 692.0, 15 / PIXEL_MM),)
    assert meta["roi_shape"] == (2048, 2048) and meta["roi_label"] == "nodule"
    for side in (2048, 256):
        region = region_mask(meta, (side, side))
        assert region.label == "nodule" and region.note is None
        scale = side / 2048
        rows, cols = np.nonzero(region.mask)
        # x is the column from the left, y the row from the top (pixel centres map as
        # PIL's resize maps them).
        assert cols.mean() == pytest.approx((1634 + 0.5) * scale - 0.5, abs=0.5)
        assert rows.mean() == pytest.approx((692 + 0.5) * scale - 0.5, abs=0.5)
        radius = 15 / PIXEL_MM / 2 * scale
        assert region.mask.sum() == pytest.approx(math.pi * radius**2, rel=0.15)


def test_a_tiny_nodule_keeps_at_least_its_centre_pixel():
    meta = {"roi_label": "nodule", "roi_discs": ((1000.0, 1000.0, 2.0),),
            "roi_shape": (2048, 2048)}
    region = region_mask(meta, (64, 64))
    assert region.mask.sum() == 1 and region.mask[31, 31]


def test_a_nodule_outside_the_image_is_reported_not_dropped(caplog):
    region = region_mask(jsrt_meta(CLNDAT[2]), (256, 256))
    assert region.mask is None and region.label is None
    assert "x=2300, y=1233" in region.note and "outside the 2048x2048 image" in region.note
    assert "CLNDAT_EN.txt" in region.note
    assert "outside" in caplog.text


def test_records_without_a_nodule_have_no_region():
    assert region_mask({"nodule": False}, (256, 256)) == Region(None, None, None)
    missing = nodule_region({"nodule": True})  # a JPCLN image with no CLNDAT row
    region = region_mask(missing, (256, 256))
    assert region.mask is None and "no nodule position" in region.note


# -- --masks DIR ------------------------------------------------------------------------
def _record(image_id: str, source: str = "nowhere") -> Record:
    return Record(image_id, image_id, source, {})


def _square(shape, value=255, dtype=np.uint8):
    mask = np.zeros(shape, dtype)
    mask[shape[0] // 4 : shape[0] // 2, shape[1] // 4 : shape[1] // 2] = value
    return mask


def test_a_mask_at_the_prepared_size_is_used_as_it_is(tmp_path):
    write_png(tmp_path / "img1.png", _square((64, 48)))
    region = mask_from_dir(tmp_path, _record("img1"), (64, 48))
    assert region.label == "mask:img1.png" and region.note is None
    np.testing.assert_array_equal(region.mask, _square((64, 48)) > 0)


def test_a_native_size_mask_is_resized_by_nearest_neighbour(tmp_path):
    write_png(tmp_path / "img1.png", _square((256, 192), 1))
    region = mask_from_dir(tmp_path, _record("img1"), (64, 48), lambda: (256, 192))
    np.testing.assert_array_equal(region.mask, _square((64, 48)) > 0)


def test_the_source_file_stem_names_a_mask_too(tmp_path):
    source = tmp_path / "data" / "scan-7.dcm"
    source.parent.mkdir()
    source.write_bytes(b"x")
    write_png(tmp_path / "scan-7.png", _square((32, 32)))
    region = image_region(_record("other-id", str(source)), (32, 32), tmp_path)
    assert region.label == "mask:scan-7.png"


@pytest.mark.parametrize("pixels,reason", [
    (_square((50, 50)), "it is 50x50 but the image is 256x192 as read and 48x64 as coded"),
    (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) % 3, "not binary"),
    (np.zeros((64, 48), np.uint8), "empty"),
])
def test_a_mask_of_the_wrong_size_or_not_binary_is_refused_with_its_reason(
        tmp_path, pixels, reason):
    write_png(tmp_path / "img1.png", pixels)
    region = mask_from_dir(tmp_path, _record("img1"), (64, 48), lambda: (192, 256))
    assert region.mask is None and region.label is None
    assert region.note.startswith("mask img1.png refused: ") and reason in region.note


def test_an_unreadable_or_missing_mask_is_a_note(tmp_path):
    (tmp_path / "img1.png").write_bytes(b"not a png")
    assert "refused" in mask_from_dir(tmp_path, _record("img1"), (8, 8)).note
    assert "no mask img2.png" in mask_from_dir(tmp_path, _record("img2"), (8, 8)).note


# -- the roi_* columns of a run ------------------------------------------------------------
class NoduleNoise(PngCodec):
    """PNG whose decode adds strong noise inside each image's nodule (and nowhere else)."""

    name = "nodule-noise"
    #: image id -> (row, column, radius) of the distorted disc on the prepared image.
    discs: dict[str, tuple[float, float, float]] = {}

    def is_lossless(self, setting: str) -> bool:
        return False

    def encode(self, image, setting):
        self._image_id = image.image_id
        return super().encode(image, setting)

    def decode(self, data):
        pixels = super().decode(data)
        disc = self.discs.get(self._image_id)
        if disc is None:
            return pixels
        rows, cols = np.ogrid[: pixels.shape[0], : pixels.shape[1]]
        inside = (rows - disc[0]) ** 2 + (cols - disc[1]) ** 2 <= disc[2] ** 2
        noise = np.random.default_rng(3).integers(-60, 61, int(inside.sum()))
        out = pixels.astype(np.int32)
        out[inside] += noise
        return np.clip(out, 0, 255).astype(pixels.dtype)


@pytest.fixture
def jsrt_root(tmp_path: Path) -> Path:
    jsrt = tmp_path / "data" / "jsrt"
    for i, name in enumerate(["JPCLN001", "JPCLN002", "JPCLN003", "JPCNN001"]):
        write_jsrt_img(jsrt / f"{name}.IMG", jsrt_picture(i))
    (jsrt / "CLNDAT_EN.txt").write_text("\r\n".join(CLNDAT) + "\r\n", encoding="latin-1")
    (jsrt / "CNNDAT_EN.txt").write_text("\r\n".join(CNNDAT) + "\r\n", encoding="latin-1")
    return tmp_path / "data"


def test_jsrt_rows_carry_nodule_metrics_measured_on_the_decoded_pixels(
        tmp_path, jsrt_root, monkeypatch):
    monkeypatch.setitem(registry.load(), NoduleNoise.name, NoduleNoise)
    # Noise well inside the 15 mm nodule of JPCLN001 (radius 5.4 px on the 256² image),
    # written from the CLNDAT numbers, not from medbench's mapping.
    scale = 256 / 2048
    NoduleNoise.discs = {"JPCLN001": (692 * scale, 1634 * scale, 15 / PIXEL_MM / 2 * scale - 1)}
    config = RunConfig(codecs=["nodule-noise", "jpeg"], datasets=["jsrt"],
                       data_root=str(jsrt_root), split="all", repeats=0, use_cache=False)
    rows = run(config, tmp_path / "out").rows.set_index(["image_id", "codec", "setting"])

    planted = rows.loc[("JPCLN001", "nodule-noise", "lossless")]
    assert planted["status"] == "ok" and planted["roi"] == "nodule"
    assert planted["roi_psnr"] < planted["psnr"] - 20  # ~70 of 65,536 pixels distorted
    assert planted["psnr"] > 40 and planted["roi_ssim"] < planted["ssim"]
    assert planted["roi_max_abs_error"] == planted["max_abs_error"]
    untouched = rows.loc[("JPCLN002", "nodule-noise", "lossless")]
    assert untouched["roi"] == "nodule" and math.isinf(untouched["roi_psnr"])
    assert untouched["roi_ssim"] == 1.0

    nodule = rows.xs("JPCLN002", level="image_id")
    jpeg = nodule[nodule.index.get_level_values("codec") == "jpeg"]
    assert (jpeg["roi"] == "nodule").all() and jpeg["roi_psnr"].notna().all()
    assert jpeg["roi_ssim"].between(0, 1).all()

    for empty in ("JPCNN001", "JPCLN003"):  # no nodule; a nodule outside the film
        image = rows.xs(empty, level="image_id")
        assert image[["roi", "roi_psnr", "roi_ssim", "roi_max_abs_error"]].isna().all().all()
    assert rows.xs("JPCNN001", level="image_id")["roi_note"].isna().all()
    assert (rows.xs("JPCLN003", level="image_id")["roi_note"]
            .str.contains("x=2300, y=1233.*outside", regex=True).all())

    csv = pd.read_csv(next((tmp_path / "out").rglob("results.csv")))
    for column in ("roi", "roi_psnr", "roi_ssim", "roi_max_abs_error", "roi_note"):
        assert column in csv.columns
    assert set(csv.loc[csv["roi"].notna(), "image_id"]) == {"JPCLN001", "JPCLN002"}


def test_run_masks_replace_the_datasets_regions(tmp_path, jsrt_root):
    masks = tmp_path / "masks"
    write_png(masks / "JPCLN002.png", _square((2048, 2048)))  # native size
    write_png(masks / "JPCNN001.png", _square((100, 100)))  # neither size
    config = RunConfig(codecs=["jpeg"], datasets=["jsrt"], data_root=str(jsrt_root),
                       split="all", repeats=0, use_cache=False, masks=str(masks))
    rows = run(config, tmp_path / "out").rows
    by_image = rows.groupby("image_id")
    assert set(by_image.get_group("JPCLN002")["roi"]) == {"mask:JPCLN002.png"}
    assert by_image.get_group("JPCLN002")["roi_psnr"].notna().all()
    refused = by_image.get_group("JPCNN001")
    assert refused["roi"].isna().all() and refused["roi_psnr"].isna().all()
    assert refused["roi_note"].str.contains("refused: it is 100x100").all()
    assert by_image.get_group("JPCLN001")["roi_note"].str.contains("no mask").all()
