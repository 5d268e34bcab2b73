"""The synthetic:N dataset: deterministic, 12-bit, radiograph-like."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from medbench.benchmark.runner import RunConfig, run
from medbench.datasets import get_dataset
from medbench.datasets.synthetic import BIT_DEPTH, SyntheticDataset, generate
from medbench.errors import DatasetError


def test_records_and_images_have_the_promised_shape():
    dataset = get_dataset("synthetic:3")
    records = dataset.records()
    assert [r.image_id for r in records] == ["synth000000", "synth000001", "synth000002"]
    image = dataset.load(records[1])
    assert image.bit_depth == BIT_DEPTH == 12
    assert image.pixels.shape == (512, 512) and image.pixels.dtype == np.uint16
    assert image.pixels.max() <= 4095
    small = get_dataset("synthetic:2@64")
    assert small.load(small.records()[0]).pixels.shape == (64, 64)


def test_images_depend_only_on_index_and_size():
    a = SyntheticDataset(argument="5@128")
    b = SyntheticDataset(argument="50@128")  # another N, another instance, reverse order
    loaded_b = {r.image_id: b.load(r).pixels for r in reversed(b.records()[:5])}
    for record in a.records():
        np.testing.assert_array_equal(a.load(record).pixels, loaded_b[record.image_id])
    assert not np.array_equal(generate(0, 128), generate(1, 128))


def test_images_look_like_a_chest_radiograph():
    pixels = generate(7, 256).astype(float)
    peak = 4095
    # MONOCHROME2: air around the body is darkest, lungs darker than the spine.
    corner = pixels[:16, :16].mean()
    spine = pixels[100:160, 120:136].mean()
    lungs = np.mean([pixels[90:130, 60:90].mean(), pixels[90:130, 166:196].mean()])
    assert corner < lungs < spine
    assert 0.3 * peak < spine < peak
    # Smooth anatomy plus a little grain: the residual after a light blur is small but real.
    residual = pixels - gaussian_filter(pixels, 2.0)
    assert 0.001 * peak < residual.std() < 0.02 * peak
    # Uses much of the 12-bit range (not 8 bits stored in 16).
    assert pixels.max() - pixels.min() > 2000


@pytest.mark.parametrize("argument", [None, "abc", "0", "5@8", "5@x", "-3"])
def test_bad_arguments_are_clear_errors(argument):
    with pytest.raises(DatasetError, match="synthetic"):
        SyntheticDataset(argument=argument)


def test_a_run_codes_synthetic_images(tmp_path):
    config = RunConfig(codecs=["jpeg2000"], datasets=["synthetic:3@64"], split="all",
                       protocol="native", repeats=0)
    rows = run(config, tmp_path).rows
    assert len(rows) == 3 * 7 and (rows["status"] == "ok").all()
    assert (rows["bit_depth"] == 12).all() and (rows["height"] == 64).all()
    lossless = rows[rows["setting"] == "lossless"]
    assert lossless["lossless_exact"].all()
