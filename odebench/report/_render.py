"""A small document model and its two renderings: GitHub markdown and self-contained HTML.

The report is assembled once as a list of blocks; :func:`to_markdown` and :func:`to_html`
only decide how each block looks. Inline text may use three markdown forms, rendered in both:
`` `code` ``, ``**strong**`` and ``[text](href)``.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Item:
    text: str
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bullets:
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Table:
    """Cells as text (never parsed for inline markup).

    A table of numbers has ``best``: it marks the cells shown in bold, and its numbers align right.
    """

    cells: pd.DataFrame
    best: pd.DataFrame | None = None
    index_name: str = ""

    def is_best(self, row: int, column: int) -> bool:
        return self.best is not None and bool(self.best.iat[row, column]) and str(self.cells.iat[row, column]) != ""


@dataclass(frozen=True)
class Image:
    file: str  # relative to the report folder
    title: str
    caption: str
    anchor: str


@dataclass(frozen=True)
class Details:
    summary: str
    blocks: tuple = field(default_factory=tuple)


Block = Heading | Paragraph | Bullets | Table | Image | Details


# --- markdown ---------------------------------------------------------------------------


def _md_cell(text: object) -> str:
    """Table text as markdown shows it literally (error messages may hold ``|``, ``<`` or newlines)."""
    escaped = html.escape(str(text), quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return escaped.replace("\n", " ").strip()


def markdown_table(table: Table) -> str:
    """A GitHub pipe table; the index becomes the first column."""
    cells = table.cells
    header = [table.index_name or (cells.index.name or "")] + [str(c) for c in cells.columns]
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for i, (name, row) in enumerate(cells.iterrows()):
        values = []
        for j, value in enumerate(row):
            text = _md_cell(value)
            if table.is_best(i, j):
                text = f"**{text}**"
            values.append(text)
        lines.append("| " + " | ".join([_md_cell(name)] + values) + " |")
    return "\n".join(lines)


def _md_block(block: Block) -> str:
    match block:
        case Heading(level, text, _):
            return "#" * level + " " + text
        case Paragraph(text):
            return text
        case Bullets(items):
            lines = []
            for item in items:
                lines.append(f"- {item.text}")
                lines.extend(f"  - {child}" for child in item.children)
            return "\n".join(lines)
        case Table():
            return markdown_table(block)
        case Image(file, title, caption, _):
            return f"![{title}]({file})\n\n*{title}.* {caption}"
        case Details(summary, blocks):
            inner = "\n\n".join(_md_block(b) for b in blocks)
            return f"<details><summary>{html.escape(summary)}</summary>\n\n{inner}\n\n</details>"
    raise TypeError(f"not a report block: {block!r}")


def to_markdown(blocks: list[Block]) -> str:
    return "\n\n".join(_md_block(b) for b in blocks) + "\n"


# --- HTML ---------------------------------------------------------------------------------

_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1400px; padding: 0 1.5rem; color: #1f2328; line-height: 1.5; }
h1 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; font-size: 90%; }
table { border-collapse: collapse; font-size: 13px; margin: .8rem 0 1.4rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f6f8fa; }
td.best { font-weight: 700; background: #dafbe1; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-size: 13px; color: #59636e; max-width: 1000px; }
details { margin: 1rem 0; }
summary { cursor: pointer; font-weight: 600; }
li > ul { margin: .2rem 0 .4rem; font-size: 14px; color: #3d444d; }
"""


def _inline(text: str, anchors: dict[str, str]) -> str:
    """Escape text and render the three inline forms; links to a figure of this page jump to it."""
    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        code, strong, link_text, href = match.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif strong is not None:
            out.append(f"<strong>{_inline(strong, anchors)}</strong>")
        else:
            target = f"#{anchors[href]}" if href in anchors else href
            out.append(f'<a href="{html.escape(target)}">{_inline(link_text, anchors)}</a>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _html_table(table: Table) -> str:
    cells = table.cells
    header = [table.index_name or (cells.index.name or ""), *cells.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    rows = []
    for i, (name, row) in enumerate(cells.iterrows()):
        tds = [f"<td>{html.escape(str(name))}</td>"]
        for j, value in enumerate(row):
            classes = " ".join(
                name
                for name, on in (("num", table.best is not None and _is_number(value)), ("best", table.is_best(i, j)))
                if on
            )
            attribute = f' class="{classes}"' if classes else ""
            tds.append(f"<td{attribute}>{html.escape(str(value))}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_block(block: Block, folder: Path, anchors: dict[str, str], embed: bool = True) -> str:
    match block:
        case Heading(level, text, anchor):
            ident = f' id="{html.escape(anchor)}"' if anchor else ""
            return f"<h{level}{ident}>{_inline(text, anchors)}</h{level}>"
        case Paragraph(text):
            return f"<p>{_inline(text, anchors)}</p>"
        case Bullets(items):
            lis = []
            for item in items:
                sub = "".join(f"<li>{_inline(c, anchors)}</li>" for c in item.children)
                lis.append(f"<li>{_inline(item.text, anchors)}{f'<ul>{sub}</ul>' if sub else ''}</li>")
            return f"<ul>{''.join(lis)}</ul>"
        case Table():
            return _html_table(block)
        case Image(file, title, caption, anchor):
            if embed:
                source = "data:image/png;base64," + base64.b64encode((folder / file).read_bytes()).decode("ascii")
            else:
                source = html.escape(file)
            return (
                f'<figure id="{html.escape(anchor)}" data-file="{html.escape(file)}">'
                f'<img src="{source}" alt="{html.escape(title)}">'
                f"<figcaption><strong>{html.escape(title)}.</strong> {_inline(caption, anchors)} "
                f'(<a href="{html.escape(file)}">{html.escape(file)}</a>)</figcaption></figure>'
            )
        case Details(summary, blocks):
            inner = "\n".join(_html_block(b, folder, anchors, embed) for b in blocks)
            return f"<details><summary>{html.escape(summary)}</summary>\n{inner}\n</details>"
    raise TypeError(f"not a report block: {block!r}")


def _images(blocks: list[Block]) -> list[Image]:
    found = []
    for block in blocks:
        if isinstance(block, Image):
            found.append(block)
        elif isinstance(block, Details):
            found.extend(_images(list(block.blocks)))
    return found


def to_html(blocks: list[Block], folder: Path, title: str, *, embed: bool = True) -> str:
    """A standalone page: figures embedded as base64 (read from ``folder``), no external
    resources; with ``embed=False`` the page links the figures beside it instead."""
    anchors = {image.file: image.anchor for image in _images(blocks)}
    body = "\n".join(_html_block(b, folder, anchors, embed) for b in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
