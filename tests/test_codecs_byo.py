"""``byo``: a CompressAI-style model named by a spec file runs as a codec, without a plugin,
and only when the user names it and trusts its folder."""

from __future__ import annotations

import json
import logging
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from medbench.benchmark.store import ResultsStore
from medbench.codecs import CodecContext
from medbench.codecs.byo import ByoCodec, ByoStreamError, unpack_stream
from medbench.errors import MedbenchError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: A tiny model in CompressAI's convention: compress quantizes and zlib-compresses.
MODEL = textwrap.dedent('''
    import zlib
    import numpy as np
    import torch
    from torch import nn

    class TinyZlibAE(nn.Module):
        def __init__(self, channels=1, step=0.05):
            super().__init__()
            self.enc = nn.Conv2d(channels, 2, 4, stride=4)
            self.dec = nn.ConvTranspose2d(2, channels, 4, stride=4)
            self.step = step

        def compress(self, x):
            q = torch.round(self.enc(x) / self.step).clamp(-32768, 32767)
            data = q.to(torch.int16).numpy().tobytes()
            return {"strings": [[zlib.compress(data)]], "shape": q.shape[-2:]}

        def decompress(self, strings, shape):
            h, w = shape
            raw = zlib.decompress(strings[0][0], bufsize=4 * h * w + 16)
            q = np.frombuffer(raw, dtype=np.int16).reshape(1, 2, h, w)
            return {"x_hat": self.dec(torch.from_numpy(q.astype(np.float32)) * self.step)}

    def make(channels=1):
        return TinyZlibAE(channels)
''')


def _write_model(root, channels=1, name="tiny", weights="tiny.safetensors", **extra):
    byo = root / "byo"
    byo.mkdir(parents=True, exist_ok=True)
    (root / "code").mkdir(exist_ok=True)
    (root / "code" / "tiny_byo_model.py").write_text(MODEL)
    import importlib
    import sys

    sys.path.insert(0, str(root / "code"))
    module = importlib.import_module("tiny_byo_model")
    sys.path.remove(str(root / "code"))
    torch.manual_seed(0)
    net = module.make(channels)
    if weights.endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(byo / weights))
    else:
        (byo / weights).write_bytes(b"\x80\x04pickle")
    spec = {"factory": "tiny_byo_model:make", "weights": weights, "channels": channels,
            "pad": 8, "python_path": "../code", "args": {"channels": channels}, **extra}
    lines = [f"{k} = {json.dumps(v)}" for k, v in spec.items() if k != "args"]
    lines.append(f"args = {{ channels = {channels} }}")
    (byo / f"{name}.toml").write_text("\n".join(lines) + "\n")
    return root


def _trusted(models) -> CodecContext:
    return CodecContext(models_dir=models, device="cpu", trusted_byo=models / "byo")


@pytest.mark.parametrize("channels", [1, 3])
def test_a_spec_runs_as_a_codec_and_every_byte_is_in_the_stream(tmp_path, make_image,
                                                               channels):
    models = _write_model(tmp_path / "models", channels=channels)
    codec = ByoCodec(_trusted(models))
    assert codec.unavailable_reason() is None and codec.settings() == ["tiny"]
    info = json.loads(codec.setting_info("tiny")["model_info"])
    assert info["channels"] == channels and info["factory"] == "tiny_byo_model:make"
    assert ("replicated" in info["input"]) == (channels == 3)
    image = make_image((30, 45), bit_depth=12)
    data = codec.encode(image, "tiny")
    _, bits, h, w, dims, strings = unpack_stream(data)
    assert (bits, h, w, dims) == (12, 30, 45, [8, 12])  # padded to 32x48, stride 4
    assert len(data) == 19 + 4 * 2 + 1 + 2 + 4 + len(strings[0][0])
    decoded = codec.decode(data)
    assert decoded.shape == (30, 45) and decoded.dtype == np.uint16
    assert decoded.max() <= 4095


def test_pickle_weights_and_broken_factories_are_skipped_with_one_line(tmp_path, caplog):
    models = _write_model(tmp_path / "models")
    _write_model(models, name="pickled", weights="w.pt")
    (models / "byo" / "missing.toml").write_text(
        'factory = "no_such_package.mod:make"\nweights = "tiny.safetensors"\n')
    (models / "byo" / "garbage.json").write_text("{not json")
    codec = ByoCodec(_trusted(models))
    with caplog.at_level(logging.WARNING):
        assert codec.settings() == ["tiny"]
    reasons = codec.describe()["skipped"]
    assert len(reasons) == 3
    assert "never unpickles" in reasons[str(models / "byo" / "pickled.toml")]
    assert "does not import" in reasons[str(models / "byo" / "missing.toml")]
    assert all("\n" not in r for r in reasons.values())


