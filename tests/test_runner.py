"""The runner: error rows, interrupted runs and --resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medbench.benchmark.runner import RunConfig, run
from medbench.benchmark.store import ResultsStore
from medbench.codecs import registry
from medbench.codecs.jpeg import JpegCodec

TIMING = ["encode_ms", "decode_ms", "peak_mem_mb", "run_id"]  # measured, not computed


class FailsOnOneImage(JpegCodec):
    """JPEG that raises on one particular image (a codec bug, not the harness's)."""

    name = "fails-once"

    def encode(self, image, setting):
        if image.image_id == self.victim:
            raise RuntimeError("simulated codec crash")
        return super().encode(image, setting)


class StopsAfter(JpegCodec):
    """JPEG that simulates Ctrl-C after a number of encodes (counted per class)."""

    name = "stops-after"
    calls = 0
    limit: int | None = None

    def encode(self, image, setting):
        type(self).calls += 1
        if self.limit is not None and type(self).calls > self.limit:
            raise KeyboardInterrupt
        return super().encode(image, setting)


@pytest.fixture
def extra_codecs(monkeypatch):
    items = registry.load()
    monkeypatch.setitem(items, FailsOnOneImage.name, FailsOnOneImage)
    monkeypatch.setitem(items, StopsAfter.name, StopsAfter)
    StopsAfter.calls, StopsAfter.limit = 0, None


def config(codecs, limit=3):
    return RunConfig(codecs=codecs, limit=limit, repeats=0)


def test_a_failing_image_becomes_an_error_row_and_the_run_goes_on(tmp_path, extra_codecs):
    from medbench.datasets import get_dataset
    from medbench.datasets.manifest import choose_records

    victim = choose_records(get_dataset("sample"), "test", 3)[1].image_id  # one of the run's
    FailsOnOneImage.victim = victim
    result = run(config(["fails-once", "jpeg2000"]), tmp_path)
    df = result.rows
    bad = df[df["status"] == "error"]
    assert len(bad) == 9 and set(bad["image_id"]) == {victim}
    assert bad["error"].str.contains("simulated codec crash").all()
    assert (df[df["codec"] == "jpeg2000"]["status"] == "ok").all()
    assert (df[(df["codec"] == "fails-once") & (df["image_id"] != victim)]["status"]
            == "ok").all()


def test_interrupted_run_resumes_without_duplicates(tmp_path, extra_codecs):
    reference = run(config(["stops-after", "jpeg2000"]), tmp_path / "clean").rows

    StopsAfter.calls, StopsAfter.limit = 0, 12
    with pytest.raises(KeyboardInterrupt):
        run(config(["stops-after", "jpeg2000"]), tmp_path / "cut")
    store = ResultsStore.open_existing(tmp_path / "cut")
    run_id = store.latest_run()
    partial = store.frame(run_id)
    assert 0 < len(partial) < len(reference)
    assert store.run_info(run_id)["status"] == "interrupted"
    store.close()

    StopsAfter.limit = None
    resumed = run(config(["other-args-are-ignored"]), tmp_path / "cut", resume=True)
    assert resumed.run_id == run_id
    rows = resumed.rows
    assert not rows.duplicated(["dataset", "image_id", "codec", "setting"]).any()
    assert len(rows) == len(reference)

    key = ["dataset", "image_id", "codec", "setting"]
    a = reference.drop(columns=TIMING + ["finished_at"]).sort_values(key).reset_index(drop=True)
    b = rows.drop(columns=TIMING + ["finished_at"]).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_resume_without_earlier_run_is_a_clear_error(tmp_path):
    from medbench.errors import MedbenchError

    with pytest.raises(MedbenchError, match="no earlier run"):
        run(config(["jpeg"]), tmp_path, resume=True)


def test_run_metadata_is_stored(tmp_path):
    result = run(config(["jpeg"], limit=1), tmp_path)
    store = ResultsStore.open_existing(tmp_path)
    info = store.run_info(result.run_id)
    assert info["status"] == "finished"
    assert info["arguments"]["codecs"] == ["jpeg"]
    env = info["environment"]
    assert env["packages"]["numpy"] == np.__version__
    assert env["cpu_count"] >= 1 and "python" in env
