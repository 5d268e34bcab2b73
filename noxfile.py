"""nox sessions: tests, lint, bench, regression.

Sessions reuse the interpreter's installed CPU torch when there is one (``venv_params``
with system site packages), because a plain ``torch`` requirement in a fresh virtualenv
pulls a multi-GB CUDA build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

VENV = {"venv_params": ["--system-site-packages"]}
#: piqa, the reference GMSD/HaarPSI/FSIM of the tests, installed without its dependencies:
#: it declares torchvision, whose wheel breaks the CPU torch (pyproject.toml's test extra).
PIQA = "piqa==1.3.2"


def install(session: nox.Session, *args: str) -> None:
    """``session.install``, skipped under ``nox --no-venv`` (CI runs the sessions inside the
    environment it has just built, which already holds medbench and its CPU torch)."""
    if session.venv_backend != "none":
        session.install(*args)


@nox.session(**VENV)
def tests(session: nox.Session) -> None:
    """The test suite (CPU, a few minutes)."""
    install(session, "-e", ".[test]")
    install(session, "--no-deps", PIQA)  # its torchvision requirement would break torch
    session.run("pytest", *session.posargs)


@nox.session(**VENV)
def lint(session: nox.Session) -> None:
    """ruff on sources, tests and benchmarks."""
    install(session, "ruff>=0.4")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


# -- bench and regression ------------------------------------------------------------------
#: pytest-benchmark storage of the saved baseline; ``0001`` is its fixed id there.
BENCH_STORAGE = Path(".benchmarks") / "medbench-baseline"
BENCH_ID = "0001"
#: The fixed run of ``nox -s regression`` and the committed results it must reproduce:
#: classical codecs, the shipped hyperprior models (deterministic streams), rate-matched
#: cells (``--target``) and region metrics (``--masks``: a centred disc of 160 px diameter
#: on each 320² tile the run codes), in parallel workers.
REGRESSION_REFERENCE = Path("tests") / "reference" / "sample-regression.csv"
REGRESSION_MASKS = Path("tests") / "reference" / "masks"
REGRESSION_RUN = ["--codecs", "jpeg,jpeg2000,hyperprior", "--datasets", "sample", "--limit",
                  "4", "--repeats", "0", "--workers", "2", "--target", "ratio=10",
                  "--masks", str(REGRESSION_MASKS)]


@nox.session(**VENV)
def bench(session: nox.Session) -> None:
    """pytest-benchmark suites vs the saved baseline; fails on a mean regression over 10 %.

    ``nox -s bench -- save`` records a new baseline (replacing the old one); other
    arguments go to pytest (e.g. ``-- benchmarks/bench_core.py -k 256``).
    """
    install(session, "-e", ".[test]")
    args = list(session.posargs)
    save = args[:1] == ["save"]
    if save:
        args = args[1:]
    paths = [a for a in args if a.startswith("benchmarks")] or ["benchmarks"]
    options = [a for a in args if not a.startswith("benchmarks")]
    pytest = ["pytest", *paths, "--benchmark-only", "-p", "no:cacheprovider",
              f"--benchmark-storage=file://{BENCH_STORAGE.resolve()}", *options]
    if save:
        shutil.rmtree(BENCH_STORAGE, ignore_errors=True)  # keeps the baseline's id at 0001
        session.run(*pytest, "--benchmark-save=baseline")
        return
    if not list(BENCH_STORAGE.glob(f"*/{BENCH_ID}_*.json")):
        session.error(f"no saved benchmark baseline in {BENCH_STORAGE}; record one on this "
                      "machine with `nox -s bench -- save`")
    session.run(*pytest, f"--benchmark-compare={BENCH_ID}",
                "--benchmark-compare-fail=mean:10%")


@nox.session(**VENV)
def regression(session: nox.Session) -> None:
    """A fixed ``medbench run`` on ``sample``, compared with the committed reference results.

    ``medbench compare --strict``: the same images, identical streams wherever a row names
    the same ``codec_library`` as the reference, the tolerances elsewhere, and a rate
    improvement beyond ``--bpp-tol`` fails too. Extra arguments go to ``medbench compare``
    (e.g. ``-- --psnr-tol 0.1``); ``nox -s regression -- save`` rewrites the reference
    from this machine (review the diff).
    """
    install(session, "-e", ".")
    tmp = Path(session.create_tmp())
    out = tmp / "regression-run"
    shutil.rmtree(out, ignore_errors=True)
    # An empty --models folder: only the shipped models, whatever ./medbench-models holds.
    session.run("medbench", "run", *REGRESSION_RUN, "--models", str(tmp / "no-models"),
                "--out", str(out), "--no-progress", "--no-report")
    if session.posargs[:1] == ["save"]:
        REGRESSION_REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "results.csv", REGRESSION_REFERENCE)
        session.log(f"saved {REGRESSION_REFERENCE}; commit it with the change that explains it")
        return
    session.run("medbench", "compare", str(REGRESSION_REFERENCE), str(out), "--strict",
                *session.posargs)
