"""Blind review as course and stage settings (issue 11, item 7).

Independent review: a reviewer who decides blind sees the other reviewers' decisions and
comments only after deciding. The template sets it per stage (the default template: blind for
domain experts), the instructor overrides it for the whole course and stage by stage on the
course's review settings page.

Anonymous reviewers: the team reads "Reviewer A, domain expert" wherever it meets a reviewer;
staff and the audit trail keep the names. The student's view is checked by crawling every page
a student can reach from home and reading the e-mails the student gets.

Personas (tests/conftest.py): Alice and Bob are the team; Tina a TA, Ian the instructor; Erin
an outside expert.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any
from urllib.parse import urldefrag, urlparse

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from factories import current_stage, declare_no_conflict, fill_and_submit

from lifecycle.models import AuditEvent, Course, IndependentReview, StageDefinition
from lifecycle.policy import independent_review_mode
from reviews import services
from reviews.models import ReviewAssignment, ReviewerRole

pytestmark = pytest.mark.django_db

# What the expert and the TA write; none of it names its author.
ERIN_SAYS = "The consent forms look doubtful."
ERIN_REMARKS = "A remark on the metric."
TINA_SAYS = "Name the clinics, please."
TINA_REMARKS = "A remark on the register."


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return re.sub(r"\s+", " ", response.content.decode())


def review_url(stage: Any) -> str:
    return reverse("reviews:review_stage", args=[stage.pk])


def set_course(course: Course, **fields: Any) -> None:
    Course.objects.filter(pk=course.pk).update(**fields)
    course.refresh_from_db()


@pytest.fixture
def in_review(personas) -> tuple[Any, Any]:
    """Stage 1 submitted, Erin assigned to it as an expert (and declared)."""
    p = personas
    stage = current_stage(p.project)
    ReviewAssignment.objects.create(
        project=p.project,
        stage_definition=stage.definition,
        reviewer=p.erin,
        role=ReviewerRole.EXPERT,
        assigned_by=p.tina,
    )
    declare_no_conflict(p.project, p.erin)
    revision = fill_and_submit(stage, p.alice)
    stage.refresh_from_db()
    return stage, revision


def erin_decides_first(p: Any, revision: Any) -> None:
    services.comment_add(revision=revision, author=p.erin, body=ERIN_REMARKS)
    services.decision_record(
        revision=revision, reviewer=p.erin, outcome="request_changes", comment=ERIN_SAYS
    )


def tina_decides_first(p: Any, revision: Any) -> None:
    services.comment_add(revision=revision, author=p.tina, body=TINA_REMARKS)
    services.decision_record(
        revision=revision, reviewer=p.tina, outcome="request_changes", comment=TINA_SAYS
    )


# --- the settings ------------------------------------------------------------------------------


def settings_data(**extra: Any) -> dict[str, Any]:
    return {
        "allows_experts": "on",
        "expert_invitations": "allowed",
        "team_experts_need_confirmation": "on",
        "invitation_expiry_days": 14,
        "reminder_interval_days": 3,
        "reminder_limit": 2,
        **extra,
    }


def test_the_default_template_makes_experts_decide_blind_and_the_course_follows_it(personas):
    p = personas
    for definition in p.course.template.stages.all():
        assert definition.independent_review == IndependentReview.EXPERTS
        assert independent_review_mode(p.course, definition) == IndependentReview.EXPERTS


def test_a_stage_setting_beats_the_course_setting_which_beats_the_template(personas):
    p = personas
    first, second = p.course.template.stages.order_by("order")[:2]
    set_course(
        p.course,
        independent_review=IndependentReview.EVERYONE,
        independent_review_stages={second.key: IndependentReview.OFF},
    )
    assert independent_review_mode(p.course, first) == IndependentReview.EVERYONE
    assert independent_review_mode(p.course, second) == IndependentReview.OFF


def test_the_instructor_sets_blind_review_on_the_course_review_settings_page(personas):
    p = personas
    url = reverse("reviews:course_settings", args=[p.course.pk])
    ian = client_for(p.ian)
    page = text(ian.get(url))
    assert 'id="blind-review"' in page and "Independent review on every stage" in page
    assert "Anonymous reviewers towards the team" in page
    assert "1. Identify a problem and its stakeholders" in page
    second = p.course.template.stages.get(order=2)
    response = ian.post(
        url,
        settings_data(
            independent_review="everyone",
            anonymous_reviewers="on",
            **{f"independent_review__{second.key}": "off"},
        ),
    )
    assert response.status_code == 302
    p.course.refresh_from_db()
    assert p.course.independent_review == "everyone"
    assert p.course.independent_review_stages == {second.key: "off"}
    assert p.course.anonymous_reviewers is True
    event = AuditEvent.objects.filter(verb="course.settings").latest("seq")
    assert event.actor == p.ian
    assert event.new == {
        "independent_review": "everyone",
        "independent_review_stages": {second.key: "off"},
        "anonymous_reviewers": True,
    }
    # The page shows what is saved.
    page = text(ian.get(url))
    assert re.search(r'name="independent_review" value="everyone"[^>]*checked', page)
    stage_select = rf'name="independent_review__{second.key}"[^>]*>.*?</select>'
    assert '<option value="off" selected>' in re.search(stage_select, page).group(0)


def test_only_the_instructor_changes_blind_review(personas):
    p = personas
    url = reverse("reviews:course_settings", args=[p.course.pk])
    for who in (p.tina, p.alice, p.erin):
        assert client_for(who).post(url, settings_data(anonymous_reviewers="on")).status_code == 404
    p.course.refresh_from_db()
    assert p.course.anonymous_reviewers is False


def test_a_setting_for_a_stage_the_template_lacks_is_refused(personas):
    from lifecycle import services as lifecycle_services
    from lifecycle.errors import InvalidAnswers

    with pytest.raises(InvalidAnswers):
        lifecycle_services.course_update_settings(
            course=personas.course,
            actor=personas.ian,
            independent_review_stages={"no-such-stage": "everyone"},
        )
    with pytest.raises(InvalidAnswers):
        lifecycle_services.course_update_settings(
            course=personas.course, actor=personas.ian, independent_review="sometimes"
        )


# --- independent review, per persona ---------------------------------------------------------


def test_an_expert_deciding_second_sees_nothing_of_the_first_decision_until_deciding(
    personas, in_review
):
    """The default template: experts decide blind."""
    p = personas
    stage, revision = in_review
    tina_decides_first(p, revision)
    erin = client_for(p.erin)
    page = text(erin.get(review_url(stage)))
    assert 'id="independent-review"' in page
    assert TINA_SAYS not in page and TINA_REMARKS not in page and "Tina" not in page
    assert "Hidden until you decide" in page
    erin.post(
        reverse("reviews:stage_decide", args=[stage.pk]),
        {"revision": revision.pk, "outcome": "approve", "comment": "", "question_key": ""},
    )
    page = text(erin.get(review_url(stage)))
    assert TINA_SAYS in page and TINA_REMARKS in page and "Tina" in page
    assert 'id="independent-review"' not in page


def test_staff_are_not_blind_when_only_experts_are(personas, in_review):
    p = personas
    stage, revision = in_review
    erin_decides_first(p, revision)
    page = text(client_for(p.tina).get(review_url(stage)))
    assert ERIN_SAYS in page and ERIN_REMARKS in page and "Dr Erin Chen" in page


def test_with_everyone_blind_staff_see_nothing_before_deciding_on_any_page(personas, in_review):
    p = personas
    stage, revision = in_review
    set_course(p.course, independent_review=IndependentReview.EVERYONE)
    erin_decides_first(p, revision)
    tina = client_for(p.tina)
    page = text(tina.get(review_url(stage)))
    assert ERIN_SAYS not in page and ERIN_REMARKS not in page and "Dr Erin Chen" not in page
    stage_page = text(tina.get(stage.get_absolute_url()))
    assert "Dr Erin Chen" not in stage_page and "gate-hidden" in stage_page
    dossier = text(tina.get(reverse("reviews:project_dossier", args=[p.project.pk])))
    assert ERIN_SAYS not in dossier and "Dr Erin Chen" not in dossier
    # The team sees everything (anonymity is a separate setting, off here).
    assert ERIN_SAYS in text(client_for(p.alice).get(review_url(stage)))
    services.decision_record(revision=revision, reviewer=p.tina, outcome="approve", comment="")
    page = text(tina.get(review_url(stage)))
    assert ERIN_SAYS in page and ERIN_REMARKS in page and "Dr Erin Chen" in page
    dossier = text(tina.get(reverse("reviews:project_dossier", args=[p.project.pk])))
    assert ERIN_SAYS in dossier


def test_a_stage_set_apart_to_off_shows_decisions_to_the_expert_at_once(personas, in_review):
    p = personas
    stage, revision = in_review
    set_course(p.course, independent_review_stages={stage.definition.key: "off"})
    tina_decides_first(p, revision)
    page = text(client_for(p.erin).get(review_url(stage)))
    assert TINA_SAYS in page and TINA_REMARKS in page


def test_a_blind_reviewer_cannot_reply_to_a_hidden_comment(personas, in_review):
    from reviews.models import Comment

    p = personas
    stage, revision = in_review
    tina_decides_first(p, revision)
    hidden = Comment.objects.get(author=p.tina)
    response = client_for(p.erin).post(
        reverse("reviews:comment_add", args=[stage.pk]),
        {"revision": revision.pk, "parent": hidden.pk, "body": "Peeking"},
    )
    assert response.status_code == 404
    assert not Comment.objects.filter(body="Peeking").exists()


def test_the_migration_turned_the_old_flag_into_everyone(personas):
    """The flag an earlier issue added meant every reviewer decides blind; templates other
    than the default keep that meaning (lifecycle 0010)."""
    field = StageDefinition._meta.get_field("independent_review")
    assert {c[0] for c in field.choices} == {"off", "experts", "everyone"}


# --- anonymous reviewers towards the team ------------------------------------------------------

SKIP = ("/accounts/logout", "/static/", "/admin/", "/dossier/pdf", "/media/")


def crawl(client: Client, start: str = "/", limit: int = 120) -> dict[str, str]:
    """Every page reachable by following links from ``start`` (GET, same site): url → HTML."""
    seen: dict[str, str] = {}
    queue = deque([start])
    while queue and len(seen) < limit:
        url = queue.popleft()
        if url in seen or any(s in url for s in SKIP):
            continue
        response = client.get(url)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            seen[url] = ""
            continue
        html = response.content.decode()
        seen[url] = html
        for href in re.findall(r'href="([^"]+)"', html):
            href = urldefrag(href.replace("&amp;", "&"))[0]
            parsed = urlparse(href)
            if parsed.scheme or parsed.netloc or not href.startswith("/"):
                continue
            if href not in seen:
                queue.append(href)
    return seen


@pytest.fixture
def reviewed_anonymously(personas, in_review, django_capture_on_commit_callbacks):
    """A course with anonymous reviewers and nobody blind: Erin comments and requests changes
    (the stage goes back to the team), Tina comments and asks too; the team resubmits; Tina's
    old decision stays as a stale one. Every e-mail is delivered."""
    p = personas
    stage, revision = in_review
    set_course(p.course, anonymous_reviewers=True, independent_review=IndependentReview.OFF)
    with django_capture_on_commit_callbacks(execute=True):
        services.comment_add(revision=revision, author=p.erin, body=ERIN_REMARKS)
        services.comment_add(
            revision=revision, author=p.tina, body=TINA_REMARKS, question_key="problem-statement"
        )
        services.decision_record(
            revision=revision, reviewer=p.erin, outcome="request_changes", comment=ERIN_SAYS
        )
        services.decision_record(
            revision=revision, reviewer=p.tina, outcome="request_changes", comment=TINA_SAYS
        )
    return p, stage, revision


def secrets_of(p: Any) -> list[str]:
    return ["Dr Erin Chen", p.erin.email, "Erin Chen"]


def test_the_team_never_sees_a_reviewers_name_or_address(reviewed_anonymously):
    p, stage, _revision = reviewed_anonymously
    pages = crawl(client_for(p.alice))
    visited = [u for u, html in pages.items() if html]
    # The crawl reached the pages where the team meets reviewers.
    for must in (
        stage.get_absolute_url(),
        review_url(stage),
        reverse("reviews:project_reviewers", args=[p.project.pk]),
        reverse("reviews:project_dossier", args=[p.project.pk]),
        reverse("notifications:list"),
    ):
        assert must in visited, f"the crawl missed {must}"
    for url, html in pages.items():
        for secret in secrets_of(p):
            assert secret not in html, f"{secret!r} on {url}"
        # Tina is course staff the team knows (the course page lists her), but never as a
        # reviewer of its work.
        if not url.startswith("/courses/"):
            assert "Tina" not in html and p.tina.email not in html, url
    review_page = pages[review_url(stage)]
    assert "Reviewer A, domain expert" in review_page
    assert "Reviewer B, course staff" in review_page
    assert ERIN_SAYS in review_page and ERIN_REMARKS in review_page
    assert "Reviewer A, domain expert" in pages[stage.get_absolute_url()]
    from reviews.dossier_pdf import print_html

    printed = print_html(project=p.project, viewer=p.alice)
    assert "Reviewer A, domain expert" in printed
    for secret in [*secrets_of(p), p.tina.email]:
        assert secret not in printed
    assert "Tina</strong>" not in printed


def test_the_e_mails_the_team_gets_name_no_reviewer(reviewed_anonymously):
    p, _stage, _ = reviewed_anonymously
    to_team = [m for m in mail.outbox if m.to[0] in (p.alice.email, p.bob.email)]
    assert to_team, "the team was told about the request for changes"
    for message in to_team:
        bodies = [message.subject, message.body, *(a[0] for a in message.alternatives)]
        for body in bodies:
            for secret in [*secrets_of(p), "Tina", p.tina.email]:
                assert secret not in body, (secret, message.subject)
    assert any("Reviewer A, domain expert asked for changes" in m.body for m in to_team)


def test_staff_and_the_audit_trail_keep_the_names(reviewed_anonymously):
    p, stage, _revision = reviewed_anonymously
    for who in (p.ian, p.tina):
        page = text(client_for(who).get(review_url(stage)))
        assert "Dr Erin Chen" in page and "Reviewer A" not in page
        reviewers = text(
            client_for(who).get(reverse("reviews:project_reviewers", args=[p.project.pk]))
        )
        assert p.erin.email in reviewers
    # The expert sees names too (anonymity is towards the team).
    assert "Tina" in text(client_for(p.erin).get(review_url(stage)))
    decided = AuditEvent.objects.filter(verb__startswith="decision", actor=p.erin)
    assert decided.exists() and decided.first().actor_name == "Dr Erin Chen"


def test_a_letter_stays_with_its_reviewer_across_revisions(reviewed_anonymously):
    p, stage, _ = reviewed_anonymously
    fill_and_submit(stage, p.alice)
    stage.refresh_from_db()
    services.decision_record(
        revision=stage.current_revision, reviewer=p.tina, outcome="approve", comment=""
    )
    page = text(client_for(p.alice).get(review_url(stage)))
    assert "Reviewer B, course staff" in page
    old = text(client_for(p.alice).get(review_url(stage) + "?revision=1"))
    assert "Reviewer A, domain expert" in old and "Reviewer B, course staff" in old


def test_without_anonymity_the_team_reads_names(personas, in_review):
    p = personas
    stage, revision = in_review
    set_course(p.course, independent_review=IndependentReview.OFF)
    erin_decides_first(p, revision)
    page = text(client_for(p.alice).get(review_url(stage)))
    assert "Dr Erin Chen" in page and "Reviewer A" not in page
