"""``medbench report`` end to end: a store of known rows, and a real run of ``sample``."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.benchmark.rows import ResultRow
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.cli import main
from medbench.errors import MedbenchError
from medbench.reports.build import build_report, slug
from medbench.reports.html import SECTIONS, page_order

RATES = [0.1, 0.2, 0.4, 0.8, 1.6]


def _known_rows():
    """Classical and learned curves on two datasets, a lossless point, errors, body parts."""
    rows = []

    def add(dataset, codec, setting, rank, bpp, psnr, image, **extra):
        h = w = 64
        rows.append({
            "dataset": dataset, "split": "test", "image_id": image, "protocol": "paper",
            "bit_depth": 8, "height": h, "width": w, "codec": codec, "setting": setting,
            "setting_rank": rank, "bytes": int(round(bpp * h * w / 8)), "bpp": bpp,
            "ratio": 8 / bpp, "mse": 255.0**2 / 10 ** (psnr / 10) if math.isfinite(psnr)
            else 0.0, "psnr": psnr, "ssim": 0.95, "ms_ssim": 1 - 10 ** (-psnr / 20),
            "max_abs_error": 3, "encode_ms": 1.0, "decode_ms": 1.0, "status": "ok",
            "codec_kind": "classical", "body_part": "CHEST" if image.endswith("0") else "HAND",
            **extra,
        })

    for dataset in ("jsrt", "mxid"):
        for image in ("img0", "img1"):
            for k, r in enumerate(RATES):
                psnr = 30 + 10 * math.log10(r / 0.1)
                add(dataset, "jpeg2000", f"ratio={k}", k, r, psnr, image)
                add(dataset, "jpeg", f"q={k}", k, 0.9 * r, psnr - 0.5, image)
            add(dataset, "jpeg2000", "lossless", 9, 4.0, math.inf, image)
            for train in ("jsrt", "mxid"):
                for k, r in enumerate(RATES[1:4]):
                    gain = 1.0 if train == dataset else -1.0
                    add(dataset, "dcae", f"dcae-{train}-{k}", k, r,
                        30 + 10 * math.log10(r / 0.1) + gain, image, codec_kind="learned",
                        train_dataset=train, model_info=json.dumps({"epochs": 3}))
    rows.append({**rows[0], "setting": "ratio=99", "status": "error", "bpp": None,
                 "psnr": None, "error": "RuntimeError: planted failure"})
    return rows


@pytest.fixture(scope="module")
def known_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("known")
    store = ResultsStore(folder / STORE_NAME)
    args = {"datasets": ["jsrt", "mxid"], "data_root": str(folder / "gone"),
            "protocol": "paper"}
    run_id = store.new_run(args, {"python": "3.x"})
    for row in _known_rows():
        store.write(ResultRow(**{**row, "run_id": run_id}))
    store.set_run_status(run_id, "finished")
    store.close()
    return folder, build_report(folder)


def test_every_file_and_section_is_written(known_report):
    folder, report = known_report
    out = folder / "report"
    for name in ("index.html", "report.md", "summary.csv", "summary.md", "bd_rate.csv",
                 "bd_rate.md", "generalization.csv", "table1.csv", "body_parts.csv",
                 "errors.csv", "rd_points.csv", "figures/rd_jsrt.png", "figures/rd_jsrt.svg",
                 "figures/rd_mxid.png", "figures/generalization_dcae.png"):
        assert (out / name).is_file(), name
    page = (out / "index.html").read_text()
    for section_id, title in SECTIONS.items():
        assert f'<section id="{section_id}">' in page
        assert f"## {title}" in (out / "report.md").read_text()
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from a network
    assert page.count("data:image/png;base64,") == 3 + 0  # rd jsrt, rd mxid, heatmap


def test_tables_from_known_rows(known_report):
    folder, report = known_report
    out = folder / "report"
    bd = pd.read_csv(out / "bd_rate.csv")
    jpeg = bd[(bd["codec"] == "jpeg") & (bd["dataset"] == "jsrt")].iloc[0]
    assert jpeg["bd_psnr"] == pytest.approx(-0.5 + 10 * math.log10(1 / 0.9), abs=1e-6)
    gen = pd.read_csv(out / "generalization.csv")
    assert len(gen) == 4 and set(gen["train_dataset"]) == {"jsrt", "mxid"}
    diag = gen[gen["in_domain"]]
    assert (diag["psnr_at_bpp"] - diag["anchor_psnr_at_bpp"]).round(6).tolist() == [1.0, 1.0]
    summary = pd.read_csv(out / "summary.csv")
    lossless = summary[summary["setting"] == "lossless"].iloc[0]
    assert math.isinf(lossless["psnr"]) and lossless["images"] == 2
    assert summary["errors"].sum() == 1
    errors = pd.read_csv(out / "errors.csv")
    assert list(errors["error"]) == ["RuntimeError: planted failure"]
    parts = pd.read_csv(out / "body_parts.csv")
    assert set(parts["body_part"]) == {"CHEST", "HAND"}
    assert "10:1" in report.markdown["body-parts"]


def test_visual_comparison_says_when_the_run_stored_no_pixels(known_report):
    _, report = known_report
    assert "stored no pixels" in report.markdown["visual"]
    assert any("stored no pixels" in n for n in report.notes)


def test_missing_store_or_run_is_one_clear_error(tmp_path):
    with pytest.raises(MedbenchError, match="no results store"):
        build_report(tmp_path)
    ResultsStore(tmp_path / STORE_NAME).close()
    with pytest.raises(MedbenchError, match="holds no run"):
        build_report(tmp_path)


def test_a_run_without_rows_still_gives_every_section(tmp_path):
    store = ResultsStore(tmp_path / STORE_NAME)
    store.new_run({"datasets": ["sample"]}, {})
    store.close()
    report = build_report(tmp_path)
    page = report.index.read_text()
    assert all(f'<section id="{sid}">' in page for sid in SECTIONS)
    assert report.markdown["errors"].startswith("No errors")


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(main, ["run", "--codecs", "jpeg,jpeg2000", "--limit", "2",
                                       "--repeats", "1", "--out", str(out), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_run_writes_the_report_with_a_visual_comparison(sample_run):
    out, output = sample_run
    assert f"report:  {out / 'report' / 'index.html'}" in output
    assert (out / "report" / "figures" / "visual_sample.png").is_file()
    md = (out / "report" / "report.md").read_text()
    assert "![visual comparison on sample](figures/visual_sample.png)" in md
    page = (out / "report" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # RD curves + visual comparison


def test_visual_panels_show_the_pixels_of_the_rows_they_name(sample_run):
    """Each codec panel of the visual comparison is the setting nearest 30:1 on its image,
    titled with that row's recorded rate and PSNR, and its pixels are the ones scored: their
    PSNR against the original panel, computed here, is the row's."""
    import numpy as np

    from medbench.reports.visual import visual_comparisons

    out, _ = sample_run
    store = ResultsStore.open_existing(out)
    run_id = store.latest_run()
    rows, views = store.frame(run_id), store.visuals(run_id)
    store.close()
    (visual,) = visual_comparisons(rows, views)
    assert len(visual.images) == 2 and not visual.notes
    for caption, panels in visual.images:
        image_id = caption.split()[0]
        original, *coded = panels
        assert original.title == "original" and len(coded) == 2
        for panel in coded:
            codec, setting, rate = panel.title.split("\n")
            mine = rows[(rows["image_id"] == image_id) & (rows["codec"] == codec)]
            nearest = mine.loc[(np.log(mine["bpp"] / (8 / 30))).abs().idxmin()]
            assert setting == nearest["setting"]
            assert rate == f"{nearest['bpp']:.3f} bpp, {nearest['psnr']:.1f} dB"
            mse = np.mean((panel.pixels.astype(float) - original.pixels) ** 2)
            assert 10 * np.log10(255**2 / mse) == pytest.approx(nearest["psnr"], abs=1e-9)


