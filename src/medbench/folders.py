"""Folders a command writes into, checked before any work is done.

A folder that cannot be written (a file on its path, no permission, a read-only disk) is
refused in one line before a run codes or an export re-codes anything, rather than as a
traceback at the end. A folder inside a dataset's own folder is refused too: the next
listing of that dataset would count the files written there (DICOM files, report
figures, exported PNGs) as its images.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path

from medbench.errors import MedbenchError


def check_writable(folder: Path, option: str) -> None:
    """Raise unless ``folder`` can be created (or is a folder) and written into.

    Parameters
    ----------
    folder
        The folder the command will write into (it need not exist yet).
    option
        The option that named it, for the message (``--out``, ``--write-dicom``).

    Raises
    ------
    MedbenchError
        Naming the folder, what is wrong (:func:`write_problem`) and the option to change.
    """
    problem = write_problem(folder)
    if problem is not None:
        raise MedbenchError(f"cannot write into {folder} ({problem}); choose a writable "
                            f"{option}")


def write_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be written into, or None when it can.

    The nearest existing folder on its path must take a new file: one is created and
    removed there, which is what counts (permissions, a read-only disk, an immutable
    folder), whoever runs the command.
    """
    existing = Path(folder)
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if existing.is_symlink() and not existing.exists():
        return f"{existing} is a broken link"
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        handle, probe = tempfile.mkstemp(prefix=".medbench-write-test-", dir=existing)
    except OSError as exc:
        return f"{existing} is not writable: {exc.strerror or exc}"
    os.close(handle)
    os.unlink(probe)
    return None


def check_outside(folder: Path, roots: Mapping[str, Path], option: str,
                  written: Collection[Path] = ()) -> None:
    """Raise when ``folder`` (or one of the sub-folders ``written``) lies inside the
    folder of a dataset.

    Parameters
    ----------
    folder
        The output folder.
    roots
        Dataset spec → the folder the dataset reads.
    option
        The option that named ``folder``, for the message.
    written
        Folders the command writes into besides ``folder`` (e.g. ``folder/<dataset>``).

    Raises
    ------
    MedbenchError
        Naming the folder, the dataset and the option to change.
    """
    for path in (Path(folder), *map(Path, written)):
        here = path.resolve()
        for spec, root in roots.items():
            home = Path(root).resolve()
            if here == home or home in here.parents:
                where = "lies" if path == Path(folder) else f"would write into {path},"
                raise MedbenchError(
                    f"{option} {folder} {where} inside the folder of dataset {spec} "
                    f"({root}): the next listing of that dataset would count the files "
                    f"written there as its images; choose a {option} folder outside it")
