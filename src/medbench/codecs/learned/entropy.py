"""Per-channel probability model of the integer latents, and their ANS coding.

Training uses :class:`FactorizedDensity`, a learned mixture of logistics per latent
channel: the probability of an integer ``k`` is the density's mass on ``[k-1/2, k+1/2]``,
which makes the rate differentiable under additive uniform noise (Ballé et al. 2017).
It is only an estimate: the rate a result reports is always ``len(bytes)``.

For coding, the density is frozen into :class:`CodingTables`: per channel, integer
frequencies for ``k`` in ``[offset, offset + n - 1]`` plus one *escape* symbol, summing
to ``2**PRECISION``. They are computed once when a model is saved and stored with its
weights, so an encoder on a GPU and a decoder on a CPU use bit-identical tables and
decode the same integers. Latents outside a channel's range are sent as the escape
symbol followed by their value under a uniform model over ``int16``.

References
----------
J. Ballé, V. Laparra, E. P. Simoncelli, "End-to-end optimized image compression",
ICLR 2017, arXiv:1611.01704.
J. Duda, "Asymmetric numeral systems", arXiv:0902.0271 (2009).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

#: Frequencies of each channel's table sum to ``2**PRECISION``.
PRECISION = 16
#: Largest alphabet per channel (values beyond it are escaped).
MAX_SYMBOLS = 4096
#: Tail mass left outside a channel's explicit range.
TAIL_MASS = 1e-6
#: Integer latents are clamped to this range before coding.
LATENT_MIN, LATENT_MAX = -(2**15), 2**15 - 1
LIKELIHOOD_BOUND = 1e-9


class FactorizedDensity(nn.Module):
    """A mixture of ``components`` logistics per channel, with a per-channel affine.

    ``likelihood(y)`` is the probability mass of ``[y - 1/2, y + 1/2]``, evaluated on the
    side of the median where the logistic is flat, so tails keep their precision.
    """

    def __init__(self, channels: int, components: int = 3):
        super().__init__()
        self.channels, self.components = channels, components
        self.loc = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.logits = nn.Parameter(torch.zeros(channels, components))
        self.means = nn.Parameter(torch.linspace(-1.0, 1.0, components).repeat(channels, 1))
        self.log_scales = nn.Parameter(torch.full((channels, components), -1.0))

    @torch.no_grad()
    def init_from(self, y: torch.Tensor) -> None:
        """Centre and scale each channel on a batch of latents (data-dependent init)."""
        flat = y.detach().transpose(0, 1).reshape(self.channels, -1).float()
        self.loc.copy_(flat.mean(dim=1))
        self.log_scale.copy_(flat.std(dim=1).clamp_min(0.1).log())

    def _mixture(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Component means, scales and log-weights, each ``(C, K)``, in ``dtype``."""
        base = self.log_scale.to(dtype).exp()[:, None]
        means = self.loc.to(dtype)[:, None] + base * self.means.to(dtype)
        scales = base * self.log_scales.to(dtype).exp()
        return means, scales, torch.log_softmax(self.logits.to(dtype), dim=1)

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """Probability of each element of ``y`` (``(B, C, h, w)``) as an integer bin."""
        means, scales, logw = self._mixture(y.dtype)
        view = (1, self.channels, 1, 1, self.components)
        v = y.unsqueeze(-1)
        lower = (v - 0.5 - means.view(view)) / scales.view(view)
        upper = (v + 0.5 - means.view(view)) / scales.view(view)
        sign = -torch.sign(lower + upper).detach()
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        mass = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        p = (mass * logw.exp().view(view)).sum(dim=-1)
        return p.clamp_min(LIKELIHOOD_BOUND)

    def bits(self, y: torch.Tensor) -> torch.Tensor:
        """Estimated bits of each image of the batch: ``-sum(log2 p)``."""
        return -torch.log2(self.likelihood(y)).flatten(1).sum(dim=1)

    @torch.no_grad()
    def pmf_grid(self, low: int, high: int) -> np.ndarray:
        """Probabilities of the integers ``low..high`` per channel, ``(C, high-low+1)``."""
        means, scales, logw = self._mixture(torch.float64)
        v = torch.arange(low, high + 1, dtype=torch.float64, device=means.device)[:, None]
        rows = []
        for c in range(self.channels):  # one channel at a time bounds the memory
            lower = (v - 0.5 - means[c]) / scales[c]
            upper = (v + 0.5 - means[c]) / scales[c]
            sign = -torch.sign(lower + upper)
            sign = torch.where(sign == 0, torch.ones_like(sign), sign)
            mass = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
            rows.append((mass * logw[c].exp()).sum(dim=-1).cpu().numpy())
        return np.stack(rows)


