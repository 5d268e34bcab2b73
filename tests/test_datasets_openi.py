"""The OPEN-I reader: PNG and DICOM, per-file polarity, grouping by report."""

from __future__ import annotations

import numpy as np

from medbench.datasets import get_dataset
from medbench.datasets.openi import parse_report, report_of_name
from tests.fixture_formats import picture, write_dicom, write_openi_report, write_png


def test_report_prefix_of_names():
    assert report_of_name("CXR12_1_IM-0123-1001") == "CXR12"
    assert report_of_name("12_IM-0123-1001") == "CXR12"
    assert report_of_name("chest") is None


def test_report_xml(tmp_path):
    write_openi_report(tmp_path / "7.xml", None, ["CXR7_1_IM-2263-1001", "CXR7_2_IM-2263-2001"],
                       major="Cardiomegaly/mild")
    report, images, meta = parse_report(tmp_path / "7.xml")
    assert report == "CXR7"  # no uId: CXR + file stem
    assert images == ["CXR7_1_IM-2263-1001", "CXR7_2_IM-2263-2001"]
    assert meta["mesh"] == "Cardiomegaly/mild"


def test_mixed_dicoms_are_each_read_by_their_own_header(tmp_path):
    root = tmp_path / "openi"
    scenes = {}
    cases = [  # (name, photometric, bits stored, presentation LUT shape)
        ("1_1_IM-0001-1001", "MONOCHROME1", 10, "INVERSE"),
        ("2_1_IM-0002-1001", "MONOCHROME2", 12, "IDENTITY"),
        ("3_1_IM-0003-1001", "MONOCHROME2", 15, None),
        ("4_1_IM-0004-1001", "MONOCHROME1", 14, None),
    ]
    for i, (name, photometric, bits, lut) in enumerate(cases):
        scene = picture((32, 24), bits, i)
        stored = (2**bits - 1) - scene.astype(np.int32) if photometric == "MONOCHROME1" else scene
        write_dicom(root / f"{name}.dcm", stored, photometric, bits, lut)
        scenes[name] = (scene, bits)
    dataset = get_dataset("openi", tmp_path)
    for record in dataset.records():
        image = dataset.load(record)
        scene, bits = scenes[record.image_id]
        assert image.bit_depth == bits
        np.testing.assert_array_equal(image.pixels, scene)


def test_groups_follow_reports_and_fall_back_to_the_prefix(tmp_path):
    root = tmp_path / "openi"
    for stem in ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001", "CXR2_1_IM-0002-1001",
                 "CXR9_1_IM-0099-1001"]:
        write_png(root / "NLMCXR_png" / f"{stem}.png", picture((16, 16), 8))
    # Report 10 lists CXR9's image (the XML, not the name, says which report it belongs to).
    write_openi_report(root / "ecgen-radiology" / "1.xml", "CXR1",
                       ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"])
    write_openi_report(root / "ecgen-radiology" / "10.xml", "CXR10", ["CXR9_1_IM-0099-1001"])
    (root / "ecgen-radiology" / "broken.xml").write_text("<eCitation><unclosed>")
    write_png(root / "NLMCXR_png" / "scan.png", picture((16, 16), 8))
    dataset = get_dataset("openi", tmp_path)
    groups = {r.image_id: r.group for r in dataset.records()}
    assert groups == {
        "CXR1_1_IM-0001-3001": "CXR1", "CXR1_1_IM-0001-4001": "CXR1",
        "CXR2_1_IM-0002-1001": "CXR2", "CXR9_1_IM-0099-1001": "CXR10",
    }
    reasons = sorted(s.reason for s in dataset.skipped)
    assert reasons[0].startswith("no report lists this image")
    assert reasons[1].startswith("unreadable report XML")


def test_png_and_dicom_of_one_image_are_both_kept_in_one_group(tmp_path):
    root = tmp_path / "openi"
    write_png(root / "CXR5_1_IM-0005-1001.png", picture((16, 16), 8))
    write_dicom(root / "5_1_IM-0005-1001.dcm", picture((16, 16), 12))
    records = get_dataset("openi", tmp_path).records()
    assert {r.image_id for r in records} == {"CXR5_1_IM-0005-1001_png", "5_1_IM-0005-1001_dcm"}
    assert {r.group for r in records} == {"CXR5"}
