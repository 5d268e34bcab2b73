"""Fuzz every codec's decoder: random bytes, truncations and bit flips of a valid stream.

Each input must either raise an exception with a non-empty message or return a 2-D
``uint8``/``uint16`` array within the pixel budget. Native libraries may crash on
garbage, so each codec's batch runs in its own Python process (under an address-space
limit, so an allocation of a hostile size shows as ``MemoryError``): a crash or a hang
fails that codec's test, naming the input, instead of killing pytest. Inputs are
seeded, so a failure reproduces.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medbench.codecs import CodecContext, codec_names, get_codec
from medbench.codecs.learned.codec import LearnedCodec

SRC = str(Path(__file__).resolve().parents[2] / "src")
PER_KIND = 100  # random, truncated and bit-flipped inputs each

_CHILD = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from medbench.codecs import CodecContext, get_codec
    from medbench.codecs.limits import max_pixels
    from medbench.image import Image, dtype_for

    name, models, per_kind = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trusted = sys.argv[4] if len(sys.argv) > 4 else None  # a byo folder the test wrote
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    codec = get_codec(name, CodecContext(models_dir=models, device="cpu",
                                         trusted_byo=trusted))
    depths = codec.bit_depths or (8,)
    bits = 8 if 8 in depths else min(depths)
    rng = np.random.default_rng(13)
    y, x = np.mgrid[0:32, 0:32]
    pixels = ((x * 3 + y * 5) % 64 + 96 + rng.integers(0, 8, (32, 32))) << (bits - 8)
    image = Image(pixels.astype(dtype_for(bits)), bits, "fuzz")
    settings = codec.settings()
    valid = codec.encode(image, settings[len(settings) // 2])
    assert codec.decode(valid).shape == (32, 32)

    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    limit = used + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def inputs():
        for i in range(per_kind):
            yield "random", i, rng.integers(0, 256, int(rng.integers(0, 2 * len(valid)))
                                            ).astype(np.uint8).tobytes()
        for i in range(per_kind):
            cut = int(rng.integers(0, len(valid))) if i > 1 else (0, 16)[i]
            yield "truncated", i, valid[:cut]
        for i in range(per_kind):
            data = bytearray(valid)
            for bit in rng.integers(0, 8 * len(data), int(rng.integers(1, 9))):
                data[bit // 8] ^= 1 << (bit % 8)
            yield "flipped", i, bytes(data)

    bad, counts = [], {"decoded": 0, "refused": 0}
    for kind, i, data in inputs():
        print(kind, i, flush=True, file=sys.stderr)  # the last line names a crashing input
        try:
            out = codec.decode(data)
        except Exception as exc:
            counts["refused"] += 1
            if not str(exc).strip():
                bad.append(f"{kind} #{i}: {type(exc).__name__} with an empty message")
            continue
        counts["decoded"] += 1
        ok = (isinstance(out, np.ndarray) and out.ndim == 2
              and out.dtype in (np.uint8, np.uint16) and 0 < out.size <= max_pixels())
        if not ok:
            bad.append(f"{kind} #{i}: returned {type(out).__name__} "
                       f"{getattr(out, 'shape', '')} {getattr(out, 'dtype', '')}")
    print(json.dumps({"bad": bad, **counts}))
""")


def _models(name: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """The models folder of ``name``'s fuzz child and the trust it passes: learned codecs
    use the shipped models (one that ships none, such as ``ckbd``, a tiny model trained
    here); ``byo`` a tiny spec this test writes, trusted explicitly."""
    models = tmp_path / "models"
    if name != "byo":
        codec = get_codec(name, CodecContext(models_dir=models, device="cpu"))
        if isinstance(codec, LearnedCodec) and not codec.checkpoints():
            from tests.conftest import train_tiny_hyperprior

            train_tiny_hyperprior(models, epochs=1, model=name)
        return models, []
    from tests.test_codecs_byo import _write_model

    return _write_model(models), [str(models / "byo")]


@pytest.mark.parametrize("name", codec_names())
def test_decoder_survives_fuzzed_streams(name, tmp_path):
    models, trust = _models(name, tmp_path)
    context = CodecContext(models_dir=models, device="cpu",
                           trusted_byo=Path(trust[0]) if trust else None)
    reason = get_codec(name, context).unavailable_reason()
    if reason:
        pytest.skip(f"{name} is unavailable here: {reason}")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, name, str(models), str(PER_KIND), *trust],
            capture_output=True, text=True, timeout=300,
            env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired as exc:
        last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        pytest.fail(f"{name} decoder hung (300 s) on fuzz input {last}")
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        pytest.fail(f"{name} fuzz process died with code {proc.returncode} after input "
                    f"{lines[-1:]}: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bad"] == [], f"{name}: {result['bad'][:10]}"
    assert result["decoded"] + result["refused"] == 3 * PER_KIND
