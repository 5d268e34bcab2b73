"""nox sessions: tests, lint (and more as the project grows).

Sessions reuse the interpreter's installed CPU torch when there is one (``venv_params``
with system site packages), because a plain ``torch`` requirement in a fresh virtualenv
pulls a multi-GB CUDA build.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

VENV = {"venv_params": ["--system-site-packages"]}


@nox.session(**VENV)
def tests(session: nox.Session) -> None:
    """The test suite (CPU, a few minutes)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(**VENV)
def lint(session: nox.Session) -> None:
    """ruff on sources, tests and benchmarks."""
    session.install("ruff>=0.4")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
