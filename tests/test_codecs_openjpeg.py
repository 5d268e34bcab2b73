"""One OpenJPEG per run: which library glymur loads, the pin workers honour, and rows that
say which library coded them.

glymur loads its library once per process, so each lookup is tried in a fresh Python
process; "system" and "pinned" libraries are copies of the file this process loaded, at
other paths (the path is what tells them apart in ``codec_library``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import medbench
from medbench.benchmark.runner import RunConfig, run
from medbench.codecs import _openjpeg

SRC = str(Path(medbench.__file__).resolve().parents[1])
LOADED = _openjpeg.library_file()
pytestmark = pytest.mark.skipif(LOADED is None, reason="glymur has no OpenJPEG here")

#: Prints what glymur loads in a fresh process whose ctypes lookup finds
#: $FAKE_SYSTEM_OPENJP2 ("none": no system library), then what pin() decides.
LOOKUP = """
import ctypes.util, os, sys
fake = os.environ.get("FAKE_SYSTEM_OPENJP2")
if fake:
    original = ctypes.util.find_library
    ctypes.util.find_library = lambda name: (None if fake == "none" else fake) \\
        if name == "openjp2" else original(name)
from medbench.codecs import _openjpeg
if len(sys.argv) > 1:
    _openjpeg.honour(sys.argv[1])
print(_openjpeg.describe())
print(_openjpeg.pin())
print(os.environ.get(_openjpeg.PIN_VARIABLE))
"""

#: Imported by every Python process started with this folder on PYTHONPATH: in processes
#: other than the test's own, a "system" OpenJPEG has appeared ($MEDBENCH_TEST_SYSTEM_OPENJP2).
SITECUSTOMIZE = """
import ctypes.util, os
_fake = os.environ.get("MEDBENCH_TEST_SYSTEM_OPENJP2")
if _fake and os.environ.get("MEDBENCH_TEST_MAIN_PID") != str(os.getpid()):
    _original = ctypes.util.find_library
    ctypes.util.find_library = lambda name: _fake if name == "openjp2" else _original(name)
"""


def copy_of_library(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return Path(shutil.copy(LOADED, folder / "libopenjp2.so.7")).resolve()


def lookup(tmp_path: Path, *args: str, **env: str) -> tuple[list[str], str]:
    """Run :data:`LOOKUP` in a fresh interpreter (no glymurrc, no inherited pin)."""
    environ = {k: v for k, v in os.environ.items() if k != _openjpeg.PIN_VARIABLE}
    environ.update(PYTHONPATH=SRC, XDG_CONFIG_HOME=str(tmp_path / "no-config"), **env)
    done = subprocess.run([sys.executable, "-c", LOOKUP, *args], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr


def test_the_system_library_is_preferred_and_pinned(tmp_path):
    system = copy_of_library(tmp_path / "system")
    (described, pinned, variable), _ = lookup(tmp_path, FAKE_SYSTEM_OPENJP2=str(system))
    assert described.startswith("OpenJPEG ") and described.endswith(f"({system})")
    assert pinned == variable == str(system)  # what child processes will load


def test_without_a_system_library_pillow_s_copy_is_used(tmp_path):
    bundled = _openjpeg.pillow_openjpeg()
    if bundled is None:
        pytest.skip("this Pillow bundles no OpenJPEG")
    (described, pinned, _), _ = lookup(tmp_path, FAKE_SYSTEM_OPENJP2="none")
    assert described.endswith(f"/{bundled.name})")
    assert Path(pinned) == bundled.resolve()


def test_a_pin_wins_over_the_system_library(tmp_path):
    system = copy_of_library(tmp_path / "system")
    chosen = copy_of_library(tmp_path / "chosen")
    env = {"FAKE_SYSTEM_OPENJP2": str(system), _openjpeg.PIN_VARIABLE: str(chosen)}
    (described, pinned, _), _ = lookup(tmp_path, **env)
    assert described.endswith(f"({chosen})") and pinned == str(chosen)
    # A worker given the run's pin (Job.openjpeg) before glymur is imported honours it too.
    (described, _, _), _ = lookup(tmp_path, str(chosen), FAKE_SYSTEM_OPENJP2=str(system))
    assert described.endswith(f"({chosen})")


def test_a_pinned_file_that_is_gone_is_said_and_the_loaded_one_named(tmp_path):
    system = copy_of_library(tmp_path / "system")
    env = {"FAKE_SYSTEM_OPENJP2": str(system),
           _openjpeg.PIN_VARIABLE: str(tmp_path / "gone" / "libopenjp2.so.7")}
    (described, _, _), stderr = lookup(tmp_path, **env)
    assert described.endswith(f"({system})")
    assert f"{_openjpeg.PIN_VARIABLE} names {tmp_path / 'gone'}" in stderr


@pytest.fixture
def appearing_library(tmp_path, monkeypatch):
    """Worker processes started from now on find another ("system") OpenJPEG; this one
    keeps the library it loaded. Returns that other library's file."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    system = copy_of_library(tmp_path / "system")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), SRC]))
    monkeypatch.setenv("MEDBENCH_TEST_SYSTEM_OPENJP2", str(system))
    monkeypatch.setenv("MEDBENCH_TEST_MAIN_PID", str(os.getpid()))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(_openjpeg.PIN_VARIABLE, raising=False)
    return system


def libraries(tmp_path: Path, executor: str = "local") -> set[str]:
    config = RunConfig(codecs=["jpeg2000"], datasets=["sample"], limit=2, repeats=0,
                       workers=2, executor=executor)
    rows = run(config, tmp_path / "out").rows
    assert (rows["status"] == "ok").all()
    return set(rows["codec_library"])


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_workers_load_the_run_s_library_when_another_appears(tmp_path, appearing_library,
                                                             executor):
    if executor == "dask":
        pytest.importorskip("distributed")
    assert libraries(tmp_path, executor) == {_openjpeg.describe()}


def test_a_worker_that_loads_another_library_says_so(tmp_path, appearing_library):
    # A glymurrc is read before anything else: the pin cannot override it.
    rc = tmp_path / "config" / "glymur" / "glymurrc"
    rc.parent.mkdir(parents=True)
    rc.write_text(f"[library]\nopenjp2: {appearing_library}\n")
    assert libraries(tmp_path) == {f"OpenJPEG {_openjpeg.import_glymur().version.openjpeg_version}"
                                   f" ({appearing_library})"}
