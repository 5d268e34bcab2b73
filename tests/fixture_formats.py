"""Write tiny files in the exact native formats of the datasets medbench reads.

These writers are independent of medbench's readers (raw bytes, Pillow, pydicom, a
hand-made TIFF), so a test that writes with them and reads with medbench checks the
reader against the format, not against itself.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

JSRT_SIDE = 2048


def picture(shape: tuple[int, int], bit_depth: int, seed: int = 0) -> np.ndarray:
    """A smooth, noisy test picture using the whole range of ``bit_depth`` bits."""
    h, w = shape
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.1 + 0.7 * np.exp(-(((x - 0.5) / 0.4) ** 2 + ((y - 0.5) / 0.5) ** 2))
    base = base + 0.1 * np.sin(30 * y) + rng.normal(0, 0.02, base.shape)
    peak = 2**bit_depth - 1
    values = np.clip(np.rint(base * peak), 0, peak)
    values.flat[0], values.flat[-1] = 0, peak  # both ends of the range occur
    return values.astype(np.uint8 if bit_depth <= 8 else np.uint16)


# -- JSRT raw ----------------------------------------------------------------------------------
def write_jsrt_img(path: Path, mono2: np.ndarray) -> Path:
    """A JSRT .IMG: 2048x2048 big-endian words, 12-bit, stored inverted (high = dark)."""
    stored = (4095 - mono2.astype(np.int32)).astype(">u2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(stored.tobytes())
    return path


def jsrt_picture(seed: int = 0) -> np.ndarray:
    """A 2048x2048 12-bit MONOCHROME2 picture, cheap to make (a small one, repeated)."""
    small = picture((256, 256), 12, seed)
    return np.kron(small, np.ones((8, 8), dtype=np.uint16))


def write_jsrt_tree(root: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` JSRT .IMG files (JPCLN001..., then JPCNN001...) under ``root``."""
    paths = []
    for i in range(count):
        name = f"JPCLN{i + 1:03d}.IMG" if i < 154 else f"JPCNN{i - 153:03d}.IMG"
        paths.append(write_jsrt_img(Path(root) / name, jsrt_picture(seed + i)))
    return paths


# -- PNG ---------------------------------------------------------------------------------------
def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(
        ">I", zlib.crc32(ctype + data) & 0xFFFFFFFF
    )


def write_png(path: Path, arr: np.ndarray, sbit: int | None = None) -> Path:
    """A PNG of ``arr`` (uint8/uint16 grey, or HxWx3/4 uint8) via Pillow.

    With ``sbit`` the grey values (``sbit`` bits) are scaled up to the sample depth by
    left-bit replication, as the PNG standard asks, and an sBIT chunk is inserted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = arr
    if sbit is not None:
        depth = 8 * arr.dtype.itemsize
        v = arr.astype(np.uint32)
        data = ((v << (depth - sbit)) | (v >> (2 * sbit - depth))).astype(arr.dtype)
    PILImage.fromarray(data).save(path, format="PNG")
    if sbit is not None:
        raw = path.read_bytes()
        cut = 8 + 25  # signature + IHDR chunk
        path.write_bytes(raw[:cut] + _chunk(b"sBIT", bytes([sbit])) + raw[cut:])
    return path


# -- JPEG --------------------------------------------------------------------------------------
def write_jpeg(path: Path, arr: np.ndarray, quality: int = 95) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(arr).save(path, format="JPEG", quality=quality)
    return path


# -- TIFF (baseline, uncompressed, little-endian, written by hand) -----------------------------
def write_tiff(path: Path, arr: np.ndarray, white_is_zero: bool = False, pages: int = 1) -> Path:
    """A baseline grey TIFF; ``white_is_zero`` stores ``peak - value`` with Photometric 0."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bits = 8 * arr.dtype.itemsize
    stored = (2**bits - 1 - arr.astype(np.int64)).astype(arr.dtype) if white_is_zero else arr
    pixel_bytes = stored.astype(arr.dtype.newbyteorder("<")).tobytes()
    h, w = arr.shape
    out = bytearray(b"II*\x00" + struct.pack("<I", 0))
    next_pointer = 4  # where the offset of the next IFD goes (first: in the header)
    for _ in range(pages):
        data_offset = len(out)
        out += pixel_bytes
        if len(out) % 2:
            out += b"\x00"
        struct.pack_into("<I", out, next_pointer, len(out))
        tags = [
            (256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, bits), (259, 3, 1, 1),
            (262, 3, 1, 0 if white_is_zero else 1), (273, 4, 1, data_offset),
            (277, 3, 1, 1), (278, 3, 1, h), (279, 4, 1, len(pixel_bytes)),
        ]
        out += struct.pack("<H", len(tags))
        for tag, typ, count, value in tags:
            packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, typ, count) + packed
        next_pointer = len(out)
        out += struct.pack("<I", 0)
    path.write_bytes(bytes(out))
    return path


