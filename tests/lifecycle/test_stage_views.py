"""The stage page: who may see and edit it, drafts, autosave, conflicts, submission, history."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from factories import complete_answers, fill_and_submit

from lifecycle import services
from lifecycle.forms import CHOICE_SUFFIX, JUSTIFICATION_SUFFIX
from lifecycle.models import AuditEvent, QuestionKind, StageStatus

pytestmark = pytest.mark.django_db

READERS = {
    "alice": 200,
    "bob": 200,
    "tina": 200,
    "ian": 200,
    "carol": 404,
    "erin": 404,
    "oscar": 404,
}
WRITERS = {
    "alice": 302,
    "bob": 302,
    "tina": 404,
    "ian": 404,
    "carol": 404,
    "erin": 404,
    "oscar": 404,
}


def client_for(personas, who: str | None, **kwargs) -> Client:
    client = Client(**kwargs)
    if who:
        client.force_login(getattr(personas, who))
    return client


def stage1(personas):
    return personas.project.stages.select_related("definition").get(definition__order=1, cycle=1)


def url(stage, name="stage_detail"):
    return reverse(f"lifecycle:{name}", args=[stage.project_id, stage.cycle, stage.definition.key])


def long_text_keys(stage):
    return list(
        stage.definition.questions.filter(kind=QuestionKind.LONG_TEXT).values_list("key", flat=True)
    )


def post_data(stage, answers=None, **extra):
    """Form data for the stage form from answers keyed by question."""
    data = {"draft_version": stage.draft_version}
    questions = {q.key: q for q in stage.definition.questions.all()}
    for key, value in (answers or {}).items():
        q = questions[key]
        if q.kind == QuestionKind.YES_NO_UNSURE:
            data[key + CHOICE_SUFFIX] = value["choice"]
            data[key + JUSTIFICATION_SUFFIX] = value["justification"]
        else:
            data[key] = value
    data.update(extra)
    return data


# --- access -------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "status"), READERS.items())
def test_the_stage_page_is_visible_to_the_team_and_course_staff_only(personas, who, status):
    response = client_for(personas, who).get(url(stage1(personas)))
    assert response.status_code == status


def test_anonymous_visitors_are_sent_to_sign_in(personas):
    for name in ("stage_detail", "stage_submit", "stage_revisions"):
        response = Client().get(url(stage1(personas), name))
        assert response.status_code == 302
        assert reverse("accounts:login") in response["Location"]


@pytest.mark.parametrize(("who", "status"), WRITERS.items())
def test_only_the_team_saves_a_draft(personas, who, status):
    stage = stage1(personas)
    key = long_text_keys(stage)[0]
    response = client_for(personas, who).post(url(stage), post_data(stage, {key: "Hello"}))
    assert response.status_code == status
    stage.refresh_from_db()
    assert (stage.draft_answers.get(key) == "Hello") == (status == 302)


@pytest.mark.parametrize(("who", "status"), WRITERS.items())
def test_only_the_team_autosaves(personas, who, status):
    stage = stage1(personas)
    key = long_text_keys(stage)[0]
    response = client_for(personas, who).post(
        url(stage, "stage_autosave"), post_data(stage, {key: "Hi"})
    )
    assert response.status_code == (200 if status == 302 else status)


@pytest.mark.parametrize("who", ["tina", "ian", "carol", "oscar"])
def test_nobody_but_the_team_can_open_or_post_the_submission(personas, who):
    stage = stage1(personas)
    client = client_for(personas, who)
    assert client.get(url(stage, "stage_submit")).status_code == 404
    assert client.post(url(stage, "stage_submit"), {"draft_version": 0}).status_code == 404
    stage.refresh_from_db()
    assert stage.status == StageStatus.DRAFTING


@pytest.mark.parametrize(("who", "status"), READERS.items())
def test_revision_history_is_visible_to_the_team_and_staff(personas, who, status):
    assert (
        client_for(personas, who).get(url(stage1(personas), "stage_revisions")).status_code
        == status
    )


def test_wrong_http_methods_are_refused(personas):
    client = client_for(personas, "alice")
    stage = stage1(personas)
    assert client.get(url(stage, "stage_autosave")).status_code == 405
    assert client.post(url(stage, "stage_revisions")).status_code == 405
    assert client.put(url(stage)).status_code == 405
    assert client.get(reverse("lifecycle:markdown_preview")).status_code == 405


def test_saving_a_draft_needs_the_csrf_token(personas):
    stage = stage1(personas)
    key = long_text_keys(stage)[0]
    client = client_for(personas, "alice", enforce_csrf_checks=True)
    response = client.post(url(stage), post_data(stage, {key: "x"}))
    assert response.status_code == 403
    stage.refresh_from_db()
    assert stage.draft_version == 0


def test_a_stage_that_does_not_exist_is_a_404(personas):
    client = client_for(personas, "alice")
    stage = stage1(personas)
    assert (
        client.get(
            reverse("lifecycle:stage_detail", args=[stage.project_id, 9, stage.definition.key])
        ).status_code
        == 404
    )
    assert (
        client.get(
            reverse("lifecycle:stage_detail", args=[stage.project_id, 1, "no-such-stage"])
        ).status_code
        == 404
    )


# --- drafts -------------------------------------------------------------------------------


def test_a_saved_draft_is_there_after_a_reload(personas):
    stage = stage1(personas)
    answers = complete_answers(stage)
    client = client_for(personas, "alice")
    response = client.post(url(stage), post_data(stage, answers), follow=True)
    assert response.status_code == 200
    assert b"Draft saved at" in response.content
    stage.refresh_from_db()
    assert stage.draft_version == 1
    page = client.get(url(stage)).content.decode()
    for key in long_text_keys(stage):
        assert answers[key].replace("*", "") in page.replace("*", "")
    assert 'value="1"' in page  # the form now edits version 1


def test_autosave_answers_with_the_time_and_the_new_version(personas):
    stage = stage1(personas)
    key = long_text_keys(stage)[0]
    response = client_for(personas, "bob").post(
        url(stage, "stage_autosave"), post_data(stage, {key: "typing..."})
    )
    body = response.content.decode()
    assert "Saved" in body
    assert 'id="id_draft_version" value="1" hx-swap-oob="true"' in body
    stage.refresh_from_db()
    assert stage.draft_answers[key] == "typing..."


def test_autosave_reports_a_conflict_without_saving(personas):
    stage = stage1(personas)
    key = long_text_keys(stage)[0]
    services.stage_save_draft(
        stage=stage, actor=personas.bob, answers={key: "Bob's"}, base_version=0
    )
    response = client_for(personas, "alice").post(
        url(stage, "stage_autosave"), {**post_data(stage, {key: "Alice's"}), "draft_version": 0}
    )
    body = response.content.decode()
    assert "Review the conflict" in body
    assert "Bob saved this draft" in body
    stage.refresh_from_db()
    assert stage.draft_answers[key] == "Bob's"


def test_autosave_reports_invalid_input_without_saving(personas):
    stage = stage1(personas)
    yes_no = stage.definition.questions.filter(kind=QuestionKind.YES_NO_UNSURE).first().key
    response = client_for(personas, "alice").post(
        url(stage, "stage_autosave"), {"draft_version": 0, yes_no + CHOICE_SUFFIX: "perhaps"}
    )
    assert "Not saved" in response.content.decode()
    stage.refresh_from_db()
    assert stage.draft_version == 0


def test_a_stale_save_shows_both_versions_and_overwrites_nothing(personas):
    stage = stage1(personas)
    first, second = long_text_keys(stage)[:2]
    services.stage_save_draft(
        stage=stage,
        actor=personas.bob,
        answers={first: "Bob wrote this", second: "Bob too"},
        base_version=0,
    )
    response = client_for(personas, "alice").post(
        url(stage),
        {**post_data(stage, {first: "Alice wrote that", second: "Alice too"}), "draft_version": 0},
    )
    assert response.status_code == 409
    page = response.content.decode()
    assert "Someone else saved first" in page
    assert "Bob wrote this" in page and "Alice wrote that" in page
    assert "<del" in page and "<ins" in page
    stage.refresh_from_db()
    assert stage.draft_answers[first] == "Bob wrote this"
    assert stage.draft_version == 1


def test_merging_keeps_what_the_user_chose_per_question(personas):
    stage = stage1(personas)
    first, second = long_text_keys(stage)[:2]
    services.stage_save_draft(
        stage=stage, actor=personas.bob, answers={first: "Bob 1", second: "Bob 2"}, base_version=0
    )
    client = client_for(personas, "alice")
    data = {
        **post_data(stage, {first: "Alice 1", second: "Alice 2"}),
        "draft_version": 1,
        "merge": "1",
        "conflict_keys": [first, second],
        f"resolve__{first}": "theirs",
        f"resolve__{second}": "mine",
    }
    response = client.post(url(stage), data)
    assert response.status_code == 302
    stage.refresh_from_db()
    assert stage.draft_answers[first] == "Bob 1"
    assert stage.draft_answers[second] == "Alice 2"
    assert stage.draft_version == 2


def test_a_merge_without_a_choice_for_every_conflict_saves_nothing(personas):
    stage = stage1(personas)
    first, second = long_text_keys(stage)[:2]
    services.stage_save_draft(
        stage=stage, actor=personas.bob, answers={first: "Bob 1", second: "Bob 2"}, base_version=0
    )
    data = {
        **post_data(stage, {first: "Alice 1"}),
        "draft_version": 1,
        "merge": "1",
        "conflict_keys": [first, second],
        f"resolve__{first}": "mine",
    }
    response = client_for(personas, "alice").post(url(stage), data)
    assert response.status_code == 409
    assert "Choose, for every question in conflict" in response.content.decode()
    stage.refresh_from_db()
    assert stage.draft_version == 1


def test_a_form_error_is_shown_next_to_its_field_and_keeps_the_input(personas):
    stage = stage1(personas)
    key = long_text_keys(stage)[0]
    yes_no = stage.definition.questions.filter(kind=QuestionKind.YES_NO_UNSURE).first().key
    response = client_for(personas, "alice").post(
        url(stage), {**post_data(stage, {key: "Kept text"}), yes_no + CHOICE_SUFFIX: "perhaps"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Kept text" in page
    assert f'id="error_1_id_{yes_no}{CHOICE_SUFFIX}"' in page or "is-invalid" in page
    # Issue 11: the valid answer is saved; only the invalid one waits in the form.
    stage.refresh_from_db()
    assert stage.draft_version == 1
    assert stage.draft_answers == {key: "Kept text"}


def test_a_locked_stage_says_when_it_opens_and_refuses_saves(personas):
    stage = personas.project.stages.select_related("definition").get(definition__order=2)
    client = client_for(personas, "alice")
    page = client.get(url(stage)).content.decode()
    assert "This stage is locked" in page
    assert "Save draft" not in page
    response = client.post(url(stage), {"draft_version": 0})
    assert response.status_code == 409
    assert "cannot be edited" in response.content.decode()


# --- submission ---------------------------------------------------------------------------


def test_the_submission_page_lists_the_unanswered_required_questions(personas):
    stage = stage1(personas)
    page = client_for(personas, "alice").get(url(stage, "stage_submit")).content.decode()
    for q in stage.definition.questions.filter(required=True):
        assert q.prompt in page.replace("&#x27;", "'").replace("&quot;", '"')
    assert "Add at least one stakeholder" in page


def test_submitting_an_incomplete_stage_shows_errors_next_to_the_fields(personas):
    stage = stage1(personas)
    response = client_for(personas, "alice").post(url(stage, "stage_submit"), {"draft_version": 0})
    assert response.status_code == 400
    assert "This question needs an answer" in response.content.decode()
    stage.refresh_from_db()
    assert stage.status == StageStatus.DRAFTING


def test_submitting_makes_the_stage_read_only_in_review(personas):
    stage = stage1(personas)
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers=complete_answers(stage), base_version=0
    )
    services.stakeholder_add(
        project=personas.project, actor=personas.alice, name="Nurses", kind="operator"
    )
    client = client_for(personas, "bob")
    response = client.post(url(stage, "stage_submit"), {"draft_version": 1}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Revision 1" in page and "submitted for review" in page
    assert "Save draft" not in page
    assert "disabled" in page
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    assert AuditEvent.objects.filter(verb="stage.submit", actor=personas.bob).count() == 1


def test_submitting_a_version_a_teammate_has_changed_is_refused(personas):
    stage = stage1(personas)
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers=complete_answers(stage), base_version=0
    )
    response = client_for(personas, "bob").post(
        url(stage, "stage_submit"), {"draft_version": 0}, follow=True
    )
    assert "Read their changes before submitting" in response.content.decode()
    stage.refresh_from_db()
    assert stage.status == StageStatus.DRAFTING


# --- history and rendering ----------------------------------------------------------------


def test_revision_history_shows_word_level_differences(personas):
    stage = stage1(personas)
    key = long_text_keys(stage)[0]
    first = fill_and_submit(stage, personas.alice, **{key: "The nurses sort referrals by hand"})
    services.stage_request_changes(stage=stage, revision=first, actor=personas.tina, reason="More")
    fill_and_submit(stage, personas.alice, **{key: "The nurses sort urgent referrals by hand"})
    page = client_for(personas, "tina").get(url(stage, "stage_revisions") + "?a=1&b=2")
    body = page.content.decode()
    assert "Revision 1 → revision 2" in body
    # Side by side: the added word marked on the new revision's side (issue 11).
    new_side = body[body.index('class="diff-side diff-new"') :]
    assert "<ins>urgent </ins>" in new_side[: new_side.index("</div></div>")]


PAYLOADS = [
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    '<a href="https://ok.example" onclick="steal()">link</a>',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_answers_and_previews_never_carry_script(personas, payload):
    stage = stage1(personas)
    key = long_text_keys(stage)[0]
    client = client_for(personas, "alice")
    client.post(url(stage), post_data(stage, {key: payload}))
    page = client.get(url(stage)).content.decode().lower()
    assert "<script>alert" not in page
    assert "<img src=x" not in page and 'onclick="steal' not in page
    assert 'href="javascript:' not in page
    preview = client.post(reverse("lifecycle:markdown_preview"), {"text": payload})
    assert_no_active_content(preview.content.decode())


ACTIVE_CONTENT = re.compile(
    r"<\s*(script|iframe|img|svg|object|embed)\b|<[^>]*\son\w+\s*=|href\s*=\s*[\"']?\s*javascript:",
    re.IGNORECASE,
)


def assert_no_active_content(html: str) -> None:
    """Payloads may show as escaped text; no tag, handler or javascript: link may survive."""
    match = ACTIVE_CONTENT.search(html)
    assert match is None, html[max(0, match.start() - 80) : match.end() + 80]


def test_markdown_preview_renders_markdown(personas):
    response = client_for(personas, "alice").post(
        reverse("lifecycle:markdown_preview"), {"text": "**bold** and *it*"}
    )
    assert "<strong>bold</strong>" in response.content.decode()
    assert Client().post(reverse("lifecycle:markdown_preview"), {"text": "x"}).status_code == 302


def test_the_guidance_is_the_lectures(personas):
    page = client_for(personas, "alice").get(url(stage1(personas))).content.decode()
    assert "The lecture&#x27;s guidance" in page or "The lecture's guidance" in page
    assert "digit recognition" in page.lower()
