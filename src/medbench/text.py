"""Text helpers shared by every layer (datasets, codecs, benchmark, reports).

It sits at the bottom of the package, beside :mod:`medbench.image` and
:mod:`medbench.errors`, and imports nothing of medbench, so any module may use it.
"""

from __future__ import annotations

import re

from medbench.errors import MedbenchError

#: Characters kept as they are in a slug; every run of other characters is replaced.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str, *, fill: str = "-", default: str = "x") -> str:
    """``text`` made safe as a file or folder name.

    Letters, digits, ``.``, ``_`` and ``-`` are kept; every run of other characters
    becomes one ``fill``, and ``fill`` is stripped from both ends.

    Parameters
    ----------
    text
        Any text: an image id, a dataset spec, a protocol name, a codec name.
    fill
        What replaces each run of unsafe characters (``"-"`` or ``"_"``).
    default
        Returned when nothing safe is left (empty ``text``, or only unsafe characters).

    Returns
    -------
    str
        The safe name, never empty.

    Examples
    --------
    >>> slug("folder:/data/x rays")
    'folder-data-x-rays'
    >>> slug("size=512,bits=native", fill="_")
    'size_512_bits_native'
    """
    return _UNSAFE.sub(fill, text).strip(fill) or default


def unique_names(names: list[str], option: str) -> list[str]:
    """``names`` stripped and without repeats (first order kept); an empty name is refused
    (``--codecs ,`` must not mean every codec).

    Parameters
    ----------
    names
        Names as given (e.g. a comma-separated option, split).
    option
        The option they came from, for the message.

    Raises
    ------
    MedbenchError
        One of the names is empty.
    """
    if any(not name.strip() for name in names):
        raise MedbenchError(f"{option} got an empty name in {','.join(names)!r}; give "
                            "comma-separated names, e.g. jpeg,jpeg2000")
    return list(dict.fromkeys(name.strip() for name in names))
