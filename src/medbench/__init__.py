"""medbench: a benchmarking harness for compression of X-ray radiographs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medbench")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
