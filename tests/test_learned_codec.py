"""The learned codecs as codecs: real bytes, exact latents, fresh-process decode, harness."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from medbench.benchmark.cells import code_cell
from medbench.benchmark.runner import RunConfig, resolve_codecs, run
from medbench.codecs import CodecContext, get_codec
from medbench.codecs.learned.bitstream import HEADER_SIZE, BitstreamError, unpack
from medbench.codecs.learned.checkpoint import read_checkpoint
from medbench.codecs.learned.coding import image_latents, stream_latents
from medbench.errors import MedbenchError
from medbench.image import Image
from medbench.training.config import TrainConfig
from medbench.training.loop import train

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_pretrained")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A folder with two tiny trained models: cnn (rd) and dcae (mse)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    common = dict(dataset="sample", size="32", crop=32, limit=4, epochs=2, batch_size=2,
                  width=8, models_dir=str(root), device="cpu")
    train(TrainConfig(arch="cnn", latent=2, objective="rd", lmbda=1e-3, **common),
          progress=False)
    train(TrainConfig(arch="dcae", latent=4, **common), progress=False)
    torch.set_num_threads(before)
    return root


def codec_of(name, models):
    return get_codec(name, CodecContext(models_dir=models, device="cpu"))


def test_each_trained_model_is_a_setting(models):
    cnn = codec_of("cnn", models)
    assert cnn.kind == "learned" and cnn.unavailable_reason() is None
    assert cnn.settings() == ["sample-l2-lam0.001"]
    info = cnn.setting_info("sample-l2-lam0.001")
    assert info["train_dataset"] == "sample"
    model_info = json.loads(info["model_info"])
    assert set(model_info["budget"]) >= {"device", "wall_s", "steps", "images_seen"}
    assert model_info["objective"] == "rd" and model_info["lmbda"] == 1e-3
    assert codec_of("dcae", models).settings() == ["sample-l4"]


def test_decode_reproduces_the_coded_latents_exactly(models, make_image):
    dcae = codec_of("dcae", models)
    image = make_image(size=(45, 70), bit_depth=8)  # not a multiple of the stride
    data = dcae.encode(image, "sample-l4")
    model = dcae.model("sample-l4")
    expected = image_latents(model, [image], dcae.device)[0]
    header, latents = stream_latents(model, data)
    assert latents.dtype == np.int32 and np.array_equal(latents, expected)
    assert (header.height, header.width, header.bit_depth) == (45, 70, 8)
    assert (header.pad_h, header.pad_w) == (3, 2)
    assert header.model_hex == dcae.checkpoint("sample-l4").model_id
    decoded = dcae.decode(data)
    assert decoded.shape == (45, 70) and decoded.dtype == np.uint8


def test_bpp_counts_every_byte_of_the_stream(models, make_image):
    cnn = codec_of("cnn", models)
    image = make_image(size=48, bit_depth=8)
    row = code_cell(cnn, "sample-l2-lam0.001", image, repeats=0)
    assert row.status == "ok", row.error
    data = cnn.encode(image, "sample-l2-lam0.001")
    assert row.bytes == len(data) > HEADER_SIZE
    assert row.bpp == pytest.approx(8 * len(data) / (48 * 48))
    assert row.train_dataset == "sample"
    assert json.loads(row.model_info)["model_id"] == cnn.checkpoint(row.setting).model_id


def test_deeper_images_decode_to_uint16_within_their_peak(models, make_image):
    cnn = codec_of("cnn", models)
    image = make_image(size=40, bit_depth=12)
    decoded = cnn.decode(cnn.encode(image, "sample-l2-lam0.001"))
    assert decoded.dtype == np.uint16 and int(decoded.max()) <= 4095
    assert unpack(cnn.encode(image, "sample-l2-lam0.001"))[0].bit_depth == 12


def test_a_stream_decodes_in_a_fresh_process(models, make_image, tmp_path):
    dcae = codec_of("dcae", models)
    image = make_image(size=40, bit_depth=8, seed=3)
    data = dcae.encode(image, "sample-l4")
    (tmp_path / "stream.bin").write_bytes(data)
    script = textwrap.dedent(f"""
        import numpy as np, pathlib
        from medbench.codecs import CodecContext, get_codec
        from medbench.codecs.learned.coding import stream_latents
        codec = get_codec("dcae", CodecContext(models_dir=pathlib.Path({str(models)!r}),
                                               device="cpu"))
        data = pathlib.Path({str(tmp_path / "stream.bin")!r}).read_bytes()
        np.save({str(tmp_path / "pixels.npy")!r}, codec.decode(data))
        np.save({str(tmp_path / "latents.npy")!r},
                stream_latents(codec.model("sample-l4"), data)[1])
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    _, here = stream_latents(dcae.model("sample-l4"), data)
    assert np.array_equal(np.load(tmp_path / "latents.npy"), here)
    assert np.array_equal(np.load(tmp_path / "pixels.npy"), dcae.decode(data))