class TableError(ValueError):
    """Coding tables that cannot code the model's latents (shapes or frequencies)."""


class StreamError(ValueError):
    """A latent payload that does not hold what its header declares."""


@dataclass(frozen=True)
class CodingTables:
    """Integer frequency tables, one per channel (the escape symbol is the last)."""

    offsets: np.ndarray  # (C,) int32: the integer of symbol 0
    lengths: np.ndarray  # (C,) int32: explicit symbols (escape not counted)
    freqs: np.ndarray  # (C, max_len + 1) int32, zero padded
    #: The channels' constriction models, made on first use (:func:`channel_model`).
    _models: list | None = field(default=None, init=False, repr=False, compare=False)

    def as_tensors(self, prefix: str = "tables") -> dict[str, torch.Tensor]:
        # Frequencies of 16-bit-precision tables are below 2**16 (every table holds at
        # least two symbols): stored as uint16 they take half the bytes. Only each
        # channel's own symbols are stored, one after another (``packed``): the padding
        # of the (C, n) array is most of it for a ladder of scales (87 % of the
        # hyperprior's). Older int32 and (C, n) checkpoints load the same (from_tensors).
        wide = self.freqs.size and int(self.freqs.max()) > np.iinfo(np.uint16).max
        return {
            f"{prefix}.offsets": torch.from_numpy(self.offsets.astype(np.int32)),
            f"{prefix}.lengths": torch.from_numpy(self.lengths.astype(np.int32)),
            f"{prefix}.freqs": torch.from_numpy(self.packed().astype(np.int32 if wide
                                                                     else np.uint16)),
        }

    def packed(self) -> np.ndarray:
        """Every channel's ``lengths[c] + 1`` frequencies, channel after channel (1-D)."""
        return np.concatenate([self.channel_freqs(c) for c in range(self.channels)])

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], channels: int | None = None,
                     prefix: str = "tables") -> CodingTables:
        """Tables from a checkpoint's tensors, checked (raises :class:`TableError`).

        ``channels``, when given, is the model's latent channels: every channel needs
        its table, or decoding would index past the end. ``prefix`` names the tensors
        (``<prefix>.offsets`` ...).
        """
        try:
            offsets, lengths, freqs = (
                tensors[f"{prefix}.{k}"].numpy().astype(np.int64)
                for k in ("offsets", "lengths", "freqs")
            )
        except KeyError as exc:
            raise TableError(f"the coding tables lack tensor {exc}") from None
        if freqs.ndim == 1:
            freqs = _unpack(freqs, lengths)
        _check_tables(offsets, lengths, freqs, channels)
        return cls(offsets.astype(np.int32), lengths.astype(np.int32), freqs.astype(np.int32))

    @property
    def channels(self) -> int:
        return int(self.offsets.shape[0])

    def channel_freqs(self, c: int) -> np.ndarray:
        """Frequencies of channel ``c``: ``lengths[c]`` symbols and the escape."""
        return self.freqs[c, : int(self.lengths[c]) + 1]


