"""A student makes a personal access token in the browser and a notebook (plain HTTP, here
urllib) uses it against the live server."""

from __future__ import annotations

import json
import urllib.request

import pytest
from factories import PASSWORD

from lifecycle.models import ProjectStage

pytestmark = pytest.mark.django_db(transaction=True)


def _call(url: str, secret: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {secret}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_a_token_made_in_the_browser_drives_a_draft_from_a_notebook(personas, open_session):
    session = open_session()
    page = session.sign_in("alice@example.test", PASSWORD)
    page = session.go("/accounts/profile/")
    page.locator("#access-tokens").click()
    page.locator("#id_name").fill("training notebook")
    page.locator("input[name=scopes][value=draft]").check()
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#token-secret").inner_text().strip()
    assert secret.startswith("lrb_")
    # The secret is shown only in the answer to the POST, which the load-event check can miss if
    # the test moves on first (a GET of the page again shows no secret): check it here, always.
    assert session.axe(page) == []

    base = session.base_url + "/api/v1"
    status, me = _call(base + "/me/", secret)
    assert status == 200 and me["email"] == "alice@example.test"
    assert sorted(me["scopes"]) == ["draft", "read"]
    stage = ProjectStage.objects.get(pk=personas.project.current_stage_id)
    key = stage.definition.questions.order_by("order").first().key
    status, saved = _call(
        f"{base}/stages/{stage.pk}/draft/",
        secret,
        "PUT",
        {"base_version": 0, "answers": {key: "Written from a notebook."}},
    )
    assert status == 200 and saved["draft"]["version"] == 1

    # The team sees the notebook's words on the stage page.
    page = session.go(stage.get_absolute_url())
    assert page.locator(f"#id_{key}").input_value() == "Written from a notebook."
    # The token page lists the token as used, and never shows the secret again.
    page = session.go("/api/tokens/")
    assert "training notebook" in page.content() and secret not in page.content()
