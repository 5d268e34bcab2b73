"""Import glymur so that it finds an OpenJPEG library even where the system has none.

glymur looks for ``libopenjp2`` once, when it is first imported: in a ``glymurrc`` file,
then with :func:`ctypes.util.find_library`. A fresh machine often has no system OpenJPEG,
but Pillow's wheel bundles one (``pillow.libs/libopenjp2-*.so*``, or ``.dylibs`` on
macOS). So, only when neither a glymurrc nor the system provides the library, we let
glymur's lookup see Pillow's copy, for the duration of that first import. The library is
never swapped after glymur has loaded one (doing so crashes).
"""

from __future__ import annotations

import ctypes.util
import importlib
import logging
import sys
from pathlib import Path
from types import ModuleType

from medbench.errors import CodecUnavailable

log = logging.getLogger(__name__)


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

    def find_library(name: str) -> str | None:
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
