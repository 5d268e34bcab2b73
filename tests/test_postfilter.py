"""``jpeg2000+pf``: JPEG 2000's bytes, a learned filter after its decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from medbench.cli import main
from medbench.codecs import CodecContext, get_codec
from medbench.codecs.jpeg2000 import Jpeg2000Codec
from medbench.codecs.learned.postfilter import (
    MARKER_BYTES,
    RESIDUAL_SCALE,
    PostFilterNet,
    add_marker,
    read_marker,
    save_filter,
)
from medbench.datasets.protocols import PAPER
from medbench.errors import MedbenchError
from medbench.image import Image
from medbench.training.config import TrainConfig
from medbench.training.data import load_splits
from medbench.training.postfilter import train_postfilter

CODEC = "jpeg2000+pf"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny filter trained on ``sample`` at 20:1 (a few steps: the path, not quality; a
    learning rate large enough that its decodes differ from JPEG 2000's, for worse)."""
    root = tmp_path_factory.mktemp("models")
    cfg = TrainConfig(arch=CODEC, dataset="sample", ratio=20, steps=3, crop=32,
                      batch_size=2, width=4, limit=3, lr=0.1, device="cpu",
                      models_dir=str(root))
    result = train_postfilter(cfg, progress=False, command="test")
    assert result.checkpoint.name == "sample-ratio20"
    return root


def _codec(models) -> object:
    return get_codec(CODEC, CodecContext(models_dir=models, device="cpu"))


def test_stream_is_jpeg2000s_bytes_and_names_the_filter(models, make_image, no_pretrained):
    codec = _codec(models)
    assert codec.settings() == ["sample-ratio20"]
    image = make_image(64, 8)
    stream = codec.encode(image, "sample-ratio20")
    plain = Jpeg2000Codec().encode(image, "ratio=20")
    assert len(stream) == len(plain)  # OpenJPEG's comment now names the filter
    assert read_marker(stream) == codec.checkpoints()["sample-ratio20"].model_id
    # still a JPEG 2000 codestream: any decoder gives the unfiltered pixels
    np.testing.assert_array_equal(Jpeg2000Codec().decode(stream), Jpeg2000Codec().decode(plain))
    decoded = codec.decode(stream)
    assert decoded.shape == image.pixels.shape and decoded.dtype == np.uint8
    assert (decoded != Jpeg2000Codec().decode(stream)).mean() > 0.5  # the filter's pixels


def test_decode_is_jpeg2000s_decode_through_the_filter(tmp_path, make_image, no_pretrained):
    """A filter whose only weight is a bias of +3 grey levels: jpeg2000+pf must decode to
    JPEG 2000's pixels plus 3 (clipped), not to JPEG 2000's pixels."""
    shift = PostFilterNet(4)
    torch.nn.init.constant_(shift.out.bias, 3 / 255 / RESIDUAL_SCALE)
    save_filter(shift, tmp_path / CODEC / "shift-ratio20",
                {"ratio": 20.0, "width": 4, "train": {"dataset": "none"}})
    codec = _codec(tmp_path)
    stream = codec.encode(make_image(64, 8, seed=3), "shift-ratio20")
    plain = Jpeg2000Codec().decode(stream)
    assert plain.max() < 250  # the +3 is seen everywhere
    np.testing.assert_array_equal(codec.decode(stream), plain + 3)


def test_untrained_filter_is_the_identity(tmp_path, make_image, no_pretrained):
    save_filter(PostFilterNet(4), tmp_path / CODEC / "id-ratio10",
                {"ratio": 10.0, "width": 4, "train": {"dataset": "none"}, "validation": {}})
    codec = _codec(tmp_path)
    for bit_depth in (8, 12):
        image = make_image((40, 52), bit_depth)  # odd sizes: padding to a multiple of 4
        stream = codec.encode(image, "id-ratio10")
        decoded = codec.decode(stream)
        np.testing.assert_array_equal(decoded, Jpeg2000Codec().decode(stream))
        assert decoded.dtype == image.pixels.dtype


