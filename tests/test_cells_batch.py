"""Learned cells coded in batches (``run --learned-batch``): the same bytes and pixels as
one image at a time, rows that state the batch, and one bad image costing only its rows."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner
from PIL import Image as PILImage

from medbench.benchmark.cells import (
    AUTO_GPU_BATCH,
    MAX_BATCH_PIXELS,
    Job,
    code_units,
    learned_batch,
)
from medbench.benchmark.executors import tasks
from medbench.benchmark.rows import WorkUnit
from medbench.benchmark.runner import RunConfig, run
from medbench.benchmark.store import ResultsStore
from medbench.cli import main
from medbench.codecs import CodecContext, get_codec
from medbench.codecs.learned.codec import DcaeCodec
from medbench.datasets import get_dataset
from medbench.datasets.base import Record
from medbench.datasets.protocols import parse_protocol
from medbench.errors import MedbenchError

from .conftest import radiograph_like, train_tiny_hyperprior

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Image sizes of the mixed-size folder: three of one size, two of another, one alone.
SIZES = [(64, 64), (48, 80), (64, 64), (48, 80), (64, 64), (40, 40)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder dataset of 8-bit PNGs of mixed sizes."""
    root = tmp_path_factory.mktemp("mixed")
    for i, size in enumerate(SIZES):
        PILImage.fromarray(radiograph_like(size, 8, seed=i)).save(root / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def hyperprior_models(tmp_path_factory):
    """A tiny hyperprior trained for a few steps on 64² sample images, via the CLI."""
    return train_tiny_hyperprior(tmp_path_factory.mktemp("models"), epochs=1)


def _rows(units, dataset, codecs, batch, models="models", visual=frozenset()):
    ranks = {cell: i for i, cell in enumerate(units[0].cells)}
    job = Job(None, parse_protocol("native"), 0, str(models), "cpu", None, "r1", ranks,
              visual, learned_batch=batch)
    return list(code_units(job, units, {units[0].dataset: dataset}, codecs))


def _units(spec, dataset, cells):
    return [WorkUnit(spec, record, cells) for record in dataset.records()]


def _key(row):
    return row.image_id, row.codec, row.setting


@pytest.mark.parametrize("arch", ["dcae", "hyperprior"])
def test_batched_cells_give_the_bytes_and_pixels_of_one_at_a_time(folder, arch,
                                                                  hyperprior_models):
    models = hyperprior_models if arch == "hyperprior" else "models"
    codec = get_codec(arch, CodecContext(models_dir=models, device="cpu"))
    spec = f"folder:{folder}"
    dataset = get_dataset(spec)
    settings = codec.settings()[:2]
    cells = tuple((arch, s) for s in settings) + (("png", "lossless"),)
    units = _units(spec, dataset, cells)
    codecs = {arch: codec, "png": get_codec("png")}
    alone = {_key(r): r for r in _rows(units, dataset, codecs, 1, models)}
    batched = _rows(units, dataset, codecs, 4, models)
    assert [_key(r) for r in batched] == [(u.record.image_id, *c) for u in units for c in cells]
    for row in batched:
        one = alone[_key(row)]
        assert row.status == one.status == "ok", (row.error, one.error)
        assert row.stream_sha256 == one.stream_sha256  # the same bytes ...
        assert (row.psnr, row.max_abs_error) == (one.psnr, one.max_abs_error)  # ... pixels
        assert one.batch_size == 1
    # Same-size images of a learned cell share a batch (capped at 4); png codes alone.
    sizes = {r.image_id: SIZES[int(r.image_id.removeprefix("img"))] for r in batched}
    expect = {(64, 64): 3, (48, 80): 2, (40, 40): 1}
    for row in batched:
        want = expect[sizes[row.image_id]] if row.codec == arch else 1
        assert row.batch_size == want, (row.image_id, row.codec)
        assert row.encode_ms is not None and row.decode_ms is not None


def test_a_bad_image_in_a_batch_costs_only_its_own_rows():
    class Picky(DcaeCodec):
        """A dcae that fails on one image, alone or in a batch."""

        def encode_batch(self, images, setting):
            if any(image.image_id == "rg1_r0c1" for image in images):
                raise ValueError("this image breaks the model")
            return super().encode_batch(images, setting)

    dataset = get_dataset("sample")
    records = sorted(dataset.records(), key=lambda r: r.image_id)[:4]
    missing = Record("gone", "gone", "RG1_UNCR.dcm#r99c99",
                     {"file": "missing.dcm", "row": 0, "col": 0, "body_part": "CHEST"})
    codec = Picky(CodecContext(device="cpu"))
    setting = codec.settings()[0]
    units = [WorkUnit("sample", r, (("dcae", setting),)) for r in [*records, missing]]
    job = Job(None, parse_protocol("paper"), 0, "models", "cpu", None, "r1", {},
              learned_batch=8)
    rows = {r.image_id: r for r in code_units(job, units, {"sample": dataset},
                                              {"dcae": codec})}
    assert rows["rg1_r0c1"].status == "error"
    assert "this image breaks the model" in rows["rg1_r0c1"].error
    assert rows["gone"].status == "error" and "could not be read" in rows["gone"].error
    good = [rows[r.image_id] for r in records if r.image_id != "rg1_r0c1"]
    assert [r.status for r in good] == ["ok"] * 3
    assert {r.batch_size for r in good} == {1}  # the failed batch was coded one at a time


def test_visual_images_keep_their_pixels_when_batched():
    dataset = get_dataset("sample")
    records = sorted(dataset.records(), key=lambda r: r.image_id)[:3]
    codec = get_codec("dcae", CodecContext(device="cpu"))
    cells = tuple(("dcae", s) for s in codec.settings())
    units = [WorkUnit("sample", r, cells) for r in records]
    shown = frozenset({("sample", records[1].image_id)})
    ranks = {cell: i for i, cell in enumerate(cells)}
    job = Job(None, parse_protocol("paper"), 0, "models", "cpu", None, "r1", ranks, shown,
              learned_batch=3)
    rows = list(code_units(job, units, {"sample": dataset}, {"dcae": codec}))
    assert {r.batch_size for r in rows} == {3}
    kept = [r for r in rows if r.visuals]
    assert [r.image_id for r in kept] == [records[1].image_id]  # one cell, nearest 30:1
    assert all(r.setting_rank == ranks[(r.codec, r.setting)] for r in rows)


def test_a_run_with_learned_batches_matches_one_at_a_time(tmp_path):
    def config(batch):
        return RunConfig(codecs=["dcae", "jpeg"], limit=3, repeats=0, workers=1,
                         learned_batch=batch)

    one = run(config("1"), tmp_path / "one").rows
    batched = run(config("3"), tmp_path / "three").rows
    key = ["image_id", "codec", "setting"]
    one, batched = one.sort_values(key).reset_index(), batched.sort_values(key).reset_index()
    assert list(one["stream_sha256"]) == list(batched["stream_sha256"])
    learned = batched["codec"] == "dcae"
    assert (batched.loc[learned, "batch_size"] == 3).all()
    assert (batched.loc[~learned, "batch_size"] == 1).all()
    assert (one["batch_size"] == 1).all()


def test_a_batch_is_marked_in_flight_as_a_whole(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    store.mark_pending("r1", [("sample", "a"), ("sample", "b")], "dcae", "m")
    assert sorted(c[:4] for c in store.pending_cells("r1")) == [
        ("sample", "a", "dcae", "m"), ("sample", "b", "dcae", "m")]
    store.mark_pending("r1", [("sample", "c")], "jpeg", "q=50")  # the batch is done
    assert [c[:4] for c in store.pending_cells("r1")] == [("sample", "c", "jpeg", "q=50")]
    store.close()


def test_learned_batch_option():
    cpu = get_codec("dcae", CodecContext(device="cpu"))
    assert learned_batch("auto", [cpu]) == 1  # no GPU: one at a time
    assert learned_batch("auto", []) == 1
    assert learned_batch("7", [cpu]) == 7 and learned_batch(2, []) == 2
    for bad in ("0", "-3", "many"):
        with pytest.raises(MedbenchError, match="--learned-batch"):
            learned_batch(bad, [])
    if torch.cuda.is_available():
        gpu = get_codec("dcae", CodecContext(device="cuda"))
        assert learned_batch("auto", [gpu]) == AUTO_GPU_BATCH
    assert MAX_BATCH_PIXELS >= AUTO_GPU_BATCH * 256 * 256
    units = [WorkUnit("d", Record(str(i), str(i), ""), ()) for i in range(5)]
    assert [len(t) for t in tasks(units, 2)] == [2, 2, 1]


def test_cli_refuses_a_bad_learned_batch(tmp_path):
    result = CliRunner().invoke(main, ["run", "--codecs", "jpeg", "--learned-batch", "0",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--learned-batch" in result.output


def test_large_batches_are_coded_in_windows_of_bounded_pixels(monkeypatch):
    from medbench.benchmark import cells

    monkeypatch.setattr(cells, "MAX_BATCH_PIXELS", 2 * 256 * 256)  # two paper images
    dataset = get_dataset("sample")
    records = sorted(dataset.records(), key=lambda r: r.image_id)[:5]
    codec = get_codec("dcae", CodecContext(device="cpu"))
    cells_ = (("dcae", codec.settings()[0]),)
    units = [WorkUnit("sample", r, cells_) for r in records]
    job = Job(None, parse_protocol("paper"), 0, "models", "cpu", None, "r1", {},
              learned_batch=32)
    rows = list(code_units(job, units, {"sample": dataset}, {"dcae": codec}))
    assert [r.image_id for r in rows] == [r.image_id for r in records]
    assert [r.batch_size for r in rows] == [2, 2, 2, 2, 1]
    alone = list(code_units(replace(job, learned_batch=1), units[:1], {"sample": dataset},
                            {"dcae": codec}))
    assert alone[0].stream_sha256 == rows[0].stream_sha256
