"""What an evidence file is, decided by its content and never by its name alone.

Every upload passes through ``inspect_upload``: the name must be a plain file name, the size
under the limit, the bytes must be what the extension claims (sniffed from magic numbers and
parsed), and the kind must be one the question accepts. Nothing here writes anything: a file
that fails a check never reaches storage.

- PDF: the magic number and a trailer (an upload cut short has none).
- PNG / JPEG: decoded by Pillow, with a pixel ceiling (a decompression bomb is refused).
- SVG: parsed without DTDs or entities; script, event handlers, foreign objects, external
  references and CSS that loads anything are refused. Clean SVG is shown only through ``<img>``
  and served with a sandboxing CSP, where no script runs anyway.
- CSV: UTF-8 text that the csv module parses; the first rows are kept as a preview.
- Notebook: nbformat JSON (no zip, no gzip), validated, every embedded image checked like an
  upload, rendered by nbconvert to HTML that nh3 sanitises (no script survives).
- Text: UTF-8 without NUL bytes, and not HTML in disguise.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

from django.conf import settings


class EvidenceRefused(Exception):
    """The file is not accepted; ``message`` says why, in words a student can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# The types a template may list for a question, and the extensions that claim each one.
FILE_TYPES: dict[str, tuple[str, ...]] = {
    "pdf": (".pdf",),
    "image": (".png", ".jpg", ".jpeg"),
    "svg": (".svg",),
    "csv": (".csv",),
    "notebook": (".ipynb",),
    "text": (".txt", ".md"),
}
TYPE_LABELS = {
    "pdf": "PDF",
    "image": "PNG or JPEG image",
    "svg": "SVG image",
    "csv": "CSV table",
    "notebook": "Jupyter notebook",
    "text": "plain text",
}
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "svg": "image/svg+xml",
    "csv": "text/csv; charset=utf-8",
    "notebook": "application/x-ipynb+json",
    "text": "text/plain; charset=utf-8",
}
PREVIEW_ROWS = 20
PREVIEW_COLUMNS = 20
PREVIEW_CELL_CHARS = 200
MAX_NAME_CHARS = 120
MAX_IMAGE_PIXELS = 40_000_000
MAX_NOTEBOOK_CELLS = 1000
MAX_JSON_DEPTH = 64


def max_bytes() -> int:
    return int(getattr(settings, "EVIDENCE_MAX_BYTES", 10 * 1024 * 1024))


def max_notebook_bytes() -> int:
    return int(getattr(settings, "EVIDENCE_MAX_NOTEBOOK_BYTES", 5 * 1024 * 1024))


@dataclass
class Inspected:
    name: str
    file_type: str  # a key of FILE_TYPES
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    preview: list[list[str]] = field(default_factory=list)
    rendered_html: bytes | None = None  # notebooks: sanitised HTML


# --- names ----------------------------------------------------------------------------------


def clean_name(raw: str) -> str:
    """A plain file name, or a refusal: no folders, no control characters, not hidden."""
    name = unicodedata.normalize("NFC", raw or "").strip()
    if not name:
        raise EvidenceRefused("The file has no name.")
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise EvidenceRefused(
            "A file name must not contain a folder path: rename the file and upload it again."
        )
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise EvidenceRefused("The file name contains control characters: rename the file.")
    if name.startswith("."):
        raise EvidenceRefused("A file name must not start with a dot.")
    if len(name) > MAX_NAME_CHARS:
        raise EvidenceRefused(f"The file name is longer than {MAX_NAME_CHARS} characters.")
    return name


def claimed_type(name: str) -> str | None:
    lower = name.lower()
    for file_type, extensions in FILE_TYPES.items():
        if lower.endswith(extensions):
            return file_type
    return None


# --- sniffing -------------------------------------------------------------------------------

_HTML_START = re.compile(
    rb"^\s*(<!doctype\s+html|<html|<head|<body|<script|<iframe|<meta|<object|<embed|<a\s|<img\s"
    rb"|<div|<svg|<\?xml)",
    re.IGNORECASE,
)


def sniff(data: bytes) -> str:
    """What the bytes are: pdf, png, jpeg, zip, gzip, svg, html, notebook, text or binary."""
    head = data[:1024]
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith((b"GIF8", b"BM", b"\x7fELF", b"MZ", b"RIFF")):
        return "binary"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "binary"
    if "\x00" in text:
        return "binary"
    stripped = text.lstrip()[:2048].encode("utf-8")
    if _HTML_START.match(stripped):
        lowered = stripped.lower()
        if b"<svg" in lowered and b"<html" not in lowered:
            return "svg"
        return "html"
    if stripped.startswith(b"{"):
        return "json"
    return "text"


