"""Gaussian conditional of the hyperprior's latents: a fixed ladder of scales, its integer
tables, the training likelihood and the ANS coding of symbols under per-symbol tables.

A latent ``y`` with predicted mean ``mu`` and scale ``sigma`` is coded as the integer
``q = round(y - mu)`` under the table of a zero-mean Gaussian discretised to integer bins.
The tables are not made per symbol: ``sigma`` is snapped to the smallest scale of a fixed
ladder (:data:`LEVELS` log-spaced scales from :data:`SCALE_MIN` to :data:`SCALE_MAX`) at
or above it, and one integer table per ladder scale is built once, when the model is
frozen, and stored with its weights. Each table covers ``±ceil(TAIL_SIGMAS · scale)``
plus an escape symbol; values outside are sent after all symbols under a uniform model
over ``int16`` (as :mod:`.entropy` does).

References
----------
J. Ballé, D. Minnen, S. Singh, S. J. Hwang, N. Johnston, "Variational image compression
with a scale hyperprior", ICLR 2018, arXiv:1802.01436.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import ndtr

from medbench.codecs.learned.entropy import (
    LATENT_MAX,
    LATENT_MIN,
    LIKELIHOOD_BOUND,
    PRECISION,
    CodingTables,
    StreamError,
    TableError,
    channel_model,
    quantize_pmf,
)

SCALE_MIN, SCALE_MAX, LEVELS = 0.11, 256.0, 64
#: Half-width of each table in standard deviations (mass outside ≈ 1e-6).
TAIL_SIGMAS = 4.9
#: Means are snapped to multiples of 1/MEAN_GRID before use (see :mod:`.hyperprior`).
MEAN_GRID = 64
#: Snapped means are kept within this bound, so ``q + mean`` is exact in float32.
MEAN_BOUND = 2.0**14
_UNIFORM = LATENT_MAX - LATENT_MIN + 1


def scale_ladder(levels: int = LEVELS) -> np.ndarray:
    """The fixed ladder of scales (float64, increasing)."""
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), levels))


def ladder_tables(ladder: np.ndarray) -> CodingTables:
    """One integer table per ladder scale: a zero-mean Gaussian on integer bins."""
    rows, offsets, lengths = [], [], []
    for scale in ladder:
        n = max(1, math.ceil(TAIL_SIGMAS * float(scale)))
        k = np.arange(-n, n + 1, dtype=np.float64)
        # Mass of [k - 1/2, k + 1/2], from the tail on each side so it keeps its precision.
        upper, lower = ndtr((0.5 - np.abs(k)) / scale), ndtr((-0.5 - np.abs(k)) / scale)
        body = upper - lower
        escape = max(2.0 * float(ndtr(-(n + 0.5) / scale)), 0.0)
        rows.append(quantize_pmf(np.append(body, escape)))
        offsets.append(-n)
        lengths.append(2 * n + 1)
    freqs = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int32)
    for i, r in enumerate(rows):
        freqs[i, : len(r)] = r
    return CodingTables(np.array(offsets, np.int32), np.array(lengths, np.int32), freqs)


def check_ladder(ladder: np.ndarray, tables: CodingTables) -> None:
    """Raise :class:`TableError` unless ``ladder`` is a usable ladder for ``tables``."""
    if ladder.ndim != 1 or not 1 <= ladder.size <= 256 or ladder.size != tables.channels:
        raise TableError(f"scale ladder of shape {ladder.shape} does not match "
                         f"{tables.channels} scale tables (1..256 levels)")
    if not np.all(np.isfinite(ladder)) or ladder[0] <= 0 or np.any(np.diff(ladder) <= 0):
        raise TableError("scale ladder is not positive, finite and increasing")


def likelihood(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Probability of the integer bin around ``values`` (``y - mean``) under a zero-mean
    Gaussian of ``scales`` (bounded below by the ladder's smallest scale), for training."""
    s = scales.clamp_min(SCALE_MIN)
    v = values.abs()
    cdf = lambda t: 0.5 * torch.erfc(-t / math.sqrt(2.0))  # noqa: E731
    return (cdf((0.5 - v) / s) - cdf((-0.5 - v) / s)).clamp_min(LIKELIHOOD_BOUND)


def scale_indices(scales: np.ndarray, ladder: np.ndarray) -> np.ndarray:
    """Index of the smallest ladder scale at or above each scale (float64 in, uint8 out)."""
    idx = np.searchsorted(ladder, np.nan_to_num(scales, nan=ladder[-1]), side="left")
    return np.minimum(idx, ladder.size - 1).astype(np.uint8)


