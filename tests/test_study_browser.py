"""A reading kit in a real headless Chromium: scripted readers answer every trial by
keyboard, reload half-way, download their answers; ``study analyze`` reads the files.

A reader who always answers "left" must come out at chance (the original's side is
balanced in every codec × ratio), one who reads the key at 100 %.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from medbench.cli import main
from tests.test_reports_build import CHROMEDRIVER, CHROMIUM, Browser

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="headless Chromium not installed (Debian: apt-get install chromium chromium-driver)",
)
KEYS = {"left": "\ue012", "right": "\ue014"}  # WebDriver's ArrowLeft, ArrowRight


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A 2afc kit of 2 sample tiles (128², 15- and 10-bit) × jpeg2000, jpegxl × 10:1, 20:1."""
    results = tmp_path_factory.mktemp("results")
    invoke("run", "--codecs", "jpeg2000,jpegxl", "--datasets", "sample", "--protocol",
           "native", "--size", "128", "--limit", "4", "--target", "ratio=10,20",
           "--keep-pixels", "--out", results, "--no-report", "--no-progress", "--repeats", "0")
    folder = results / "study"
    invoke("study", "make", results, "--codecs", "jpeg2000,jpegxl", "--target",
           "ratio=10,20", "--images", "2", "--out", folder, "--seed", "3")
    return results, folder


@pytest.fixture(scope="module")
def reader_browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    b = Browser(tmp_path_factory.mktemp("chromium-profile"), downloads)
    b.downloads = downloads
    yield b
    b.close()


