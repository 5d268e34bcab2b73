"""Learned coding in the harness at batch 1 and batch N against the bare network's rate.

A self-contained script (not a pytest suite), meant for a machine with a CUDA GPU; on a
CPU it runs the same measurements and says so::

    python benchmarks/gpu_batched_coding.py                      # dcae, 256 images of 256²
    python benchmarks/gpu_batched_coding.py --arch cnn --batch 64 --json out.json
    python benchmarks/gpu_batched_coding.py --images 8 --size 64 --batch 4   # quick check

On synthetic 8-bit radiograph-like images (the ``paper`` size by default) it prints, in
one run, images per second of:

1. ``bare``: the network alone at ``--batch``: analysis, rounding, synthesis on images
   already on the device (no transfers, no entropy coding, no bytes);
2. ``codec_b1``/``codec_bN``: bytes to bytes as a harness cell times them
   (``encode_batch`` → bytes → ``decode_batch``, ANS included) at batch 1 and N;
3. ``cells_b1``/``cells_bN``: whole cells through
   :func:`medbench.benchmark.cells.code_units` (read the prepared image from the cache,
   code, measure PSNR/SSIM/MS-SSIM, hash) at batch 1 and N, as ``run --learned-batch``;

4. ``codec_bN_wK``: bytes to bytes at batch N in ``--workers`` K processes sharing the
   device, as ``run --workers K --learned-batch N`` codes (entropy coding runs on the
   CPU and holds Python's lock, so more cores need more processes, not threads);

each with its ratio to ``bare`` (the goal on a GPU is >= 75 %), the share of
entropy coding (ANS, on the CPU) in ``codec_bN``, and whether every image's bytes and
decoded pixels are identical at batch 1 and batch N. The model is the first (or
``--setting``) of ``--arch`` in ``--models``, else the shipped one. Exit status 1 when
the bytes differ.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from medbench.benchmark.cells import Job, code_units  # noqa: E402
from medbench.benchmark.rows import WorkUnit  # noqa: E402
from medbench.codecs import CodecContext, get_codec  # noqa: E402
from medbench.codecs.learned import coding, entropy  # noqa: E402
from medbench.codecs.learned.compression import CompressionModel  # noqa: E402
from medbench.codecs.learned.models import pad_to_stride  # noqa: E402
from medbench.datasets import get_dataset  # noqa: E402
from medbench.datasets.protocols import parse_protocol  # noqa: E402
from medbench.image import Image  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images(n: int, size: int, first: int = 0) -> list[Image]:
    """Radiograph-like 8-bit test pictures (smooth body, ribs, noise), one seed each."""
    out = []
    y, x = np.mgrid[0:size, 0:size] / size
    body = np.exp(-(((x - 0.5) / 0.35) ** 2 + ((y - 0.5) / 0.45) ** 2))
    for i in range(first, first + n):
        rng = np.random.default_rng(i)
        ribs = 0.15 * np.sin((38 + i % 5) * y + 3 * np.sin(6 * x)) * body
        base = 0.15 + 0.6 * body + ribs + rng.normal(0, 0.01, body.shape)
        pixels = np.clip(np.rint(base * 255), 0, 255).astype(np.uint8)
        out.append(Image(pixels, 8, f"img{i:04d}"))
    return out


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _rate(fn, images: int, device: torch.device, rounds: int) -> float:
    """Images/s of ``fn()`` (which handles ``images`` images): best of ``rounds`` after a
    warm-up call."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return images / best


@torch.no_grad()
def bare_rate(model, images: list[Image], batch: int, device: torch.device,
              rounds: int) -> float:
    """Images/s of the network alone on device-resident batches."""
    stacks = []
    for chunk in _chunks(images, batch):
        x = torch.from_numpy(np.stack([im.pixels for im in chunk]).astype(np.float32))
        x, _, _ = pad_to_stride(x.to(device).unsqueeze(1) / 255.0, model.stride)
        stacks.append(x)

    def forward():
        for x in stacks:
            y = torch.round(model.net.encode(x))
            model.net.decode(y)

    return _rate(forward, len(images), device, rounds)