def snap_means(means: np.ndarray) -> np.ndarray:
    """Means rounded to multiples of ``1/MEAN_GRID`` within ``±MEAN_BOUND`` (float64)."""
    means = np.nan_to_num(means, nan=0.0, posinf=MEAN_BOUND, neginf=-MEAN_BOUND)
    return np.clip(np.round(means * MEAN_GRID) / MEAN_GRID, -MEAN_BOUND, MEAN_BOUND)


def table_bits(tables: CodingTables) -> np.ndarray:
    """Fewest bits a symbol can cost under each table (``-log2`` of its top frequency)."""
    top = np.array([tables.channel_freqs(c).max() for c in range(tables.channels)], float)
    return PRECISION - np.log2(top)


def encode_symbols(symbols: np.ndarray, index: np.ndarray, tables: CodingTables) -> bytes:
    """ANS-code integer ``symbols`` (1-D, int16 range), each under table ``index[i]``.

    Symbols are coded grouped by table (raster order within a group), so the decoder,
    which derives the same ``index``, reads them back in the same order.
    """
    import constriction as cs

    sym = symbols.astype(np.int64).reshape(-1)
    index = index.reshape(-1).astype(np.int64)
    if sym.size and (sym.min() < LATENT_MIN or sym.max() > LATENT_MAX):
        raise ValueError("symbols must lie in the int16 range; clamp them before coding")
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index, minlength=tables.channels)
    coder = cs.stream.stack.AnsCoder()
    groups, escapes, start = [], [], 0
    for k, count in enumerate(counts):
        values = sym[order[start : start + count]]
        start += count
        rel = values - int(tables.offsets[k])
        n = int(tables.lengths[k])
        out = (rel < 0) | (rel >= n)
        escapes.append(values[out] - LATENT_MIN)
        groups.append(np.where(out, n, rel).astype(np.int32))
    esc = np.concatenate(escapes).astype(np.int32) if escapes else np.zeros(0, np.int32)
    if esc.size:  # a stack: escapes are pushed first and read last
        coder.encode_reverse(esc, cs.stream.model.Uniform(_UNIFORM))
    for k in reversed(range(tables.channels)):
        if groups[k].size:
            coder.encode_reverse(groups[k], channel_model(tables, k))
    return coder.get_compressed().astype("<u4").tobytes()


def check_payload(data: bytes, index: np.ndarray, tables: CodingTables) -> None:
    """Raise :class:`StreamError` when ``data`` cannot hold symbols under ``index``."""
    if len(data) % 4:
        raise StreamError(f"latent payload of {len(data)} bytes is not a whole number of "
                          f"32-bit words; the stream is truncated or corrupt")
    counts = np.bincount(index.reshape(-1).astype(np.int64), minlength=tables.channels)
    need = float((counts * table_bits(tables)).sum())
    if 8 * len(data) + 64 < need:  # the coder's state holds up to 64 bits unwritten
        raise StreamError(f"latent payload of {len(data)} bytes cannot hold {index.size} "
                          f"latents (at least {need / 8:.0f} bytes); the stream is "
                          f"truncated or its header is corrupt")


def decode_symbols(data: bytes, index: np.ndarray, tables: CodingTables) -> np.ndarray:
    """The symbols :func:`encode_symbols` coded under ``index`` (int32, ``index``'s shape).

    Raises :class:`StreamError` when the payload is too short for ``index`` (before
    decoding) or has words left over (a corrupt stream, or other tables).
    """
    import constriction as cs

    check_payload(data, index, tables)
    flat = index.reshape(-1).astype(np.int64)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=tables.channels)
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    coder = cs.stream.stack.AnsCoder(words) if words.size else cs.stream.stack.AnsCoder()
    out = np.empty(flat.size, dtype=np.int64)
    escaped, start = [], 0
    for k, count in enumerate(counts):
        if not count:
            continue
        rel = np.asarray(coder.decode(channel_model(tables, k), int(count)), dtype=np.int64)
        where = order[start : start + count]
        start += count
        n = int(tables.lengths[k])
        out[where] = rel + int(tables.offsets[k])
        escaped.append(where[rel == n])
    positions = np.concatenate(escaped) if escaped else np.zeros(0, np.int64)
    if positions.size:
        values = coder.decode(cs.stream.model.Uniform(_UNIFORM), int(positions.size))
        out[positions] = np.asarray(values, dtype=np.int64) + LATENT_MIN
    if not coder.is_empty():
        raise StreamError(f"latent payload of {len(data)} bytes has data left after "
                          f"{flat.size} latents; the stream is corrupt or was coded by "
                          f"another model")
    return out.reshape(index.shape).astype(np.int32)


__all__ = ["scale_ladder", "ladder_tables", "check_ladder", "likelihood", "scale_indices",
           "snap_means", "encode_symbols", "decode_symbols", "check_payload", "table_bits",
           "StreamError", "TableError"]