_SNIFFED_LABELS = {
    "pdf": "a PDF",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "zip": "a zip archive",
    "gzip": "a gzip archive",
    "svg": "an SVG image",
    "html": "an HTML page",
    "json": "JSON",
    "text": "plain text",
    "binary": "a binary file of an unknown kind",
}
# What a claimed type may contain.
_MATCHES = {
    "pdf": {"pdf"},
    "image": {"png", "jpeg"},
    "svg": {"svg"},
    "csv": {"text"},
    "notebook": {"json"},
    "text": {"text", "json"},
}


# --- per type -------------------------------------------------------------------------------


def _check_pdf(data: bytes) -> None:
    if b"%%EOF" not in data[-2048:]:
        raise EvidenceRefused(
            "This PDF has no end-of-file marker: it looks cut short. Upload it again."
        )


def _open_image(data: bytes, expected_format: str | None = None) -> tuple[int, int, str]:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise EvidenceRefused(
                        f"The image is {width} by {height} pixels, more than "
                        f"{MAX_IMAGE_PIXELS:,} in all: scale it down."
                    )
                image_format = (image.format or "").lower()
                image.verify()
            # verify() leaves the image unusable; decoding proves the data is complete.
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except EvidenceRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise EvidenceRefused(
            "The image would decompress to far more pixels than any chart needs: refused."
        ) from None
    except Exception:
        raise EvidenceRefused("The image is damaged or incomplete: it cannot be decoded.") from None
    if expected_format and image_format != expected_format:
        raise EvidenceRefused(f"The image data is {image_format.upper()}, not {expected_format}.")
    return width, height, image_format


_SVG_NS = "{http://www.w3.org/2000/svg}"
_SVG_ALLOWED = {
    "svg",
    "g",
    "defs",
    "title",
    "desc",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "tspan",
    "lineargradient",
    "radialgradient",
    "stop",
    "clippath",
    "mask",
    "pattern",
    "symbol",
    "use",
    "marker",
    "metadata",
    "style",
}
_CSS_LOADS = re.compile(r"url\s*\(|@import|expression\s*\(|javascript:", re.IGNORECASE)


def _check_svg(data: bytes) -> None:
    refusal = "This SVG contains script, event handlers or external references: export it as PNG."
    text = data.decode("utf-8-sig")
    if re.search(r"<!DOCTYPE|<!ENTITY", text, re.IGNORECASE):
        raise EvidenceRefused("SVG files with a DOCTYPE or entities are refused: export it as PNG.")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        raise EvidenceRefused("This SVG is not well-formed XML.") from None
    if root.tag.lower() not in (f"{_SVG_NS}svg", "svg"):
        raise EvidenceRefused("This file is not an SVG image.")
    for element in root.iter():
        tag = element.tag.split("}", 1)[-1].lower() if isinstance(element.tag, str) else ""
        if tag not in _SVG_ALLOWED:
            raise EvidenceRefused(refusal)
        if tag == "style" and _CSS_LOADS.search(element.text or ""):
            raise EvidenceRefused(refusal)
        for attribute, value in element.attrib.items():
            local = attribute.split("}", 1)[-1].lower()
            if local.startswith("on"):
                raise EvidenceRefused(refusal)
            if local == "href" and not value.strip().startswith("#"):
                raise EvidenceRefused(refusal)
            if _CSS_LOADS.search(value) and not re.fullmatch(r"\s*url\(\s*#[\w-]+\s*\)\s*", value):
                raise EvidenceRefused(refusal)


def _csv_preview(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8-sig")
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        rows = []
        for row in reader:
            rows.append([cell[:PREVIEW_CELL_CHARS] for cell in row[:PREVIEW_COLUMNS]])
            if len(rows) >= PREVIEW_ROWS:
                break
        # Parse the rest too: a file that breaks later is refused now, not on a reviewer's page.
        for _ in reader:
            pass
    except csv.Error as error:
        raise EvidenceRefused(f"This CSV file cannot be read as a table: {error}.") from None
    if not rows:
        raise EvidenceRefused("This CSV file is empty.")
    return rows


def _json_depth(value: Any, depth: int = 0) -> int:
    if depth > MAX_JSON_DEPTH:
        raise EvidenceRefused("This notebook is nested too deeply to be a real notebook.")
    if isinstance(value, dict):
        return max((_json_depth(v, depth + 1) for v in value.values()), default=depth)
    if isinstance(value, list):
        return max((_json_depth(v, depth + 1) for v in value), default=depth)
    return depth


def render_notebook(data: bytes) -> bytes:
    """Validate a notebook and return it as sanitised HTML (script never survives)."""
    import base64

    import nbformat

    if len(data) > max_notebook_bytes():
        raise EvidenceRefused(
            f"Notebooks may be at most {max_notebook_bytes() // (1024 * 1024)} MB: clear large "
            "outputs and upload it again."
        )
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        raise EvidenceRefused("This notebook is not valid JSON.") from None
    _json_depth(raw)
    if not isinstance(raw, dict) or "cells" not in raw or "nbformat" not in raw:
        raise EvidenceRefused("This file is JSON but not a Jupyter notebook.")
    try:
        with warnings.catch_warnings():
            # Cells without ids (nbformat < 4.5) are normal in students' notebooks.
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(json.dumps(raw), as_version=4)
            nbformat.validate(notebook)
    except Exception:
        raise EvidenceRefused(
            "This notebook does not follow the Jupyter notebook format."
        ) from None
    if len(notebook.cells) > MAX_NOTEBOOK_CELLS:
        raise EvidenceRefused(f"This notebook has more than {MAX_NOTEBOOK_CELLS} cells.")
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            bundle = output.get("data", {})
            # Outputs that would run in a browser are dropped before rendering.
            for mime in list(bundle):
                if "javascript" in mime or mime.startswith("application/vnd.jupyter.widget"):
                    del bundle[mime]
            for mime, expected in (("image/png", "png"), ("image/jpeg", "jpeg")):
                if mime in bundle:
                    payload = bundle[mime]
                    encoded = "".join(payload) if isinstance(payload, list) else str(payload)
                    try:
                        image = base64.b64decode(encoded, validate=False)
                    except ValueError:
                        raise EvidenceRefused("An image in this notebook is damaged.") from None
                    _open_image(image, expected)
            if "image/svg+xml" in bundle:
                del bundle["image/svg+xml"]
    return _sanitised_notebook_html(notebook)


_NOTEBOOK_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "span",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}