def codec_pass(codec, setting: str, images: list[Image], batch: int):
    """Streams and pixels of every image, coded ``batch`` images per call."""
    streams, pixels = [], []
    for chunk in _chunks(images, batch):
        data = codec.encode_batch(chunk, setting)
        streams += data
        pixels += codec.decode_batch(data)
    return streams, pixels


def ans_seconds(model, streams: list[bytes]) -> float:
    """Seconds the entropy coding of ``streams`` takes (encode and decode), or NaN for a
    model whose coding is not one factorized table set (hyperprior, ckbd)."""
    if type(model).compress is not CompressionModel.compress:  # not factorized
        return float("nan")
    decoded = [coding.stream_latents(model, data) for data in streams]
    start = time.perf_counter()
    payloads = [entropy.encode_latents(y, model.tables) for _, y in decoded]
    for (header, _), payload in zip(decoded, payloads):
        entropy.decode_latents(payload, model.tables, header.latent_shape(model.stride))
    return time.perf_counter() - start


def cells_rate(codec, setting: str, folder: Path, batch: int, rounds: int,
               cache: str) -> tuple[float, list]:
    """Images/s of whole cells through ``code_units`` at ``batch``, and the rows."""
    spec = f"folder:{folder}"
    dataset = get_dataset(spec)
    units = [WorkUnit(spec, record, ((codec.name, setting),)) for record in dataset.records()]
    job = Job(None, parse_protocol("native"), 0, str(codec.context.models_dir),
              codec.context.device, cache, "bench", {}, learned_batch=batch)
    codecs = {codec.name: codec}
    rows: list = []

    def everything():
        rows.clear()
        for task in _chunks(units, batch):
            rows.extend(code_units(job, task, {spec: dataset}, codecs))

    rate = _rate(everything, len(units), codec.device, rounds)
    return rate, sorted(rows, key=lambda r: r.image_id)


_BARRIER = None


def _start_worker(barrier, threads: int) -> None:
    global _BARRIER
    _BARRIER = barrier
    torch.set_num_threads(threads)


def _worker(arch: str, models: str, device: str, setting: str, size: int, first: int,
            count: int, batch: int) -> tuple[float, float]:
    """Wall-clock start and end of one worker's bytes→bytes pass over its share."""
    codec = get_codec(arch, CodecContext(models_dir=Path(models), device=device))
    images = _images(count, size, first)
    codec_pass(codec, setting, images, batch)  # warm-up (loads the model, CUDA context)
    _sync(codec.device)
    _BARRIER.wait()
    start = time.time()
    codec_pass(codec, setting, images, batch)
    _sync(codec.device)
    return start, time.time()


