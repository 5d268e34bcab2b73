"""Training of a ``jpeg2000+pf`` post-filter: JPEG 2000 decodes in, originals out.

Every train and val image is coded once with JPEG 2000 at the model's ratio (the same
codec and setting the harness runs), so the filter learns exactly the artefacts it will
see. Training minimises the MSE between filtered random crops of the decodes and the
same crops of the originals (Adam, a cosine learning-rate decay over the budget, random
flips), through the same optimisation steps as every learned model
(:func:`medbench.training.loop.train_steps`: the budget's learning-rate schedule, the
timing, which counts making a batch's crops as the end-to-end models' count fetching
theirs, and the counters; no gradient clipping). A run is always budgeted:
``--budget``/``--steps``, or ``--epochs`` passes over the train split. At the end the
filter is scored on the val split through the codec itself (real streams, the filter's
decoder path) and the gain over plain JPEG 2000 is written to ``config.json``. Runs take
minutes, so an interrupted one starts over; no milestones are kept.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medbench import __version__
from medbench.benchmark.metrics import bits_per_pixel, psnr, psnr_from_mse
from medbench.codecs import CodecContext
from medbench.codecs.learned.coding import resolve_device
from medbench.codecs.learned.postfilter import (
    CODEC,
    MAX_WIDTH,
    Jpeg2000PostFilterCodec,
    PostFilterNet,
    add_marker,
    apply_filter,
    read_filter,
    save_filter,
    stored_weights,
)
from medbench.datasets.protocols import parse_protocol
from medbench.errors import MedbenchError
from medbench.image import Image
from medbench.training.budget import Budget
from medbench.training.config import TrainConfig
from medbench.training.data import load_splits, trained_on
from medbench.training.loop import TrainResult, already_trained, budget_block, train_steps

log = logging.getLogger(__name__)

#: Default feature channels of the filter's full-resolution scale.
DEFAULT_WIDTH = 16
#: Echo a progress line this often (seconds) when bars are off.
ECHO_EVERY_S = 30.0


def train_postfilter(cfg: TrainConfig, *, progress: bool = True,
                     echo: Callable[[str], Any] = log.info,
                     command: str | None = None) -> TrainResult:
    """Train the ``jpeg2000+pf`` filter ``cfg`` describes (``cfg.ratio``); see the module.

    Returns
    -------
    TrainResult
        The finished checkpoint (``already_trained`` when the folder held it already).

    Raises
    ------
    MedbenchError
        When JPEG 2000 is unavailable, the dataset cannot be read or a split is empty.
    """
    width = cfg.width or DEFAULT_WIDTH
    if width > MAX_WIDTH:
        raise MedbenchError(f"--width {width} is above {MAX_WIDTH}, the widest {CODEC} filter "
                            f"a checkpoint may hold; the default is {DEFAULT_WIDTH}")
    folder = cfg.folder
    done = already_trained(cfg, lambda f: read_filter(f)[0], f"{CODEC} filter", echo)
    if done is not None:
        return done
    codec = Jpeg2000PostFilterCodec(CodecContext(models_dir=Path(cfg.models_dir)))
    reason = codec.j2k.unavailable_reason()
    if reason:
        raise MedbenchError(reason)
    device = resolve_device(cfg.device)
    protocol = parse_protocol(cfg.protocol, cfg.size, cfg.bit_depth)
    root = Path(cfg.data_root) if cfg.data_root else None
    splits = load_splits(cfg.dataset, root, protocol, limit=cfg.limit, progress=progress,
                         manifest_dir=Path(cfg.models_dir), seed=cfg.seed)
    setting = f"ratio={cfg.ratio:g}"
    pairs = {name: [_pair(codec, image, setting) for image in split.images]
             for name, split in splits.items()}
    train_pairs = pairs["train"]

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = PostFilterNet(width).to(device)
    # The MSE of a decent decode is ~1e-4 and its gradients far smaller: Adam's default
    # eps (1e-8) would damp the steps of the inner layers.
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, eps=1e-12)
    budget = cfg.budget_rule()
    if budget is None:  # --epochs passes over the train split
        per_epoch = math.ceil(len(train_pairs) * cfg.repeat / cfg.batch_size)
        budget = Budget(steps=int(cfg.epochs or 1) * per_epoch)
    rng = np.random.default_rng(cfg.seed)
    counters = _Counters()
    shown = time.perf_counter()
    net.train()

    def loss_of(batch: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, int]:
        loss = torch.nn.functional.mse_loss(net(batch[0]), batch[1])
        return loss, loss, len(batch[0])

    crops = (_crops(train_pairs, cfg.crop, cfg.batch_size, rng, device)
             for _ in itertools.count())
    for loss, _ in train_steps(crops, loss_of, optimizer, counters, budget=budget,
                               base_lrs=[cfg.lr]):
        if budget.done(counters.wall_s, counters.steps):
            break
        if time.perf_counter() - shown > ECHO_EVERY_S:
            shown = time.perf_counter()
            done = 100 * budget.progress(counters.wall_s, counters.steps)
            echo(f"{CODEC} {cfg.model_name}: {counters.steps} steps ({done:.0f} % of the "
                 f"budget), train PSNR {psnr_from_mse(loss, 1.0):.2f} dB")
    wall, steps, seen = counters.wall_s, counters.steps, counters.images_seen
    net.eval()
    # validate the weights as the checkpoint will hold them (float16)
    net.load_state_dict({k: v.float() for k, v in stored_weights(net).items()})
    validation = _validate(net, pairs["val"], device)
    config = {
        "name": cfg.model_name,
        "ratio": float(cfg.ratio),  # type: ignore[arg-type]
        "width": width,
        "medbench_version": __version__,
        "command": command,
        "train": {"dataset": cfg.dataset, "protocol": protocol.name,
                  "images": {name: len(p) for name, p in pairs.items()},
                  "budget": cfg.budget, "max_steps": cfg.steps, "epochs": cfg.epochs,
                  "batch_size": cfg.batch_size, "lr": cfg.lr, "crop": cfg.crop,
                  "seed": cfg.seed, "limit": cfg.limit},
        "budget": budget_block(device, wall, steps, seen),
        "validation": validation,
        "trained_on": trained_on(splits),
    }
    ckpt = save_filter(net, folder, config)
    echo(f"saved {CODEC} filter {cfg.model_name} to {folder}: validation "
         f"{validation['bpp']:.3f} bpp, {validation['psnr']:.2f} dB PSNR "
         f"({validation['gain_db']:+.2f} dB over plain JPEG 2000; {steps} steps, "
         f"{wall:.0f} s on {device.type})")
    return TrainResult(ckpt)


@dataclass
class _Counters:
    steps: int = 0
    images_seen: int = 0
    wall_s: float = 0.0


def _pair(codec: Jpeg2000PostFilterCodec, image: Image,
          setting: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(JPEG 2000 decode, original, stream bytes, bit depth) of one image."""
    stream = add_marker(codec.j2k.encode(image, setting), "0" * 16)  # as the codec sends it
    return codec.j2k.decode(stream), image.pixels, len(stream), image.bit_depth