def _unpack(packed: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The zero-padded (C, n) frequencies of tables stored :meth:`CodingTables.packed`."""
    if lengths.ndim != 1 or lengths.size == 0 or lengths.min() < 1 \
            or int((lengths + 1).sum()) != packed.size:
        raise TableError(f"packed coding tables hold {packed.size} frequencies, not the "
                         f"sum of their channels' symbols and escapes")
    ends = np.cumsum(lengths + 1)
    freqs = np.zeros((lengths.size, int(lengths.max()) + 1), dtype=np.int64)
    for c, (start, end) in enumerate(zip(ends - (lengths + 1), ends)):
        freqs[c, : end - start] = packed[start:end]
    return freqs


def _check_tables(offsets: np.ndarray, lengths: np.ndarray, freqs: np.ndarray,
                  channels: int | None) -> None:
    if offsets.ndim != 1 or lengths.shape != offsets.shape or freqs.ndim != 2 \
            or freqs.shape[0] != offsets.shape[0]:
        raise TableError(
            f"coding tables of shapes {offsets.shape}, {lengths.shape}, {freqs.shape} "
            f"are not (C,), (C,), (C, n)"
        )
    if channels is not None and offsets.shape[0] != channels:
        raise TableError(
            f"coding tables have {offsets.shape[0]} channels but the model has "
            f"{channels} latent channels"
        )
    width = freqs.shape[1]
    for c in range(offsets.shape[0]):
        n = int(lengths[c])
        if not 1 <= n < width or not LATENT_MIN <= int(offsets[c]) <= LATENT_MAX:
            raise TableError(f"coding table of channel {c} has {n} symbols at offset "
                             f"{int(offsets[c])}, outside 1..{width - 1} and int16")
        row = freqs[c, : n + 1]
        if row.min() < 1 or int(row.sum()) != 1 << PRECISION:
            raise TableError(f"coding table of channel {c} has frequencies that are not "
                             f"positive with sum 2**{PRECISION}")


def min_payload_bits(tables: CodingTables, symbols_per_channel: int) -> float:
    """Fewest bits any payload coding ``symbols_per_channel`` latents per channel can have.

    Each symbol costs at least ``-log2`` of its channel's largest probability, so a
    header declaring more latents than its bytes can hold is caught before decoding.
    """
    top = tables.freqs.max(axis=1).astype(float)  # zero padding never is the largest
    return float(symbols_per_channel * (PRECISION - np.log2(top)).sum())


def quantize_pmf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies >= 1 summing to ``2**precision``, close to ``pmf``."""
    total = 1 << precision
    n = pmf.size
    if n >= total:
        raise ValueError(f"{n} symbols do not fit a {precision}-bit table")
    p = np.asarray(pmf, dtype=np.float64)
    p = p / p.sum()
    freqs = np.floor(p * (total - n)).astype(np.int64) + 1
    # Hand the rounding remainder to the largest bins (deterministic order).
    rest = total - int(freqs.sum())
    order = np.argsort(-(p * (total - n) - np.floor(p * (total - n))), kind="stable")
    freqs[order[:rest]] += 1
    assert int(freqs.sum()) == total
    return freqs.astype(np.int32)


def build_tables(density: FactorizedDensity, tail_mass: float = TAIL_MASS) -> CodingTables:
    """Freeze ``density`` into integer tables covering all but ``tail_mass`` per channel."""
    grid_low, grid_high = LATENT_MIN, LATENT_MAX
    pmf = density.pmf_grid(grid_low, grid_high)  # (C, 65536)
    rows, offsets, lengths = [], [], []
    for c in range(pmf.shape[0]):
        p = pmf[c] / pmf[c].sum()
        cdf = np.cumsum(p)
        lo = int(np.searchsorted(cdf, tail_mass / 2))
        hi = int(np.searchsorted(cdf, 1.0 - tail_mass / 2))
        hi = min(max(hi, lo), p.size - 1)
        if hi - lo + 1 > MAX_SYMBOLS:  # keep the most probable window
            centre = int(np.argmax(p))
            lo = max(0, centre - MAX_SYMBOLS // 2)
            hi = min(p.size - 1, lo + MAX_SYMBOLS - 1)
        body = p[lo : hi + 1]
        escape = max(1.0 - float(body.sum()), 0.0)
        rows.append(quantize_pmf(np.append(body, escape)))
        offsets.append(lo + grid_low)
        lengths.append(hi - lo + 1)
    width = max(len(r) for r in rows)
    freqs = np.zeros((len(rows), width), dtype=np.int32)
    for c, r in enumerate(rows):
        freqs[c, : len(r)] = r
    return CodingTables(np.array(offsets, np.int32), np.array(lengths, np.int32), freqs)


def _constriction():
    import constriction

    return constriction


def channel_model(tables: CodingTables, c: int):
    """The constriction model of channel ``c``'s integer table."""
    return _models(tables)[c]


def _models(tables: CodingTables) -> list:
    """Every channel's model, made once per tables: making them cost as much as coding a
    small image's latents. Models are immutable, so coders in any thread may share them."""
    if tables._models is None:
        cs = _constriction()
        models = [cs.stream.model.Categorical(tables.channel_freqs(c).astype(np.float64),
                                              perfect=False)
                  for c in range(tables.channels)]
        object.__setattr__(tables, "_models", models)  # a cache, not a field of the tables
    return tables._models  # type: ignore[return-value]


def encode_latents(latents: np.ndarray, tables: CodingTables) -> bytes:
    """ANS-code integer latents ``(C, h, w)`` (int32, within int16) into bytes."""
    cs = _constriction()
    if latents.ndim != 3 or latents.shape[0] != tables.channels:
        raise ValueError(
            f"latents of shape {latents.shape} do not match {tables.channels} channels"
        )
    lat = latents.astype(np.int64)
    if lat.size and (lat.min() < LATENT_MIN or lat.max() > LATENT_MAX):
        raise ValueError("latents must lie in the int16 range; clamp them before coding")
    models = _models(tables)
    coder = cs.stream.stack.AnsCoder()
    # All channels at once: symbol = value - offset, or the escape symbol (``length``).
    flat = lat.reshape(tables.channels, -1)
    sym = flat - tables.offsets[:, None].astype(np.int64)
    lengths = tables.lengths[:, None].astype(np.int64)
    out = (sym < 0) | (sym >= lengths)
    symbols = np.where(out, lengths, sym).astype(np.int32)
    # ANS is a stack: push in reverse of the decoding order (channels, then escapes, which
    # are read channel by channel in raster order: boolean indexing keeps that order).
    esc = (flat[out] - LATENT_MIN).astype(np.int32)
    if esc.size:
        coder.encode_reverse(esc, cs.stream.model.Uniform(LATENT_MAX - LATENT_MIN + 1))
    for c in reversed(range(tables.channels)):
        coder.encode_reverse(symbols[c], models[c])
    return coder.get_compressed().astype("<u4").tobytes()


def decode_latents(data: bytes, tables: CodingTables, shape: tuple[int, int]) -> np.ndarray:
    """Integer latents ``(C, h, w)`` (int32) from :func:`encode_latents`' bytes.

    Raises :class:`StreamError`, before allocating anything of the declared size, when
    the payload is too short to hold ``shape``, and after decoding when words are left
    over (a corrupt stream, or one coded with other tables).
    """
    cs = _constriction()
    h, w = shape
    if len(data) % 4:
        raise StreamError(
            f"latent payload of {len(data)} bytes is not a whole number of 32-bit words; "
            f"the stream is truncated or corrupt"
        )
    # The coder's 64-bit state holds up to 64 bits beyond the words it wrote (a stream
    # of near-certain symbols can even be empty).
    need = min_payload_bits(tables, h * w)
    if 8 * len(data) + 64 < need:
        raise StreamError(
            f"latent payload of {len(data)} bytes cannot hold {tables.channels}x{h}x{w} "
            f"latents (at least {need / 8:.0f} bytes); the stream is truncated or its "
            f"header is corrupt"
        )
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    coder = cs.stream.stack.AnsCoder(words) if words.size else cs.stream.stack.AnsCoder()
    sym = np.empty((tables.channels, h * w), dtype=np.int32)
    for c, model in enumerate(_models(tables)):
        sym[c] = coder.decode(model, h * w)
    out = sym + tables.offsets[:, None].astype(np.int64)
    escaped = sym == tables.lengths[:, None]  # escapes follow, channel by channel
    count = int(np.count_nonzero(escaped))
    if count:
        out[escaped] = np.asarray(
            coder.decode(cs.stream.model.Uniform(LATENT_MAX - LATENT_MIN + 1), count),
            dtype=np.int64,
        ) + LATENT_MIN
    if not coder.is_empty():
        raise StreamError(
            f"latent payload of {len(data)} bytes has data left after {tables.channels}x"
            f"{h}x{w} latents; the stream is corrupt or was coded by another model"
        )
    return out.reshape(tables.channels, h, w).astype(np.int32)


def ideal_bits(latents: np.ndarray, tables: CodingTables) -> float:
    """Information content of ``latents`` under the integer tables (for checks)."""
    total = 0.0
    scale = float(1 << PRECISION)
    for c in range(tables.channels):
        f = tables.channel_freqs(c).astype(np.float64)
        sym = latents[c].reshape(-1).astype(np.int64) - int(tables.offsets[c])
        n = int(tables.lengths[c])
        out = (sym < 0) | (sym >= n)
        idx = np.where(out, n, sym)
        total += float(-np.log2(f[idx] / scale).sum()) + 16.0 * int(out.sum())
    return total


__all__ = [
    "FactorizedDensity", "CodingTables", "build_tables", "quantize_pmf",
    "encode_latents", "decode_latents", "ideal_bits", "min_payload_bits", "PRECISION",
    "TableError", "StreamError",
]
