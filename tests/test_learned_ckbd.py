"""The ``ckbd`` codec (checkerboard context on the mean-scale hyperprior): trained by
``medbench train``, the decoder derives the encoder's latents exactly, every byte counted,
streams decode bit-identically with another thread count, and the checkerboard matters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medbench.codecs import CodecContext, codec_names, get_codec
from medbench.codecs.learned import gaussian
from medbench.codecs.learned.archs import ckbd, new_model
from medbench.codecs.learned.archs.ckbd import CheckerboardModel, anchor_mask, stream_latents
from medbench.codecs.learned.bitstream import BitstreamError
from medbench.codecs.learned.complexity import PROBE, model_complexity
from medbench.codecs.learned.models import pad_to_stride

from .conftest import train_tiny_hyperprior

SRC = str(Path(__file__).resolve().parents[1] / "src")

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_pretrained")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny ckbd trained for a few steps on 64² sample images, via the CLI."""
    return train_tiny_hyperprior(tmp_path_factory.mktemp("models"), epochs=2, model="ckbd")


def _codec(models):
    return get_codec("ckbd", CodecContext(models_dir=models, device="cpu"))


def test_ckbd_is_a_codec_with_both_tables_from_its_architecture_module(models):
    assert "ckbd" in codec_names()
    codec = _codec(models)
    assert codec.magic == ckbd.MAGIC and codec.settings() == ["tiny"]
    model = codec.model("tiny")
    assert isinstance(model, CheckerboardModel)
    assert model.tables.channels == 8 and model.scale_tables.channels == gaussian.LEVELS
    assert codec.checkpoint("tiny").config["arch"] == "ckbd"


def _encoder_latents(model: CheckerboardModel, image):
    """What the encoder codes, recomputed here from the model's forward in eval: ``z``, the
    symbols ``q`` and the snapped means of both passes."""
    x = torch.from_numpy(image.pixels.astype(np.float32) / (2**image.bit_depth - 1))
    with torch.no_grad():
        y = model.net.encode(pad_to_stride(x[None, None], 64)[0])
        z = torch.round(model.net.hyper_encode(y))[0].numpy().astype(np.int32)
    y64 = y[0].double().numpy()
    anchor = np.broadcast_to(anchor_mask(*y64.shape[-2:]), y64.shape)
    hyper = model.hyper_features(z)
    means_a, _ = model.pass_params(hyper, None)
    q_a = np.round(y64 - means_a)
    means_n, _ = model.pass_params(hyper, np.where(anchor, q_a + means_a, 0.0))
    means = np.where(anchor, means_a, means_n)
    return z, np.round(y64 - means).astype(np.int32), means


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
    header, z, q, means = stream_latents(model, data)
    z_enc, q_enc, means_enc = _encoder_latents(model, image)
    assert np.array_equal(z, z_enc) and np.array_equal(q, q_enc)
    assert np.array_equal(means, means_enc)
    # The pixels are the synthesis of exactly those latents.
    with torch.no_grad():
        x = model.net.decode(torch.from_numpy((q_enc + means_enc).astype(np.float32))[None])
    expected = torch.round(x[0, 0, :size[0], :size[1]].clamp(0, 1) * (2**bits - 1))
    assert np.array_equal(decoded, expected.numpy().astype(decoded.dtype))
    # Every byte is in the stream: header, the three lengths, three payloads.
    z_len, a_len, n_len = (int.from_bytes(data[i : i + 4], "big") for i in (20, 24, 28))
    assert a_len > 0 and n_len > 0
    assert len(data) == 32 + z_len + a_len + n_len


def test_a_cut_stream_is_refused(models, make_image):
    codec = _codec(models)
    data = codec.encode(make_image((64, 64), bit_depth=8), "tiny")
    with pytest.raises(BitstreamError, match="truncated or corrupt"):
        codec.decode(data[:-4])
    # a hyperprior's stream is another kind of stream, said by name
    with pytest.raises(BitstreamError, match="not a medbench ckbd stream"):
        codec.decode(b"MBHP" + data[4:])