def _crops(pairs, crop: int, batch: int, rng: np.random.Generator,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random, randomly flipped crops of (decode, original) on ``[0, 1]``."""
    side = min(crop, *(min(p[0].shape) for p in pairs))
    xs, ys = [], []
    for k in rng.integers(len(pairs), size=batch):
        decoded, original, _, bit_depth = pairs[k]
        top = int(rng.integers(decoded.shape[0] - side + 1))
        left = int(rng.integers(decoded.shape[1] - side + 1))
        window = (slice(top, top + side), slice(left, left + side))
        x, y = decoded[window], original[window]
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        if rng.random() < 0.5:
            x, y = x[::-1], y[::-1]
        peak = float(2**bit_depth - 1)
        xs.append(np.ascontiguousarray(x, dtype=np.float32) / peak)
        ys.append(np.ascontiguousarray(y, dtype=np.float32) / peak)
    return (torch.from_numpy(np.stack(xs))[:, None].to(device),
            torch.from_numpy(np.stack(ys))[:, None].to(device))


def _validate(net: PostFilterNet, pairs, device: torch.device) -> dict[str, float]:
    """Mean PSNR of the val split with and without the filter, and its real bpp."""
    with_pf, plain, bpp = [], [], []
    for decoded, original, n_bytes, bit_depth in pairs:
        peak = float(2**bit_depth - 1)
        filtered = apply_filter(net, decoded, bit_depth, device)  # as the codec decodes
        with_pf.append(psnr(original, filtered, data_range=peak))
        plain.append(psnr(original, decoded, data_range=peak))
        bpp.append(bits_per_pixel(n_bytes, *original.shape))
    out = {"bpp": float(np.mean(bpp)), "psnr": float(np.mean(with_pf)),
           "psnr_jpeg2000": float(np.mean(plain))}
    out["gain_db"] = out["psnr"] - out["psnr_jpeg2000"]
    return out