def test_hostile_byo_streams_are_refused(tmp_path, make_image):
    models = _write_model(tmp_path / "models")
    codec = ByoCodec(_trusted(models))
    data = codec.encode(make_image((16, 16)), "tiny")
    for bad in (data[:-3], data[:10], b"MBLC" + data[4:], data + b"x"):
        with pytest.raises(ByoStreamError):
            codec.decode(bad)
    huge = bytearray(data)
    huge[14:18] = (0xFFFF).to_bytes(2, "big") * 2  # 65535² pixels: over the budget
    with pytest.raises(Exception, match="budget"):
        codec.decode(bytes(huge))


def test_no_specs_makes_the_codec_unavailable_with_a_reason(tmp_path):
    codec = ByoCodec(CodecContext(models_dir=tmp_path, device="cpu"))
    assert "no bring-your-own model spec" in codec.unavailable_reason()


# -- trust: nothing runs from a model folder unless the user names it and trusts it --------
def _booby_trapped(root, tag):
    """A working spec whose factory module writes ``ran-<tag>`` when it is imported (a
    module name of its own, so an import in an earlier test cannot hide this one)."""
    models = _write_model(root / "models")
    marker = root / f"ran-{tag}"
    module = f"trap_{tag}_{root.name.replace('-', '_')}"
    trap = f"open({str(marker)!r}, 'w').write('imported')\n" + MODEL
    (models / "code" / f"{module}.py").write_text(trap)
    spec = (models / "byo" / "tiny.toml").read_text()
    (models / "byo" / "tiny.toml").write_text(spec.replace("tiny_byo_model:make",
                                                           f"{module}:make"))
    return models, marker, str(models / "code")


def _cli(*args):
    from click.testing import CliRunner

    from medbench.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_listing_codecs_parses_specs_but_runs_none(tmp_path):
    import sys

    models, marker, code = _booby_trapped(tmp_path, "codecs")
    result = _cli("codecs", "--models", models)
    assert result.exit_code == 0, result.output
    assert not marker.exists() and code not in sys.path
    byo = result.output[result.output.index("byo  ["):].splitlines()
    assert "settings: tiny" in byo[1]
    assert f"--codecs byo --trust-byo {models / 'byo'}" in byo[0]
    assert any("factory trap_codecs_" in line and "[not imported]" in line for line in byo)


def test_default_codecs_never_import_a_spec_even_when_its_folder_is_trusted(
        tmp_path, no_pretrained):
    models, marker, _ = _booby_trapped(tmp_path, "all")
    result = _cli("run", "--models", models, "--trust-byo", models / "byo", "--limit", "1",
                  "--repeats", "0", "--out", tmp_path / "out", "--no-report", "--no-progress")
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    assert "skipped codec byo: the 1 spec(s) in" in result.output
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert "byo" not in set(rows["codec"]) and "jpeg2000" in set(rows["codec"])


def test_a_named_but_untrusted_byo_is_refused_in_one_line(tmp_path):
    models, marker, _ = _booby_trapped(tmp_path, "named")
    for trust in ([], ["--trust-byo", tmp_path / "elsewhere"]):
        result = _cli("run", "--codecs", "byo", "--models", models, *trust, "--limit", "1",
                      "--out", tmp_path / "out", "--no-progress")
        assert result.exit_code == 1 and not marker.exists()
        lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(lines) == 1 and "Traceback" not in result.output
        assert lines[0].endswith(f"--codecs byo --trust-byo {models / 'byo'}")
    assert "is not this spec folder" in lines[0]
    with pytest.raises(MedbenchError, match="--trust-byo"):  # the codec refuses by itself
        ByoCodec(CodecContext(models_dir=models)).model("tiny")
    assert not marker.exists()


def test_a_named_and_trusted_byo_runs_and_resume_asks_for_trust_again(tmp_path):
    models, marker, _ = _booby_trapped(tmp_path, "trusted")
    out = tmp_path / "out"
    result = _cli("run", "--codecs", "byo", "--models", models, "--trust-byo",
                  models / "byo", "--limit", "2", "--repeats", "0", "--out", out,
                  "--no-report", "--no-progress")
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "imported"
    rows = pd.read_csv(out / "results.csv")
    assert list(rows["status"]) == ["ok", "ok"] and set(rows["setting"]) == {"tiny"}
    store = ResultsStore.open_existing(out)
    assert "trust_byo" not in store.run_info(store.latest_run())["arguments"]
    store.close()
    result = _cli("run", "--out", out, "--resume", "--no-progress")
    assert result.exit_code == 1 and "--trust-byo" in result.output
    result = _cli("run", "--out", out, "--resume", "--trust-byo", models / "byo",
                  "--no-progress", "--no-report")
    assert result.exit_code == 0 and "run " in result.output, result.output
