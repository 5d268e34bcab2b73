"""What a run records about the machine and software it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = (
    "medbench", "numpy", "torch", "Pillow", "glymur", "pydicom", "pytorch-msssim",
    "pandas", "scipy", "imagecodecs", "constriction",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(path: Path | None = None) -> str | None:
    """The git commit of the medbench source tree (None outside a checkout)."""
    where = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=where, capture_output=True, text=True, timeout=5,
    )
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def gpu_name() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def describe() -> dict[str, Any]:
    try:
        from medbench.codecs._openjpeg import import_glymur, library_file

        openjpeg = import_glymur().version.openjpeg_version
        openjpeg_file = library_file()
    except Exception:  # noqa: BLE001 (environment description must never fail)
        openjpeg, openjpeg_file = None, None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_name(),
        "packages": package_versions(),
        "openjpeg": openjpeg,
        # the libopenjp2 file the run loaded, which its workers load too (codecs._openjpeg)
        "openjpeg_library": str(openjpeg_file) if openjpeg_file else None,
        "git_revision": git_revision(),
    }