_CHILD = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
from medbench.codecs import CodecContext, get_codec
codec = get_codec("ckbd", CodecContext(models_dir=sys.argv[1], device="cpu"))
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


def test_non_anchor_parameters_depend_on_the_anchors_and_on_nothing_else(models):
    """Perturbing one decoded anchor moves the means of its non-anchor neighbours (and of
    no anchor); a value at a non-anchor position is never seen."""
    model = _codec(models).model("tiny")
    rng = np.random.default_rng(0)
    z = rng.integers(-2, 3, (8, 2, 2)).astype(np.int32)
    hyper = model.hyper_features(z)
    anchor = np.broadcast_to(anchor_mask(8, 8), (8, 8, 8))
    with torch.no_grad():  # a context strong enough to move the snapped means
        model.net.context.weight.mul_(50.0)
    try:
        decoded = np.where(anchor, np.round(rng.normal(0, 3, (8, 8, 8))), 0.0)
        means, _ = model.pass_params(hyper, decoded)
        bumped = decoded.copy()
        bumped[0, 4, 4] += 5.0  # an anchor ((4 + 4) even)
        moved, _ = model.pass_params(hyper, bumped)
        changed = moved != means
        assert changed[:, 4, 5].any() and changed[:, 3, 4].any()  # its neighbours
        assert not changed[anchor].any()  # anchors' parameters never use the context
        assert not changed[:, :, 7].any() and not changed[:, 0].any()  # beyond 5x5
        hidden = decoded.copy()
        hidden[0, 4, 5] = 7.0  # a non-anchor: masked out of the non-anchors' context
        same, _ = model.pass_params(hyper, hidden)
        assert np.array_equal(same[~anchor], means[~anchor])
        # The anchors' pass (context zero) differs from the non-anchors' pass.
        means_a, _ = model.pass_params(hyper, None)
        assert (means_a[~anchor] != means[~anchor]).any()
    finally:
        with torch.no_grad():
            model.net.context.weight.div_(50.0)


def test_training_gradients_reach_non_anchors_through_anchors_only():
    """In training the non-anchors' means are a function of the (rounded) anchors."""
    torch.manual_seed(0)
    net = new_model("ckbd", 4, 4).net
    hyper = torch.randn(1, 8, 6, 6)
    y = torch.randn(1, 4, 6, 6, requires_grad=True)
    means, _ = net.checkerboard_params(hyper, y, ckbd._quantise_ste)
    means[0, :, 2, 3].sum().backward()  # a non-anchor ((2 + 3) odd)
    grad = y.grad[0].abs().sum(dim=0)
    assert grad[2, 2] > 0 and grad[1, 3] > 0  # anchor neighbours
    assert grad[2, 3] == 0 and grad[0, 1] == 0  # itself, another non-anchor


def test_complexity_counts_the_context_dense_and_both_parameter_passes():
    m, n = 8, 8
    plain = model_complexity("hyperprior", m, n)
    checker = model_complexity("ckbd", m, n)
    cells = (PROBE // 16) ** 2  # latent positions of the probe image
    context = cells * 2 * m * m * 25  # 5x5, masked taps counted (dense)
    params = cells * (4 * m * (10 * m // 3) + (10 * m // 3) * (8 * m // 3)
                      + (8 * m // 3) * 2 * m)
    extra = (context + 2 * params) / PROBE**2 / 1000
    assert checker.kmac_per_pixel_enc - plain.kmac_per_pixel_enc == pytest.approx(extra,
                                                                                  abs=2e-3)
    assert checker.kmac_per_pixel_dec - plain.kmac_per_pixel_dec == pytest.approx(extra,
                                                                                  abs=2e-3)
    assert checker.params > plain.params


def test_training_with_a_step_budget_writes_a_model_and_its_milestones(tmp_path, make_image):
    root = train_tiny_hyperprior(tmp_path, model="ckbd", budget=("--steps", "3"))
    folder = root / "ckbd" / "tiny"
    assert (folder / "config.json").is_file() and (folder / "milestones").is_dir()
    codec = _codec(root)
    image = make_image((64, 64), bit_depth=8)
    assert codec.decode(codec.encode(image, "tiny")).shape == (64, 64)