# -- DICOM -------------------------------------------------------------------------------------
def write_dicom(
    path: Path,
    stored: np.ndarray | None,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    lut_shape: str | None = None,
    slope: float | None = None,
    intercept: float | None = None,
    signed: bool = False,
    frames: int = 1,
    patient_id: str = "P0",
    window: tuple[list[float], list[float]] | None = None,
    voi_function: str | None = None,
    voi_lut: tuple[int, int, list[int], bool] | None = None,
    **elements: object,
) -> Path:
    """A DICOM file with the given stored values (``stored=None``: no pixel data).

    ``window``: (Window Center values, Window Width values); ``voi_function``: VOI LUT
    Function; ``voi_lut``: (first value mapped, bits per entry, entries, as OW bytes?) of
    a one-item VOI LUT Sequence; ``elements`` sets more data elements by keyword
    (``PixelSpacing=[0.2, 0.1]``).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID = patient_id
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    if stored is not None:
        rgb = stored.ndim == 3 and stored.shape[-1] == 3 and frames == 1
        ds.Rows, ds.Columns = stored.shape[-3:-1] if rgb else stored.shape[-2:]
        ds.SamplesPerPixel = 3 if rgb else 1
        ds.PhotometricInterpretation = "RGB" if rgb else photometric
        if rgb:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated = 8 if rgb else 16
        ds.BitsStored = 8 if rgb else bits_stored
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if signed else 0
        if frames > 1:
            ds.NumberOfFrames = frames
        dtype = "<u1" if rgb else ("<i2" if signed else "<u2")
        ds.PixelData = stored.astype(dtype).tobytes()
    if lut_shape is not None:
        ds.PresentationLUTShape = lut_shape
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_function is not None:
        ds.VOILUTFunction = voi_function
    if voi_lut is not None:
        first, bits, entries, as_ow = voi_lut
        item = Dataset()
        item.LUTDescriptor = [len(entries) % 65536, first, bits]
        if as_ow:  # the LUT Data as 16-bit little-endian words (VR OW)
            item.add_new(0x00283006, "OW", np.asarray(entries, "<u2").tobytes())
        else:
            item.add_new(0x00283006, "US", list(entries))
        item.LUTExplanation = "TEST LUT"
        ds.VOILUTSequence = [item]
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# -- side files --------------------------------------------------------------------------------
def write_openi_report(path: Path, uid: str | None, image_ids: list[str], major: str = "normal"):
    """An ``ecgen-radiology`` XML report naming its images in ``parentImage`` elements."""
    uid_xml = f'<uId id="{uid}"/>' if uid else ""
    images = "".join(
        f'<parentImage id="{i}"><figureId>F1</figureId><caption>Xray</caption></parentImage>'
        for i in image_ids
    )
    text = (
        '<?xml version="1.0" encoding="utf-8"?><eCitation><meta type="rr"/>'
        f"{uid_xml}<MedlineCitation><Article><Abstract>"
        '<AbstractText Label="FINDINGS">The lungs are clear.</AbstractText>'
        '<AbstractText Label="IMPRESSION">No active disease.</AbstractText>'
        f"</Abstract></Article></MedlineCitation><MeSH><major>{major}</major></MeSH>"
        f"{images}</eCitation>"
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


#: Rows as JSRT distributes them: CLNDAT tab-separated, CNNDAT space-separated.
CLNDAT_ROWS = [
    "JPCLN001.IMG\t5\t15\t53\tmale\t1634\t692\tmalignant\tl.upper lobe\tlung cancer",
    "JPCLN002.IMG\t5\t30\t78\tfemale\t1614\t1090\tbenign\tr.lower lobe\tgranuloma",
    "JPCLN003.IMG\t2\t18\t?\tmale\t246\t1233\tmalignant\tr.upper lobe\tadenocarcinoma",
]
CNNDAT_ROWS = ["JPCNN001.IMG 30 female non-nodule", "JPCNN002.IMG 62 male non-nodule"]


def write_nih_data_entry(path: Path, rows: list[tuple[str, str, int, str, str, str]]) -> None:
    """``Data_Entry_2017.csv``: (image, findings, follow-up, age, sex, view) per row."""
    lines = [
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
        "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
    ]
    for image, findings, follow_up, age, sex, view in rows:
        patient = int(image[:8])
        lines.append(f"{image},{findings},{follow_up},{patient},{age},{sex},{view},1024,1024,"
                     "0.143,0.143")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- a whole data root -------------------------------------------------------------------------
def make_data_root(root: Path) -> Path:
    """A small ``--data-root`` with jsrt/, openi/, mxid/ and nih/, and a few bad files."""
    root = Path(root)
    # JSRT: 3 nodule + 2 non-nodule images, clinical information, 2 broken files.
    jsrt = root / "jsrt"
    for i, name in enumerate(["JPCLN001", "JPCLN002", "JPCLN003", "JPCNN001", "JPCNN002"]):
        write_jsrt_img(jsrt / f"{name}.IMG", jsrt_picture(i))
    (jsrt / "CLNDAT_EN.txt").write_text("\r\n".join(CLNDAT_ROWS) + "\r\n", encoding="latin-1")
    (jsrt / "CNNDAT_EN.TXT").write_text("\r\n".join(CNNDAT_ROWS) + "\r\n", encoding="latin-1")
    (jsrt / "JPCLN004.IMG").write_bytes(b"")
    (jsrt / "JPCLN005.IMG").write_bytes(b"\x00" * 1000)
    # OPEN-I: 3 reports, PNG and DICOM, one report XML, a non-image file.
    openi = root / "openi"
    for report, n in [(1, 2), (2, 1), (3, 2)]:
        for k in range(n):
            stem = f"CXR{report}_1_IM-{report:04d}-{1001 + 1000 * k}"
            write_png(openi / "png" / f"{stem}.png", picture((96, 80), 8, report * 10 + k))
    write_dicom(openi / "dcm" / "4_1_IM-0004-1001.dcm", picture((96, 80), 12, 40),
                photometric="MONOCHROME1", bits_stored=12, lut_shape="INVERSE")
    write_dicom(openi / "dcm" / "5_1_IM-0005-1001.dcm", picture((96, 80), 10, 50),
                bits_stored=10, lut_shape="IDENTITY")
    write_openi_report(openi / "ecgen-radiology" / "1.xml", "CXR1",
                       ["CXR1_1_IM-0001-1001", "CXR1_1_IM-0001-2001"])
    (openi / "notes.txt").write_text("not an image\n")
    # MXID: three body parts, PNG and JPEG, one unreadable PNG.
    mxid = root / "mxid"
    for part, count in [("Lung", 3), ("Hand", 2), ("Pelvic basin", 2)]:
        for k in range(count):
            pixels = picture((64, 64), 8, sum(map(ord, part)) + k)
            if k % 2:
                write_jpeg(mxid / part / f"{part.lower()}_{k}.jpg", pixels)
            else:
                write_png(mxid / part / f"{k}.png", pixels)
    (mxid / "Hand" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    # NIH: 2 patients, one image stored as RGBA, the data entry table.
    nih = root / "nih" / "images"
    for stem in ["00000001_000", "00000001_001", "00000002_000"]:
        write_png(nih / f"{stem}.png", picture((64, 64), 8, int(stem[-1])))
    grey = picture((64, 64), 8, 7)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    write_png(nih / "00000002_001.png", rgba)
    write_nih_data_entry(root / "nih" / "Data_Entry_2017.csv", [
        ("00000001_000.png", "Cardiomegaly|Emphysema", 0, "058Y", "M", "PA"),
        ("00000002_001.png", "No Finding", 1, "81", "F", "AP"),
    ])
    return root
