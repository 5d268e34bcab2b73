"""Files on disk: hashing them, walking a tree of them, naming images after them.

Which format a file is and how it is read live in :mod:`medbench.datasets.formats`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from medbench.text import slug


# -- hashing ------------------------------------------------------------------------------
def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class FileHasher:
    """Content hashes of files, remembered by (path, size, mtime) so each is read once.

    A manifest written by an earlier run can seed it (:meth:`remember`), so a second run
    does not re-read unchanged files just to hash them.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, int, str]] = {}

    @staticmethod
    def stamp(path: Path) -> tuple[int, int]:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns

    def remember(self, path: str, size: int, mtime_ns: int, digest: str) -> None:
        self._known[str(path)] = (int(size), int(mtime_ns), digest)

    def known(self, path: str) -> tuple[int, int, str] | None:
        return self._known.get(str(path))

    def hash(self, path: Path) -> str:
        size, mtime_ns = self.stamp(path)
        hit = self._known.get(str(path))
        if hit is not None and hit[:2] == (size, mtime_ns):
            return hit[2]
        digest = file_sha256(path)
        self._known[str(path)] = (size, mtime_ns, digest)
        return digest


# -- walking and naming ---------------------------------------------------------------------
def walk_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted; hidden folders (``.git``...) are not entered."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                found.append(path)
    return found


def safe_id(*parts: str) -> str:
    """An image id usable as a file name: parts joined by ``_``, odd characters as ``-``."""
    return slug("_".join(p for p in parts if p), default="image")