def workers_rate(args, setting: str, n: int, workers: int) -> float:
    """Images/s of ``workers`` processes each coding its share at ``--batch``."""
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    threads = max(1, (os.cpu_count() or 1) // workers)
    share = -(-n // workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(barrier, threads)) as pool:
        spans = list(pool.map(_worker, *zip(*[
            (args.arch, args.models, args.device, setting, args.size, first,
             min(share, n - first), args.batch) for first in range(0, n, share)])))
    return n / (max(end for _, end in spans) - min(start for start, _ in spans))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="dcae", help="ae, cnn, dcae or hyperprior")
    parser.add_argument("--models", default="medbench-models")
    parser.add_argument("--setting", default=None)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--images", type=int, default=None,
                        help="default: 256 on a GPU, 16 on the CPU")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes (best kept)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes for codec_bN_wK; default: min(8, cores) on a GPU, "
                             "none on the CPU")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    codec = get_codec(args.arch, CodecContext(models_dir=Path(args.models),
                                              device=args.device))
    reason = codec.unavailable_reason()
    if reason:
        print(f"error: {reason}")
        return 2
    device = codec.device
    if device.type != "cuda":
        print("note: no CUDA GPU here (or --device cpu): measuring on the CPU, where a "
              "batch saves little; the goal is for a GPU")
    n = args.images or (256 if device.type == "cuda" else 16)
    setting = args.setting or codec.settings()[0]
    model = codec.model(setting)
    images = _images(n, args.size)
    result = {"arch": args.arch, "setting": setting, "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "images": n, "size": args.size, "batch": args.batch,
              "torch_threads": torch.get_num_threads()}

    result["bare"] = bare_rate(model, images, args.batch, device, args.rounds)
    one, one_pixels = codec_pass(codec, setting, images, 1)
    many, many_pixels = codec_pass(codec, setting, images, args.batch)
    for batch, key in ((1, "codec_b1"), (args.batch, "codec_bN")):
        result[key] = _rate(lambda b=batch: codec_pass(codec, setting, images, b), n,
                            device, args.rounds)
    workers = args.workers if args.workers is not None else (
        min(8, os.cpu_count() or 1) if device.type == "cuda" else 0)
    if workers > 0 and n >= workers:
        result["workers"] = workers
        result["codec_bN_wK"] = workers_rate(args, setting, n, workers)
    ans = ans_seconds(model, many)
    result["ans_share_codec_bN"] = ans / (n / result["codec_bN"])
    result["same_bytes"] = sum(a == b for a, b in zip(one, many))
    result["same_pixels"] = sum(np.array_equal(a, b) for a, b in zip(one_pixels, many_pixels))

    with tempfile.TemporaryDirectory(prefix="batched-coding-") as tmp:
        from PIL import Image as PILImage

        folder = Path(tmp) / "images"
        folder.mkdir()
        for image in images:
            PILImage.fromarray(image.pixels).save(folder / f"{image.image_id}.png")
        cache = str(Path(tmp) / "cache")
        result["cells_b1"], rows_one = cells_rate(codec, setting, folder, 1, args.rounds,
                                                  cache)
        result["cells_bN"], rows_many = cells_rate(codec, setting, folder, args.batch,
                                                   args.rounds, cache)
    result["cells_same_sha256"] = sum(a.stream_sha256 == b.stream_sha256
                                      for a, b in zip(rows_one, rows_many))
    result["cells_errors"] = sum(r.status != "ok" for r in rows_one + rows_many)
    result["cells_bN_batch_sizes"] = sorted({r.batch_size for r in rows_many})

    bare = result["bare"]
    print(f"{args.arch} {setting} on {device} ({result['gpu'] or 'CPU'}), {n} images of "
          f"{args.size}², batch {args.batch}")
    print(f"  bare network forward       {bare:10.1f} images/s")
    for key, what in (("codec_b1", "harness bytes→bytes, b=1"),
                      ("codec_bN", f"harness bytes→bytes, b={args.batch}"),
                      ("codec_bN_wK", f"  same, {workers} processes"),
                      ("cells_b1", "whole cells (+metrics), b=1"),
                      ("cells_bN", f"whole cells (+metrics), b={args.batch}")):
        if key not in result:
            continue
        print(f"  {what:27s}{result[key]:10.1f} images/s  {100 * result[key] / bare:5.1f} % "
              "of bare")
    share = result["ans_share_codec_bN"]
    print(f"  entropy coding (ANS) share of bytes→bytes at b={args.batch}: "
          + ("not measured for hyperprior (two table sets)" if math.isnan(share)
             else f"{100 * share:.0f} %"))
    identical = result["same_bytes"] == n and result["cells_same_sha256"] == n
    print(f"  identical bytes b=1 vs b={args.batch}: {result['same_bytes']}/{n} images "
          f"(cells: {result['cells_same_sha256']}/{n}); identical pixels "
          f"{result['same_pixels']}/{n}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if identical and not result["cells_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
