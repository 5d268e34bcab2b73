"""Read a single-frame grayscale DICOM radiograph into MONOCHROME2 pixels.

Order of operations (DICOM PS3.3 C.7.6.3 Image Pixel, C.11.1 Modality LUT, C.11.6
Presentation LUT): stored values are masked to Bits Stored by pydicom, the Modality LUT
(Rescale Slope/Intercept) is applied when it is not the identity, then polarity is made
MONOCHROME2. MONOCHROME1 is inverted exactly once: a ``Presentation LUT Shape`` of
INVERSE on a MONOCHROME1 file restates the same polarity (as in the OPEN-I collection)
and is not applied a second time; on a MONOCHROME2 file INVERSE means the file is meant
to be displayed inverted, so it is inverted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medbench.errors import ImageReadError
from medbench.image import dtype_for


def read_dicom(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Pixels (MONOCHROME2, uint8/uint16), bit depth, and metadata of a DICOM file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path))
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError) as exc:
        raise ImageReadError(
            f"{path}: not a readable DICOM file ({exc}); remove or replace it"
        ) from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data; remove it from the folder")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(
            f"{path}: Photometric Interpretation {photometric!r} is not grayscale; "
            "medbench reads MONOCHROME1/MONOCHROME2 radiographs only"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise ImageReadError(
            f"{path}: multi-frame DICOM ({frames} frames); split it into single frames first"
        )
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise ImageReadError(
            f"{path}: pixel data cannot be decoded ({exc}); re-export the file"
        ) from exc
    if stored.ndim != 2:
        raise ImageReadError(f"{path}: pixel array has shape {stored.shape}, expected 2-D")

    bits_stored = int(ds.get("BitsStored", stored.dtype.itemsize * 8))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)

    values = stored.astype(np.float64)
    if slope != 1 or intercept != 0:
        values = values * slope + intercept
    if signed or slope != 1 or intercept != 0:
        # Shift the output range to start at zero and size the bit depth to it.
        lo = (-(2 ** (bits_stored - 1)) if signed else 0) * slope + intercept
        hi = ((2 ** (bits_stored - 1) - 1) if signed else (2**bits_stored - 1)) * slope + intercept
        lo, hi = min(lo, hi), max(lo, hi)
        values = values - lo
        bit_depth = max(1, int(np.ceil(np.log2(hi - lo + 1))))
    else:
        bit_depth = bits_stored
    if bit_depth > 16:
        raise ImageReadError(
            f"{path}: pixel range needs {bit_depth} bits after rescale; medbench handles <= 16"
        )
    peak = 2**bit_depth - 1
    values = np.clip(np.rint(values), 0, peak)

    lut_shape = str(ds.get("PresentationLUTShape", "")).strip().upper()
    invert = photometric == "MONOCHROME1" or lut_shape == "INVERSE"
    if invert:
        values = peak - values
    meta = {
        "photometric": photometric,
        "bits_stored": bits_stored,
        "body_part": str(ds.get("BodyPartExamined", "")).strip() or None,
        "patient_id": str(ds.get("PatientID", "")).strip() or None,
        "study_uid": str(ds.get("StudyInstanceUID", "")).strip() or None,
        "view": str(ds.get("ViewPosition", "")).strip() or None,
    }
    return values.astype(dtype_for(bit_depth)), bit_depth, meta
