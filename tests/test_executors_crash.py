"""A worker process that dies on one image: only that image's rows become errors."""

from __future__ import annotations

import textwrap

import pytest

from medbench.benchmark.runner import RunConfig, run
from medbench.codecs import registry

CRASHER = """
    import os
    from medbench.codecs.jpeg import JpegCodec

    class CrashingJpeg(JpegCodec):
        name = "crashing-jpeg"

        def settings(self):
            return ["q=50"]

        def encode(self, image, setting):
            if image.image_id == "rg1_r0c4":
                os._exit(3)  # the whole worker process dies, as a segfaulting library would
            return super().encode(image, setting)
"""


@pytest.fixture
def crasher(tmp_path, monkeypatch):
    """A codec plugin that spawned worker processes can import (via PYTHONPATH)."""
    (tmp_path / "fake_crasher.py").write_text(textwrap.dedent(CRASHER))
    info = tmp_path / "fake_crasher-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-crasher\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[medbench.codecs]\ncrashing-jpeg = fake_crasher:CrashingJpeg\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    registry.reset()
    yield
    registry.reset()


@pytest.mark.parametrize("batch", ["1", "3"])  # 3: units travel in tasks of three
def test_a_dying_worker_costs_only_its_own_image(tmp_path, crasher, batch):
    config = RunConfig(codecs=["crashing-jpeg"], limit=6, repeats=0, workers=2,
                       learned_batch=batch)
    rows = run(config, tmp_path / "out").rows
    assert len(rows) == 6
    bad = rows[rows["status"] == "error"]
    assert list(bad["image_id"]) == ["rg1_r0c4"]
    assert "worker process died" in bad["error"].iloc[0]
    assert (rows[rows["image_id"] != "rg1_r0c4"]["status"] == "ok").all()
