"""A small document model and its two renderings: GitHub markdown and one HTML page.

The report is assembled once as a list of blocks; :func:`to_markdown` and :func:`to_html`
only decide how each block looks. Block text is inline markdown (code spans, strong emphasis,
links) written by the report itself; text from records enters it only through
:func:`odebench._markdown.code` or :func:`odebench._markdown.escape`, so it reads literally.
The page comes from the Jinja2 template ``templates/index.html`` with autoescape on; inline
markdown is rendered by markdown-it with raw HTML and images off and links restricted to
http(s) and relative targets (:func:`allowed_link`), whatever the text holds.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pandas as pd

from .._markdown import escape


@dataclass(frozen=True)
class Heading:
    kind: ClassVar[str] = "heading"
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Paragraph:
    kind: ClassVar[str] = "paragraph"
    text: str


@dataclass(frozen=True)
class Item:
    text: str
    children: tuple[str, ...] = ()


@dataclass(frozen=True)
class Bullets:
    """A list; with ``fold`` the children of each item fold away under it in HTML (``<details>``)."""

    kind: ClassVar[str] = "bullets"
    items: tuple[Item, ...]
    fold: bool = False


@dataclass(frozen=True)
class Table:
    """A table; the index becomes the first column.

    Cells are plain text unless ``inline`` (then they are inline markdown, as block text is).
    A table of numbers has ``best``: it marks the cells shown in bold, and its numbers align
    right. ``row_anchors`` gives each row an id (``""`` for none) that links can point at.
    """

    kind: ClassVar[str] = "table"
    cells: pd.DataFrame
    best: pd.DataFrame | None = None
    index_name: str = ""
    inline: bool = False
    row_anchors: tuple[str, ...] = ()

    def is_best(self, row: int, column: int) -> bool:
        return self.best is not None and bool(self.best.iat[row, column]) and str(self.cells.iat[row, column]) != ""


@dataclass(frozen=True)
class Image:
    """A figure the report drew; title and caption are plain text."""

    kind: ClassVar[str] = "image"
    file: str  # relative to the report folder
    title: str
    caption: str
    anchor: str


@dataclass(frozen=True)
class Details:
    kind: ClassVar[str] = "details"
    summary: str
    blocks: tuple = ()


Block = Heading | Paragraph | Bullets | Table | Image | Details


# --- links --------------------------------------------------------------------------------

ALLOWED_SCHEMES = ("http", "https")


def allowed_link(url: str) -> bool:
    """Whether a link target may appear in the page: http(s), or relative to the page (no scheme, no host)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    if parts.scheme:
        return parts.scheme.lower() in ALLOWED_SCHEMES and bool(parts.netloc)
    return not parts.netloc and not url.strip().startswith("\\")


def _page_target(href: str, anchors: dict[str, str]) -> str:
    """A link to a figure file jumps to the figure on the page; ``file#id`` jumps to ``id`` (a table row)."""
    path, _, fragment = href.partition("#")
    return f"#{fragment or anchors[path]}" if path in anchors else href


# --- markdown -----------------------------------------------------------------------------


def _md_inline_cell(text: str) -> str:
    """Inline markdown as one pipe-table cell: on one line, its bars escaped for the table."""
    return re.sub(r"(?<!\\)\|", r"\\|", " ".join(text.split()))


def markdown_table(table: Table) -> str:
    """A GitHub pipe table; the index becomes the first column."""
    cells = table.cells
    header = [table.index_name or (cells.index.name or "")] + [str(c) for c in cells.columns]
    lines = ["| " + " | ".join(escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    # Plain text is escaped to read literally (error messages may hold ``|``, ``<`` or newlines).
    show = _md_inline_cell if table.inline else escape
    for i, (name, row) in enumerate(cells.iterrows()):
        values = [f"**{show(str(v))}**" if table.is_best(i, j) else show(str(v)) for j, v in enumerate(row)]
        lines.append("| " + " | ".join([show(str(name))] + values) + " |")
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
            return f"![{escape(title)}]({file})\n\n*{escape(title)}.* {escape(caption)}"
        case Details(summary, blocks):
            inner = "\n\n".join(_md_block(b) for b in blocks)
            return f"<details><summary>{html.escape(summary)}</summary>\n\n{inner}\n\n</details>"
    raise TypeError(f"not a report block: {block!r}")


def to_markdown(blocks: list[Block]) -> str:
    return "\n\n".join(_md_block(b) for b in blocks) + "\n"


# --- HTML ---------------------------------------------------------------------------------

TEMPLATE = "index.html"


@cache
def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(
        loader=PackageLoader("odebench.report", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _markdown_it():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    md.disable("image")  # the page's images are the report's own figures, never from text
    md.validateLink = allowed_link  # type: ignore[method-assign]  # markdown-it-py's documented override
    return md


def _inline_html(text: str, anchors: dict[str, str]):
    """Inline markdown as safe HTML (a ``Markup``), links to figures of the page turned into anchors."""
    from markupsafe import Markup

    md = _markdown_it()
    tokens = md.parseInline(text)
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open":
                child.attrSet("href", _page_target(str(child.attrGet("href")), anchors))
    return Markup(md.renderer.render(tokens, md.options, {}))


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _table_rows(table: Table, anchors: dict[str, str]) -> list[dict[str, Any]]:
    """The rows of a table as the template draws them: an id, and cells with their text and classes."""
    show = (lambda text: _inline_html(text, anchors)) if table.inline else str
    rows = []
    for i, (name, row) in enumerate(table.cells.iterrows()):
        cells = [{"text": show(str(name)), "classes": ""}]
        for j, value in enumerate(row):
            numeric = table.best is not None and _is_number(value)
            classes = " ".join(c for c, on in (("num", numeric), ("best", table.is_best(i, j))) if on)
            cells.append({"text": show(str(value)), "classes": classes})
        anchor = table.row_anchors[i] if i < len(table.row_anchors) else ""
        rows.append({"id": anchor, "cells": cells})
    return rows


def _images(blocks: list[Block]) -> list[Image]:
    found = []
    for block in blocks:
        if isinstance(block, Image):
            found.append(block)
        elif isinstance(block, Details):
            found.extend(_images(list(block.blocks)))
    return found


def _source(image: Image, folder: Path, embed: bool) -> str:
    """An image's ``src``: the PNG the report drew, inlined, or its path relative to the page."""
    if not embed:
        return image.file
    return "data:image/png;base64," + base64.b64encode((folder / image.file).read_bytes()).decode("ascii")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def to_html(blocks: list[Block], folder: Path, title: str, *, embed: bool = True) -> str:
    """One page, no external resources: figures embedded as base64 (read from ``folder``),
    or with ``embed=False`` linked beside it. Its own style and script are the only ones it
    runs, which its Content-Security-Policy states."""
    from markupsafe import Markup

    env = _environment()
    anchors = {image.file: image.anchor for image in _images(blocks)}
    css, script = (env.loader.get_source(env, name)[0].strip() for name in ("report.css", "report.js"))
    policy = (
        f"default-src 'none'; img-src 'self' data:{'' if embed else ' file:'}; "
        f"style-src {_hash(css)}; script-src {_hash(script)}"
    )
    return env.get_template(TEMPLATE).render(
        title=title,
        blocks=blocks,
        css=Markup(css),
        script=Markup(script),
        policy=policy,
        inline=lambda text: _inline_html(text, anchors),
        rows=lambda table: _table_rows(table, anchors),
        source=lambda image: _source(image, folder, embed),
    )
