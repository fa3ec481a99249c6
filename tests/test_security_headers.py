"""Security headers on every kind of page: a Content-Security-Policy without 'unsafe-inline',
a Permissions-Policy that turns off the browser features the board never uses, and
Referrer-Policy: same-origin. (HTTPS, HSTS and secure cookies are production settings, checked
by `check --deploy` in test_deploy_settings.py; the browser tests check that no page the
browser visits violates the policy.)
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error
from factories import current_stage
from reauth import confirm_password

TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates"


def directives(response: Any) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    parsed = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def review_url(p: Any) -> str:
    return reverse("reviews:review_stage", args=[current_stage(p.project).pk])


# (page kind, who looks, URL)
PAGES = {
    "home": ("ian", lambda p: reverse("home")),
    "project": ("alice", lambda p: p.project.get_absolute_url()),
    "stage": ("alice", lambda p: current_stage(p.project).get_absolute_url()),
    "review": (
        "ian",
        lambda p: reverse("reviews:review_stage", args=[current_stage(p.project).pk]),
    ),
    "board": ("ian", lambda p: reverse("reviews:board", args=[p.course.pk])),
    "notifications": ("alice", lambda p: reverse("notifications:list")),
    "login": (None, lambda p: reverse("accounts:login")),
    "confirm password": ("ian", lambda p: reverse("accounts:reauth")),
    "admin": (None, lambda p: reverse("admin:login")),
    "export": ("ian", lambda p: reverse("lifecycle:audit_export", args=[p.course.pk])),
    "dossier": ("alice", lambda p: reverse("reviews:project_dossier", args=[p.project.pk])),
    "not found": ("alice", lambda p: "/no/such/page/"),
}


@pytest.mark.parametrize("kind", PAGES)
def test_every_kind_of_page_sends_the_security_headers(personas, kind):
    who, url = PAGES[kind]
    client = Client()
    if who:
        client.force_login(getattr(personas, who))
        confirm_password(client)

    response = client.get(url(personas))

    assert response.status_code == (404 if kind == "not found" else 200)
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"][0] == "'self'"
    for directive in ("script-src", "style-src"):
        assert "'unsafe-inline'" not in policy[directive]
        assert "'unsafe-eval'" not in policy[directive]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    permissions = response.headers["Permissions-Policy"]
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in permissions
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_self_contained_error_page_is_allowed_its_one_style_block_by_hash(db):
    response = server_error(RequestFactory().get("/"))
    (css,) = re.findall(r"<style>(.*?)</style>", response.content.decode(), re.S)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()

    style_src = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["style-src"]

    assert f"'sha256-{digest}'" in style_src


# What the policy would refuse, written into a template: a <script> with a body, an event
# handler attribute, a javascript: URL, a <style> block or a style="" attribute. E-mail templates
# are exempt (no policy applies in a mail client, and mail clients need inline styles), as is
# the self-contained 500 page (its style block is allowed by hash).
INLINE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:|<style\b|\sstyle\s*=", re.I
)


def test_no_template_has_inline_scripts_or_styles():
    offenders = []
    for path in sorted(TEMPLATES_DIR.rglob("*.html")):
        relative = path.relative_to(TEMPLATES_DIR)
        if "emails" in relative.parts or relative.name == "500.html":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if INLINE.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()[:80]}")
    assert offenders == []
