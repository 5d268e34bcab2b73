"""Scores of a model on the validation split: during training, and of the finished model.

PSNR comes from :func:`medbench.benchmark.metrics.psnr` at each image's native peak
(``2**bit_depth - 1``), as in a run's rows: an image decoded exactly has an infinite
PSNR, and a mean PSNR is taken over the images with a finite one.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from medbench.benchmark.metrics import bits_per_pixel, psnr
from medbench.codecs.learned.checkpoint import CompressionModel
from medbench.codecs.learned.coding import decode_streams, encode_images
from medbench.codecs.learned.models import pad_to_stride
from medbench.image import peak_value
from medbench.training.data import SplitImages


def mean_finite(values: list[float]) -> float:
    """Mean of the finite values (an exact image's ``inf`` PSNR would swamp it);
    ``inf`` when every image was exact, NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        return float(np.mean(finite))
    return math.inf if values else math.nan


@torch.no_grad()
def evaluate(model: CompressionModel, split: SplitImages, device: torch.device,
             lmbda: float, chunk: int = 8) -> dict[str, float]:
    """Validation with rounded latents: the loss, MSE, mean PSNR and estimated bpp.

    ``mse`` and ``loss`` are on the ``[0, 1]`` scale the model trains on (``loss`` adds
    ``lmbda`` times the estimated bpp when ``lmbda`` is set); ``psnr`` is the mean over
    images with a finite PSNR (see :func:`mean_finite`) at each image's native peak, of
    the reconstruction rounded to the image's bit depth (as a decoder writes it).
    """
    model.eval()
    psnrs, mses, bpps = [], [], []
    groups: dict[tuple, list] = {}
    for image in split.images:  # same size and depth go through the net together
        groups.setdefault((*image.pixels.shape, image.bit_depth), []).append(image)
    for (h, w, bits), images in groups.items():
        peak = float(peak_value(bits))
        for start in range(0, len(images), chunk):
            stack = np.stack([im.pixels for im in images[start : start + chunk]])
            x = torch.from_numpy(stack.astype(np.float32) / peak).to(device).unsqueeze(1)
            decoded, bits = model.estimate(pad_to_stride(x, model.stride)[0])
            levels = torch.round(decoded[..., :h, :w].clamp(0, 1) * peak)
            x_hat = levels / peak  # as decoded at the image's bit depth
            err = ((x_hat - x) ** 2).flatten(1).mean(dim=1).double().cpu().numpy()
            mses.extend(err.tolist())
            decoded = levels[:, 0].cpu().numpy()
            psnrs.extend(psnr(ref, dec, data_range=peak) for ref, dec in zip(stack, decoded))
            bpps.extend((bits.cpu().numpy() / (h * w)).tolist())
    model.train()
    mse, est_bpp = float(np.mean(mses)), float(np.mean(bpps))
    loss = mse + lmbda * est_bpp if lmbda else mse
    return {"loss": loss, "mse": mse, "psnr": mean_finite(psnrs), "est_bpp": est_bpp}


def measure_split(model: CompressionModel, split: SplitImages,
                  device: torch.device) -> dict[str, float]:
    """Real bitstreams of a split: mean bpp from bytes and mean PSNR of the decoded.

    The PSNR mean is over images with a finite PSNR (see :func:`mean_finite`).
    """
    model_id = "00" * 8  # the id is not known before saving; it does not change the size
    bpps, psnrs = [], []
    for image in split.images:
        data = encode_images(model, model_id, [image], device)[0]
        decoded = decode_streams(model, [data], device)[0]
        psnrs.append(psnr(image.pixels, decoded, data_range=peak_value(image.bit_depth)))
        bpps.append(bits_per_pixel(len(data), image.height, image.width))
    return {"bpp": float(np.mean(bpps)), "psnr": mean_finite(psnrs)}