def test_report_command_rebuilds_into_another_folder(sample_run, tmp_path):
    out, _ = sample_run
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "r"),
                                       "--no-visual"])
    assert result.exit_code == 0, result.output
    assert "| sample | jpeg |" in result.output and "BD-rate PSNR %" in result.output
    assert (tmp_path / "r" / "index.html").is_file()
    bad = CliRunner().invoke(main, ["report", str(tmp_path / "nothing")])
    assert bad.exit_code == 1 and bad.output.startswith("Error: no results store")


def test_no_report_flag_skips_it(tmp_path):
    result = CliRunner().invoke(main, ["run", "--codecs", "jpeg", "--limit", "1", "--repeats",
                                       "1", "--out", str(tmp_path), "--no-progress",
                                       "--no-report"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "report").exists() and "report:" not in result.output


# -- the page in a real browser ------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless Chromium not installed (Debian: apt-get install chromium chromium-driver)",
)


class Browser:
    """Headless Chromium through chromedriver's W3C WebDriver HTTP API (no selenium)."""

    def __init__(self, profile: Path, downloads: Path | None = None):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                self._call("GET", "/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1280,1000"]
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}
        if downloads is not None:  # files a page downloads land there, unasked
            caps["goog:chromeOptions"]["prefs"] = {
                "download.default_directory": str(downloads),
                "download.prompt_for_download": False}
        self.session = self._call("POST", "/session",
                                  {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["value"]

    def open(self, path: Path) -> None:
        self._call("POST", f"/session/{self.session}/url", {"url": path.resolve().as_uri()})

    def run(self, script: str):
        return self._call("POST", f"/session/{self.session}/execute/sync",
                          {"script": script, "args": []})

    def window(self, width: int, height: int) -> None:
        """Resize so that the viewport (not the window) is ``width`` × ``height``."""
        self._call("POST", f"/session/{self.session}/window/rect",
                   {"width": width, "height": height})
        inner = self.run("return [window.innerWidth, window.innerHeight];")
        self._call("POST", f"/session/{self.session}/window/rect",
                   {"width": 2 * width - inner[0], "height": 2 * height - inner[1]})

    def screenshot(self, path: Path) -> Path:
        """The viewport as a PNG at ``path``."""
        data = self._call("GET", f"/session/{self.session}/screenshot")
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def console_problems(self) -> list[str]:
        logs = self._call("POST", f"/session/{self.session}/se/log", {"type": "browser"})
        return [e["message"] for e in logs if e["level"] in ("SEVERE", "WARNING")]

    def close(self) -> None:
        try:
            self._call("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


PAGE_STATE = """
return {
  ready: document.readyState,
  sections: Array.from(document.querySelectorAll('section')).map(s => [
      s.id, s.querySelector('h2').textContent, s.getBoundingClientRect().height]),
  images: Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]),
  requests: performance.getEntriesByType('resource').map(r => r.name),
};
"""


@needs_chromium
def test_the_browser_check_catches_a_broken_page(browser, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head>'
                      '<body><img src="missing.png" alt="x"></body></html>')
    browser.open(broken)
    state = browser.run(PAGE_STATE)
    assert state["images"] == [["x", True, 0]]
    assert any("missing.png" in m for m in browser.console_problems())


@needs_chromium
@pytest.mark.parametrize("which", ["known", "sample"])
def test_the_page_loads_in_chromium_with_every_section(which, browser, request):
    folder = (request.getfixturevalue("known_report")[0] if which == "known"
              else request.getfixturevalue("sample_run")[0])
    browser.open(folder / "report" / "index.html")
    state = browser.run(PAGE_STATE)
    assert state["ready"] == "complete"
    order = page_order(diagnostic_measured=False)  # no --observer in these runs
    assert [(s[0], s[1]) for s in state["sections"]] == [(i, SECTIONS[i]) for i in order]
    assert all(height > 0 for _, _, height in state["sections"])
    assert state["images"] and all(done and width > 100 for _, done, width in state["images"])
    assert state["requests"] == []  # no fetch of any kind: everything is in the file
    assert browser.console_problems() == []


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """A quickstart-like run: 7 codecs, two of them learned (the shipped models), 2 images."""
    out = tmp_path_factory.mktemp("quickstart")
    result = CliRunner().invoke(main, ["run", "--codecs",
                                       "jpeg,jpeg12,jpeg2000,webp,htj2k,dcae,cnn", "--limit",
                                       "2", "--repeats", "1", "--out", str(out),
                                       "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


FIRST_SCREEN = """
const box = e => e.getBoundingClientRect();
const bd = document.querySelector('#bd-rate table');
const cells = s => Array.from(s.querySelectorAll('td')).map(td => td.textContent.trim());
return {
  viewport: [window.innerWidth, window.innerHeight],
  headline: box(document.getElementById('headline')).bottom,
  figure: [box(document.querySelector('#rd-curves img')).top,
           box(document.querySelector('#rd-curves img')).bottom],
  metadata: box(document.getElementById('metadata')).top,
  metadataOpen: document.querySelector('#metadata details').open,
  page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
  bd: [bd.scrollWidth, bd.parentElement.clientWidth, box(bd).right],
  flags: Array.from(bd.querySelectorAll('td.unreliable')).map(td => [
      td.textContent, getComputedStyle(td).color, box(td).right]),
  warnings: Array.from(document.querySelectorAll('#headline .warn')).map(e => e.textContent),
  sections: Array.from(document.querySelectorAll('section')).map(s => [
      s.id, cells(s),
      Array.from(s.children).filter(c => c.tagName !== 'H2')
           .map(c => c.textContent).join('').trim()]),
};
"""


@needs_chromium
def test_the_first_screen_holds_the_answer_not_the_metadata(quickstart_run, browser):
    browser.window(1280, 800)
    try:
        browser.open(quickstart_run / "report" / "index.html")
        s = browser.run(FIRST_SCREEN)
    finally:
        browser.window(1280, 1000)
    assert s["viewport"] == [1280, 800]
    # The headline and the whole first RD figure are on the first screen; metadata is not.
    assert s["headline"] < s["figure"][0] < s["figure"][1] <= 800
    assert s["metadata"] > 800 and s["metadataOpen"] is False
    # The BD table fits the page: no horizontal scroll, in the table or the page.
    assert s["bd"][0] <= s["bd"][1] and s["page"][0] <= s["page"][1]
    # Unreliable values are marked where the number is, greyed, with the overlap, on screen.
    assert s["flags"], "the quickstart's BD table has unreliable values"
    for text, color, right in s["flags"]:
        assert "†" in text and re.search(r"\(\d+% overlap\)", text), text
        assert color not in ("rgb(0, 0, 0)", "rgb(27, 27, 27)") and right <= s["bd"][2] + 1
    # The shipped models' training budgets are said next to them (steps, seconds, device).
    headline = next(text for section, _, text in s["sections"] if section == "headline")
    assert "training budget" in headline and "s, cpu" in headline
    # No section of only dashes: a table has some value, a section some text.
    for section, cells, text in s["sections"]:
        assert text.strip("–- \n"), section
        if cells:
            assert any(c not in ("–", "") for c in cells), section


def test_quickstart_report_says_what_each_empty_section_would_need(quickstart_run):
    page = (quickstart_run / "report" / "index.html").read_text()
    assert "run mxid, openi or jsrt" in page  # Table 1, in one line
    assert "train on or test with a second dataset" in page  # the 1×1 matrix, in one line
    assert "jpeg12 coincides with jpeg" in page  # identical curves are named


def test_report_rebuilds_from_a_copied_read_only_folder_with_the_data_gone(tmp_path):
    """Reports read only the store: no data root, no codecs, no write access needed."""
    from PIL import Image as PILImage

    from tests.conftest import radiograph_like

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        PILImage.fromarray(radiograph_like(600, 8, seed=i)).save(data / f"img{i}.png")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--codecs", "jpeg,jpeg2000", "--datasets",
                                       f"folder:{data}", "--split", "all", "--protocol",
                                       "native", "--repeats", "0", "--out", str(out),
                                       "--no-progress", "--no-report"])
    assert result.exit_code == 0, result.output
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(data)
    shutil.rmtree(out)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    report = build_report(copy, tmp_path / "report")
    # Opened read-only: no byte of the copied folder changed, no journal file appeared.
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before
    figure = tmp_path / "report" / "figures" / f"visual_{slug('folder:' + str(data))}.png"
    assert figure.is_file() and figure.stat().st_size > 10_000
    assert "visual comparison on folder:" in report.markdown["visual"]
    assert not [n for n in report.notes if "stored no pixels" in n or "left out" in n]


def test_near_lossless_points_are_named_off_scale_not_squashing_the_curves():
    from types import SimpleNamespace

    from matplotlib.figure import Figure

    from medbench.reports.figures import OFF_SCALE_DB, _off_scale

    points = pd.DataFrame({"bpp": [0.1, 0.5, 4.6], "psnr": [30.0, 40.0, 96.3]})
    curve = SimpleNamespace(label="htj2k", points=points)
    ax = Figure().subplots()
    ax.plot(points["bpp"], points["psnr"])
    _off_scale(ax, "psnr", [curve])
    low, high = ax.get_ylim()
    assert high == OFF_SCALE_DB["psnr"] and 20 < low < 30  # the bottom stays the data's
    assert "htj2k 96 dB at 4.60 bpp" in ax.texts[0].get_text()
    calm = Figure().subplots()
    calm.plot([0.1], [30.0])
    _off_scale(calm, "psnr", [SimpleNamespace(label="a", points=points.iloc[:2])])
    assert not calm.texts
