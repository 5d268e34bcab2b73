"""The ``hyperprior`` codec: trained by ``medbench train``, exact latents, every byte counted,
and streams that decode bit-identically in a fresh process with another thread count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medbench.codecs import CodecContext
from medbench.codecs.learned import gaussian
from medbench.codecs.learned.codec import HyperpriorCodec
from medbench.codecs.learned.hyperprior import HyperpriorModel, stream_latents
from medbench.codecs.learned.models import pad_to_stride

from .conftest import train_tiny_hyperprior

SRC = str(Path(__file__).resolve().parents[1] / "src")

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_pretrained")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny hyperprior trained for a few steps on 64² sample images, via the CLI."""
    return train_tiny_hyperprior(tmp_path_factory.mktemp("models"), epochs=2)


def _codec(models) -> HyperpriorCodec:
    return HyperpriorCodec(CodecContext(models_dir=models, device="cpu"))


def test_training_writes_a_hyperprior_with_both_tables(models):
    codec = _codec(models)
    assert codec.settings() == ["tiny"]
    model = codec.model("tiny")
    assert isinstance(model, HyperpriorModel)
    assert model.tables is not None and model.tables.channels == 8  # z: width channels
    assert model.scale_tables.channels == gaussian.LEVELS == model.ladder.size
    assert codec.checkpoint("tiny").config["arch"] == "hyperprior"


@pytest.mark.parametrize("bits,size", [(8, (64, 64)), (12, (37, 70)), (16, (20, 33))])
def test_round_trip_decodes_the_exact_latents_and_counts_every_byte(models, make_image,
                                                                      bits, size):
    codec = _codec(models)
    image = make_image(size, bit_depth=bits)
    model = codec.model("tiny")
    data = codec.encode(image, "tiny")
    decoded = codec.decode(data)
    assert decoded.shape == size and decoded.dtype == image.pixels.dtype
    assert decoded.max() <= 2**bits - 1
    # The symbols and means the decoder derives equal the encoder's.
    header, z, q, means = stream_latents(model, data)
    x = torch.from_numpy(image.pixels.astype(np.float32) / (2**bits - 1))[None, None]
    with torch.no_grad():
        y = model.net.encode(pad_to_stride(x, 64)[0])
        z_enc = torch.round(model.net.hyper_encode(y))[0].numpy().astype(np.int32)
    assert np.array_equal(z, z_enc)
    means_enc, _ = model.hyper_params(z_enc)
    assert np.array_equal(means, means_enc)
    assert np.array_equal(q, np.round(y[0].double().numpy() - means_enc).astype(np.int32))
    # Every byte is in the stream: header, the two lengths, both payloads.
    z_len, y_len = (int.from_bytes(data[i : i + 4], "big") for i in (20, 24))
    assert len(data) == 28 + z_len + y_len


_CHILD = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
from medbench.codecs import CodecContext
from medbench.codecs.learned.codec import HyperpriorCodec
codec = HyperpriorCodec(CodecContext(models_dir=sys.argv[1], device="cpu"))
data = open(sys.argv[3], "rb").read()
sys.stdout.write(codec.decode(data).tobytes().hex())
"""


def test_a_one_thread_stream_decodes_identically_with_two_threads_in_a_fresh_process(
        models, make_image, tmp_path):
    codec = _codec(models)
    image = make_image((96, 80), bit_depth=10, seed=3)
    stream = tmp_path / "s.bin"
    stream.write_bytes(codec.encode(image, "tiny"))  # this process runs one thread
    here = codec.decode(stream.read_bytes()).tobytes().hex()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(models), "2", str(stream)],
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == here


def test_ladder_tables_are_valid_and_scale_with_the_ladder():
    ladder = gaussian.scale_ladder()
    tables = gaussian.ladder_tables(ladder)
    gaussian.check_ladder(ladder, tables)
    assert ladder[0] == pytest.approx(gaussian.SCALE_MIN)
    assert ladder[-1] == pytest.approx(gaussian.SCALE_MAX)
    assert np.all(np.diff(gaussian.table_bits(tables)) > 0)  # wider: costlier mode
    # Snapping: the smallest ladder scale at or above, means on the 1/64 grid.
    assert gaussian.scale_indices(np.array([0.0, ladder[3], ladder[3] * 1.0001, 1e9]),
                                  ladder).tolist() == [0, 3, 4, ladder.size - 1]
    assert gaussian.snap_means(np.array([0.0101, np.nan, 1e9])).tolist() == [
        1 / 64, 0.0, gaussian.MEAN_BOUND]


def test_symbols_round_trip_with_escapes():
    ladder = gaussian.scale_ladder()
    tables = gaussian.ladder_tables(ladder)
    rng = np.random.default_rng(0)
    index = rng.integers(0, ladder.size, (3, 5, 7)).astype(np.uint8)
    symbols = np.round(rng.normal(0, ladder[index])).astype(np.int32)
    symbols[0, 0, 0], symbols[1, 2, 3] = 30000, -32768  # beyond every table: escaped
    data = gaussian.encode_symbols(symbols, index, tables)
    assert np.array_equal(gaussian.decode_symbols(data, index, tables), symbols)
