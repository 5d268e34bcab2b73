"""The codec interface every plugin implements.

A codec turns an :class:`~medbench.image.Image` into the *whole* bitstream and back:
``decode`` receives nothing but the bytes, so ``len(bytes)`` is what a file on disk
costs. Operating points are short strings (``q=75``, ``ratio=20``, ``lossless``) ordered
from low to high rate. A codec refuses inputs it cannot code faithfully by raising
:class:`~medbench.errors.UnsupportedInput`; it never converts them silently.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medbench.codecs._libraries import distribution
from medbench.codecs.provenance import TrainingImages
from medbench.errors import UnsupportedInput
from medbench.image import Image

LOSSLESS = "lossless"


@dataclass(frozen=True)
class Knob:
    """A codec's rate knob as a rate-matching search sees it (``run --target``).

    ``low``..``high`` is the lossy range searched; ``integer`` knobs take whole values;
    ``log`` knobs are bisected on a log scale; ``larger_is_smaller`` says that a larger
    value gives fewer bytes (JPEG 2000 ratio, JPEG XL distance, JPEG-LS near) rather
    than more (quality).
    """

    key: str
    low: float
    high: float
    integer: bool = False
    log: bool = False
    larger_is_smaller: bool = True

    def setting_for(self, value: float) -> str:
        """The setting string that codes at ``value`` (``ratio=10.37``, ``q=43``)."""
        if self.integer:
            return f"{self.key}={int(round(value))}"
        return f"{self.key}={float(f'{value:.4g}'):g}"


@dataclass(frozen=True)
class CodecContext:
    """What the harness tells codecs about the run (learned codecs need the models)."""

    models_dir: Path = Path("medbench-models")
    device: str = "auto"
    #: Learned codecs also offer each model's milestone checkpoints (``<model>@<budget>``).
    milestones: bool = False
    #: The one ``byo`` spec folder whose factories may be imported (``run --codecs byo
    #: --trust-byo DIR``): a spec names code, so None (the default) imports nothing.
    trusted_byo: Path | None = None


class Codec(ABC):
    """Base class of all codecs.

    Subclasses set ``name`` (the registry and command-line name), ``kind``
    (``"classical"`` or ``"learned"``), ``bit_depths`` (accepted bit depths) and
    ``rate_knob`` (one sentence: the knob, its unit and its direction).
    """

    name: str = ""
    kind: str = "classical"
    #: How the codec is configured, in one line, for comparing with the literature (the
    #: ``codec_conventions`` column): library, coding mode, fixed parameters.
    conventions: str = ""
    bit_depths: tuple[int, ...] = ()
    rate_knob: str = ""

    def __init__(self, context: CodecContext | None = None):
        self.context = context or CodecContext()

    # -- provenance -----------------------------------------------------------------
    def library(self, setting: str) -> str:
        """What writes (and reads) this codec's streams at ``setting``, with versions.

        The ``codec_library`` column of every row the codec codes. Two rows that name the
        same library must hold identical streams for identical input (``medbench
        compare`` relies on it), so name everything that decides the bytes: the library
        and its version, the file it was loaded from where several copies can be found
        (``OpenJPEG 2.5.4 (<site-packages>/pillow.libs/libopenjp2-….so.2.5.4)``), and for
        learned codecs the framework and the kind of processor they ran on. Must not
        raise, and must be cheap (it is asked once per cell).

        Parameters
        ----------
        setting
            One of :meth:`settings`, or the setting a rate-matching cell was coded at.

        Returns
        -------
        str
            This default names the installed distribution that provides the codec class
            and its version, then the class (``mycodecs 1.2 (mycodecs.codec.MyCodec)``);
            codecs that call a native library override it.
        """
        cls = type(self)
        where = f"{cls.__module__}.{cls.__qualname__}"
        provider = distribution(cls.__module__)
        return f"{provider} ({where})" if provider else where

    # -- availability -------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        """Why this codec cannot run here, or None when it can.

        Returns
        -------
        str or None
            One sentence naming what is missing and the fix (e.g. the pip requirement).
        """
        return None

    # -- operating points -----------------------------------------------------------
    @abstractmethod
    def settings(self) -> list[str]:
        """Operating points, ordered from low to high rate.

        Returns
        -------
        list of str
            Short setting strings (``q=75``, ``ratio=20``, ``lossless``); the names in
            result rows and on the command line.
        """

    def knob(self, bit_depth: int) -> Knob | None:
        """The knob a rate-matching search (``run --target``) may set to any value in its
        range for ``bit_depth``-bit images, or None: the codec offers only its
        :meth:`settings` (learned models, lossless-only codecs)."""
        return None

    def target_settings(self) -> list[str]:
        """The settings a rate-matching search (``run --target``) may pick among when the
        codec has no :meth:`knob`, low to high rate: the codec's finished operating points
        (learned codecs leave out milestone checkpoints). Default: :meth:`settings`."""
        return self.settings()

    def is_lossless(self, setting: str) -> bool:
        return setting == LOSSLESS

    def setting_info(self, setting: str) -> dict[str, Any]:
        """Extra result columns for a setting (learned codecs: ``train_dataset``)."""
        return {}

    def training_images(self, setting: str) -> TrainingImages | None:
        """The content hashes of the images the model behind ``setting`` trained and
        validated on, so a row can say whether its image was among them
        (``seen_in_training``); None (the default) when the codec learned nothing from
        images or its model records none.

        Parameters
        ----------
        setting
            One of :meth:`settings` (or a knob setting a rate-matching search chose).

        Returns
        -------
        TrainingImages or None
            See :mod:`medbench.codecs.provenance`.
        """
        return None

    def max_error(self, setting: str) -> int | None:
        """The largest absolute pixel error ``setting`` guarantees, or ``None`` if none.

        Near-lossless settings (JPEG-LS ``near=N``) promise ``N``; the harness turns a row
        whose ``max_abs_error`` exceeds the promise into an error row.
        """
        return None

    def dicom_syntax(self, setting: str, bit_depth: int) -> str | None:
        """The DICOM transfer syntax UID this codec's bitstream is, for one setting.

        ``medbench dicom-export`` and ``run --write-dicom`` encapsulate the measured
        bitstream unchanged under this syntax, so a codec declares one only when its
        stream is a bare codestream that syntax carries (no container boxes).

        Parameters
        ----------
        setting
            One of :meth:`settings`.
        bit_depth
            The bit depth of the coded image (JPEG's syntax depends on it).

        Returns
        -------
        str or None
            The UID, or None when the stream is no DICOM transfer syntax (the default).

        Raises
        ------
        UnsupportedInput
            The stream is a DICOM syntax, but not one that can be written here (the
            reason says why).
        """
        return None

    def check_setting(self, setting: str) -> None:
        if setting not in self.settings():
            raise ValueError(
                f"codec {self.name!r} has no setting {setting!r}; "
                f"its settings are {', '.join(self.settings())}"
            )

    # -- input checks -----------------------------------------------------------------
    def check(self, image: Image) -> None:
        """Refuse an image this codec cannot code faithfully as it is.

        Parameters
        ----------
        image
            The prepared image.

        Raises
        ------
        UnsupportedInput
            With the reason and the fix (e.g. another protocol); the harness records an
            ``unsupported`` row.
        """
        if self.bit_depths and image.bit_depth not in self.bit_depths:
            raise UnsupportedInput(
                f"{self.name} codes {_depths(self.bit_depths)}-bit images, not "
                f"{image.bit_depth}-bit ({image.image_id}); use --protocol paper or "
                f"--bit-depth 8, or a codec for deeper images"
            )

    # -- coding ---------------------------------------------------------------------
    @abstractmethod
    def encode(self, image: Image, setting: str) -> bytes:
        """Code one image.

        Parameters
        ----------
        image
            The prepared image (pixels, bit depth).
        setting
            One of :meth:`settings`.

        Returns
        -------
        bytes
            The complete bitstream: :meth:`decode` gets nothing else, so its length is
            the rate.
        """

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Pixels from the bitstream alone.

        Parameters
        ----------
        data
            Bytes from :meth:`encode`.

        Returns
        -------
        numpy.ndarray
            2-D, ``uint8`` up to 8 bits, else ``uint16``, the shape of the coded image.
        """

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "bit_depths": _depths(self.bit_depths) if self.bit_depths else "any",
            "settings": self.settings(),
            "rate_knob": self.rate_knob,
            "unavailable": self.unavailable_reason(),
            "notes": [],  # more lines for `medbench codecs` (byo: each spec's factory)
        }


def _depths(depths: tuple[int, ...]) -> str:
    """Compact text for a set of bit depths: ``8`` or ``8-16`` or ``8,12``."""
    d = sorted(depths)
    if len(d) > 2 and d == list(range(d[0], d[-1] + 1)):
        return f"{d[0]}-{d[-1]}"
    return ",".join(str(x) for x in d)


def parse_setting(setting: str, key: str) -> float:
    """The number in a ``key=value`` setting; a clear error for anything else."""
    prefix = f"{key}="
    if not setting.startswith(prefix):
        raise ValueError(f"setting {setting!r} is not of the form {key}=<number>")
    text = setting[len(prefix) :]
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"setting {setting!r}: {text!r} is not a number") from None


def parse_int_setting(setting: str, key: str, low: int, high: int, what: str) -> int:
    """The integer in a ``key=value`` setting, refused (never clamped) outside low..high."""
    value = parse_setting(setting, key)
    if not (low <= value <= high and value == int(value)):
        raise ValueError(f"{what} must be an integer {low}..{high}, got {setting!r}")
    return int(value)
