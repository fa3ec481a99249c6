"""Issue 11, item 1: feedback where the team revises. After a decision the stage page shows
the reviewers' reasons and every unresolved thread beside the question it is about, with reply
and resolve in place (plain forms) and the count of open threads; resubmitting after a request
for changes asks for a response to the reviewers, which reviewers read at the top of the review
page beside what changed since their last decision, and which notifies them.

Personas (tests/conftest.py): Alice and Bob are the team; Carol another team's student; Tina a
TA, Ian the instructor; Erin an outside expert; Oscar an outsider."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape
from factories import UserFactory, current_stage, declare_no_conflict, fill_and_submit

from accounts.models import EmailFrequency
from lifecycle import services as lifecycle_services
from lifecycle.models import QuestionKind, StageStatus
from notifications.models import EmailStatus, Notification, NotificationKind
from reviews import services
from reviews.models import Comment

pytestmark = pytest.mark.django_db


def client_for(personas, who):
    client = Client()
    if who:
        client.force_login(getattr(personas, who))
    return client


def prompts(stage) -> list[tuple[str, str]]:
    return list(
        stage.definition.questions.filter(kind=QuestionKind.LONG_TEXT)
        .order_by("order")
        .values_list("key", "prompt")
    )


def question_block(page: str, key: str) -> str:
    """The markup of one question of the stage form, up to the next question."""
    start = page.index(f'id="q-{key}"')
    nxt = page.find('id="q-', start + 5)
    return page[start : nxt if nxt != -1 else len(page)]


@pytest.fixture
def asked(personas) -> dict[str, Any]:
    """Stage 1, revision 1: Erin (assigned expert) comments on question 2 and approves; Tina
    (TA) asks for changes on question 1 and opens a thread on the stage as a whole."""
    p = personas
    stage = current_stage(p.project)
    services.assignment_create(
        project=p.project,
        actor=p.ian,
        reviewer=p.erin,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    (q1, p1), (q2, p2), *_ = prompts(stage)
    erin_thread = services.comment_add(
        revision=revision, author=p.erin, body="Who are the referrers?", question_key=q2
    )
    services.decision_record(revision=revision, reviewer=p.erin, outcome="approve")
    general = services.comment_add(
        revision=revision, author=p.tina, body="Cite the ward's own numbers."
    )
    services.decision_record(
        revision=revision,
        reviewer=p.tina,
        outcome="request_changes",
        comment="Say which patients are left out of the problem.",
        question_key=q1,
    )
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED
    return {
        "stage": stage,
        "revision": revision,
        "q1": (q1, p1),
        "q2": (q2, p2),
        "erin_thread": erin_thread,
        "general": general,
    }


# --- the stage page ---------------------------------------------------------------------------


def test_the_team_sees_the_reason_and_threads_beside_their_questions(personas, asked):
    stage = asked["stage"]
    page = client_for(personas, "alice").get(stage.get_absolute_url()).content.decode()
    q1, q2 = asked["q1"][0], asked["q2"][0]
    assert re.search(r'id="open-thread-count">2<', page)
    reason = "Say which patients are left out of the problem."
    assert reason in question_block(page, q1)
    assert reason not in question_block(page, q2)
    assert "Who are the referrers?" in question_block(page, q2)
    assert "Who are the referrers?" not in question_block(page, q1)
    # The thread on the stage as a whole sits in the summary above the form.
    summary = page[page.index('id="feedback"') : page.index('id="stage-form"')]
    assert (
        "Cite the ward&#x27;s own numbers." in summary or "Cite the ward's own numbers." in summary
    )
    # Reply and resolve work without script: their forms are outside the stage form.
    thread = asked["erin_thread"].pk
    form_end = page.index("</form>", page.index('id="stage-form"'))
    reply_form = f'action="{reverse("reviews:comment_add", args=[stage.pk])}" id="reply-{thread}"'
    assert page.index(reply_form) > form_end
    assert f'form="reply-{thread}"' in question_block(page, q2)
    assert f'form="resolve-{thread}"' in question_block(page, q2)


@pytest.mark.parametrize("who", ["tina", "erin", "carol", "oscar"])
def test_only_the_team_gets_the_feedback_panel_on_the_stage_page(personas, asked, who):
    response = client_for(personas, who).get(asked["stage"].get_absolute_url())
    assert response.status_code in (200, 404)
    assert 'id="open-thread-count"' not in response.content.decode()


def test_a_reply_posted_beside_the_question_goes_back_to_the_stage_page(personas, asked):
    stage, thread = asked["stage"], asked["erin_thread"]
    response = client_for(personas, "bob").post(
        reverse("reviews:comment_add", args=[stage.pk]),
        {
            "revision": thread.revision_id,
            "question_key": thread.question_key,
            "parent": thread.pk,
            "body": "GPs and the ambulance service.",
            "next": f"{stage.get_absolute_url()}#thread-{thread.pk}",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == f"{stage.get_absolute_url()}#thread-{thread.pk}"
    reply = Comment.objects.get(parent=thread)
    assert reply.author == personas.bob and reply.body == "GPs and the ambulance service."
    page = client_for(personas, "alice").get(stage.get_absolute_url()).content.decode()
    assert "GPs and the ambulance service." in question_block(page, asked["q2"][0])


def test_resolving_beside_the_question_closes_the_thread_and_lowers_the_count(personas, asked):
    stage, thread = asked["stage"], asked["erin_thread"]
    response = client_for(personas, "alice").post(
        reverse("reviews:comment_resolve", args=[thread.pk]),
        {"next": f"{stage.get_absolute_url()}#feedback"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"{stage.get_absolute_url()}#feedback"
    thread.refresh_from_db()
    assert thread.resolved_by == personas.alice
    page = client_for(personas, "alice").get(stage.get_absolute_url()).content.decode()
    assert re.search(r'id="open-thread-count">1<', page)
    assert "Who are the referrers?" not in page


def test_a_next_address_off_the_site_is_ignored(personas, asked):
    thread = asked["erin_thread"]
    response = client_for(personas, "alice").post(
        reverse("reviews:comment_resolve", args=[thread.pk]), {"next": "https://evil.test/"}
    )
    assert response.status_code == 302
    assert response["Location"].startswith(
        reverse("reviews:review_stage", args=[asked["stage"].pk])
    )


@pytest.mark.parametrize("who", ["carol", "oscar"])
def test_outsiders_cannot_reply_or_resolve_in_place(personas, asked, who):
    stage, thread = asked["stage"], asked["erin_thread"]
    client = client_for(personas, who)
    reply = client.post(
        reverse("reviews:comment_add", args=[stage.pk]),
        {"revision": thread.revision_id, "parent": thread.pk, "body": "x", "next": "/"},
    )
    resolve = client.post(reverse("reviews:comment_resolve", args=[thread.pk]), {"next": "/"})
    assert (reply.status_code, resolve.status_code) == (404, 404)
    assert not Comment.objects.filter(parent=thread).exists()
    thread.refresh_from_db()
    assert thread.resolved_at is None


def test_reply_and_resolve_in_place_are_post_only(personas, asked):
    client = client_for(personas, "alice")
    assert (
        client.get(reverse("reviews:comment_resolve", args=[asked["erin_thread"].pk])).status_code
        == 405
    )
    assert client.get(reverse("reviews:comment_add", args=[asked["stage"].pk])).status_code == 405


def test_the_stage_page_reads_its_feedback_in_queries_that_do_not_grow(personas, asked, settings):
    settings.FRAGMENT_CACHE_SECONDS = 0  # the page as rendered (a second look is cached)
    stage, revision = asked["stage"], asked["revision"]
    client = client_for(personas, "alice")
    client.get(stage.get_absolute_url())
    with CaptureQueriesContext(connection) as few:
        client.get(stage.get_absolute_url())
    for n in range(6):
        root = services.comment_add(
            revision=revision, author=personas.tina, body=f"More {n}", question_key=asked["q1"][0]
        )
        services.comment_add(revision=revision, author=personas.alice, body="ok", parent=root)
    client.get(stage.get_absolute_url())  # warm: the navbar's unread count is cached again
    with CaptureQueriesContext(connection) as many:
        page = client.get(stage.get_absolute_url()).content.decode()
    assert re.search(r'id="open-thread-count">8<', page)
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# --- resubmitting with a response -----------------------------------------------------------


def submit_url(stage):
    return reverse(
        "lifecycle:stage_submit", args=[stage.project_id, stage.cycle, stage.definition.key]
    )


def revise(personas, stage, key):
    stage.refresh_from_db()
    lifecycle_services.stage_save_draft(
        stage=stage,
        actor=personas.alice,
        answers={key: "Patients without a GP are left out; we now say so."},
        base_version=stage.draft_version,
    )
    stage.refresh_from_db()


def test_resubmitting_after_changes_asks_for_a_response_to_the_reviewers(personas, asked):
    stage = asked["stage"]
    revise(personas, stage, asked["q1"][0])
    client = client_for(personas, "bob")
    page = client.get(submit_url(stage)).content.decode()
    assert 'name="response"' in page and "Your response to the reviewers" in page
    assert f'name="thread_{asked["erin_thread"].pk}"' in page
    assert f'name="thread_{asked["general"].pk}"' in page
    assert "version " not in page.lower().split("submit")[-1]  # no internal autosave number

    refused = client.post(submit_url(stage), {"draft_version": stage.draft_version})
    assert refused.status_code == 400
    assert "tell them, in a few sentences, what you changed" in refused.content.decode()
    stage.refresh_from_db()
    assert stage.status == StageStatus.CHANGES_REQUESTED

    done = client.post(
        submit_url(stage),
        {
            "draft_version": stage.draft_version,
            "response": "We named the patients without a GP.",
            f"thread_{asked['erin_thread'].pk}": "Referrers: GPs and the ambulance service.",
        },
    )
    assert done.status_code == 302
    stage.refresh_from_db()
    assert stage.status == StageStatus.IN_REVIEW
    revision = stage.current_revision
    assert revision.number == 2
    assert revision.response_to_reviewers == "We named the patients without a GP."
    assert revision.thread_responses == {
        str(asked["erin_thread"].pk): "Referrers: GPs and the ambulance service."
    }
    # The per-thread answer is in its thread too.
    reply = Comment.objects.get(parent=asked["erin_thread"])
    assert reply.author == personas.bob
    assert "Referrers: GPs and the ambulance service." in reply.body


def test_a_first_submission_asks_for_no_response(personas):
    stage = current_stage(personas.project)
    page = client_for(personas, "alice").get(submit_url(stage)).content.decode()
    assert 'name="response"' not in page


def test_reviewers_read_the_response_at_the_top_beside_the_diff(personas, asked):
    stage = asked["stage"]
    revise(personas, stage, asked["q1"][0])
    lifecycle_services.stage_submit(
        stage=stage,
        actor=personas.alice,
        response="We named the patients without a GP.",
        thread_responses={asked["erin_thread"].pk: "GPs and paramedics."},
    )
    page = client_for(personas, "tina").get(reverse("reviews:review_stage", args=[stage.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    response_at = html.index('id="response"')
    diff_at = html.index('id="diff"')
    answers_at = html.index('id="answers"')
    assert response_at < diff_at < answers_at
    block = html[response_at:diff_at]
    assert "We named the patients without a GP." in block
    assert f"On “{escape(asked['q2'][1])}”, to Dr Erin Chen" in block
    assert "GPs and paramedics." in block
    # The diff since Tina's decision names the revised question (its rendering is item 6's).
    diff_block = html[diff_at:answers_at]
    assert f'data-question="{asked["q1"][0]}"' in diff_block
    assert "without" in re.sub(r"<[^>]+>", " ", diff_block)


# --- the "response to reviewers" notification ----------------------------------------------


def test_the_response_notifies_the_reviewers_who_decided_and_nobody_else(personas, asked):
    p = personas
    stage = asked["stage"]
    # Frank, an expert assigned to stage 1, asked for changes too, then was withdrawn.
    frank = UserFactory(email="frank@example.test", display_name="Frank")
    assignment = services.assignment_create(
        project=p.project,
        actor=p.ian,
        reviewer=frank,
        role="expert",
        stage_definition=stage.definition,
    )
    declare_no_conflict(p.project, frank)
    services.decision_record(
        revision=asked["revision"], reviewer=frank, outcome="request_changes", comment="Too vague."
    )
    services.assignment_withdraw(assignment=assignment, actor=p.ian)
    p.tina.email_frequency = EmailFrequency.DAILY_DIGEST
    p.tina.save(update_fields=["email_frequency"])
    revise(p, stage, asked["q1"][0])

    revision = lifecycle_services.stage_submit(stage=stage, actor=p.bob, response="We named them.")

    rows = {
        n.recipient: n
        for n in Notification.objects.filter(kind=NotificationKind.RESPONSE_TO_REVIEWERS)
    }
    assert set(rows) == {p.tina, p.erin}  # not Frank (withdrawn), Ian, the team or outsiders
    assert rows[p.tina].email_status == EmailStatus.DIGEST  # her preference: the daily digest
    assert rows[p.erin].email_status == EmailStatus.PENDING
    assert "We named them." in rows[p.erin].body
    assert rows[p.erin].link.endswith(
        reverse("reviews:review_stage", args=[stage.pk]) + "#response"
    )
    # Nobody who heard the response also gets the general resubmission notice.
    others = Notification.objects.filter(
        kind__in=[NotificationKind.RESUBMITTED, NotificationKind.REVIEW_REQUESTED],
        recipient__in=[p.tina, p.erin, frank],
        dedupe_key__contains=f":r{revision.pk}",
    )
    assert not others.exists()


def test_a_resubmission_without_a_response_sends_no_response_notification(personas, asked):
    stage = asked["stage"]
    revise(personas, stage, asked["q1"][0])
    lifecycle_services.stage_submit(stage=stage, actor=personas.bob)
    assert not Notification.objects.filter(kind=NotificationKind.RESPONSE_TO_REVIEWERS).exists()
    # Tina, who asked, still hears the revision answers her request.
    assert Notification.objects.filter(
        kind=NotificationKind.RESUBMITTED, recipient=personas.tina
    ).exists()
