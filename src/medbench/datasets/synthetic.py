"""The built-in ``synthetic:N`` dataset: deterministic radiograph-like images for load tests.

``synthetic:N`` is N chest-radiograph-like images of 512×512 pixels, 12 bits,
MONOCHROME2 (bone bright, air dark); ``synthetic:N@SIZE`` makes them SIZE×SIZE (16 to
8192). They are generated on the fly, need no download and are the same on every
machine, so scaling can be measured far beyond ``sample``.

Each image is drawn from ``numpy.random.default_rng((SEED, index))``: its pixels depend
only on its index and size, never on N, the order of loading or the process that loads
it. The anatomy is smooth (body outline, two lung fields, heart, spine with vertebrae,
ribs as arcs, clavicles, a heel-effect gradient) and is built on a coarse grid and
upsampled, so its cost does not grow with SIZE; quantum-like film-grain noise, slightly
correlated and scaled with the square root of the signal, is added at full resolution.

Images are not kept in the prepared-image cache (making one costs about as much as
reading it back). Splits apply as for every dataset (hash of the image id, 60/20/20):
use ``--split all`` to code all N images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from scipy.ndimage import gaussian_filter

from medbench.datasets.base import Dataset, Record
from medbench.errors import DatasetError
from medbench.image import Image, peak_value

SEED = 0x5EED_0C5
BIT_DEPTH = 12
DEFAULT_SIZE = 512
MIN_SIZE, MAX_SIZE = 16, 8192
MAX_COUNT = 10_000_000
#: Side of the grid the anatomy is drawn on before upsampling (it is smooth anyway).
ANATOMY_GRID = 160


def parse_argument(argument: str | None) -> tuple[int, int]:
    """``(count, size)`` from the text after ``synthetic:`` (``N`` or ``N@SIZE``)."""
    if not argument:
        raise DatasetError(
            "synthetic needs an image count: use synthetic:N (e.g. synthetic:200) "
            "or synthetic:N@SIZE (e.g. synthetic:200@1024)"
        )
    count_text, _, size_text = argument.partition("@")
    try:
        count = int(count_text)
        size = int(size_text) if size_text else DEFAULT_SIZE
    except ValueError:
        raise DatasetError(
            f"synthetic:{argument} is not synthetic:N or synthetic:N@SIZE with whole numbers; "
            "use e.g. synthetic:200 or synthetic:200@1024"
        ) from None
    if not 1 <= count <= MAX_COUNT:
        raise DatasetError(f"synthetic:{argument}: N must be 1..{MAX_COUNT}, got {count}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DatasetError(
            f"synthetic:{argument}: SIZE must be {MIN_SIZE}..{MAX_SIZE} pixels, got {size}"
        )
    return count, size


def _anatomy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Attenuation-like map in [0, 1] on an ``n``×``n`` grid (bright = dense)."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    y = (y + 0.5) / n * 2 - 1  # -1 (top) .. 1 (bottom)
    x = (x + 0.5) / n * 2 - 1

    def ellipse(cx: float, cy: float, rx: float, ry: float, soft: float) -> np.ndarray:
        r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
        return 1.0 / (1.0 + np.exp((r - 1.0) / soft))  # smooth edge, 1 inside

    shift = rng.uniform(-0.04, 0.04, size=2)
    body = ellipse(shift[0], 0.08 + shift[1], rng.uniform(0.80, 0.92), rng.uniform(1.0, 1.2), 0.03)
    img = 0.08 + 0.42 * body  # air around the patient, soft tissue inside

    # Lung fields: dark (air), one each side of the spine.
    lung_rx, lung_ry = rng.uniform(0.24, 0.30), rng.uniform(0.50, 0.60)
    lung_cy = rng.uniform(-0.10, 0.0)
    lungs = np.zeros_like(x)
    for side in (-1.0, 1.0):
        cx = side * rng.uniform(0.34, 0.40) + shift[0]
        lungs = np.maximum(lungs, ellipse(cx, lung_cy + shift[1], lung_rx, lung_ry, 0.06))
    img -= 0.26 * lungs * body

    # Heart: a dense blob low and left of centre (the patient's left = image right).
    heart = ellipse(0.12 + shift[0], 0.30 + shift[1], rng.uniform(0.22, 0.28), 0.22, 0.08)
    img += 0.18 * heart * body

    # Lung markings: vessels as a smooth random texture, denser towards the hila.
    texture = gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), sigma=n / 80)
    texture /= float(np.abs(texture).max()) + 1e-6
    hila = np.exp(-((np.abs(x - shift[0]) - 0.2) ** 2 + (y - lung_cy) ** 2) / 0.25)
    img += 0.05 * texture * lungs * (0.4 + hila)

    # Ribs: smooth arcs across each lung field, brighter than the lung behind them.
    n_ribs = int(rng.integers(9, 12))
    spacing = 1.25 * lung_ry / n_ribs
    top = lung_cy - lung_ry * 0.95
    for k in range(n_ribs):
        for side in (-1.0, 1.0):
            u = side * x - 0.05  # distance from the spine towards the flank
            # Posterior ribs rise a little from the spine, then sweep down to the flank.
            curve = top + k * spacing * (1 + 0.03 * k) + rng.normal(0.0, 0.01) \
                + 0.9 * u**2 - 0.25 * u
            width = rng.uniform(0.022, 0.03)
            band = np.exp(-(((y - curve) / width) ** 2)) * (u > 0) * (u < 0.78)
            img += 0.09 * band * body

    # Clavicles: two shallow arcs at the top.
    for side in (-1.0, 1.0):
        u = side * x
        curve = lung_cy - lung_ry + 0.02 - 0.25 * u + 0.3 * (u - 0.35) ** 2
        img += 0.12 * np.exp(-(((y - curve) / 0.03) ** 2)) * (u > 0.05) * (u < 0.65) * body

    # Spine: a bright vertical band with vertebrae (periodic denser bodies).
    spine = np.exp(-(((x - shift[0]) / 0.075) ** 4)) * body
    vertebrae = 0.5 + 0.5 * np.cos(2 * np.pi * (y - rng.uniform(0, 1)) / rng.uniform(0.12, 0.15))
    img += spine * (0.16 + 0.08 * vertebrae)

    # Heel effect: the beam is a little stronger on one side.
    img *= 1.0 + rng.uniform(-0.08, 0.08) * y + rng.uniform(-0.05, 0.05) * x
    return np.clip(img, 0.0, 1.0)


def generate(index: int, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Pixels (uint16, 12 bits used) of synthetic image ``index`` at ``size``×``size``."""
    rng = np.random.default_rng((SEED, int(index)))
    anatomy = _anatomy(rng, ANATOMY_GRID)
    # Bicubic upsampling keeps the structure smooth (no blocky grid at any size).
    upsampled = PILImage.fromarray(anatomy.astype(np.float32), mode="F").resize(
        (size, size), PILImage.Resampling.BICUBIC
    )
    signal = np.asarray(upsampled, dtype=np.float32)
    peak = peak_value(BIT_DEPTH)
    # Film grain: quantum-like noise (std grows with sqrt(signal)), slightly correlated.
    grain = rng.standard_normal((size, size), dtype=np.float32)
    grain = gaussian_filter(grain, sigma=0.7, mode="reflect") * 1.9  # back to ~unit std
    noise_level = rng.uniform(0.006, 0.012)
    values = peak * (signal + noise_level * np.sqrt(np.clip(signal, 0.0, 1.0)) * grain)
    return np.clip(np.rint(values), 0, peak).astype(np.uint16)


class SyntheticDataset(Dataset):
    """N deterministic radiograph-like 12-bit images generated on the fly (``synthetic:N``)."""

    name = "synthetic"
    description = "built-in: synthetic:N[@SIZE] deterministic 12-bit radiograph-like images"
    group_kind = "generated image"  # drawn independently: independent by construction
    folder = None

    def __init__(self, data_root=None, argument: str | None = None):
        super().__init__(data_root, argument)
        self.count, self.size = parse_argument(argument)

    def records(self) -> list[Record]:
        width = max(6, len(str(self.count - 1)))  # ids stable up to 10**6
        return [
            Record(
                image_id=f"synth{i:0{width}d}",
                group=f"synth{i:0{width}d}",
                source=f"synthetic:{i}@{self.size}",
                meta={"index": i, "size": self.size, "body_part": "CHEST"},
            )
            for i in range(self.count)
        ]

    def load(self, record: Record) -> Image:
        index, size = int(record.meta["index"]), int(record.meta["size"])
        return Image(generate(index, size), BIT_DEPTH, record.image_id, {"body_part": "CHEST"})