def press(browser: Browser, key: str) -> None:
    """One real key press (WebDriver actions: keydown, keyup)."""
    browser._call("POST", f"/session/{browser.session}/actions", {"actions": [{
        "type": "key", "id": "keyboard",
        "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]})


def wait_for(browser: Browser, script: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.run(script)
        if value:
            return value
        time.sleep(0.05)
    shown = browser.run(  # what the page showed, to tell a slow load from a wrong state
        "const e = document.getElementById('error'), s = document.getElementById('start');"
        "return [location.href, document.readyState, e && e.textContent, s && s.hidden,"
        " document.body && document.body.dataset.trial,"
        " localStorage.length ? Object.keys(localStorage).join(',') : 'empty storage'];")
    raise AssertionError(f"timed out waiting for: {script}; the page: {shown}")


def reopen(browser: Browser, page: Path) -> None:
    """Close the kit and open it again: through another page, so that the browser loads
    it afresh (navigating to the very URL it shows may not; a CI run once timed out
    waiting for the reopened page's welcome)."""
    browser._call("POST", f"/session/{browser.session}/url", {"url": "about:blank"})
    wait_for(browser, "return location.href === 'about:blank';")
    browser.open(page)
    wait_for(browser, "return document.readyState === 'complete';")


class StorageLost(Exception):
    """The browser came back from reopening the kit with no stored answers at all."""


#: Readings of a kit tried before a browser that loses its storage fails the test.
ATTEMPTS = 3


def read_kit(browser: Browser, page: Path, reader: str, choose, shots: Path | None = None
             ) -> Path:
    """Answer every trial of the kit at ``page`` as ``reader`` (``choose(trial_id)`` gives
    the answer), reloading half-way; return the downloaded answers file.

    Under heavy CPU load headless Chromium now and then comes back from the reopening
    with its ``localStorage`` empty (not this kit's answers missing: no key at all), so
    the page rightly starts afresh; such a reading is tried again, up to
    :data:`ATTEMPTS` times. A kit that does not restore what *was* stored fails at once.
    """
    for _ in range(ATTEMPTS):
        try:
            return _read_kit(browser, page, reader, choose, shots)
        except StorageLost:
            continue
    raise AssertionError(f"the browser lost its storage on each of {ATTEMPTS} reopenings")


def _read_kit(browser: Browser, page: Path, reader: str, choose, shots: Path | None
              ) -> Path:
    reopen(browser, page)
    browser.run("localStorage.clear();")  # a new reader: no answers kept from another
    reopen(browser, page)
    wait_for(browser, "return document.readyState === 'complete' && "
                      "!document.getElementById('start').hidden;")
    browser.run(f"document.getElementById('reader').value = {json.dumps(reader)};"
                "document.getElementById('begin').click();")
    n = browser.run("return KIT.trials.length;")
    for index in range(n):
        trial = wait_for(browser, "return document.body.dataset.trial;")
        assert trial == f"t{index + 1:03d}"
        if shots is not None and index == 0:
            browser.screenshot(shots / f"{reader}-trial1.png")
        time.sleep(0.32)  # the page ignores keys in the first 300 ms of a trial
        answer = choose(trial)
        press(browser, KEYS.get(answer, str(answer)))
        if index == n // 2:  # close and reopen: the answers so far must be kept
            wait_for(browser, f"return JSON.parse(localStorage.getItem("
                              f"'medbench-study:' + KIT.kit_id)).answers.length === {index + 1};")
            reopen(browser, page)
            if browser.run("return localStorage.length;") == 0:
                raise StorageLost
            welcome = wait_for(browser, "const w = document.getElementById('welcome');"
                                        "return !w.hidden && w.textContent;")
            assert f"answered {index + 1} of {n}" in welcome
            if shots is not None:
                browser.screenshot(shots / f"{reader}-resume.png")
            browser.run("document.getElementById('begin').click();")
    wait_for(browser, "return document.body.dataset.trial === 'done';")
    if shots is not None:
        browser.screenshot(shots / f"{reader}-done.png")
    before = set(browser.downloads.glob("*.json"))
    browser.run("document.getElementById('save-done').click();")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = set(browser.downloads.glob("*.json")) - before
        if new:
            return new.pop()
        time.sleep(0.1)
    raise AssertionError("the answers file was not downloaded")


@needs_chromium
def test_scripted_readers_come_out_at_chance_and_at_100_percent(kit, reader_browser,
                                                                 tmp_path):
    results, folder = kit
    key = json.loads((folder / "key.json").read_text())
    truth = {t["id"]: t["correct"] or "left" for t in key["trials"]}
    page = folder / "index.html"
    oracle = read_kit(reader_browser, page, "oracle", truth.get, shots=tmp_path)
    lefty = read_kit(reader_browser, page, "lefty", lambda _trial: "left")
    assert reader_browser.console_problems() == []
    doc = json.loads(oracle.read_text())
    assert doc["kit_id"] == key["kit_id"] and doc["complete"]
    assert [a["trial"] for a in doc["answers"]] == [t["id"] for t in key["trials"]]

    out = tmp_path / "analysis"
    invoke("study", "analyze", folder, oracle, lefty, "--out", out, "--format", "imrmc")
    cells = __import__("pandas").read_csv(out / "study.csv")
    mine = cells[cells["scope"] == "oracle"]
    assert len(mine) == 4 and (mine["proportion"] == 1.0).all()
    left = cells[cells["scope"] == "lefty"]
    # the original is left in exactly half the trials of every codec x ratio
    assert len(left) == 4 and (left["proportion"] == 0.5).all()
    assert (left["verdict"] == "too few trials").all()  # 2 trials: no answer is above chance
    summary = json.loads((out / "study.json").read_text())
    assert summary["readers"] == ["lefty", "oracle"]
    assert (out / "study.png").stat().st_size > 1000
    imrmc = (out / "study.imrmc").read_text()
    assert "BEGIN DATA:" in imrmc and "NR: 2" in imrmc


@needs_chromium
@pytest.mark.parametrize("protocol", ["revealed", "rating"])
def test_the_other_protocols_read_and_analyze(protocol, kit, reader_browser, tmp_path):
    results, _ = kit
    folder = tmp_path / protocol
    invoke("study", "make", results, "--codecs", "jpegxl", "--target", "ratio=10",
           "--images", "2", "--out", folder, "--protocol", protocol, "--catch", "0.3")
    key = json.loads((folder / "key.json").read_text())
    if protocol == "revealed":  # the oracle points at the coded image
        truth = {t["id"]: t["correct"] or "right" for t in key["trials"]}
    else:  # a reader who rates originals 5 and coded images 2
        truth = {t["id"]: 5 if t["kind"] == "reference" else 2 for t in key["trials"]}
    answers = read_kit(reader_browser, folder / "index.html", "oracle", truth.get)
    out = tmp_path / "analysis"
    invoke("study", "analyze", folder, answers, "--out", out)
    cells = __import__("pandas").read_csv(out / "study.csv").set_index("codec")
    if protocol == "revealed":
        assert cells.loc["jpegxl", "proportion"].tolist() == [1.0, 1.0]  # pooled, oracle
    else:
        assert cells.loc["jpegxl", "mean_rating"].tolist() == [2.0, 2.0]
        assert cells.loc["original", "mean_rating"].tolist() == [5.0, 5.0]


@needs_chromium
def test_the_page_shows_the_kept_pixels_through_the_window(kit, reader_browser):
    import numpy as np

    from medbench.benchmark import pixels as kept_files
    from medbench.benchmark.store import ResultsStore

    results, folder = kit
    key = json.loads((folder / "key.json").read_text())
    first = key["trials"][0]
    store = ResultsStore.open_existing(results)
    kept = store.kept_pixels(store.latest_run())
    store.close()

    def kept_image(codec, setting):
        r = kept[(kept.image_id == first["image_id"]) & (kept.codec == codec)
                 & (kept.setting == setting)].iloc[0]
        return kept_files.read(results, r["path"], r["sha256"], r["dtype"], r["height"],
                               r["width"])

    expected = [kept_image("", "") if pane == "original"
                else kept_image(first["codec"], first["setting"]) for pane in first["panes"]]
    reader_browser.open(folder / "index.html")
    reader_browser.run("localStorage.clear(); location.reload();")
    wait_for(reader_browser, "return document.readyState === 'complete';")
    reader_browser.run("document.getElementById('reader').value = 'probe';"
                       "document.getElementById('begin').click();")
    wait_for(reader_browser, "return document.body.dataset.trial === 't001';")
    shown = reader_browser.run("return current.panes.map(p => Array.from(p));")
    for pane, want in zip(shown, expected):
        assert np.array_equal(np.array(pane).reshape(want.shape), want)
    # the canvas shows the window's 8-bit mapping of the true values
    grey = reader_browser.run("const c = current.canvases[0];"
                              "return Array.from(c.getContext('2d').getImageData("
                              "0, 0, c.width, 1).data).filter((_, i) => i % 4 === 0);")
    centre, width = first["window"]
    want = np.clip((expected[0][0].astype(float) - (centre - width / 2)) * 255 / width, 0, 255)
    assert np.abs(np.array(grey) - want).max() <= 0.5 + 1e-9  # rounded to the nearest level


@needs_chromium
def test_a_missing_image_file_is_named_on_the_page(kit, reader_browser, tmp_path):
    import shutil

    _, folder = kit
    copy = tmp_path / "kit"
    shutil.copytree(folder, copy)
    key = json.loads((copy / "key.json").read_text())
    first = key["trials"][0]["token"]
    (copy / "images" / f"{first}.js").unlink()
    reader_browser.open(copy / "index.html")
    reader_browser.run("localStorage.clear(); location.reload();")
    wait_for(reader_browser, "return document.readyState === 'complete';")
    reader_browser.run("document.getElementById('reader').value = 'x';"
                       "document.getElementById('begin').click();")
    text = wait_for(reader_browser, "const e = document.getElementById('error');"
                                    "return !e.hidden && e.textContent;")
    assert f"images/{first}.js" in text and "Copy the whole kit folder again" in text
