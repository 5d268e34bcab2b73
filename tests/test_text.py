"""The one slug helper, and the names built on it that users see (they must not change)."""

from __future__ import annotations

import pytest

from medbench.datasets.files import safe_id
from medbench.text import slug


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("size=512,bits=native", {}, "size-512-bits-native"),
        ("folder:/data/x rays", {}, "folder-data-x-rays"),
        ("jsrt", {}, "jsrt"),
        ("::", {}, "x"),
        ("jpeg 2000/q=75", {"fill": "_", "default": "unnamed"}, "jpeg_2000_q_75"),
        ("", {"fill": "_", "default": "unnamed"}, "unnamed"),
        ("a.b_c-d", {}, "a.b_c-d"),
    ],
)
def test_slug(text: str, kwargs: dict, expected: str) -> None:
    assert slug(text, **kwargs) == expected


def test_safe_id_joins_parts_and_never_is_empty() -> None:
    assert safe_id("Hand", "sub dir", "a#1") == "Hand_sub-dir_a-1"
    assert safe_id("", "x") == "x"
    assert safe_id("???") == "image"
