"""Read a single-frame grayscale DICOM radiograph into MONOCHROME2 pixels.

Order of operations (DICOM PS3.3 C.7.6.3 Image Pixel, C.11.1 Modality LUT, C.11.6
Presentation LUT): stored values are masked to Bits Stored (and sign-extended when Pixel
Representation is 1), the Modality LUT (Rescale Slope/Intercept) is applied when it is not
the identity, then polarity is made MONOCHROME2. MONOCHROME1 is inverted exactly once: a
``Presentation LUT Shape`` of INVERSE on a MONOCHROME1 file restates the same polarity (as
in the OPEN-I collection, and as the DX module PS3.3 C.8.11.6 prescribes) and is not
applied a second time; on a MONOCHROME2 file INVERSE means the file is meant to be
displayed inverted, so it is inverted.

Bit depth: Bits Stored, unless a rescale or signed storage moves the values; then the
output range ``[lo, hi]`` of the Modality LUT over all storable values is shifted to start
at zero and the bit depth is the number of bits that range needs. It depends only on the
header, never on the pixel values.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from medbench.datasets.base import Probe
from medbench.errors import ImageReadError
from medbench.image import dtype_for


def _open(path: Path, **kwargs: Any):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), **kwargs)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise ImageReadError(
            f"{path}: not a readable DICOM file ({exc}); remove or replace it"
        ) from exc


def _check_header(path: Path, ds: Any) -> str:
    """The photometric interpretation, after refusing what medbench cannot measure."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data; remove it from the folder")
    if "FloatPixelData" in ds and "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM float pixel data has no integer bit depth")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(
            f"{path}: colour DICOM (Photometric Interpretation {photometric!r}); "
            "medbench reads MONOCHROME1/MONOCHROME2 radiographs only"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise ImageReadError(
            f"{path}: multi-frame DICOM ({frames} frames); split it into single frames first"
        )
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise ImageReadError(f"{path}: DICOM with {samples} samples per pixel is not greyscale")
    return photometric


def _value_range(path: Path, ds: Any) -> tuple[float, float, int]:
    """``(lo, hi, bit_depth)`` of the Modality LUT output over all storable values."""
    allocated = int(ds.get("BitsAllocated", 16) or 16)
    bits_stored = int(ds.get("BitsStored", allocated) or allocated)
    if not 1 <= bits_stored <= allocated:
        raise ImageReadError(
            f"{path}: a (0028,0101) Bits Stored value of {bits_stored} is invalid "
            f"with Bits Allocated {allocated}"
        )
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if not signed and slope == 1 and intercept == 0:
        return 0.0, float(2**bits_stored - 1), bits_stored
    lo_in = -(2 ** (bits_stored - 1)) if signed else 0
    hi_in = 2 ** (bits_stored - 1) - 1 if signed else 2**bits_stored - 1
    lo, hi = sorted((lo_in * slope + intercept, hi_in * slope + intercept))
    bit_depth = max(1, math.ceil(math.log2(round(hi - lo) + 1)))
    if bit_depth > 16:
        raise ImageReadError(
            f"{path}: pixel range needs {bit_depth} bits after rescale; medbench handles <= 16"
        )
    return lo, hi, bit_depth


def probe_dicom(path: Path) -> Probe:
    """Size and bit depth from the header (pixel data is skipped, not decoded)."""
    ds = _open(path, defer_size="4 KB")
    _check_header(path, ds)
    _, _, bit_depth = _value_range(path, ds)
    return Probe(int(ds.get("Rows", 0)), int(ds.get("Columns", 0)), bit_depth)


def read_dicom(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Pixels (MONOCHROME2, uint8/uint16), bit depth, and metadata of a DICOM file."""
    ds = _open(path)
    photometric = _check_header(path, ds)
    lo, hi, bit_depth = _value_range(path, ds)
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise ImageReadError(
            f"{path}: pixel data cannot be decoded ({exc}); re-export the file"
        ) from exc
    if stored.ndim != 2:
        raise ImageReadError(f"{path}: pixel array has shape {stored.shape}, expected 2-D")

    allocated = int(ds.get("BitsAllocated", 16) or 16)
    bits_stored = int(ds.get("BitsStored", allocated) or allocated)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)

    # Only the Bits Stored low bits are pixel value (pydicom >= 3 does this already).
    mask = (1 << bits_stored) - 1
    raw = stored.astype(np.int64) & mask
    if signed:
        raw = np.where(raw >= 1 << (bits_stored - 1), raw - (1 << bits_stored), raw)
    if slope != 1 or intercept != 0 or signed:
        values = raw * slope + intercept - lo
    else:
        values = raw.astype(np.float64)
    peak = 2**bit_depth - 1
    values = np.clip(np.rint(values), 0, peak)

    lut_shape = str(ds.get("PresentationLUTShape", "")).strip().upper()
    if photometric == "MONOCHROME1" or lut_shape == "INVERSE":
        values = peak - values
    meta = {
        "photometric": photometric,
        "bits_stored": bits_stored,
        "presentation_lut": lut_shape or None,
        "body_part": str(ds.get("BodyPartExamined", "")).strip() or None,
        "patient_id": str(ds.get("PatientID", "")).strip() or None,
        "study_uid": str(ds.get("StudyInstanceUID", "")).strip() or None,
        "view": str(ds.get("ViewPosition", "")).strip() or None,
    }
    return values.astype(dtype_for(bit_depth)), bit_depth, meta
