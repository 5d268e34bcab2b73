"""The DICOM header of a coded image: the source DICOM's, or a minimal Secondary Capture.

When the image came from a DICOM file, its patient, study, series and equipment
attributes are kept and the image is marked derived: a new SOP Instance UID (and a new
series per codec and setting), ``DerivationDescription``, and for lossy settings
``LossyImageCompression`` = ``01`` with the ratio and the method (appended to the
source's own when it was already lossy). The Image Pixel module is rewritten for the
pixels medbench coded: the true Bits Stored and High Bit (the stream's 12-bit precision
for a 9- to 11-bit image in 12-bit JPEG: :func:`stored_bits`), unsigned, and
``MONOCHROME2``.

Polarity: a MONOCHROME1 source is written MONOCHROME2. medbench reads every image as
MONOCHROME2 and codes those pixels; writing MONOCHROME1 would mean coding the inverted
pixels again, which gives another bitstream (other bytes, other errors) than the one
scored. So the stream inside the file is exactly the measured one (its SHA-256 is the
row's ``stream_sha256``) and displays as the source did; ``DerivationDescription`` says
the polarity was converted. The Modality LUT is kept (Rescale Slope 1, Intercept = the
value that became 0) only where medbench's pixels still map to the source's values
(native bit depth, no inversion); otherwise the pixels are medbench's values
(Rescale Type ``US``), and window settings of the source, which no longer apply, are
dropped. Pixel spacing is kept when the protocol kept the native size.

When the source is not DICOM (PNG, TIFF, raw), a Secondary Capture Image (PS3.3 A.8.1)
with empty type 2 patient and study attributes is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medbench.datasets.protocols import Protocol
from medbench.image import Image

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
#: LossyImageCompressionMethod (0028,2114) of each lossy transfer syntax (PS3.3 C.7.6.1.1.5.1).
METHODS = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
    "1.2.840.10008.1.2.4.112": "ISO_18181_1",
}
#: Sample precision a DCT JPEG syntax fixes (8 or 12 bits, whatever the image's depth).
JPEG_PRECISION = {"1.2.840.10008.1.2.4.50": 8, "1.2.840.10008.1.2.4.51": 12}
_ELEMENTS_DROPPED = (0x0028, 0x2050, 0x7FE0, 0x0088)  # groups rewritten or not applicable


@dataclass(frozen=True)
class CodedImage:
    """One coded image and where it came from, as a DICOM file describes it."""

    image: Image
    dataset: str
    codec: str
    setting: str
    syntax: str
    lossless: bool
    stream: bytes
    run_id: str
    protocol: Protocol
    #: The codec setting a rate-matched cell (``setting=target:ratio=10``) was coded at.
    knob: str = ""


def derived_uid(*parts: str) -> str:
    """A UID that is the same for the same parts (rewriting a file keeps its UIDs)."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=["medbench", *parts]))


def build_dataset(coded: CodedImage, source: Path | None) -> Any:
    """The dataset (header and file meta, no pixel data yet) of one coded image.

    Parameters
    ----------
    coded
        The coded image, its codec, setting, transfer syntax and bitstream.
    source
        The source DICOM file, or None (a Secondary Capture header is built).

    Returns
    -------
    pydicom.dataset.FileDataset
    """
    from pydicom.dataset import FileMetaDataset

    if source is not None:
        ds, notes = _from_source(coded, source)
    else:
        ds, notes = _secondary_capture(coded), []
    image = coded.image
    ds.SOPInstanceUID = derived_uid(coded.run_id, coded.dataset, image.image_id,
                                    coded.codec, coded.setting)
    ds.SeriesInstanceUID = derived_uid(coded.run_id, str(ds.get("StudyInstanceUID", "")),
                                       coded.codec, coded.setting)
    ds.SeriesDescription = f"medbench {coded.codec} {coded.setting}"[:64]
    ds.InstanceCreationDate, ds.InstanceCreationTime = _now()
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.height, image.width
    bits = stored_bits(coded)
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    _mark_compression(ds, coded)
    ratio = _ratio(coded)
    notes.insert(0, (
        f"Coded by medbench run {coded.run_id}: {coded.codec} {coded.setting}"
        f"{f' at {coded.knob}' if coded.knob else ''} under "
        f"protocol {coded.protocol.name}, {len(coded.stream)} bytes ({ratio:.4g}:1 against "
        f"{image.bit_depth}-bit storage); the pixel data is the measured bitstream."
    ))
    if bits != image.bit_depth:
        notes.append(f"The {image.bit_depth}-bit image is coded as {bits}-bit JPEG samples; "
                     f"Bits Stored {bits} keeps decoded values above {2**image.bit_depth - 1} "
                     "as medbench scored them.")
    ds.DerivationDescription = " ".join(notes)[:1024]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = coded.syntax
    ds.file_meta = meta
    return ds


