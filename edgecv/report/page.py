"""One report, two renderings, written side by side: a self-contained HTML page (figures inline as base64 PNG,
styles inline, no scripts and nothing fetched) and Markdown that links the same figures saved under plots/."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edgecv.core.fsutil import write_bytes, write_text
from edgecv.rundir import RunDir

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 0 24px 48px; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: 8px; }
h2 { margin-top: 36px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; text-align: right; }
th { background: #f6f8fa; }
td:first-child, th:first-child { text-align: left; }
table.kv td { text-align: left; }
td.best { font-weight: bold; }
td.up { background: #dafbe1; }
td.down { background: #ffebe9; }
figure { margin: 14px 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-size: 13px; color: #59636e; }
p.note { color: #59636e; font-size: 13px; }
"""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    classes: list[list[str]] | None = None  # a CSS class per cell: "", "up", "down", "best"


class Drawing(Protocol):
    """A figure still being drawn (edgecv.report.drawing.Pending)."""

    def result(self) -> bytes: ...


@dataclass
class Figure:
    name: str  # file name under plots/, without .png
    png: bytes | Drawing  # Drawing while a worker draws it (edgecv.report.drawing)
    caption: str


def drawn(png: bytes | Drawing) -> bytes:
    """A figure's PNG bytes, waiting for its worker if it is still being drawn."""
    return png if isinstance(png, bytes) else png.result()


@dataclass
class Links:
    """A list of links to files beside the report (relative paths, never fetched by the page itself)."""

    items: list[tuple[str, str]]  # (text, relative href)


@dataclass
class Section:
    id: str
    title: str
    blocks: list[str | Table | Figure | Links] = field(default_factory=list)  # a str is a paragraph


def to_html(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole page as one string."""
    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}"
             f"</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
             f"<p>{html.escape(subtitle)}</p>\n<nav>{nav}</nav>"]
    for s in sections:
        parts.append(f'<section id="{s.id}">\n<h2>{html.escape(s.title)}</h2>')
        for block in s.blocks:
            parts.append(_html_block(block))
        parts.append("</section>")
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)


def _html_block(block: str | Table | Figure | Links) -> str:
    if isinstance(block, Links):
        items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>' for text, href in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return (f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        rows = []
        for r, row in enumerate(block.rows):
            cells = []
            for c, value in enumerate(row):
                css = block.classes[r][c] if block.classes else ""
                attr = f' class="{css}"' if css else ""
                cells.append(f"<td{attr}>{html.escape(value)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        thead = f"<thead><tr>{head}</tr></thead>" if any(block.headers) else ""  # key-value tables have none
        return f'<table class="{"kv" if not thead else ""}">{thead}<tbody>\n' + "\n".join(rows) + "\n</tbody></table>"
    return f"<p>{html.escape(block)}</p>"


def to_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    """The report as Markdown; figures are linked as plots/<name>.png."""
    parts = [f"# {title}", "", subtitle, ""]
    for s in sections:
        parts += [f"## {s.title}", ""]
        for block in s.blocks:
            if isinstance(block, Links):
                parts += [*(f"- [{text}]({href})" for text, href in block.items), ""]
            elif isinstance(block, Figure):
                parts += [f"![{block.caption}](plots/{block.name}.png)", "", f"*{block.caption}*", ""]
            elif isinstance(block, Table):
                parts.append("| " + " | ".join(block.headers) + " |")
                parts.append("|" + "|".join(["---"] + ["---:"] * (len(block.headers) - 1)) + "|")
                for r, row in enumerate(block.rows):
                    marked = [f"**{v}**" if block.classes and block.classes[r][c] else v for c, v in enumerate(row)]
                    parts.append("| " + " | ".join(v.replace("|", "\\|") for v in marked) + " |")
                parts.append("")
            else:
                parts += [block, ""]
    return "\n".join(parts)


@dataclass
class BuiltReport:
    html: Path
    markdown: Path
    figures: int
    sections: list[str]


def write_pages(folder: Path, title: str, subtitle: str, sections: list[Section]) -> BuiltReport:
    """FOLDER/report.html, report.md and plots/*.png (a run's or a study's folder), each written atomically."""
    files = RunDir(folder)
    figures = [b for s in sections for b in s.blocks if isinstance(b, Figure)]
    for fig in figures:
        fig.png = drawn(fig.png)
        write_bytes(files.plots / f"{fig.name}.png", fig.png)
    write_text(files.report_md, to_markdown(title, subtitle, sections))
    write_text(files.report_html, to_html(title, subtitle, sections))
    return BuiltReport(files.report_html, files.report_md, len(figures), [s.id for s in sections])
