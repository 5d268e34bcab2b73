"""Hostile ``hyperprior`` and ``byo`` streams: fuzzed, from another model, truncated, or
declaring absurd sizes, each refused with a clear error before anything of the declared
size is allocated."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from medbench.codecs import CodecContext
from medbench.codecs.learned.bitstream import BitstreamError
from medbench.codecs.learned.checkpoint import new_model, save_checkpoint
from medbench.codecs.learned.codec import AeCodec, HyperpriorCodec
from medbench.codecs.limits import DeclaredSizeError
from tests.hostile.test_fuzz_decoders import _CHILD
from tests.test_codecs_byo import _write_model

SRC = str(Path(__file__).resolve().parents[2] / "src")
CLASSES = {"hyperprior": "medbench.codecs.learned.codec:HyperpriorCodec",
           "byo": "medbench.codecs.byo:ByoCodec"}

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_pretrained")


def tiny_hyperprior(models: Path, name: str, seed: int = 0) -> Path:
    """An untrained but finished (frozen tables) 4/4-channel hyperprior."""
    torch.manual_seed(seed)
    model = new_model("hyperprior", 4, 4)
    model.init_density(torch.rand(2, 1, 64, 64))
    model.freeze_tables()
    return save_checkpoint(model, models / "hyperprior" / name, {"name": name}).folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    tiny_hyperprior(root, "tiny")
    _write_model(root)
    return root


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_decoder_survives_fuzzed_streams(models, name):
    # The shared fuzz child, with the codec class named directly (entry points are those
    # of the installed medbench, which may predate these codecs).
    module, _, cls = CLASSES[name].partition(":")
    child = (f"import importlib\nimport medbench.codecs as _c\n"
             f"_c.get_codec = lambda n, ctx: getattr(importlib.import_module({module!r}), "
             f"{cls!r})(ctx)\n") + _CHILD.replace(
        "from medbench.codecs import CodecContext, get_codec",
        "from medbench.codecs import CodecContext, get_codec  # patched above")
    trust = [str(models / "byo")] if name == "byo" else []  # the spec this test wrote
    proc = subprocess.run([sys.executable, "-c", child, name, str(models), "60", *trust],
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin",
                               "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bad"] == [], result["bad"][:10]
    assert result["decoded"] + result["refused"] == 180


def _codec(models) -> HyperpriorCodec:
    return HyperpriorCodec(CodecContext(models_dir=models, device="cpu"))


def test_stream_from_another_model_or_codec_is_refused(models, make_image, tmp_path):
    other = tmp_path / "other"
    tiny_hyperprior(other, "other", seed=1)
    foreign = _codec(other).encode(make_image(32), "other")
    with pytest.raises(BitstreamError, match="not among the loadable models"):
        _codec(models).decode(foreign)
    shipped = Path(SRC) / "medbench" / "codecs" / "learned" / "pretrained"
    ae = AeCodec(CodecContext(models_dir=shipped, device="cpu"))
    data = ae.encode(make_image(32), ae.settings()[0])
    with pytest.raises(BitstreamError, match="not a medbench hyperprior stream"):
        _codec(models).decode(data)


def test_truncated_streams_are_refused(models, make_image):
    codec = _codec(models)
    data = codec.encode(make_image(64, seed=2), "tiny")
    for cut in (0, 10, 20, 27, 28, len(data) - 4, len(data) - 1):
        with pytest.raises(BitstreamError):
            codec.decode(data[:cut])


def test_absurd_declared_size_is_refused_before_allocating(models, make_image):
    codec = _codec(models)
    data = bytearray(codec.encode(make_image(64), "tiny"))
    data[14:18] = (0xFFFF).to_bytes(2, "big") * 2
    with pytest.raises(DeclaredSizeError, match="budget"):
        codec.decode(bytes(data))


def test_large_in_budget_size_with_a_short_payload_never_allocates_it(models, make_image,
                                                                      tmp_path):
    # 16384² is within the pixel budget; the 80 payload bytes cannot hold its latents.
    codec = _codec(models)
    data = bytearray(codec.encode(make_image(64), "tiny"))
    data[14:20] = (16384).to_bytes(2, "big") * 2 + b"\0\0"
    path = tmp_path / "s.bin"
    path.write_bytes(bytes(data))
    child = textwrap.dedent(f"""
        import resource
        from medbench.codecs import CodecContext
        from medbench.codecs.learned.codec import HyperpriorCodec
        codec = HyperpriorCodec(CodecContext(models_dir={str(models)!r}, device="cpu"))
        codec.settings(); codec.model("tiny")
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + (256 << 20),) * 2)
        try:
            codec.decode(open({str(path)!r}, "rb").read())
        except MemoryError:
            print("MemoryError")
        except Exception as exc:
            print("refused:", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin",
                                            "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("refused:") and "truncated" in proc.stdout