def test_marker_is_inserted_when_there_is_no_comment_to_reuse():
    stream = Jpeg2000Codec().encode(
        Image(np.full((16, 16), 7, np.uint8), 8, "flat"), "ratio=10")
    pos = stream.find(b"\xff\x64")
    length = int.from_bytes(stream[pos + 2: pos + 4], "big")
    bare = stream[:pos] + stream[pos + 2 + length:]  # the codestream without a comment
    marked = add_marker(bare, "00112233aabbccdd")
    assert len(marked) == len(bare) + MARKER_BYTES
    assert read_marker(marked) == "00112233aabbccdd"
    np.testing.assert_array_equal(Jpeg2000Codec().decode(marked), Jpeg2000Codec().decode(bare))


def test_foreign_streams_are_clear_errors(models, make_image, no_pretrained):
    codec = _codec(models)
    plain = Jpeg2000Codec().encode(make_image(32, 8), "ratio=20")
    with pytest.raises(MedbenchError, match="not a jpeg2000\\+pf stream"):
        codec.decode(plain)
    with pytest.raises(MedbenchError, match="not among the filters"):
        codec.decode(add_marker(plain, "ffffffffffffffff"))
    with pytest.raises(MedbenchError, match="not a jpeg2000\\+pf stream"):
        codec.decode(b"\xff\x4f\xff\x51\x00")


def test_config_records_budget_and_gain(models, no_pretrained):
    cfg = json.loads((models / CODEC / "sample-ratio20" / "config.json").read_text())
    assert cfg["ratio"] == 20 and cfg["width"] == 4 and cfg["train"]["dataset"] == "sample"
    assert cfg["budget"]["steps"] == 3 and cfg["budget"]["images_seen"] == 6
    # The val images the training scored, measured again here through both decoders.
    val_images = load_splits("sample", None, PAPER, ("val",), limit=3)["val"].images
    codec, with_pf, plain, bpp = _codec(models), [], [], []
    for image in val_images:
        stream = codec.encode(image, "sample-ratio20")
        bpp.append(8 * len(stream) / image.pixels.size)
        for scores, decoded in ((with_pf, codec.decode(stream)),
                                (plain, Jpeg2000Codec().decode(stream))):
            mse = np.mean((decoded.astype(np.float64) - image.pixels) ** 2)
            scores.append(10 * np.log10(255**2 / mse))
    val = cfg["validation"]
    assert abs(np.mean(with_pf) - np.mean(plain)) > 1  # the filter changes pixels
    assert val["psnr"] == pytest.approx(np.mean(with_pf), abs=1e-9)
    assert val["psnr_jpeg2000"] == pytest.approx(np.mean(plain), abs=1e-9)
    assert val["gain_db"] == pytest.approx(np.mean(with_pf) - np.mean(plain), abs=1e-9)
    assert val["bpp"] == pytest.approx(np.mean(bpp)) and val["bpp"] <= 8 / 20 * 1.001


@pytest.mark.parametrize("change, reason", [
    ({"width": 10**6}, "not an integer"),
    ({"ratio": "40"}, "not a JPEG 2000 ratio"),
    ({"width": 8}, "does not match"),
    ({"format": "other"}, "expected 'medbench-postfilter/1'"),
])
def test_broken_model_folders_are_skipped(tmp_path, change, reason, no_pretrained):
    folder = tmp_path / CODEC / "bad"
    save_filter(PostFilterNet(4), folder, {"ratio": 10.0, "width": 4})
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, **change}))
    codec = _codec(tmp_path)
    assert codec.settings() == []
    assert reason in codec.skipped[str(folder)]
    assert "medbench train --model jpeg2000+pf" in codec.unavailable_reason()


def test_pickled_weights_are_never_loaded(tmp_path, no_pretrained):
    folder = tmp_path / CODEC / "pickled"
    save_filter(PostFilterNet(4), folder, {"ratio": 10.0, "width": 4})
    torch.save(PostFilterNet(4).state_dict(), folder / "model.safetensors")  # a pickle
    codec = _codec(tmp_path)
    assert codec.settings() == []
    assert "safetensors" in codec.skipped[str(folder)]