def test_checkpoints_load_without_unpickling(models, monkeypatch, make_image):
    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint must not be unpickled")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    folder = models / "cnn" / "sample-l2-lam0.001"
    raw = (folder / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")  # the safetensors layout
    header = json.loads(raw[8 : 8 + header_len])
    assert "tables.freqs" in header and header["tables.freqs"]["dtype"] == "U16"
    assert not raw.startswith(b"PK") and b"\x80\x02" not in raw[:16]  # no zip, no pickle
    model = read_checkpoint(folder).load("cpu")
    assert model.tables is not None
    cnn = codec_of("cnn", models)
    image = make_image(size=32)
    assert cnn.decode(cnn.encode(image, "sample-l2-lam0.001")).shape == (32, 32)


def test_a_stream_of_an_unknown_model_names_the_fix(models, make_image):
    cnn = codec_of("cnn", models)
    data = bytearray(cnn.encode(make_image(size=32), "sample-l2-lam0.001"))
    data[5:13] = bytes(8)
    with pytest.raises(BitstreamError, match="pass --models"):
        cnn.decode(bytes(data))


def test_batches_code_like_single_images(models, make_image):
    dcae = codec_of("dcae", models)
    images = [make_image(size=32, seed=s, image_id=f"i{s}") for s in range(3)]
    images.append(make_image(size=(24, 40), seed=9, image_id="odd"))
    streams = dcae.encode_batch(images, "sample-l4")
    for image, data in zip(images, streams):
        assert data == dcae.encode(image, "sample-l4")
    for image, pixels in zip(images, dcae.decode_batch(streams)):
        assert np.array_equal(pixels, dcae.decode(dcae.encode(image, "sample-l4")))


def test_no_model_names_the_train_command(tmp_path):
    ae = codec_of("ae", tmp_path)
    reason = ae.unavailable_reason()
    assert reason is not None and "`medbench train --model ae --dataset sample" in reason
    assert ae.settings() == []
    codecs, notes = resolve_codecs(None, CodecContext(models_dir=tmp_path))
    assert "ae" not in {c.name for c in codecs}
    assert any(n.startswith("skipped codec ae: no trained ae model") for n in notes)
    with pytest.raises(MedbenchError, match="codec ae cannot run here: .*medbench train"):
        resolve_codecs(["ae"], CodecContext(models_dir=tmp_path))


def test_cli_run_naming_an_untrained_codec_fails_in_one_line(tmp_path):
    from click.testing import CliRunner

    from medbench.cli import main

    result = CliRunner().invoke(main, ["run", "--codecs", "dcae", "--models", str(tmp_path),
                                       "--out", str(tmp_path / "out"), "--limit", "1"])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: codec dcae cannot run here: no trained dcae model")
    assert "medbench train --model dcae" in last


def test_run_measures_every_model_on_every_dataset(models, tmp_path):
    config = RunConfig(codecs=["cnn", "dcae"], datasets=["sample"], size="32", limit=2,
                       repeats=0, models_dir=str(models), device="cpu")
    result = run(config, tmp_path / "out")
    rows = result.rows
    assert set(rows["status"]) == {"ok"}, rows["error"].dropna().tolist()
    assert set(rows["codec"]) == {"cnn", "dcae"} and len(rows) == 4
    assert set(rows["train_dataset"]) == {"sample"}
    assert rows["model_info"].map(lambda s: json.loads(s)["budget"]["images_seen"] > 0).all()


def test_settings_are_ordered_by_validation_rate(models, tmp_path):
    import shutil

    src = models / "cnn" / "sample-l2-lam0.001"
    for name, bpp in (("z-low", 0.1), ("a-high", 9.0)):
        dst = tmp_path / "cnn" / name
        shutil.copytree(src, dst)
        cfg = json.loads((dst / "config.json").read_text())
        cfg["validation"]["bpp"] = bpp
        (dst / "config.json").write_text(json.dumps(cfg))
    assert codec_of("cnn", tmp_path).settings() == ["z-low", "a-high"]


def test_images_too_large_for_the_header_are_refused(models):
    from medbench.errors import UnsupportedInput

    cnn = codec_of("cnn", models)
    image = Image(np.zeros((1, 70000), np.uint8), 8, "wide")
    with pytest.raises(UnsupportedInput, match="65535"):
        cnn.check(image)


def test_cuda_without_a_gpu_is_a_clear_reason(models, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    codec = get_codec("cnn", CodecContext(models_dir=models, device="cuda"))
    assert "no CUDA GPU" in codec.unavailable_reason()


def test_codecs_command_lists_the_models_of_models_dir(models, tmp_path):
    from click.testing import CliRunner

    from medbench.cli import main

    listed = CliRunner().invoke(main, ["codecs", "--models", str(models)])
    assert listed.exit_code == 0, listed.output
    assert "sample-l2-lam0.001" in listed.output
    empty = CliRunner().invoke(main, ["codecs", "--models", str(tmp_path)])
    assert empty.exit_code == 0 and "sample-l2-lam0.001" not in empty.output


def test_rows_and_the_codecs_list_carry_the_models_complexity(models, make_image, tmp_path):
    from click.testing import CliRunner

    from medbench.cli import main
    from medbench.codecs.learned.complexity import model_complexity

    codec = codec_of("cnn", models)
    setting = "sample-l2-lam0.001"
    expected = model_complexity("cnn", 2, 8).as_dict()  # the fixture's latent and width
    row = code_cell(codec, setting, make_image(32, 8), repeats=0)
    assert {k: getattr(row, k) for k in expected} == expected
    assert expected.items() <= json.loads(row.model_info).items()
    assert row.peak_mem_mb is None or row.peak_mem_mb >= 0
    listed = CliRunner().invoke(main, ["codecs", "--models", str(models)]).output
    assert f"{expected['params']:,} params, {expected['kmac_per_pixel_enc']:g} kMAC/pixel " \
           f"encode" in listed
