"""JPEG 2000 through glymur and through imagecodecs' OpenJPEG: one coder, one RD curve.

imagecodecs' ``jpeg2k_encode`` has no rate target: its ``level`` is OpenJPEG's
fixed-quality mode, a PSNR target in dB. Its point at ``level = PSNR(glymur at ratio R)``
lands off glymur's (e.g. -0.3 dB and -9 % rate on a 10-bit tibia tile at ratio 10),
because that mode truncates where OpenJPEG's *estimated* distortion meets the target.
So we compare curves: sweep imagecodecs' target around glymur's PSNR and interpolate
(PSNR against log rate). Both use the same OpenJPEG (2.5.4 in Pillow's and imagecodecs'
wheels), code-block size, resolution count and precision; lossless streams are the same
size to the byte.
"""

from __future__ import annotations

import numpy as np
import pytest

from medbench.benchmark.metrics import psnr
from medbench.codecs import get_codec
from medbench.codecs.base import LOSSLESS
from medbench.image import Image

imagecodecs = pytest.importorskip("imagecodecs")


def _resolutions(image: Image) -> int:
    # what medbench.codecs.jpeg2000 asks glymur for
    return max(1, min(6, int(np.log2(min(image.height, image.width))) - 2))


def _imagecodecs_j2k(image: Image, **kwargs) -> bytes:
    return imagecodecs.jpeg2k_encode(
        image.pixels,
        codecformat="J2K",
        bitspersample=image.bit_depth,
        resolutions=_resolutions(image),
        **kwargs,
    )


def _bpp_psnr(image: Image, data: bytes, decoded: np.ndarray) -> tuple[float, float]:
    return 8 * len(data) / image.pixels.size, psnr(image.pixels, decoded, data_range=image.peak)


@pytest.fixture(scope="module")
def tibia() -> Image:
    from medbench.datasets import get_dataset

    dataset = get_dataset("sample")
    record = [r for r in dataset.records() if r.image_id.startswith("rg3")][2]
    return dataset.load(record)  # a real 10-bit CR tile, 320 x 320


@pytest.fixture(params=["synthetic12", "tibia10"])
def image(request, make_image, tibia) -> Image:
    return make_image(192, 12, seed=11) if request.param == "synthetic12" else tibia


def test_lossless_streams_are_identical_in_size(image):
    glymur_bytes = get_codec("jpeg2000").encode(image, LOSSLESS)
    ours = _imagecodecs_j2k(image, level=0, reversible=True)
    assert len(ours) == len(glymur_bytes)
    np.testing.assert_array_equal(imagecodecs.jpeg2k_decode(ours), image.pixels)


@pytest.mark.parametrize("ratio", [20, 5])
def test_same_rate_same_psnr(image, ratio):
    codec = get_codec("jpeg2000")
    data = codec.encode(image, f"ratio={ratio}")
    rate, quality = _bpp_psnr(image, data, codec.decode(data))
    curve = []
    for target in np.arange(quality - 2.0, quality + 2.01, 0.5):
        other = _imagecodecs_j2k(image, level=float(target), reversible=False)
        curve.append(_bpp_psnr(image, other, imagecodecs.jpeg2k_decode(other)))
    curve.sort()
    rates = np.log([c[0] for c in curve])
    psnrs = np.array([c[1] for c in curve])
    assert rates[0] < np.log(rate) < rates[-1], "the sweep must bracket glymur's rate"
    assert abs(np.interp(np.log(rate), rates, psnrs) - quality) < 0.1
    order = np.argsort(psnrs)
    rate_at_quality = np.exp(np.interp(quality, psnrs[order], rates[order]))
    assert abs(rate_at_quality / rate - 1) < 0.03
