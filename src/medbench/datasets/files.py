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

    def hash(self, path: Path, fresh: bool = False) -> str:
        """SHA-256 of ``path``: remembered while its size and mtime hold, unless ``fresh``.

        ``fresh`` reads the bytes whatever is remembered: a file replaced by another of the
        same size and modification time (a copy that keeps timestamps) has the same stamp.
        """
        size, mtime_ns = self.stamp(path)
        hit = self._known.get(str(path))
        if not fresh and hit is not None and hit[:2] == (size, mtime_ns):
            return hit[2]
        digest = file_sha256(path)
        self._known[str(path)] = (size, mtime_ns, digest)
        return digest


# -- walking and naming ---------------------------------------------------------------------
def walk_files(root: Path, skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every regular file under ``root``, sorted; hidden folders (``.git``...) are not entered.

    Symbolic links to folders are followed (a data folder is often a link to a larger
    disk) but each folder is entered once, by its device and inode: a link back up the
    tree (a loop) or a second link to the same folder (an alias) adds nothing. Links are
    followed only after every real folder was walked, so a folder keeps its own path.

    Parameters
    ----------
    root
        The folder to walk.
    skipped
        When given, ``(path, reason)`` is appended for every folder not entered: a loop
        or alias, or one that cannot be listed ("permission denied").

    Returns
    -------
    list of pathlib.Path
        The files, in sorted order of their paths.
    """
    found: list[Path] = []
    notes: list[tuple[Path, str]] = [] if skipped is None else skipped
    seen: dict[tuple[int, int], Path] = {}
    pending = [Path(root)]
    links: list[Path] = []
    while pending or links:
        folder = pending.pop() if pending else links.pop(0)
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                notes.append((folder, f"link to a folder already scanned ({seen[key]}); not "
                                      "entered again"))
                continue
            seen[key] = folder
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except PermissionError:
            notes.append((folder, "permission denied; make the folder readable"))
            continue
        except OSError as exc:
            notes.append((folder, f"cannot be listed ({exc.strerror or exc})"))
            continue
        folders = []
        for entry in entries:
            try:
                if entry.is_dir():  # follows links
                    if entry.name.startswith("."):
                        continue
                    (links if entry.is_symlink() else folders).append(Path(entry.path))
                elif entry.is_file():
                    found.append(Path(entry.path))
            except OSError as exc:
                notes.append((Path(entry.path), f"cannot be read ({exc.strerror or exc})"))
        pending.extend(reversed(folders))  # depth first, in sorted order
    return sorted(found)


def safe_id(*parts: str) -> str:
    """An image id usable as a file name: parts joined by ``_``, odd characters as ``-``."""
    return slug("_".join(p for p in parts if p), default="image")