def stored_bits(coded: CodedImage) -> int:
    """Bits Stored: the image's bit depth, or the precision a DCT JPEG stream fixes.

    A 10-bit image in 12-bit JPEG (extended) may decode above 1023 (ringing): with Bits
    Stored 10 a reader would mask those values to the low 10 bits, which is not the
    image medbench scored, so the stream's precision is declared instead.
    """
    return max(coded.image.bit_depth, JPEG_PRECISION.get(coded.syntax, 0))


def _from_source(coded: CodedImage, source: Path) -> tuple[Any, list[str]]:
    """The source's header without its pixel description, and notes on what changed."""
    from medbench.datasets.dicom import read_header

    src, plan = read_header(source)
    lossy_before = str(src.get("LossyImageCompression", "")).strip() == "01"
    ratios = _values(src.get("LossyImageCompressionRatio")) if lossy_before else []
    methods = _values(src.get("LossyImageCompressionMethod")) if lossy_before else []
    had_rescale = "RescaleSlope" in src or "RescaleIntercept" in src
    had_lut_shape = "PresentationLUTShape" in src
    spacing = {k: src.get(k) for k in ("PixelSpacing", "ImagerPixelSpacing") if k in src}

    ds = _copy_without(src)
    ds.ImageType = ["DERIVED", "SECONDARY", *_values(src.get("ImageType"))[2:]]
    notes: list[str] = []
    if coded.protocol.size is not None:
        ds.pop("ImagerPixelSpacing", None)
        notes.append(f"Resampled to {coded.image.width}x{coded.image.height}; no pixel "
                     "spacing is given.")
    else:
        for keyword, value in spacing.items():
            setattr(ds, keyword, value)
    native_values = coded.protocol.bit_depth in (None, plan.bit_depth) and not plan.invert
    if plan.invert:
        notes.append(f"Source was {plan.photometric}"
                     f"{' with Presentation LUT INVERSE' if plan.lut_shape else ''}; written "
                     "MONOCHROME2 as medbench coded it (it displays the same).")
    if had_rescale:
        if native_values:
            ds.RescaleSlope, ds.RescaleIntercept = "1", _ds(plan.lo)
        else:
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "0", "US"
    if had_lut_shape:
        ds.PresentationLUTShape = "IDENTITY"
    if lossy_before:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = ratios or None
        ds.LossyImageCompressionMethod = methods or None
    return ds, notes


def _copy_without(src: Any) -> Any:
    """A copy of ``src`` without pixel, presentation, icon, overlay or private elements."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    for element in src:
        group = element.tag.group
        if group in _ELEMENTS_DROPPED or 0x6000 <= group <= 0x60FF or element.tag.is_private:
            continue
        ds.add(element)
    return ds


def _secondary_capture(coded: CodedImage) -> Any:
    """Patient, study, series, equipment and image attributes of a minimal SC image."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID = SECONDARY_CAPTURE
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                    "AccessionNumber", "Laterality"):
        setattr(ds, keyword, "")
    ds.StudyInstanceUID = derived_uid(coded.run_id, coded.dataset)
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"  # workstation: made from a non-DICOM image file
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation = ""
    ds.BodyPartExamined = str(coded.image.meta.get("body_part") or "")[:16] or None
    if ds.BodyPartExamined is None:
        del ds.BodyPartExamined
    return ds


def _mark_compression(ds: Any, coded: CodedImage) -> None:
    """Lossy Image Compression (0028,2110..2114) for a lossy setting, after the source's."""
    if coded.lossless:
        return
    ratios = _values(ds.get("LossyImageCompressionRatio"))
    methods = _values(ds.get("LossyImageCompressionMethod"))
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, _ds(_ratio(coded))]
    ds.LossyImageCompressionMethod = [*methods, METHODS.get(coded.syntax, "")]


def _ratio(coded: CodedImage) -> float:
    """The row's ``ratio``: native storage bits over the bitstream's bits."""
    from medbench.benchmark.metrics import compression_ratio

    image = coded.image
    return compression_ratio(len(coded.stream), image.height, image.width, image.bit_depth)


def _values(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _ds(number: float) -> str:
    """A Decimal String (at most 16 characters)."""
    text = f"{number:.10g}"
    return text if len(text) <= 16 else f"{number:.6g}"


def _now() -> tuple[str, str]:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")
