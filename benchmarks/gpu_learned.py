"""DCAE on a GPU: training speed, coding throughput at batch 1 and 64, cross-device exactness.

A self-contained script (not a pytest suite) for a machine with a CUDA GPU::

    pip install -e . --no-deps          # medbench itself (torch, constriction, ... present)
    python benchmarks/gpu_learned.py --dataset sample --epochs 3 --json out.json
    python benchmarks/gpu_learned.py --dataset folder:/data/cxr --epochs 3
    python benchmarks/gpu_learned.py --smoke          # tiny CPU run, checks the script

It trains ``dcae`` with ``medbench train``'s own code for a few epochs on 256² images
(the ``paper`` protocol) and prints:

1. training images/s: the whole run (train + validation per epoch, from the model's
   recorded budget), and pure optimizer steps on resident 256² batches at each
   ``--train-batches`` size;
2. encode and decode images/s at batch 1 and 64 (``--code-batches``), end to end (network,
   transfer, ANS on the CPU), with the share spent in entropy coding;
3. exactness across devices: a stream encoded on the GPU decodes on the CPU (in this
   process and in a fresh ``--device cpu`` process) to the very latents the GPU encoder
   produced, and a CPU-encoded stream decodes on the GPU to its latents. Pixels of a GPU
   and a CPU decode may differ by float rounding; the largest difference is reported.

Everything is timed after a warm-up, with ``torch.cuda.synchronize()`` around each
measurement. The exit status is 1 when an exactness check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medbench.codecs.learned import coding, entropy
from medbench.codecs.learned.checkpoint import read_checkpoint
from medbench.datasets.protocols import parse_protocol
from medbench.training.config import TrainConfig
from medbench.training.data import load_splits
from medbench.training.loop import _step_losses, train


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` after one warm-up call."""
    fn()
    _sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def step_throughput(model, device, batch: int, size: int, steps: int) -> float:
    """Images/s of optimizer steps on a resident random batch (no data loading)."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, 1, size, size, device=device, generator=gen)

    def run():
        for _ in range(steps):
            loss, _, _ = _step_losses(model, x, 1e-4, True, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return batch * steps / _timed(run, device, repeats=3)


def coding_throughput(model, model_id, images, device, batch: int, repeats: int) -> dict:
    """Encode and decode images/s for ``batch`` images per call, and the ANS share."""
    chunk = (images * (batch // len(images) + 1))[:batch]
    streams = coding.encode_images(model, model_id, chunk, device)
    enc = _timed(lambda: coding.encode_images(model, model_id, chunk, device), device, repeats)
    dec = _timed(lambda: coding.decode_streams(model, streams, device), device, repeats)
    latents = [coding.stream_latents(model, s)[1] for s in streams]
    ans_enc = _timed(lambda: [entropy.encode_latents(y, model.tables) for y in latents],
                     device, repeats)
    shape = latents[0].shape[1:]
    payloads = [s[20:] for s in streams]
    ans_dec = _timed(lambda: [entropy.decode_latents(p, model.tables, shape)
                              for p in payloads], device, repeats)
    bpp = float(np.mean([8 * len(s) / images[0].pixels.size for s in streams]))
    return {"batch": batch, "encode_img_s": batch / enc, "decode_img_s": batch / dec,
            "round_trip_img_s": batch / (enc + dec), "ans_share_encode": ans_enc / enc,
            "ans_share_decode": ans_dec / dec, "bpp": bpp}


def exactness(ckpt, gpu, images, tmp: Path) -> dict:
    """Cross-device decoding of the same streams: the integer latents must agree."""
    cpu = torch.device("cpu")
    on_gpu, on_cpu = ckpt.load(gpu), ckpt.load(cpu)
    image = images[0]
    out: dict = {}
    # GPU encode -> CPU decode (here and in a fresh process)
    stream = coding.encode_images(on_gpu, ckpt.model_id, [image], gpu)[0]
    encoded = coding.image_latents(on_gpu, [image], gpu)[0]
    _, here = coding.stream_latents(on_cpu, stream)
    out["gpu_encode_cpu_decode_latents_equal"] = bool(np.array_equal(here, encoded))
    path = tmp / "stream.bin"
    path.write_bytes(stream)
    script = (
        "import sys, numpy as np, pathlib\n"
        "from medbench.codecs.learned.checkpoint import read_checkpoint\n"
        "from medbench.codecs.learned.coding import stream_latents, decode_streams\n"
        "import torch\n"
        f"m = read_checkpoint(pathlib.Path({str(ckpt.folder)!r})).load('cpu')\n"
        f"data = pathlib.Path({str(path)!r}).read_bytes()\n"
        f"np.save({str(tmp / 'lat.npy')!r}, stream_latents(m, data)[1])\n"
        f"np.save({str(tmp / 'pix.npy')!r}, decode_streams(m, [data], torch.device('cpu'))[0])\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=300)
    out["gpu_encode_fresh_cpu_process_latents_equal"] = bool(
        np.array_equal(np.load(tmp / "lat.npy"), encoded))
    gpu_pixels = coding.decode_streams(on_gpu, [stream], gpu)[0]
    cpu_pixels = np.load(tmp / "pix.npy")
    out["gpu_vs_cpu_decoded_max_abs_diff"] = int(
        np.abs(gpu_pixels.astype(np.int64) - cpu_pixels.astype(np.int64)).max())
    # CPU encode -> GPU decode
    stream_cpu = coding.encode_images(on_cpu, ckpt.model_id, [image], cpu)[0]
    encoded_cpu = coding.image_latents(on_cpu, [image], cpu)[0]
    _, there = coding.stream_latents(on_gpu, stream_cpu)
    out["cpu_encode_gpu_decode_latents_equal"] = bool(np.array_equal(there, encoded_cpu))
    out["gpu_vs_cpu_encoder_latents_differ_at"] = int((encoded != encoded_cpu).sum())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="sample", help="sample, folder:PATH, jsrt, ...")
    parser.add_argument("--data-root", default=os.environ.get("MEDBENCH_DATA"))
    parser.add_argument("--size", type=int, default=256, help="square image side (paper: 256)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4, help="training batch (paper: 4)")
    parser.add_argument("--repeat", type=int, default=1, help="crops per image per epoch")
    parser.add_argument("--lmbda", type=float, default=1e-4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="images per split")
    parser.add_argument("--train-batches", default="4,64")
    parser.add_argument("--code-batches", default="1,64")
    parser.add_argument("--steps", type=int, default=20, help="steps per step-speed sample")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--models", default=None, help="keep the model here (default: temp)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny CPU settings: checks the script, measures nothing useful")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.epochs, args.limit, args.steps = 64, 1, 4, 2
        args.train_batches, args.code_batches, args.width = "2", "1,4", 8
        args.device = "cpu" if args.device == "auto" else args.device
    device = coding.resolve_device(args.device)
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                    else "cpu", "torch": torch.__version__, "args": vars(args)}
    print(f"device: {report['device']}  torch {torch.__version__}", flush=True)

    with tempfile.TemporaryDirectory(prefix="medbench-gpu-") as tmpdir:
        tmp = Path(tmpdir)
        models = Path(args.models) if args.models else tmp / "models"
        cfg = TrainConfig(arch="dcae", dataset=args.dataset, data_root=args.data_root,
                          size=str(args.size), epochs=args.epochs,
                          batch_size=args.batch_size, objective="rd", lmbda=args.lmbda,
                          width=args.width, crop=args.size, repeat=args.repeat,
                          limit=args.limit, patience=args.epochs + 1,
                          device=device.type, models_dir=str(models),
                          name=f"gpu-bench-{int(time.time())}")
        result = train(cfg, progress=True, echo=lambda m: print(m, flush=True))
        ckpt = read_checkpoint(result.checkpoint.folder)
        budget = ckpt.config["budget"]
        report["training"] = {**budget, "images_per_s": budget["images_seen"] / budget["wall_s"],
                              "validation": ckpt.config["validation"]}
        print(f"training: {budget['images_seen']} images in {budget['wall_s']:.1f} s "
              f"(train + val) = {report['training']['images_per_s']:.1f} images/s; "
              f"val {ckpt.config['validation']['bpp']:.3f} bpp, "
              f"{ckpt.config['validation']['psnr']:.2f} dB", flush=True)

        model = ckpt.load(device)
        report["train_steps"] = []
        for b in (int(v) for v in args.train_batches.split(",")):
            speed = step_throughput(ckpt.load(device), device, b, args.size, args.steps)
            report["train_steps"].append({"batch": b, "images_per_s": speed})
            print(f"train steps at batch {b:3d}: {speed:8.1f} images/s", flush=True)

        protocol = parse_protocol("paper", str(args.size), None)
        root = Path(args.data_root) if args.data_root else None
        images = load_splits(args.dataset, root, protocol, ("val",), limit=8,
                             manifest_dir=models)["val"].images
        model.eval()
        report["coding"] = []
        for b in (int(v) for v in args.code_batches.split(",")):
            row = coding_throughput(model, ckpt.model_id, images, device, b,
                                    repeats=3 if b > 1 else 10)
            report["coding"].append(row)
            print(f"coding at batch {b:3d}: encode {row['encode_img_s']:8.1f} img/s "
                  f"(ANS {100 * row['ans_share_encode']:.0f} %), decode "
                  f"{row['decode_img_s']:8.1f} img/s (ANS {100 * row['ans_share_decode']:.0f}"
                  f" %), round trip {row['round_trip_img_s']:8.1f} img/s, "
                  f"{row['bpp']:.3f} bpp", flush=True)

        checks = exactness(ckpt, device, images, tmp)
        report["exactness"] = checks
        for key, value in checks.items():
            print(f"{key}: {value}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    ok = all(v for k, v in checks.items() if k.endswith("_equal"))
    print("cross-device exactness: " + ("OK" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
