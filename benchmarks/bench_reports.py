"""How long ``medbench report`` takes on a large results store (no images needed).

Run with ``python -m pytest benchmarks/bench_reports.py --benchmark-only``. The store
holds 8 codecs × 8 settings × N images of made-up but plausible rows (rates from a
log-linear RD model with per-image noise), written once per session; the benchmark then
times the analysis (curves + BD table) and the whole report without the visual comparison
(which would code images again and is timed by the codec benchmarks).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from medbench.benchmark.rows import ResultRow
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.reports.bd import bd_table
from medbench.reports.build import build_report, load_run
from medbench.reports.curves import curves

CODECS = [f"codec{k}" for k in range(7)] + ["jpeg2000"]
RATES = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4]


@pytest.fixture(scope="module", params=[100, 1000], ids=lambda n: f"{n}images")
def store_folder(request, tmp_path_factory):
    n = request.param
    folder = tmp_path_factory.mktemp(f"store{n}")
    rng = np.random.default_rng(0)
    store = ResultsStore(folder / STORE_NAME)
    run_id = store.new_run({"datasets": ["synthetic"], "protocol": "native"}, {})
    for c, codec in enumerate(CODECS):
        for k, rate in enumerate(RATES):
            for i in range(n):
                bpp = rate * math.exp(rng.normal(0, 0.1))
                psnr = 30 + 10 * math.log10(bpp / 0.05) + 0.3 * c + rng.normal(0, 0.5)
                store.write(ResultRow(**{
                    "run_id": run_id, "dataset": "synthetic", "image_id": f"i{i:05d}",
                    "bit_depth": 12, "height": 256, "width": 256, "codec": codec,
                    "setting": f"s{k}", "setting_rank": k, "codec_kind": "classical",
                    "bytes": int(bpp * 256 * 256 / 8), "bpp": bpp, "psnr": psnr,
                    "ssim": 0.95, "ms_ssim": 1 - 10 ** (-psnr / 20), "mse": 1.0,
                    "encode_ms": 1.0, "decode_ms": 1.0, "status": "ok",
                    "body_part": "CHEST" if i % 2 else "HAND",
                }))
    store.close()
    return folder


def test_analysis(benchmark, store_folder):
    rows, _ = load_run(store_folder)
    table = benchmark(lambda: bd_table(curves(rows)))
    assert len(table) == len(CODECS) - 1


def test_whole_report_without_visual(benchmark, store_folder, tmp_path):
    report = benchmark.pedantic(
        lambda: build_report(store_folder, tmp_path / "report", visual=False),
        rounds=2, iterations=1)
    assert report.index.is_file()
