"""Issue 11, items 4 and 5: autosave never loses a valid field, and a stale save merges per
question, conflicting only on questions both sides changed since the base version; the open
page hears when the draft changes under it.

Personas (tests/conftest.py): Alice and Bob are one team; Tina a TA; Carol another team's
student; Oscar an outsider."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse
from factories import advance_to, complete_answers

from lifecycle import services
from lifecycle.errors import DraftConflict
from lifecycle.forms import CHOICE_SUFFIX, JUSTIFICATION_SUFFIX
from lifecycle.models import QuestionKind

pytestmark = pytest.mark.django_db


def client_for(personas, who):
    client = Client()
    if who:
        client.force_login(getattr(personas, who))
    return client


def url(stage, name="stage_detail"):
    return reverse(f"lifecycle:{name}", args=[stage.project_id, stage.cycle, stage.definition.key])


def form_data(stage, answers, version):
    data = {"draft_version": version}
    for q in stage.definition.questions.all():
        if q.key not in answers:
            continue
        value = answers[q.key]
        if q.kind == QuestionKind.YES_NO_UNSURE:
            data[q.key + CHOICE_SUFFIX] = value["choice"]
            data[q.key + JUSTIFICATION_SUFFIX] = value["justification"]
        else:
            data[q.key] = value
    return data


def stage1(personas):
    return personas.project.stages.select_related("definition").get(definition__order=1, cycle=1)


def texts(stage, n=3):
    return list(
        stage.definition.questions.filter(kind=QuestionKind.LONG_TEXT)
        .order_by("order")
        .values_list("key", "prompt")[:n]
    )


@pytest.fixture
def data_stage(personas):
    """Stage 3 (Compile data), with its optional URL question."""
    return advance_to(personas.project, 3, team_member=personas.alice, reviewer=personas.tina)


# --- item 4: autosave keeps every valid field --------------------------------------------------


def test_autosave_saves_the_valid_answers_and_names_the_one_it_could_not_save(personas, data_stage):
    stage = data_stage
    url_q = stage.definition.questions.get(kind=QuestionKind.URL)
    (text_key, _), *_ = texts(stage, 1)
    response = client_for(personas, "alice").post(
        url(stage, "stage_autosave"),
        form_data(stage, {text_key: "Hospital records, 2019-2024.", url_q.key: "not a url"}, 0),
    )
    body = response.content.decode()
    stage.refresh_from_db()
    assert stage.draft_answers.get(text_key) == "Hospital records, 2019-2024."
    assert url_q.key not in stage.draft_answers
    assert stage.draft_version == 1
    status = re.search(r'<span id="save-status".*?</span>\s*</span>', body, flags=re.S).group(0)
    assert "Saved" in status
    assert f"Not saved: “{url_q.prompt}”" in status
    # Exactly that question is flagged inline; the others' flags are cleared.
    flags = dict(re.findall(r'id="autosave-error-([\w-]+)"[^>]*hx-swap-oob="true"([^>]*)>', body))
    assert set(flags) == {q.key for q in stage.definition.questions.all()}
    assert [k for k, attrs in flags.items() if 'data-invalid="1"' in attrs] == [url_q.key]
    assert 'id="id_draft_version" value="1" hx-swap-oob="true"' in body


def test_autosave_with_only_an_invalid_answer_saves_nothing_and_says_which(personas, data_stage):
    stage = data_stage
    url_q = stage.definition.questions.get(kind=QuestionKind.URL)
    body = (
        client_for(personas, "bob")
        .post(url(stage, "stage_autosave"), form_data(stage, {url_q.key: "ftp//x"}, 0))
        .content.decode()
    )
    assert f"Not saved: “{url_q.prompt}”" in body
    assert "Saved " not in body
    stage.refresh_from_db()
    assert stage.draft_version == 0


def test_save_draft_without_script_keeps_the_invalid_input_and_saves_the_rest(personas, data_stage):
    stage = data_stage
    url_q = stage.definition.questions.get(kind=QuestionKind.URL)
    (text_key, _), *_ = texts(stage, 1)
    response = client_for(personas, "alice").post(
        url(stage),
        {**form_data(stage, {text_key: "Kept and saved", url_q.key: "htp:/bad"}, 0), "save": "1"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'value="htp:/bad"' in page  # the invalid input stays in the form
    assert "is-invalid" in page
    assert f"Not saved: “{url_q.prompt}”" in page
    assert 'name="draft_version" value="1"' in page  # the form now builds on the saved version
    stage.refresh_from_db()
    assert stage.draft_answers[text_key] == "Kept and saved"


@pytest.mark.parametrize("values", [["", "0"], ["2024-05-01", "not a date"]])
def test_a_field_posted_twice_is_a_form_error_never_a_500(personas, data_stage, values):
    """A date question posted twice (a hand-made or fuzzed POST): the last value is the answer,
    an invalid one is marked next to its field and the rest is saved (found by the fuzz)."""
    stage = data_stage
    date_q = stage.definition.questions.get(kind=QuestionKind.DATE)
    (text_key, _), *_ = texts(stage, 1)
    client = Client(raise_request_exception=True)
    client.force_login(personas.alice)
    data = {**form_data(stage, {text_key: "Kept and saved"}, 0), "save": "1"}
    data[date_q.key] = values
    response = client.post(url(stage), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert f"Not saved: “{date_q.prompt}”" in page
    assert "is-invalid" in page
    stage.refresh_from_db()
    assert stage.draft_answers[text_key] == "Kept and saved"


def test_submission_still_requires_every_answer_valid(personas):
    stage = stage1(personas)
    answers = complete_answers(stage)
    required = stage.definition.questions.filter(required=True, kind=QuestionKind.LONG_TEXT)
    missing = required.first()
    answers.pop(missing.key)
    services.stage_save_draft(stage=stage, actor=personas.alice, answers=answers, base_version=0)
    services.stakeholder_add(
        project=personas.project, actor=personas.alice, name="Nurses", kind="operator"
    )
    response = client_for(personas, "alice").post(url(stage, "stage_submit"), {"draft_version": 1})
    assert response.status_code == 400
    assert "needs an answer" in response.content.decode()
    stage.refresh_from_db()
    assert stage.status == "drafting"


# --- item 5: merge per question --------------------------------------------------------------


def test_a_stale_save_of_other_questions_merges_without_a_conflict(personas):
    stage = stage1(personas)
    (q1, _), (q2, _), (q3, _) = texts(stage)
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers={q1: "A0", q2: "B0", q3: "C0"}, base_version=0
    )
    # Both open version 1; Bob changes q1, then Alice saves the whole form with q2 changed.
    services.stage_save_draft(stage=stage, actor=personas.bob, answers={q1: "A1"}, base_version=1)
    saved = services.stage_save_draft_merging(
        stage=stage,
        actor=personas.alice,
        answers={q1: "A0", q2: "B1", q3: "C0"},
        base_version=1,
    )
    stage.refresh_from_db()
    assert stage.draft_answers == {q1: "A1", q2: "B1", q3: "C0"}
    assert saved.saved == [q2]
    assert saved.merged == [q1]
    assert stage.draft_version == 3


def test_a_stale_save_conflicts_only_on_the_question_both_changed(personas):
    stage = stage1(personas)
    (q1, p1), (q2, _), (q3, _) = texts(stage)
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers={q1: "A0", q2: "B0", q3: "C0"}, base_version=0
    )
    services.stage_save_draft(
        stage=stage, actor=personas.bob, answers={q1: "Bob's A", q3: "Bob's C"}, base_version=1
    )
    with pytest.raises(DraftConflict) as caught:
        services.stage_save_draft(
            stage=stage,
            actor=personas.alice,
            answers={q1: "Alice's A", q2: "Alice's B", q3: "C0"},
            base_version=1,
        )
    conflict = caught.value
    assert conflict.changed_questions == [q1]
    assert conflict.merged_questions == [q3]
    assert f"“{p1}”" in conflict.message and q1 not in conflict.message
    assert conflict.merged_answers == {q1: "Alice's A", q2: "Alice's B", q3: "Bob's C"}
    stage.refresh_from_db()
    assert stage.draft_answers == {q1: "Bob's A", q2: "B0", q3: "Bob's C"}  # nothing written


def test_the_conflict_page_names_questions_by_their_text_and_keeps_the_merge(personas):
    stage = stage1(personas)
    (q1, p1), (q2, _), (q3, p3) = texts(stage)
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers={q1: "A0", q2: "B0", q3: "C0"}, base_version=0
    )
    services.stage_save_draft(
        stage=stage, actor=personas.bob, answers={q1: "Bob's A", q3: "Bob's C"}, base_version=1
    )
    stage.refresh_from_db()
    mine = {**stage.draft_answers, q1: "Alice's A", q2: "Alice's B", q3: "C0"}
    response = client_for(personas, "alice").post(
        url(stage), {**form_data(stage, mine, 1), "save": "1"}
    )
    assert response.status_code == 409
    page = response.content.decode()
    conflict = re.search(r'<section class="card border-warning.*?</section>', page, flags=re.S)
    text = conflict.group(0)
    assert f"“{p1}”" in text
    assert "(problem-statement)" not in text and f"changed by both of you: {q1}" not in text
    assert re.findall(r'name="conflict_keys" value="([^"]+)"', text) == [q1]
    assert f"Merged without asking: Bob&#x27;s changes to “{p3}”" in page
    # The form now holds Bob's text where only he changed, Alice's elsewhere.
    assert "Bob&#x27;s C</textarea>" in page or "Bob's C</textarea>" in page
    assert "Alice&#x27;s B</textarea>" in page or "Alice's B</textarea>" in page
    # Saving the merge with "mine" for q1 keeps all three.
    stage.refresh_from_db()
    data = {
        **form_data(stage, {**stage.draft_answers, q1: "Alice's A", q2: "Alice's B"}, 2),
        "merge": "1",
        "conflict_keys": [q1],
        f"resolve__{q1}": "mine",
    }
    assert client_for(personas, "alice").post(url(stage), data).status_code == 302
    stage.refresh_from_db()
    assert (stage.draft_answers[q1], stage.draft_answers[q2], stage.draft_answers[q3]) == (
        "Alice's A",
        "Alice's B",
        "Bob's C",
    )


def test_autosave_tells_what_it_merged_and_hands_the_form_the_teammates_text(personas):
    stage = stage1(personas)
    (q1, p1), (q2, _), _ = texts(stage)
    services.stage_save_draft(
        stage=stage, actor=personas.alice, answers={q1: "A0", q2: "B0"}, base_version=0
    )
    services.stage_save_draft(stage=stage, actor=personas.bob, answers={q1: "A1"}, base_version=1)
    body = (
        client_for(personas, "alice")
        .post(url(stage, "stage_autosave"), form_data(stage, {q1: "A0", q2: "B1"}, 1))
        .content.decode()
    )
    assert f"Merged Bob's changes to “{p1}”" in body
    values = re.search(r'data-merged-values="([^"]+)"', body).group(1)
    assert json.loads(values.replace("&quot;", '"')) == {q1: "A1"}
    assert 'id="id_draft_version" value="3"' in body
    stage.refresh_from_db()
    assert (stage.draft_answers[q1], stage.draft_answers[q2]) == ("A1", "B1")


def test_the_open_page_learns_which_questions_a_teammate_changed(personas):
    stage = stage1(personas)
    (q1, p1), (q2, p2), _ = texts(stage)
    services.stage_save_draft(stage=stage, actor=personas.alice, answers={q2: "A"}, base_version=0)
    services.stage_save_draft(stage=stage, actor=personas.bob, answers={q1: "B"}, base_version=1)
    state = client_for(personas, "alice").get(url(stage, "stage_draft_state") + "?since=1").json()
    assert state["version"] == 2
    assert state["updated_by"] == "Bob"
    assert state["changed"] == [{"key": q1, "label": p1}]
    # Nothing new since the version the page holds; one's own saves are not news.
    assert (
        client_for(personas, "alice")
        .get(url(stage, "stage_draft_state") + "?since=2")
        .json()["changed"]
        == []
    )
    assert client_for(personas, "bob").get(url(stage, "stage_draft_state") + "?since=0").json()[
        "changed"
    ] == [{"key": q2, "label": p2}]
    page = client_for(personas, "alice").get(url(stage)).content.decode()
    assert f'data-poll-url="{url(stage, "stage_draft_state")}"' in page
    assert 'id="draft-changed"' in page


@pytest.mark.parametrize(("who", "status"), [("carol", 404), ("oscar", 404), ("tina", 404)])
def test_only_the_team_polls_the_draft(personas, who, status):
    response = client_for(personas, who).get(url(stage1(personas), "stage_draft_state"))
    assert response.status_code == status


def test_polling_the_draft_is_get_only_and_needs_a_sign_in(personas):
    stage = stage1(personas)
    assert client_for(personas, "alice").post(url(stage, "stage_draft_state")).status_code == 405
    assert client_for(personas, None).get(url(stage, "stage_draft_state")).status_code == 302