def _sanitised_notebook_html(notebook: Any) -> bytes:
    import nh3
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    exporter.exclude_input_prompt = False
    body, _ = exporter.from_notebook_node(notebook)
    clean = nh3.clean(
        body,
        tags=_NOTEBOOK_TAGS,
        attributes={"*": {"class"}, "img": {"src", "alt", "width", "height"}, "a": {"href"}},
        url_schemes={"https", "http", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    # data: URLs stay only on images (nh3 allows the scheme everywhere it allows a URL).
    clean = re.sub(r'href="data:[^"]*"', 'href="#"', clean)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Notebook</title></head><body>" + clean + "</body></html>"
    )
    return page.encode("utf-8")


# --- the one entry point --------------------------------------------------------------------


def inspect_upload(name: str, data: bytes, accepted: list[str] | tuple[str, ...]) -> Inspected:
    """Check an upload; return what it is, or raise EvidenceRefused with the reason."""
    name = clean_name(name)
    limit = max_bytes()
    if len(data) > limit:
        raise EvidenceRefused(
            f"{name} is {len(data) / (1024 * 1024):.1f} MB; files may be at most "
            f"{limit // (1024 * 1024)} MB."
        )
    if not data:
        raise EvidenceRefused(f"{name} is empty.")
    file_type = claimed_type(name)
    if file_type is None:
        wanted = ", ".join(ext for t in accepted for ext in FILE_TYPES.get(t, ()))
        raise EvidenceRefused(f"{name} is not a type this question accepts ({wanted}).")
    if file_type not in accepted:
        accepted_labels = ", ".join(TYPE_LABELS[t] for t in accepted if t in TYPE_LABELS)
        raise EvidenceRefused(
            f"This question accepts {accepted_labels}; {name} is a {TYPE_LABELS[file_type]}."
        )
    sniffed = sniff(data)
    if sniffed == "html":
        raise EvidenceRefused(f"{name} contains HTML; HTML files are never accepted.")
    if sniffed not in _MATCHES[file_type]:
        raise EvidenceRefused(
            f"The content of {name} is {_SNIFFED_LABELS.get(sniffed, sniffed)}, which does not "
            f"match its name (a {TYPE_LABELS[file_type]})."
        )
    inspected = Inspected(name=name, file_type=file_type, content_type="", size=len(data))
    if file_type == "pdf":
        _check_pdf(data)
        inspected.content_type = CONTENT_TYPES["pdf"]
    elif file_type == "image":
        expected = "jpeg" if name.lower().endswith((".jpg", ".jpeg")) else "png"
        if sniffed != expected:
            raise EvidenceRefused(
                f"The content of {name} is {_SNIFFED_LABELS[sniffed]}, which does not match its "
                "name."
            )
        width, height, _ = _open_image(data, expected)
        inspected.width, inspected.height = width, height
        inspected.content_type = CONTENT_TYPES[expected]
    elif file_type == "svg":
        _check_svg(data)
        inspected.content_type = CONTENT_TYPES["svg"]
    elif file_type == "csv":
        inspected.preview = _csv_preview(data)
        inspected.content_type = CONTENT_TYPES["csv"]
    elif file_type == "notebook":
        inspected.rendered_html = render_notebook(data)
        inspected.content_type = CONTENT_TYPES["notebook"]
    else:
        inspected.content_type = CONTENT_TYPES["text"]
    return inspected
