"""Files for the evidence tests, made in memory: honest ones and a corpus of hostile ones."""

from __future__ import annotations

import base64
import gzip
import io
import json
import zipfile
from typing import Any


def png(width: int = 8, height: int = 8, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int = 8, height: int = 8) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 10)).save(out, format="JPEG")
    return out.getvalue()


def png_bomb() -> bytes:
    """A small PNG that decodes to 200 million pixels (a decompression bomb)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (20_000, 10_000)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def pdf(text: str = "Confusion matrix") -> bytes:
    body = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
        b"% " + text.encode() + b"\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )
    return body


def notebook(cells: list[dict[str, Any]] | None = None) -> bytes:
    cells = cells or [
        {"cell_type": "markdown", "metadata": {}, "source": "# Subgroup error rates"},
        {
            "cell_type": "code",
            "execution_count": 1,
            "metadata": {},
            "source": "print(0.04)",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "0.04\n"}],
        },
    ]
    return json.dumps(
        {
            "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    ).encode()


def code_cell_with_output(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {},
        "source": "show()",
        "outputs": [{"output_type": "display_data", "metadata": {}, "data": data}],
    }


def notebook_with_png(image: bytes) -> bytes:
    encoded = base64.b64encode(image).decode()
    return notebook([code_cell_with_output({"image/png": encoded, "text/plain": "<Figure>"})])


def zip_bomb() -> bytes:
    """A zip whose one member expands a thousandfold."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("notebook.ipynb", b"0" * 5_000_000)
    return out.getvalue()


def gzip_bomb() -> bytes:
    return gzip.compress(b"{" * 5_000_000)


CLEAN_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" viewBox="0 0 10 10">'
    b'<defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient></defs>'
    b'<rect width="10" height="10" fill="url(#g)"/></svg>'
)
CSV = b"subgroup,n,error_rate\nwomen 65+,120,0.051\nmen 65+,98,0.048\nunder 18,40,0.09\n"
