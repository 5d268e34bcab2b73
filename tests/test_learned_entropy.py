"""Integer coding tables and ANS coding of latents (constriction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medbench.codecs.learned.entropy import (
    LATENT_MAX,
    LATENT_MIN,
    PRECISION,
    CodingTables,
    FactorizedDensity,
    TableError,
    build_tables,
    decode_latents,
    encode_latents,
    ideal_bits,
    quantize_pmf,
)


@pytest.fixture(scope="module")
def tables():
    density = FactorizedDensity(3)
    rng = np.random.default_rng(0)
    density.init_from(torch.from_numpy(rng.normal(0, [[1.0], [4.0], [0.3]], (3, 400))
                                       .astype(np.float32)).T.reshape(400, 3, 1, 1))
    return build_tables(density)


def test_quantized_pmf_sums_to_the_precision_and_keeps_every_symbol():
    freqs = quantize_pmf(np.array([0.5, 0.25, 0.25 - 1e-12, 1e-12, 0.0]))
    assert freqs.dtype == np.int32 and int(freqs.sum()) == 1 << PRECISION
    assert freqs.min() >= 1
    assert freqs[0] == pytest.approx(0.5 * (1 << PRECISION), abs=3)


def test_tables_cover_each_channel_with_an_escape(tables):
    assert tables.channels == 3
    for c in range(3):
        f = tables.channel_freqs(c)
        assert int(f.sum()) == 1 << PRECISION and f.min() >= 1
    # a wider channel needs a wider table
    assert tables.lengths[1] > tables.lengths[0] > tables.lengths[2]


def test_tables_are_stored_without_their_padding_and_load_as_they_were(tables):
    stored = tables.as_tensors("t")
    # one channel's symbols after another: the (C, n) array's zero padding is not stored
    assert stored["t.freqs"].ndim == 1
    assert stored["t.freqs"].numel() == int((tables.lengths + 1).sum()) < tables.freqs.size
    loaded = CodingTables.from_tensors(stored, channels=3, prefix="t")
    for field in ("offsets", "lengths", "freqs"):
        assert np.array_equal(getattr(loaded, field), getattr(tables, field))
    # checkpoints written before keep the padded (C, n) array and load the same
    padded = {**stored, "t.freqs": torch.from_numpy(tables.freqs.astype(np.uint16))}
    assert np.array_equal(CodingTables.from_tensors(padded, prefix="t").freqs, tables.freqs)
    cut = {**stored, "t.freqs": stored["t.freqs"][:-1]}
    with pytest.raises(TableError, match="packed coding tables hold"):
        CodingTables.from_tensors(cut, prefix="t")


def test_density_pmf_sums_to_one():
    density = FactorizedDensity(2)
    pmf = density.pmf_grid(-200, 200)
    assert np.allclose(pmf.sum(axis=1), 1.0, atol=1e-6)


def test_latents_round_trip_exactly_including_escapes(tables):
    rng = np.random.default_rng(1)
    latents = np.rint(rng.normal(0, [[[1.0]], [[4.0]], [[0.3]]], (3, 9, 11))).astype(np.int32)
    latents[0, 0, 0] = LATENT_MAX
    latents[1, 4, 7] = LATENT_MIN
    latents[2, 8, 10] = 1234
    data = encode_latents(latents, tables)
    assert isinstance(data, bytes) and len(data) % 4 == 0
    back = decode_latents(data, tables, (9, 11))
    assert back.dtype == np.int32 and np.array_equal(back, latents)


def test_coded_size_is_close_to_the_information_content(tables):
    rng = np.random.default_rng(2)
    latents = np.rint(rng.normal(0, [[[1.0]], [[4.0]], [[0.3]]], (3, 32, 32))).astype(np.int32)
    bits = 8 * len(encode_latents(latents, tables))
    ideal = ideal_bits(latents, tables)
    assert ideal <= bits <= ideal * 1.01 + 64  # ANS overhead: at most a word or two


def test_out_of_range_latents_and_wrong_channels_are_refused(tables):
    with pytest.raises(ValueError, match="int16"):
        encode_latents(np.full((3, 2, 2), LATENT_MAX + 1, np.int32), tables)
    with pytest.raises(ValueError, match="3 channels"):
        encode_latents(np.zeros((2, 2, 2), np.int32), tables)


def test_likelihood_is_differentiable_and_matches_the_tables():
    density = FactorizedDensity(1)
    y = torch.linspace(-3, 3, 7).view(1, 1, 1, 7).requires_grad_(True)
    bits = density.bits(y + 0.1)
    bits.sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    tables = build_tables(density)
    k = np.arange(-3, 4)
    f = tables.channel_freqs(0)[k - tables.offsets[0]] / float(1 << PRECISION)
    p = density.likelihood(torch.tensor(k, dtype=torch.float32).view(1, 1, 1, -1))
    assert np.allclose(f, p.detach().numpy().ravel(), atol=2e-4)
