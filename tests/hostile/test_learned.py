"""Hostile model folders and learned-codec streams: skipped or refused, never aborting.

Issue 13, items 11 (learned part), 12 and 16. Broken model folders sit next to a good
one; streams that declare absurd sizes or lack their bytes are decoded in a subprocess
under an address-space limit, so an allocation of what the header declares would fail
the test with ``MemoryError`` instead of taking the machine's memory.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from medbench.cli import main
from medbench.codecs import CodecContext, get_codec
from medbench.codecs.learned.bitstream import HEADER_SIZE, Header, pack
from medbench.codecs.learned.checkpoint import CheckpointError, read_checkpoint
from medbench.codecs.learned.codec import PRETRAINED_DIR
from medbench.codecs.learned.entropy import CodingTables, TableError
from medbench.errors import MedbenchError
from medbench.training.config import TrainConfig, check_model_name

GOOD = PRETRAINED_DIR / "ae" / "nih-l8"
SRC = str(Path(__file__).resolve().parents[2] / "src")

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_pretrained")


def _copy(models: Path, name: str) -> Path:
    folder = models / "ae" / name
    shutil.copytree(GOOD, folder)
    return folder


def _config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture
def broken_models(tmp_path):
    """``medbench-models/ae``: one good model and one of each kind of broken folder."""
    models = tmp_path / "medbench-models"
    _copy(models, "good")
    weights = _copy(models, "truncated") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (_copy(models, "empty") / "model.safetensors").write_bytes(b"")
    (_copy(models, "list") / "config.json").write_text("[]")
    _config(_copy(models, "validation-list"), validation=[])
    _config(_copy(models, "components-1e8"), components=1e8)
    _config(_copy(models, "components-int"), components=100_000_000)
    _config(_copy(models, "latent-string"), latent="8")
    folder = _copy(models, "few-tables")
    tensors = load_file(str(folder / "model.safetensors"))
    for key in ("tables.offsets", "tables.lengths", "tables.freqs"):
        tensors[key] = tensors[key][:3].contiguous()
    save_file(tensors, str(folder / "model.safetensors"))
    return models


BROKEN = {"truncated", "empty", "list", "validation-list", "components-1e8",
          "components-int", "latent-string", "few-tables"}


def test_broken_model_folders_are_skipped_with_their_reason(broken_models, make_image,
                                                            caplog):
    codec = get_codec("ae", CodecContext(models_dir=broken_models, device="cpu"))
    with caplog.at_level(logging.WARNING):
        assert codec.settings() == ["good"]
    skipped = {Path(folder).name: reason for folder, reason in codec.describe()["skipped"].items()}
    assert set(skipped) == BROKEN
    assert "channels" in skipped["few-tables"]
    assert "components" in skipped["components-1e8"]
    assert "not an object" in skipped["list"]
    assert "safetensors" in skipped["empty"] and "safetensors" in skipped["truncated"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == len(BROKEN) and all("\n" not in m for m in warned)
    image = make_image(32, 8)
    decoded = codec.decode(codec.encode(image, "good"))
    assert decoded.shape == (32, 32) and decoded.dtype == np.uint8


def test_medbench_codecs_lists_the_good_model_and_warns(broken_models, monkeypatch, caplog):
    monkeypatch.chdir(broken_models.parent)  # `medbench codecs` reads ./medbench-models
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(main, ["codecs"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    ae_block = result.output.split("ae  [", 1)[1].split("\n")[1]
    assert ae_block.strip() == "settings: good"
    assert any("skipping model folder" in r.getMessage() for r in caplog.records)


def test_decode_routes_to_a_loadable_copy_of_the_model(tmp_path, make_image, caplog):
    """Two copies share one model id; the first turns out broken when loaded."""
    models = tmp_path / "models"
    _copy(models, "a-copy")
    _copy(models, "b-copy")
    codec = get_codec("ae", CodecContext(models_dir=models, device="cpu"))
    assert codec.settings() == ["a-copy", "b-copy"]
    image = make_image(32, 8)
    data = codec.encode(image, "b-copy")
    broken = models / "ae" / "a-copy" / "model.safetensors"
    broken.write_bytes(broken.read_bytes()[:500])  # broken after discovery
    with caplog.at_level(logging.WARNING):
        decoded = codec.decode(data)
    assert decoded.shape == (32, 32)
    assert str(broken.parent) in codec.skipped


def test_tables_with_fewer_channels_than_latents_are_a_clear_error():
    tables = CodingTables.from_tensors(load_file(str(GOOD / "model.safetensors")))
    few = CodingTables(tables.offsets[:3], tables.lengths[:3], tables.freqs[:3]).as_tensors()
    with pytest.raises(TableError, match="3 channels but the model has 8"):
        CodingTables.from_tensors(few, channels=8)


def test_config_components_1e8_is_refused_before_building(tmp_path):
    folder = _copy(tmp_path, "huge")
    _config(folder, components=100_000_000)
    with pytest.raises(CheckpointError, match="'components' is 100000000"):
        read_checkpoint(folder)


# -- hostile streams, decoded under a memory limit -----------------------------------------
_HOSTILE = textwrap.dedent("""
    import json, resource, sys
    import torch
    from medbench.codecs import CodecContext, get_codec
    from medbench.codecs.learned.checkpoint import read_checkpoint
    from medbench.image import Image
    import numpy as np

    torch.set_num_threads(1)
    models, huge = sys.argv[1], sys.argv[2]
    codec = get_codec("ae", CodecContext(models_dir=models, device="cpu"))
    pixels = (np.arange(32 * 32) % 251).astype(np.uint8).reshape(32, 32)
    good = codec.encode(Image(pixels, 8, "x"), "good")
    codec.decode(good)  # warm: everything later allocates only what a case asks for
    page = resource.getpagesize()
    used = int(open("/proc/self/statm").read().split()[0]) * page
    limit = used + (768 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cases = json.loads(sys.stdin.read())
    cases = {k: bytes.fromhex(v) for k, v in cases.items()}
    cases["truncated"] = good[:-8]
    cases["half"] = good[: len(good) // 2]
    cases["header only"] = good[:20]
    out = {}
    for name, data in cases.items():
        try:
            codec.decode(data)
            out[name] = "decoded"
        except Exception as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    try:
        read_checkpoint(huge).load("cpu")
        out["components"] = "loaded"
    except Exception as exc:
        out["components"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
""")


def test_hostile_streams_are_clear_errors_under_a_memory_limit(tmp_path):
    models = tmp_path / "models"
    folder = _copy(models, "good")
    model_id = bytes.fromhex(read_checkpoint(folder).model_id)
    huge = _copy(tmp_path, "huge")
    _config(huge, components=100_000_000)

    def stream(h, w, payload=b"", model=model_id):
        return pack(Header(model, 8, h, w, (-h) % 16, (-w) % 16), payload)

    cases = {
        "65535 square": stream(65535, 65535),
        "4096 square, empty payload": stream(4096, 4096),
        "4096 square, 8 bytes": stream(4096, 4096, b"\x01" * 8),
        "another model": stream(32, 32, b"\0" * 64, model=b"\x01" * 8),
        "odd payload": stream(32, 32, b"\0" * 7),
    }
    assert len(cases["65535 square"]) == HEADER_SIZE == 20
    proc = subprocess.run(
        [sys.executable, "-c", _HOSTILE, str(models), str(huge)],
        input=json.dumps({k: v.hex() for k, v in cases.items()}), capture_output=True,
        text=True, timeout=300, env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "DeclaredSizeError" in out["65535 square"] and "65535x65535" in out["65535 square"]
    assert out["4096 square, empty payload"].startswith("BitstreamError: latent payload of 0")
    assert out["4096 square, 8 bytes"].startswith("BitstreamError: latent payload of 8")
    assert "not among the loadable models" in out["another model"]
    assert "whole number of 32-bit words" in out["odd payload"]
    for name in ("truncated", "half", "header only"):
        assert out[name].startswith("BitstreamError"), (name, out[name])
    assert out["components"].startswith("CheckpointError"), out["components"]
    assert not any("MemoryError" in v for v in out.values()), out


def test_the_pixel_budget_is_overridable(tmp_path, monkeypatch, make_image):
    folder = _copy(tmp_path / "models", "good")
    codec = get_codec("ae", CodecContext(models_dir=folder.parents[1], device="cpu"))
    data = codec.encode(make_image(32, 8), "good")
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "1000")
    with pytest.raises(MedbenchError, match="1000-pixel budget.*MEDBENCH_MAX_PIXELS"):
        codec.decode(data)
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "1024")
    assert codec.decode(data).shape == (32, 32)


# -- item 16: model names are one path component ----------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", "..", ".", "", ".hidden",
                                  "a\0b", "/abs"])
def test_bad_model_names_are_refused(name):
    with pytest.raises(MedbenchError, match="is not a plain folder name"):
        check_model_name(name)
    with pytest.raises(MedbenchError, match="is not a plain folder name"):
        TrainConfig(arch="ae", dataset="sample", name=name)


def test_train_name_cannot_escape_models(tmp_path):
    models = tmp_path / "deep" / "models"
    result = CliRunner().invoke(main, ["train", "--model", "ae", "--dataset", "sample",
                                       "--models", str(models), "--name", "../../x"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: --name '../../x' is not a plain")
    assert "Traceback" not in result.output
    assert list(tmp_path.rglob("*")) == []


@pytest.mark.parametrize("name", ["chest-l16", "sample_l8", "a.b", "x", "nih-l16-lam1e-05",
                                  "jsrt-l4-from-nih", "x..y"])
def test_good_model_names_are_accepted(name, tmp_path):
    check_model_name(name)
    cfg = TrainConfig(arch="ae", dataset="sample", name=name, models_dir=str(tmp_path))
    assert cfg.folder == tmp_path / "ae" / name  # one folder, inside --models
