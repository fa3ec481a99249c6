"""A corpus of hostile and broken files: each is refused with a message a student can act on,
and nothing of it reaches storage. The honest files beside them pass."""

from __future__ import annotations

import json

import pytest
from evidence_samples import (
    CLEAN_SVG,
    CSV,
    code_cell_with_output,
    gzip_bomb,
    jpeg,
    notebook,
    notebook_with_png,
    pdf,
    png,
    png_bomb,
    zip_bomb,
)

from evidence.checks import FILE_TYPES, EvidenceRefused, inspect_upload

ALL = list(FILE_TYPES)

HOSTILE = [
    # (name, bytes, words the message must contain)
    ("matrix.pdf", png(), "does not match"),
    ("matrix.png", pdf(), "does not match"),
    ("photo.jpg", png(), "does not match"),
    ("notes.txt", b"<!DOCTYPE html><html><script>alert(1)</script></html>", "HTML"),
    ("notes.txt", b"  <script>fetch('/x')</script>", "HTML"),
    ("page.html", b"<html><body>hi</body></html>", "not a type"),
    ("data.csv", b"<html><script>alert(1)</script></html>", "HTML"),
    (
        "chart.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "script",
    ),
    ("chart.svg", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>', "script"),
    (
        "chart.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<image xlink:href="https://evil.example/x.png"/></svg>',
        "script",
    ),
    (
        "chart.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><div>x</div></foreignObject></svg>',
        "script",
    ),
    (
        "chart.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"><style>@import url(https://evil.example/a.css);'
        b"</style></svg>",
        "script",
    ),
    (
        "chart.svg",
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>',
        "DOCTYPE",
    ),
    ("analysis.ipynb", zip_bomb(), "zip"),
    ("analysis.ipynb", gzip_bomb(), "gzip"),
    ("analysis.ipynb", notebook_with_png(png_bomb()), "pixels"),
    ("analysis.ipynb", b"[" * 100_000 + b"]" * 100_000, "notebook"),
    ("analysis.ipynb", json.dumps({"cells": "no", "nbformat": 4}).encode(), "notebook"),
    ("analysis.ipynb", b'{"just": "json"}', "not a Jupyter notebook"),
    ("../../etc/passwd.txt", b"root:x:0:0", "folder path"),
    ("C:\\Users\\me\\chart.png", png(), "folder path"),
    ("chart\x07.png", png(), "control characters"),
    (".htaccess.txt", b"deny", "dot"),
    ("report.pdf", pdf()[:60], "cut short"),
    ("matrix.png", png(64, 64)[:80], "damaged"),
    ("empty.txt", b"", "empty"),
    ("data.csv", b"\x00\x01\x02\x03binary", "does not match"),
    ("data.csv", b'a,b\n"unterminated,1\n', "cannot be read"),
    ("image.png", png_bomb(), "pixels"),
    ("program.exe.txt", b"MZ\x90\x00\x03", "does not match"),
]


@pytest.mark.parametrize(
    ("name", "data", "words"), HOSTILE, ids=[f"{i}-{h[0]}" for i, h in enumerate(HOSTILE)]
)
def test_a_hostile_file_is_refused_with_a_reason(name, data, words):
    with pytest.raises(EvidenceRefused) as refused:
        inspect_upload(name, data, ALL)
    assert words.lower() in refused.value.message.lower()


def test_an_oversized_file_is_refused_before_it_is_read_as_anything(settings):
    settings.EVIDENCE_MAX_BYTES = 1024
    with pytest.raises(EvidenceRefused) as refused:
        inspect_upload("big.txt", b"a" * 2048, ALL)
    assert "at most" in refused.value.message


def test_a_type_the_question_does_not_take_is_refused():
    with pytest.raises(EvidenceRefused) as refused:
        inspect_upload("matrix.png", png(), ["pdf"])
    assert "accepts PDF" in refused.value.message


@pytest.mark.parametrize(
    ("name", "data", "file_type"),
    [
        ("matrix.png", png(), "image"),
        ("matrix.jpeg", jpeg(), "image"),
        ("report.pdf", pdf(), "pdf"),
        ("chart.svg", CLEAN_SVG, "svg"),
        ("errors.csv", CSV, "csv"),
        ("analysis.ipynb", notebook(), "notebook"),
        ("notes.md", b"# Consent\nCollected by the clinic.", "text"),
        ("plot.ipynb", notebook_with_png(png(20, 10)), "notebook"),
    ],
)
def test_an_honest_file_passes_with_its_type(name, data, file_type):
    assert inspect_upload(name, data, ALL).file_type == file_type


def test_a_csv_keeps_its_first_rows_as_a_preview():
    inspected = inspect_upload("errors.csv", CSV, ALL)
    assert inspected.preview[0] == ["subgroup", "n", "error_rate"]
    assert inspected.preview[1] == ["women 65+", "120", "0.051"]


def test_no_script_survives_a_notebook_rendering():
    hostile = notebook(
        [
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": '<script>alert(1)</script><img src=x onerror="alert(2)">'
                '<a href="javascript:alert(3)">x</a><iframe src="https://evil.example"></iframe>',
            },
            code_cell_with_output(
                {
                    "application/javascript": "alert(4)",
                    "text/html": "<script>alert(5)</script><b onclick='alert(6)'>bold</b>",
                    "image/svg+xml": "<svg onload='alert(7)'></svg>",
                }
            ),
        ]
    )
    html = inspect_upload("analysis.ipynb", hostile, ALL).rendered_html.decode()
    lowered = html.lower()
    for banned in ("<script", "onerror", "onclick", "onload", "javascript:", "<iframe", "alert("):
        assert banned not in lowered, banned
    assert "bold" in html


def test_a_notebook_keeps_its_text_and_images_when_rendered():
    html = inspect_upload("plot.ipynb", notebook_with_png(png(20, 10)), ALL).rendered_html
    assert b"data:image/png;base64," in html
    assert b"Figure" in html or b"<img" in html
