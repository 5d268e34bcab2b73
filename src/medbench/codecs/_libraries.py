"""Which library file and which package coded a stream: text for the ``codec_library`` column.

Two streams of the same image are comparable byte for byte only when the same code wrote
them, so each codec names it (:meth:`medbench.codecs.base.Codec.library`). These helpers
find the file a ``ctypes`` library was really loaded from (a bare name such as
``libopenjp2.so.7`` says nothing about which copy the dynamic loader picked), write paths
inside a Python environment relative to it (``<site-packages>/pillow.libs/…``, the same
text on every machine that installed the same wheel), and name the installed distribution
that provides a Python module.
"""

from __future__ import annotations

import ctypes
import logging
import site
import sysconfig
from functools import cache, lru_cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

log = logging.getLogger(__name__)

#: How a path inside one of this interpreter's package folders is written.
SITE_PACKAGES = "<site-packages>"


class _DlInfo(ctypes.Structure):
    # Dl_info of dladdr(3) (glibc and macOS share this layout).
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def loaded_file(library: ctypes.CDLL, symbol: str) -> Path | None:
    """The file ``library`` was loaded from, found by the address of ``symbol`` in it.

    Parameters
    ----------
    library
        A loaded library (its ``_name`` may be a bare soname such as ``libopenjp2.so.7``).
    symbol
        A function the library exports (e.g. ``opj_version``).

    Returns
    -------
    pathlib.Path or None
        The resolved path of the mapped file (``dladdr(3)``), else the library's own name
        when that is an absolute path, else None.
    """
    try:
        address = ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        if dladdr(address, ctypes.byref(info)) and info.dli_fname:
            return Path(info.dli_fname.decode(errors="replace")).resolve()
    except (AttributeError, OSError, TypeError, ValueError) as exc:  # no dladdr here
        log.debug("dladdr failed for %s: %s", library, exc)
    name = Path(str(getattr(library, "_name", "") or ""))
    return name.resolve() if name.is_absolute() else None


@lru_cache(maxsize=1)
def _package_folders() -> tuple[Path, ...]:
    folders = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    try:
        folders.update(site.getsitepackages())
    except AttributeError:  # virtualenv's old site module
        pass
    folders.add(site.getusersitepackages())
    resolved = {Path(folder).resolve() for folder in folders if folder}
    return tuple(sorted(resolved, key=lambda p: -len(p.parts)))  # deepest first


def display_path(path: Path | str) -> str:
    """``path``, written ``<site-packages>/…`` when it lies in this interpreter's package
    folders (so a wheel's bundled library reads the same in every environment), else as
    the absolute path it is."""
    path = Path(path).resolve()
    for folder in _package_folders():
        if path.is_relative_to(folder):
            return f"{SITE_PACKAGES}/{path.relative_to(folder).as_posix()}"
    return str(path)


@cache
def distribution(module: str) -> str | None:
    """``"<distribution> <version>"`` of the installed package that provides ``module``
    (its top-level package), or None for a module no installed distribution declares."""
    top = module.split(".")[0]
    for name in packages_distributions().get(top, []):
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return None
