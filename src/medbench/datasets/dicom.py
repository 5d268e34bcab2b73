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

Hostile headers are refused before anything is allocated: Rows × Columns is checked
against the pixel budget (:mod:`~medbench.datasets.limits`), uncompressed Pixel Data must
hold exactly the bytes the header declares, a deflated file is inflated in a stream with a
cap, and a Modality LUT that is zero, not finite, or that would merge stored values or push
them beyond exact arithmetic is refused, naming the tag and its value. A file without the
128-byte preamble is read when it holds a valid image dataset.

Compressed pixel data is decoded by pydicom with the pylibjpeg plugins (JPEG baseline,
extended 12-bit and lossless, JPEG-LS, JPEG 2000, HTJ2K, RLE; deflate is inflated here);
imagecodecs decodes the JPEG and JPEG-LS syntaxes where no pydicom plugin for them is
installed.

One decision, one place: :class:`PixelPlan` reads the header and decides the bit depth,
the rescale and the polarity; :func:`probe_dicom` and :func:`read_dicom` both use it, so
``datasets show`` lists the bit depth a run reads.
"""

from __future__ import annotations

import io
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from medbench.datasets.base import Probe
from medbench.datasets.limits import budget_note, check_image_size, max_pixels, memory_message
from medbench.datasets.voi import voi_meta
from medbench.errors import ImageReadError
from medbench.image import dtype_for

DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
#: Uncompressed transfer syntaxes: implicit LE, explicit LE, explicit BE.
NATIVE = {"1.2.840.10008.1.2", EXPLICIT_LE, "1.2.840.10008.1.2.2"}
#: Compressed pixel data imagecodecs decodes where pydicom has no plugin installed for it
#: (Pillow decodes no 12-bit or lossless JPEG): transfer syntax -> imagecodecs function.
IMAGECODECS_SYNTAXES = {
    "1.2.840.10008.1.2.4.50": "jpeg8_decode",  # JPEG baseline, 8-bit
    "1.2.840.10008.1.2.4.51": "jpeg8_decode",  # JPEG extended, 12-bit
    "1.2.840.10008.1.2.4.57": "jpeg8_decode",  # JPEG lossless
    "1.2.840.10008.1.2.4.70": "jpeg8_decode",  # JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.80": "jpegls_decode",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "jpegls_decode",  # JPEG-LS near-lossless
}
#: Bytes allowed beside the pixels when a deflated file is inflated (other elements).
DEFLATE_SLACK = 16 << 20


def _open(path: Path, defer: bool = False) -> Any:
    """The dataset of a DICOM file, with or without its preamble; deflated files capped."""
    import pydicom
    from pydicom.filereader import _read_file_meta_info, read_preamble

    try:
        with open(path, "rb") as fp:
            preamble = read_preamble(fp, True)
            meta = _read_file_meta_info(fp)
            if str(meta.get("TransferSyntaxUID", "")) == DEFLATED:
                return _open_deflated(path, fp, preamble, meta, defer)
        return pydicom.dcmread(str(path), force=True, defer_size="4 KB" if defer else None)
    except ImageReadError:
        raise
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; make the file readable") from exc
    except MemoryError as exc:
        raise ImageReadError(memory_message(path)) from exc
    except Exception as exc:  # pydicom raises many types for malformed files
        raise ImageReadError(
            f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc}); "
            "remove or replace it"
        ) from exc


def _open_deflated(path: Path, fp: Any, preamble: Any, meta: Any, defer: bool) -> Any:
    """Inflate the dataset after the file meta in a stream, refusing a decompression bomb."""
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset

    cap = 2 * max_pixels() + DEFLATE_SLACK
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while chunk := fp.read(1 << 20):
        out += inflater.decompress(chunk, cap + 1 - len(out))
        if len(out) > cap or inflater.unconsumed_tail:
            raise ImageReadError(
                f"{path}: deflated DICOM inflates to more than {cap:,} bytes, beyond "
                f"{budget_note()}; it was not read"
            )
    out += inflater.flush()
    dataset = read_dataset(
        io.BytesIO(bytes(out)), False, True, defer_size="4 KB" if defer else None
    )
    meta.TransferSyntaxUID = EXPLICIT_LE  # what the inflated bytes now are
    return FileDataset(
        str(path), dataset, preamble=preamble, file_meta=meta,
        is_implicit_VR=False, is_little_endian=True,
    )


def _int_tag(path: Path, ds: Any, keyword: str, tag: str, name: str, default: int | None) -> int:
    """An integer header value, or an ImageReadError naming the tag and its value."""
    try:
        value = ds.get(keyword, None)
    except Exception as exc:  # pydicom converts values lazily, on access
        raise ImageReadError(f"{tag} {name} in {path} cannot be read ({exc})") from exc
    if value is None or value == "":
        if default is None:
            raise ImageReadError(
                f"{tag} {name} is missing in {path}; the file is not a complete image"
            )
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        raise ImageReadError(
            f"{tag} {name} of {str(value)!r} in {path} is invalid: it must be a whole number"
        ) from None


def _float_tag(path: Path, ds: Any, keyword: str, tag: str, name: str, default: float) -> float:
    """A finite decimal header value, or an ImageReadError naming the tag and its value."""
    try:
        value = ds.get(keyword, None)
    except Exception as exc:
        raise ImageReadError(f"{tag} {name} in {path} cannot be read ({exc})") from exc
    if value is None or value == "":
        return default
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ImageReadError(
            f"{tag} {name} of {str(value)!r} in {path} is invalid: it must be a number"
        ) from None
    if not math.isfinite(number):
        raise ImageReadError(
            f"{tag} {name} of {number:g} in {path} is invalid: it must be a finite number; "
            "fix the header or remove the file"
        )
    return number


class PixelPlan:
    """What medbench reads from a DICOM header, checked before any pixel is decoded.

    The one place that decides a DICOM's bit depth (:attr:`bit_depth`), its rescale
    (:attr:`slope`, :attr:`intercept`, and :attr:`lo`, the Modality LUT output that
    becomes 0) and its polarity (:attr:`invert`): the probe and the reader both use it.
    """

    def __init__(self, path: Path, ds: Any):
        self.path = path
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            raise ImageReadError(
                f"{path}: DICOM file has no pixel data; remove it from the folder"
            )
        if "FloatPixelData" in ds and "PixelData" not in ds:
            raise ImageReadError(f"{path}: DICOM float pixel data has no integer bit depth")
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        if photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise ImageReadError(
                f"{path}: colour DICOM (Photometric Interpretation {photometric!r}); "
                "medbench reads MONOCHROME1/MONOCHROME2 radiographs only"
            )
        self.photometric = photometric
        frames = _int_tag(path, ds, "NumberOfFrames", "(0028,0008)", "Number of Frames", 1)
        if frames != 1:
            raise ImageReadError(
                f"{path}: multi-frame DICOM ({frames} frames); split it into single frames first"
            )
        samples = _int_tag(path, ds, "SamplesPerPixel", "(0028,0002)", "Samples per Pixel", 1)
        if samples != 1:
            raise ImageReadError(
                f"{path}: DICOM with {samples} samples per pixel is not greyscale"
            )
        self.rows = _int_tag(path, ds, "Rows", "(0028,0010)", "Rows", None)
        self.columns = _int_tag(path, ds, "Columns", "(0028,0011)", "Columns", None)
        check_image_size(path, self.rows, self.columns)
        self.allocated = _int_tag(path, ds, "BitsAllocated", "(0028,0100)", "Bits Allocated", 16)
        if self.allocated not in (1, 8, 16, 32):
            raise ImageReadError(
                f"(0028,0100) Bits Allocated of {self.allocated} in {path} is invalid: "
                "it must be 1, 8, 16 or 32"
            )
        self.bits_stored = _int_tag(
            path, ds, "BitsStored", "(0028,0101)", "Bits Stored", self.allocated
        )
        if not 1 <= self.bits_stored <= self.allocated:
            raise ImageReadError(
                f"{path}: a (0028,0101) Bits Stored value of {self.bits_stored} is invalid "
                f"with Bits Allocated {self.allocated}"
            )
        if self.bits_stored > 16:
            raise ImageReadError(
                f"(0028,0101) Bits Stored of {self.bits_stored} in {path}: medbench handles "
                "up to 16 bits; convert the image to 16-bit"
            )
        representation = _int_tag(
            path, ds, "PixelRepresentation", "(0028,0103)", "Pixel Representation", 0
        )
        self.signed = representation == 1
        self.slope = _float_tag(path, ds, "RescaleSlope", "(0028,1053)", "Rescale Slope", 1.0)
        self.intercept = _float_tag(
            path, ds, "RescaleIntercept", "(0028,1052)", "Rescale Intercept", 0.0
        )
        self.lo, self.hi, self.bit_depth = self._value_range()
        self.lut_shape = str(ds.get("PresentationLUTShape", "")).strip().upper()
        # MONOCHROME1 is inverted once; INVERSE restates it there, but inverts MONOCHROME2.
        self.invert = photometric == "MONOCHROME1" or self.lut_shape == "INVERSE"
        meta = getattr(ds, "file_meta", None)
        self.syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        self._check_pixel_bytes(ds)

    @property
    def identity(self) -> bool:
        return not self.signed and self.slope == 1 and self.intercept == 0

    def _value_range(self) -> tuple[float, float, int]:
        """``(lo, hi, bit_depth)`` of the Modality LUT output over all storable values."""
        path, bits = self.path, self.bits_stored
        if self.identity:
            return 0.0, float(2**bits - 1), bits
        if self.slope == 0:
            raise ImageReadError(
                f"(0028,1053) Rescale Slope of 0 in {path} is invalid: it maps every pixel "
                "to one value; fix the header (1 when there is no rescale) or remove the file"
            )
        lo_in = -(2 ** (bits - 1)) if self.signed else 0
        hi_in = 2 ** (bits - 1) - 1 if self.signed else 2**bits - 1
        lo, hi = sorted((lo_in * self.slope + self.intercept, hi_in * self.slope + self.intercept))
        if max(abs(lo), abs(hi)) > 2**52:
            raise ImageReadError(
                f"(0028,1052) Rescale Intercept of {self.intercept:g} in {path} is invalid "
                f"(with (0028,1053) Rescale Slope {self.slope:g}): it maps the {bits}-bit "
                f"stored range to [{lo:g}, {hi:g}], where distinct pixel values become equal"
            )
        if abs(self.slope) < 1:
            levels = round(hi - lo) + 1
            raise ImageReadError(
                f"(0028,1053) Rescale Slope of {self.slope:g} in {path} is invalid for "
                f"medbench: it maps the {2**bits:,} stored values of {bits} bits onto "
                f"{levels:,} integer grey levels, destroying the image; store the rescaled "
                "values instead"
            )
        bit_depth = max(1, math.ceil(math.log2(round(hi - lo) + 1)))
        if bit_depth > 16:
            raise ImageReadError(
                f"{path}: pixel range needs {bit_depth} bits after rescale "
                f"((0028,1053) Rescale Slope {self.slope:g}, (0028,1052) Rescale Intercept "
                f"{self.intercept:g}); medbench handles <= 16"
            )
        return lo, hi, bit_depth

    def _check_pixel_bytes(self, ds: Any) -> None:
        """Uncompressed pixel data must hold exactly the bytes Rows × Columns declare."""
        if self.syntax and self.syntax not in NATIVE:
            return  # compressed: the decoder checks its stream; the budget bounds its output
        pixels = self.rows * self.columns
        expected = (pixels + 7) // 8 if self.allocated == 1 else pixels * self.allocated // 8
        element = ds.get_item("PixelData")
        length = getattr(element, "length", None)
        if length is None:
            length = len(element.value or b"")
        if length == 0xFFFFFFFF:
            raise ImageReadError(
                f"{self.path}: (7FE0,0010) Pixel Data is encapsulated but the transfer syntax "
                f"{self.syntax or '(none)'} says uncompressed; the file is damaged"
            )
        if length not in (expected, expected + 1):  # one pad byte keeps the length even
            raise ImageReadError(
                f"{self.path}: (7FE0,0010) Pixel Data holds {length:,} bytes where "
                f"{self.rows}x{self.columns} pixels of {self.allocated} bits need "
                f"{expected:,}; the file is truncated or damaged"
            )


def read_header(path: Path) -> tuple[Any, PixelPlan]:
    """The dataset of a DICOM file (pixel data not loaded) and its checked :class:`PixelPlan`."""
    ds = _open(path, defer=True)
    return ds, PixelPlan(path, ds)


def probe_dicom(path: Path) -> Probe:
    """Size and bit depth from the header (pixel data is skipped, not decoded)."""
    header = read_header(path)[1]
    return Probe(header.rows, header.columns, header.bit_depth)


def _stored_pixels(path: Path, ds: Any, header: PixelPlan) -> np.ndarray:
    """Stored values: pydicom's plugins first, imagecodecs where they lack or fail a JPEG.

    libjpeg (pylibjpeg-libjpeg) refuses some 12-bit JPEG streams that libjpeg-turbo
    (imagecodecs) decodes, such as a spectral-selection scan in pydicom-data's
    ``JPEG-lossy.dcm``; the first error is reported when both fail.
    """
    fallback = IMAGECODECS_SYNTAXES.get(header.syntax)
    try:
        try:
            if fallback is not None and not _pydicom_decodes(header.syntax):
                return _imagecodecs_pixels(ds, fallback)
            return ds.pixel_array
        except MemoryError:
            raise
        except Exception as first:
            if fallback is None:
                raise
            try:
                return _imagecodecs_pixels(ds, fallback)
            except Exception:
                raise first from None
    except MemoryError as exc:
        raise ImageReadError(memory_message(path)) from exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: B036 -- pylibjpeg-rle's Rust panics are BaseException
        raise ImageReadError(
            f"{path}: pixel data cannot be decoded ({type(exc).__name__}: {exc}); "
            "the file is damaged, or re-export it uncompressed"
        ) from exc


def _imagecodecs_pixels(ds: Any, function: str) -> np.ndarray:
    import imagecodecs
    from pydicom.encaps import generate_frames

    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    return np.asarray(getattr(imagecodecs, function)(frame))


def _pydicom_decodes(syntax: str) -> bool:
    """Whether pydicom has a plugin installed that decodes ``syntax``."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(syntax).is_available)
    except NotImplementedError:  # a syntax pydicom has no decoder for at all
        return False


