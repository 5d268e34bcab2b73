"""The HTML page builder: one self-contained document, escaped text, embedded PNGs."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
from PIL import Image as PILImage

from medbench.reports import html as H
from medbench.reports.format import html_table, text_frame


def test_page_has_sections_in_order_with_a_navigation(tmp_path):
    sections = [H.Section(sid, H.paragraph(f"body of {sid}")) for sid in H.SECTIONS]
    page = H.page("report <run>", sections)
    assert page.startswith("<!DOCTYPE html>") and "<title>report &lt;run&gt;</title>" in page
    positions = [page.index(f'<section id="{sid}">') for sid in H.SECTIONS]
    assert positions == sorted(positions)
    for sid, title in H.SECTIONS.items():
        assert f'<a href="#{sid}">{H.esc(title)}</a>' in page
    assert "<script" not in page and "http" not in page


def test_text_is_escaped_in_paragraphs_and_tables():
    assert H.paragraph("<script>alert(1)</script>") == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>")
    frame = text_frame(pd.DataFrame({"error": ["a < b & c"], "n": [3]}),
                       [("error", "message", "{}"), ("n", "n", "{}")])
    table = html_table(frame)
    assert "<td>a &lt; b &amp; c</td>" in table and '<td class="num">3</td>' in table


def test_figures_are_embedded_as_base64_png(tmp_path):
    path = tmp_path / "f.png"
    PILImage.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    block = H.figure(path, "caption & more")
    data = re.search(r'src="data:image/png;base64,([^"]+)"', block).group(1)
    assert base64.b64decode(data) == path.read_bytes()
    assert "<figcaption>caption &amp; more</figcaption>" in block
