"""Import glymur with one OpenJPEG library per run, even where the system has none.

glymur looks for ``libopenjp2`` once, when it is first imported: in a ``glymurrc`` file,
then with :func:`ctypes.util.find_library`. A fresh machine often has no system OpenJPEG,
but Pillow's wheel bundles one (``pillow.libs/libopenjp2-*.so*``, or ``.dylibs`` on
macOS). So, only when neither a glymurrc nor the system provides the library, we let
glymur's lookup see Pillow's copy, for the duration of that first import. The library is
never swapped after glymur has loaded one (doing so crashes).

**One library per run.** Different OpenJPEG builds write different JPEG 2000 streams, and
each process looks the library up for itself: a ``libopenjp2`` installed while a run is
going would be found by the worker processes started after it, and split the run. So the
process that runs the benchmark decides once: :func:`pin` imports glymur there (by the
rule above) and puts the file it loaded into the environment variable
:data:`PIN_VARIABLE`, which worker processes inherit (local pool, Dask ``LocalCluster``)
or are given (:func:`honour`, for workers of a remote Dask scheduler). A process whose
``MEDBENCH_OPENJPEG`` names a file loads that file, whatever the system holds now. A
worker that still ends up with another library (its ``glymurrc`` names one, which glymur
reads before anything else, or the pinned file is gone) says so: :func:`describe` names
the file actually loaded, and that text is every JPEG 2000 row's ``codec_library``.
"""

from __future__ import annotations

import ctypes.util
import importlib
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from medbench.codecs._libraries import display_path, loaded_file
from medbench.errors import CodecUnavailable

log = logging.getLogger(__name__)

#: Environment variable naming the libopenjp2 file glymur must load in this process.
PIN_VARIABLE = "MEDBENCH_OPENJPEG"


def pillow_openjpeg() -> Path | None:
    """Path of the libopenjp2 bundled in Pillow's wheel, if any."""
    try:
        import PIL
    except ImportError:
        return None
    root = Path(PIL.__file__).resolve().parent
    for folder in (root.parent / "pillow.libs", root / ".dylibs", root.parent / "Pillow.libs"):
        if folder.is_dir():
            hits = sorted(folder.glob("libopenjp2*"))
            if hits:
                return hits[0]
    return None


def import_glymur() -> ModuleType:
    """glymur, with a working OpenJPEG, or :class:`CodecUnavailable` saying how to get one."""
    glymur = _first_import()
    version = getattr(getattr(glymur, "version", None), "openjpeg_version", "0.0.0")
    if version in ("0.0.0", None):
        raise CodecUnavailable(
            "glymur found no OpenJPEG library; install one (apt install libopenjp2-7, "
            "brew install openjpeg) or reinstall Pillow from its wheel, which bundles it"
        )
    return glymur


def _first_import() -> ModuleType:
    if "glymur" in sys.modules:
        return sys.modules["glymur"]
    original = ctypes.util.find_library
    bundled = pillow_openjpeg()
    pinned = os.environ.get(PIN_VARIABLE) or None
    if pinned is not None and not Path(pinned).is_file():
        log.warning("%s names %s, which does not exist here; looking OpenJPEG up as usual "
                    "(rows' codec_library say which library coded them)", PIN_VARIABLE,
                    pinned)
        pinned = None

    def find_library(name: str) -> str | None:
        if name == "openjp2" and pinned is not None:
            return pinned
        found = original(name)
        if found is None and name == "openjp2" and bundled is not None:
            log.debug("using Pillow's bundled OpenJPEG at %s", bundled)
            return str(bundled)
        return found

    ctypes.util.find_library = find_library
    try:
        return importlib.import_module("glymur")
    except ImportError as exc:
        raise CodecUnavailable(f"glymur is not installed ({exc}); pip install glymur") from exc
    finally:
        ctypes.util.find_library = original


@lru_cache(maxsize=1)
def library_file() -> Path | None:
    """The libopenjp2 file glymur loaded in this process (imports glymur), or None.

    Computed once: glymur never loads another library in the same process.
    """
    try:
        import_glymur()
        from glymur.lib import openjp2
    except (CodecUnavailable, ImportError):
        return None
    library = getattr(openjp2, "OPENJP2", None)
    return None if library is None else loaded_file(library, "opj_version")


def describe() -> str:
    """``OpenJPEG <version> (<file>)`` for the library glymur loaded in this process.

    The file is written relative to the Python environment when it lies in it
    (``<site-packages>/pillow.libs/libopenjp2-….so.2.5.4``), else as its absolute path
    (``/usr/lib/x86_64-linux-gnu/libopenjp2.so.2.5.0``). Never raises: without a library
    it says why.
    """
    try:
        version = import_glymur().version.openjpeg_version
    except CodecUnavailable as exc:
        return f"OpenJPEG unavailable ({exc})"
    found = library_file()
    return f"OpenJPEG {version} ({display_path(found) if found else 'file unknown'})"


def pin() -> str | None:
    """Decide this run's OpenJPEG: load it here and pin its file for child processes.

    Imports glymur in this process (honouring a pin it inherited) and sets
    :data:`PIN_VARIABLE` to the file loaded, so that every process started from now on
    loads the same one.

    Returns
    -------
    str or None
        The pinned file, or None when glymur has no library here (nothing is pinned).
    """
    found = library_file()
    if found is None:
        return None
    os.environ[PIN_VARIABLE] = str(found)
    return str(found)


def honour(pinned: str | None) -> None:
    """In a worker: load ``pinned`` (the run's :func:`pin`) when glymur is first imported.

    Has no effect once glymur is loaded in this process (a library is never swapped):
    the rows then name the library that really coded them.
    """
    if pinned and "glymur" not in sys.modules:
        os.environ[PIN_VARIABLE] = pinned