#: Where a radiograph's pixel spacing is read, in order: the patient-plane (or calibrated)
#: spacing, then the detector's (PS3.3 C.7.6.2.1.1, C.8.11.4).
SPACING_TAGS = (("PixelSpacing", "(0028,0030) Pixel Spacing"),
                ("ImagerPixelSpacing", "(0018,1164) Imager Pixel Spacing"))


def pixel_spacing(ds: Any) -> dict[str, Any]:
    """``spacing_row_mm``, ``spacing_col_mm`` and ``spacing_source`` of a DICOM header.

    ``(0028,0030) Pixel Spacing`` where present, else ``(0018,1164) Imager Pixel Spacing``
    (at the detector: the ~10 % magnification of a PA chest is not removed); each holds
    the row spacing (between rows, mm) then the column spacing. A value that is missing,
    not two positive finite numbers, or unreadable gives no spacing (empty dict), and
    the observer experiment then says so.
    """
    for keyword, name in SPACING_TAGS:
        try:
            value = ds.get(keyword, None)
            numbers = [float(v) for v in value] if value is not None else []
        except (TypeError, ValueError):
            continue
        if len(numbers) == 2 and all(math.isfinite(v) and v > 0 for v in numbers):
            return {"spacing_row_mm": numbers[0], "spacing_col_mm": numbers[1],
                    "spacing_source": name}
    return {}


