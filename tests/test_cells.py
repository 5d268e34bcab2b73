"""The per-image pipeline: typed rows, the stream hash, kept visual pixels."""

from __future__ import annotations

import hashlib
import math

import pandas as pd

from medbench.benchmark.cells import Job, code_cell, code_unit
from medbench.benchmark.rows import COLUMNS, ResultRow, WorkUnit
from medbench.benchmark.runner import RunConfig, run
from medbench.codecs import get_codec
from medbench.datasets import get_dataset
from medbench.datasets.protocols import PAPER


def test_row_fields_are_the_store_columns_in_contract_order():
    names = list(COLUMNS)
    assert names[:24] == [
        "run_id", "dataset", "split", "image_id", "protocol", "bit_depth", "height", "width",
        "codec", "setting", "train_dataset", "bytes", "bpp", "ratio", "mse", "psnr", "ssim",
        "ms_ssim", "max_abs_error", "lossless_exact", "encode_ms", "decode_ms", "status",
        "error"]
    assert "stream_sha256" in names and "visuals" not in names
    assert set(ResultRow().columns()) == set(COLUMNS)


def test_every_cell_measures_its_peak_memory_and_classical_rows_have_no_model(
        make_image, monkeypatch):
    from pathlib import Path

    from medbench.benchmark import memory

    row = code_cell(get_codec("jpeg2000"), "ratio=20", make_image(64, 8), repeats=0)
    assert row.params is None and row.kmac_per_pixel_enc is None
    if Path("/proc/self/clear_refs").exists():
        assert row.peak_mem_mb is not None and row.peak_mem_mb >= 0
    seen = []
    real = memory.peak_memory
    monkeypatch.setattr("medbench.benchmark.cells.peak_memory",
                        lambda: seen.append(1) or real())
    code_cell(get_codec("jpeg"), "q=50", make_image(64, 8), repeats=0)
    assert seen == [1]  # around the timed calls, once per cell


def test_stream_sha256_is_the_hash_of_the_measured_bytes(make_image):
    image = make_image(64, 8)
    for name, setting in [("jpeg", "q=50"), ("jpeg2000", "ratio=20"),
                          ("jpeg2000", "lossless")]:
        codec = get_codec(name)
        row = code_cell(codec, setting, image, repeats=0)
        data = codec.encode(image, setting)
        assert row.status == "ok"
        assert row.bytes == len(data)
        assert row.stream_sha256 == hashlib.sha256(data).hexdigest()


def test_stream_sha256_reaches_results_csv(tmp_path):
    result = run(RunConfig(codecs=["jpeg"], datasets=["sample"], limit=1, repeats=0,
                           workers=1), tmp_path)
    csv = pd.read_csv(result.csv_path)
    assert csv["stream_sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    dataset = get_dataset("sample")
    record = next(r for r in dataset.records() if r.image_id == csv["image_id"].iloc[0])
    image = PAPER.apply(dataset.load(record))
    codec = get_codec("jpeg")
    for _, row in csv.iterrows():
        assert row["stream_sha256"] == hashlib.sha256(
            codec.encode(image, row["setting"])).hexdigest()


def test_a_visual_image_keeps_the_decoded_cell_nearest_30_to_1_per_codec():
    dataset = get_dataset("sample")
    record = dataset.records()[0]
    codecs = {name: get_codec(name) for name in ("jpeg", "jpeg2000")}
    cells = tuple((n, s) for n, c in codecs.items() for s in c.settings())
    ranks = {cell: i for i, cell in enumerate(cells)}
    job = Job(None, PAPER, 0, "models", "cpu", None, "r1", ranks,
              frozenset({("sample", record.image_id)}))
    rows = list(code_unit(job, WorkUnit("sample", record, cells), dataset, codecs))
    assert [(r.codec, r.setting) for r in rows] == list(cells)
    assert all(r.run_id == "r1" and r.setting_rank == ranks[(r.codec, r.setting)]
               for r in rows)
    kept = [r for r in rows if r.visuals]
    assert sorted(r.codec for r in kept) == ["jpeg", "jpeg2000"]
    target = 8 / 30
    for r in kept:
        same = [o for o in rows if o.codec == r.codec and math.isfinite(o.psnr)]
        nearest = min(same, key=lambda o: abs(math.log(o.bpp / target)))
        assert r.setting == nearest.setting
        crop = next(v for v in r.visuals if v.role == "crop" and v.decoded)
        assert crop.pixels.shape == (256, 256)
    originals = [v for r in rows for v in r.visuals if not v.decoded]
    assert len(originals) == 1  # the original travels once
    # A non-visual image keeps nothing.
    job = Job(None, PAPER, 0, "models", "cpu", None, "r1", ranks)
    assert not any(r.visuals for r in code_unit(job, WorkUnit("sample", record, cells),
                                                dataset, codecs))


def test_rows_carry_the_conventions_a_reader_needs(tmp_path):
    result = run(RunConfig(codecs=["jpeg", "jpeg2000"], datasets=["sample"], limit=1,
                           repeats=0, workers=1), tmp_path)
    csv = pd.read_csv(result.csv_path)
    assert (csv["psnr_peak"] == 255).all()
    assert csv["preparation"].str.startswith("Lanczos (anti-aliased, float32) resize to "
                                             "256x256; 8-bit by the nominal range").all()
    jpeg = csv[csv["codec"] == "jpeg"]["codec_conventions"]
    assert jpeg.str.contains("Huffman tables optimized").all()


def test_a_window_that_cannot_be_made_costs_its_columns_not_the_rows(monkeypatch):
    """A damaged ``meta["voi"]`` (say, a cache entry edited by hand) gives a display note;
    the image's cells are coded and measured as usual."""
    dataset = get_dataset("sample")
    record = dataset.records()[0]
    load = dataset.load
    monkeypatch.setattr(dataset, "load", lambda rec: load(rec).replace(
        meta={"voi": {"center": 1.0}}))  # no width, offset, scale
    job = Job(None, PAPER, 0, "models", "cpu", None, "r1", {}, display="dicom")
    rows = list(code_unit(job, WorkUnit("sample", record, (("png", "lossless"),)), dataset,
                          {"png": get_codec("png")}))
    assert [r.status for r in rows] == ["ok"], rows[0].error
    assert rows[0].display is None and rows[0].display_psnr is None
    assert rows[0].display_note.startswith("display window could not be made: KeyError")
