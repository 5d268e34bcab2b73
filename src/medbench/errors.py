"""Errors a user can cause.

Every error a user can fix derives from :class:`MedbenchError`; the CLI prints it as one
line (``Error: ...``) without a traceback. Messages name the thing, the value and the fix.
"""


class MedbenchError(Exception):
    """Base class of errors caused by input, configuration or environment."""


class UnknownNameError(MedbenchError):
    """A codec, dataset or protocol name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(
            f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(known)) or '(none)'}"
        )


class UnsupportedInput(MedbenchError):
    """A codec refuses an image (bit depth, size) rather than silently converting it."""


class CodecUnavailable(MedbenchError):
    """A codec's backend library is missing on this machine."""


class DatasetError(MedbenchError):
    """A dataset folder is missing, empty or unreadable as a whole."""


class ImageReadError(MedbenchError):
    """One file could not be read as an image; the run skips it and goes on."""


def is_library_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of a library on bad data, to be reported, not re-raised.

    Every ``Exception``, and the ``PanicException`` that Rust extensions built with pyo3
    (pylibjpeg-rle, constriction, safetensors) raise when they panic on malformed input:
    it derives from ``BaseException``, so ``except Exception`` lets it end a run. Ctrl-C
    (``KeyboardInterrupt``) and ``SystemExit`` are never library failures.
    """
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"