def read_dicom(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Pixels (MONOCHROME2, uint8/uint16), bit depth, and metadata of a DICOM file.

    The metadata's ``voi`` holds the VOI LUT module (Window Center/Width, VOI LUT
    Sequence) and how the returned pixels map back to the values it is defined on
    (:mod:`medbench.datasets.voi`); it is None when the header has neither.
    """
    ds = _open(path)
    header = PixelPlan(path, ds)
    stored = _stored_pixels(path, ds, header)
    if stored.shape != (header.rows, header.columns):
        raise ImageReadError(
            f"{path}: pixel data decodes to shape {stored.shape}, where (0028,0010) Rows and "
            f"(0028,0011) Columns say {header.rows}x{header.columns}"
        )
    bits_stored, lo, bit_depth = header.bits_stored, header.lo, header.bit_depth

    # Only the Bits Stored low bits are pixel value (pydicom >= 3 does this already).
    mask = (1 << bits_stored) - 1
    raw = stored.astype(np.int64) & mask
    if header.signed:
        raw = np.where(raw >= 1 << (bits_stored - 1), raw - (1 << bits_stored), raw)
    if not header.identity:
        values = raw * header.slope + header.intercept - lo
    else:
        values = raw.astype(np.float64)
    peak = 2**bit_depth - 1
    values = np.clip(np.rint(values), 0, peak)

    if header.invert:
        values = peak - values
    meta = {
        **pixel_spacing(ds),
        # Window Center/Width and VOI LUT, for display-referred scores (datasets.voi).
        "voi": voi_meta(ds, lo, peak, header.invert),
        "photometric": header.photometric,
        "bits_stored": bits_stored,
        "presentation_lut": header.lut_shape or None,
        "body_part": str(ds.get("BodyPartExamined", "")).strip() or None,
        "patient_id": str(ds.get("PatientID", "")).strip() or None,
        "study_uid": str(ds.get("StudyInstanceUID", "")).strip() or None,
        "view": str(ds.get("ViewPosition", "")).strip() or None,
    }
    return values.astype(dtype_for(bit_depth)), bit_depth, meta
