"""``hyperprior`` streams encoded on a GPU decode on the CPU identically (the stream is the
contract). A self-contained script (not a pytest suite)::

    python benchmarks/gpu_hyperprior.py [--models DIR] [--setting NAME] [--json out.json]

It uses the first ``hyperprior`` model in ``--models`` (or trains a tiny one for a few
steps on ``sample`` when there is none), encodes radiograph-like images at 8, 12 and 16
bits on ``cuda`` and on the CPU, and checks, for each image:

1. the GPU stream decodes on the CPU in this process, and in a fresh ``--device cpu``
   process with another thread count, to the same symbols and means the GPU encoder
   derived (``stream_latents``), and to the same pixels in both CPU decodes;
2. the CPU stream decodes on the GPU to its symbols.

Pixels of a GPU and a CPU decode may differ by float rounding in the synthesis; the
largest difference is reported. Without CUDA it prints why and exits 0 (skipped). The
exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)

from medbench.codecs import CodecContext  # noqa: E402
from medbench.codecs.learned.codec import HyperpriorCodec  # noqa: E402
from medbench.codecs.learned.hyperprior import stream_latents  # noqa: E402
from medbench.image import Image, dtype_for  # noqa: E402

_CHILD = """
import sys, torch
sys.path.insert(0, sys.argv[4])
torch.set_num_threads(int(sys.argv[3]))
from medbench.codecs import CodecContext
from medbench.codecs.learned.codec import HyperpriorCodec
codec = HyperpriorCodec(CodecContext(models_dir=sys.argv[1], device="cpu"))
sys.stdout.write(codec.decode(open(sys.argv[2], "rb").read()).tobytes().hex())
"""


def _image(bits: int, size: int, seed: int) -> Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = 0.5 + 0.3 * np.sin(6 * x) * np.cos(4 * y) + 0.05 * rng.standard_normal((size, size))
    pixels = np.clip(base, 0, 1) * (2**bits - 1)
    return Image(np.round(pixels).astype(dtype_for(bits)), bits, f"img{bits}")


def _tiny_model(models: Path) -> str:
    from medbench.training.config import TrainConfig
    from medbench.training.loop import train

    cfg = TrainConfig(arch="hyperprior", dataset="sample", size="128", crop=128, limit=4,
                      width=16, latent=16, epochs=2, batch_size=2, objective="rd",
                      lmbda=0.01, models_dir=str(models), device="auto", name="gpu-check")
    return train(cfg, progress=False).checkpoint.name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None)
    parser.add_argument("--setting", default=None)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("skipped: torch sees no CUDA GPU here")
        return 0
    models = Path(args.models or tempfile.mkdtemp(prefix="hp-models-"))
    gpu = HyperpriorCodec(CodecContext(models_dir=models, device="cuda"))
    setting = args.setting or (gpu.settings()[0] if gpu.settings() else _tiny_model(models))
    gpu.forget_models()
    cpu = HyperpriorCodec(CodecContext(models_dir=models, device="cpu"))
    results, ok = [], True
    for bits in (8, 12, 16):
        image = _image(bits, args.size, bits)
        g_stream = gpu.encode(image, setting)
        c_stream = cpu.encode(image, setting)
        _, z_g, q_g, m_g = stream_latents(gpu.model(setting), g_stream)
        _, z_c, q_c, m_c = stream_latents(cpu.model(setting), g_stream)
        same_latents = (np.array_equal(z_g, z_c) and np.array_equal(q_g, q_c)
                        and np.array_equal(m_g, m_c))
        on_cpu = cpu.decode(g_stream)
        with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as handle:
            handle.write(g_stream)
        fresh = subprocess.run([sys.executable, "-c", _CHILD, str(models), handle.name, "2",
                                SRC], capture_output=True, text=True, timeout=600)
        fresh_same = fresh.returncode == 0 and fresh.stdout == on_cpu.tobytes().hex()
        back = gpu.decode(c_stream)  # a CPU stream decodes on the GPU
        cpu_back = cpu.decode(c_stream)
        diff = int(np.abs(gpu.decode(g_stream).astype(int) - on_cpu.astype(int)).max())
        row = {"bits": bits, "bytes_gpu": len(g_stream), "bytes_cpu": len(c_stream),
               "streams_equal": g_stream == c_stream, "gpu_stream_cpu_latents": same_latents,
               "fresh_process_identical": fresh_same,
               "cpu_stream_gpu_decodes": back.shape == cpu_back.shape,
               "max_pixel_diff_gpu_vs_cpu_decode": diff}
        ok &= same_latents and fresh_same and back.shape == cpu_back.shape
        results.append(row)
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
