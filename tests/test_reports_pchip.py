"""Each image's value at a rate, read without building an interpolator per image, is the
value SciPy's PCHIP gives (bit for bit), image by image as the per-image loop gave it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from medbench.reports.curves import envelope, pchip_at, values_by_image


def test_pchip_at_is_scipys_pchip_bit_for_bit():
    rng = np.random.default_rng(0)
    checked = 0
    for i in range(3000):
        x = np.unique(rng.uniform(-2, 1, rng.integers(2, 12)))
        if len(x) < 2:
            continue
        y = np.cumsum(rng.uniform(0.01, 5, len(x))) if i % 2 else rng.normal(0, 3, len(x))
        at = rng.uniform(x[0], x[-1]) if i % 5 else x[rng.integers(0, len(x))]
        assert pchip_at(x, y, at) == float(PchipInterpolator(x, y)(at))
        checked += 1
    assert checked > 2500


def test_values_by_image_are_the_per_image_loops():
    rng = np.random.default_rng(1)
    rows = pd.DataFrame({
        "image_id": np.repeat([f"im{i}" for i in range(200)], 6),
        "bpp": rng.uniform(0.02, 2.0, 1200),
        "psnr": rng.uniform(25, 50, 1200),
    })
    rows.loc[rows.sample(40, random_state=2).index, "psnr"] = np.nan  # failed decodes
    rows = rows.sample(frac=1.0, random_state=3)  # an image's rows need not be together
    for bpp in (0.05, 0.3, 1.0, 1.9, 5.0):
        got = values_by_image(rows["image_id"], rows["bpp"], rows["psnr"], bpp)
        want = {}  # the loop it replaced, with SciPy's interpolator per image
        for image, own in rows.groupby("image_id", sort=True):
            rate, value = envelope(own["bpp"].to_numpy(float), own["psnr"].to_numpy(float))
            inside = len(rate) and rate[0] * (1 - 1e-9) <= bpp <= rate[-1] * (1 + 1e-9)
            want[str(image)] = (math.nan if not inside else float(value[0]) if len(rate) == 1
                                else float(PchipInterpolator(np.log10(rate), value)(
                                    np.log10(np.clip(bpp, rate[0], rate[-1])))))
        want = pd.Series(want, dtype=float)
        assert list(got.index) == list(want.index)
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    assert got.isna().all()  # 5 bpp: beyond every image's rates
