"""One self-contained HTML page: inline CSS, figures as base64 PNG, no scripts, no network.

The page opens from disk (``file://``) in any browser, offline, and can be mailed as one
file. Sections carry fixed ``id`` attributes (see :data:`SECTIONS`) that tests look for.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

#: Section ids and titles, in page order: the answer first, the run metadata last.
SECTIONS: dict[str, str] = {
    "headline": "Headline",
    "diagnostic": "Diagnostic quality",
    "readers": "Readers' thresholds",
    "rd-curves": "Rate–distortion curves",
    "bd-rate": "BD-rate against JPEG 2000",
    "targets": "At 10:1 / 30:1",
    "summary": "Summary",
    "visual": "Visual comparison at matched rate",
    "generalization": "Generalization matrix",
    "budget": "Learned vs classical by training budget",
    "table1": "Seed paper's Table 1 beside medbench",
    "body-parts": "Per-body-part breakdown",
    "errors": "Errors",
    "metadata": "Run metadata",
}
#: Sections drawn folded (``<details>``): open them to read.
FOLDED = {"metadata"}


def page_order(diagnostic_measured: bool, readers_measured: bool = False) -> list[str]:
    """Section ids in page order: :data:`SECTIONS`', except that "Diagnostic quality"
    follows the rate-matched table when the run measured none, and "Readers' thresholds"
    follows it when no reader study was analysed (each then only says how to measure it,
    and the first screen stays the answer)."""
    ids = list(SECTIONS)
    if not diagnostic_measured:
        ids.remove("diagnostic")
        ids.insert(ids.index("targets") + 1, "diagnostic")
    if not readers_measured:
        ids.remove("readers")
        ids.insert(ids.index("diagnostic") + 1, "readers")
    return ids

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:0 1.2em 3em;color:#1b1b1b;line-height:1.35}
h1{font-size:1.3em;margin:.5em 0 .2em}h2{font-size:1.15em;border-bottom:1px solid #ccc;
padding-bottom:.15em;margin:1.2em 0 .4em}h3{font-size:1em;margin:.5em 0 .2em}
nav ul{list-style:none;padding:0;margin:.2em 0;display:flex;flex-wrap:wrap;gap:.1em 1em;
font-size:.85em}
table{border-collapse:collapse;font-size:.8em;margin:.5em 0 1em;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.2em .5em;white-space:nowrap}th{background:#f3f3f3;
text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
table.fit{display:table;width:100%;table-layout:auto}table.fit th,table.fit td{
white-space:normal}
td.unreliable{color:#8a8a8a;font-style:italic}
figure{margin:.3em 0 1.2em}figure img{width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}.note{font-size:.85em;color:#555}
.empty{color:#777;font-style:italic}pre{font-size:.8em;background:#f6f6f6;padding:.5em;
overflow-x:auto}
.headline ul{margin:.1em 0 .4em;padding-left:1.2em}.headline li{margin:.05em 0}
.headline table{margin:.3em 0 .2em;font-size:.85em}.headline td{white-space:nowrap}
.headline td.warn{white-space:normal}.warn{color:#9a3412}.headline p.note{margin:.2em 0}
details>summary{cursor:pointer}details>summary>h2{display:inline-block;border:0}
"""


@dataclass
class Section:
    """One ``<section>`` of the page: its id (from :data:`SECTIONS`) and body HTML."""

    id: str
    body: str

    @property
    def title(self) -> str:
        return SECTIONS[self.id]


def esc(text: object) -> str:
    return html.escape(str(text))


def figure(path: Path, caption: str, alt: str | None = None) -> str:
    """A ``<figure>`` with the PNG at ``path`` embedded as a data URI."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt or caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def paragraph(text: str, css_class: str = "") -> str:
    cls = f' class="{css_class}"' if css_class else ""
    return f"<p{cls}>{esc(text)}</p>"


def notes(items: list[str]) -> str:
    if not items:
        return ""
    return '<ul class="note">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def page(title: str, sections: list[Section]) -> str:
    """The whole document."""
    nav = "".join(f'<li><a href="#{s.id}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(_section(s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1><nav><ul>{nav}</ul></nav>{body}</body></html>\n"
    )


def _section(s: Section) -> str:
    if s.id in FOLDED:
        return (f'<section id="{s.id}"><details><summary><h2>{esc(s.title)}</h2></summary>'
                f"{s.body}</details></section>")
    return f'<section id="{s.id}"><h2>{esc(s.title)}</h2>{s.body}</section>'