@pytest.mark.parametrize("args, message", [
    (["--model", "jpeg2000+pf"], "--ratio R"),
    (["--model", "dcae", "--ratio", "10"], "--ratio R"),
    (["--model", "jpeg2000+pf", "--ratio", "0.5"], "above 1"),
    (["--model", "jpeg2000+pf", "--ratio", "10", "--width", "100000"], "is above 256"),
    (["--model", "jpeg2000+pf", "--ratio", "10", "--objective", "rd", "--lmbda", "0.1"],
     "do not apply"),
])
def test_train_refuses_options_that_do_not_fit(args, message, tmp_path):
    result = CliRunner().invoke(main, ["train", *args, "--dataset", "sample",
                                       "--models", str(tmp_path)])
    assert result.exit_code != 0 and message in result.output


def test_run_shows_it_beside_jpeg2000_at_the_same_bytes(models, tmp_path, no_pretrained):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", "--codecs", "jpeg2000,jpeg2000+pf", "--datasets", "sample", "--limit", "2",
        "--models", str(models), "--repeats", "0", "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    import pandas as pd

    rows = pd.read_csv(out / "results.csv")
    pf = rows[rows.codec == CODEC].set_index("image_id")
    j2k = rows[(rows.codec == "jpeg2000") & (rows.setting == "ratio=20")].set_index("image_id")
    assert len(pf) == 2 and pf.error.isna().all()
    assert (pf.bytes == j2k.bytes.loc[pf.index]).all()
    assert (pf.train_dataset == "sample").all() and (pf.codec_kind == "learned").all()


def test_large_images_are_filtered_in_bands_with_the_same_pixels():
    from medbench.codecs.learned.postfilter import BAND_ROWS, apply_filter

    torch.manual_seed(0)
    net = PostFilterNet(4).eval()
    torch.nn.init.normal_(net.out.weight, std=0.05)  # a filter that changes pixels
    pixels = (np.random.default_rng(0).random((2 * BAND_ROWS + 37, 61)) * 4095).astype(np.uint16)
    banded = apply_filter(net, pixels, 12)
    with torch.inference_mode():
        whole = net(torch.from_numpy(pixels.astype(np.float32) / 4095)[None, None])
    whole = np.rint(whole.clamp(0, 1)[0, 0].numpy() * 4095).astype(np.uint16)
    assert (banded != pixels).mean() > 0.5
    np.testing.assert_array_equal(banded, whole)


def test_rate_matching_codes_any_ratio_with_the_nearest_filter(tmp_path, make_image,
                                                                no_pretrained):
    from medbench.benchmark.cells import code_cell

    for ratio in (10.0, 40.0):
        save_filter(PostFilterNet(4), tmp_path / CODEC / f"x-ratio{ratio:g}",
                    {"ratio": ratio, "width": 4, "train": {"dataset": "x"}})
    codec = _codec(tmp_path)
    assert codec.filter_for("ratio=30") == "x-ratio40"
    assert codec.filter_for("ratio=15,cb=32") == "x-ratio10"
    image = make_image(256, 8)
    row = code_cell(codec, "target:ratio=30", image, repeats=0)
    assert row.status == "ok" and row.knob.startswith("ratio=") and row.ratio >= 30
    assert row.target_met or "rate jumps" in row.target_note, row.target_note
    assert json.loads(row.model_info)["model_id"] == codec.checkpoints()["x-ratio40"].model_id
    stream = codec.encode(image, row.knob)
    assert read_marker(stream) == codec.checkpoints()["x-ratio40"].model_id
    with pytest.raises(ValueError):
        codec.encode(image, "ratio=0.5")
    with pytest.raises(ValueError):
        codec.encode(image, "q=50")


def test_ctrl_c_during_training_says_it_starts_over(tmp_path, monkeypatch):
    import medbench.training.postfilter as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_postfilter", interrupted)
    result = CliRunner().invoke(main, ["train", "--model", "jpeg2000+pf", "--ratio", "20",
                                       "--dataset", "sample", "--models", str(tmp_path)])
    assert result.exit_code == 130
    assert "Nothing was written" in result.output and "resume" not in result.output
