"""Issue 15, part 6: the reviewer quality loop. The team rates each review it received for
helpfulness (1 to 5, an optional note) and may flag one as unfair with a reason; course staff
are told of a flag, read per reviewer how many reviews they wrote, how fast, their declines,
mean helpfulness and open flags on the board, and resolve flags with a note.

Personas (tests/conftest.py): Alice and Bob are the team; Carol another team's student; Tina a
TA, Ian the instructor; Erin an outside expert; Oscar an outsider."""

from __future__ import annotations

import datetime as dt
import statistics
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from factories import (
    UserFactory,
    current_stage,
    declare_no_conflict,
    enrol,
    fill_and_submit,
    reviewed_by_expert_and_ta,
)

from lifecycle import services as lifecycle_services
from lifecycle.errors import IllegalTransition, InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, Course, Role
from notifications.models import Notification, NotificationKind
from reviews import quality, services
from reviews.models import (
    AssignmentState,
    Decision,
    FlagState,
    ReviewAssignment,
    ReviewFlag,
    ReviewRating,
)

pytestmark = pytest.mark.django_db


def client_for(personas, who: str | None) -> Client:
    client = Client()
    if who:
        client.force_login(getattr(personas, who))
    return client


@pytest.fixture
def reviewed(personas) -> dict[str, Any]:
    """Stage 1, revision 1: Erin (assigned expert) approves with a reason; Tina (TA) asks for
    changes."""
    stage, revision, erin, tina = reviewed_by_expert_and_ta(
        personas, changes_comment="Cite the ward's own numbers."
    )
    return {"stage": stage, "revision": revision, "erin": erin, "tina": tina}


# --- services ---------------------------------------------------------------------------------


def test_a_team_member_rates_a_review_and_changes_the_rating_in_place(personas, reviewed):
    p, decision = personas, reviewed["erin"]
    first = quality.review_rate(decision=decision, rater=p.alice, helpfulness=2, note="Vague.")
    again = quality.review_rate(decision=decision, rater=p.alice, helpfulness=5, note="Useful.")
    assert first.pk == again.pk
    assert ReviewRating.objects.filter(decision=decision).count() == 1
    again.refresh_from_db()
    assert (again.helpfulness, again.note) == (5, "Useful.")
    events = list(
        AuditEvent.objects.filter(verb__startswith="review.rating")
        .order_by("seq")
        .values("verb", "old", "new")
    )
    assert [e["verb"] for e in events] == ["review.rating_set", "review.rating_change"]
    assert events[1]["old"] == {"helpfulness": 2, "note": "Vague."}
    assert events[1]["new"]["helpfulness"] == 5


def test_the_same_rating_again_records_nothing(personas, reviewed):
    p = personas
    quality.review_rate(decision=reviewed["erin"], rater=p.alice, helpfulness=4)
    quality.review_rate(decision=reviewed["erin"], rater=p.alice, helpfulness=4)
    assert AuditEvent.objects.filter(verb__startswith="review.rating").count() == 1


def test_each_team_member_rates_for_themselves(personas, reviewed):
    p = personas
    quality.review_rate(decision=reviewed["erin"], rater=p.alice, helpfulness=4)
    quality.review_rate(decision=reviewed["erin"], rater=p.bob, helpfulness=2)
    assert sorted(
        ReviewRating.objects.filter(decision=reviewed["erin"]).values_list("helpfulness", flat=True)
    ) == [2, 4]


@pytest.mark.parametrize("helpfulness", [0, 6, -1])
def test_a_rating_outside_one_to_five_is_refused(personas, reviewed, helpfulness):
    with pytest.raises(InvalidAnswers):
        quality.review_rate(
            decision=reviewed["erin"], rater=personas.alice, helpfulness=helpfulness
        )
    assert not ReviewRating.objects.exists()


@pytest.mark.parametrize("who", ["carol", "tina", "ian", "erin", "oscar"])
def test_only_the_team_rates_or_flags_a_review(personas, reviewed, who):
    person = getattr(personas, who)
    with pytest.raises(NotAllowed):
        quality.review_rate(decision=reviewed["erin"], rater=person, helpfulness=3)
    with pytest.raises(NotAllowed):
        quality.review_flag(decision=reviewed["tina"], actor=person, reason="Unfair.")
    assert not ReviewRating.objects.exists() and not ReviewFlag.objects.exists()


def test_a_flag_needs_a_reason(personas, reviewed):
    with pytest.raises(InvalidAnswers) as refused:
        quality.review_flag(decision=reviewed["tina"], actor=personas.alice, reason="   ")
    assert "reason" in refused.value.errors


def test_a_flag_tells_course_staff_through_the_outbox_and_is_audited(personas, reviewed):
    p = personas
    flag = quality.review_flag(
        decision=reviewed["erin"], actor=p.alice, reason="She asks for data we cannot have."
    )
    told = Notification.objects.filter(kind=NotificationKind.REVIEW_FLAGGED)
    assert sorted(told.values_list("recipient__email", flat=True)) == [
        "ian@example.test",
        "tina@example.test",
    ]
    assert all("She asks for data we cannot have." in n.body for n in told)
    assert all("Alice" in n.body and "Dr Erin Chen" in n.body for n in told)
    assert all(reverse("reviews:course_flags", args=[p.course.pk]) in n.link for n in told)
    event = AuditEvent.objects.get(verb="review.flag_raise")
    assert event.new["reason"] == "She asks for data we cannot have."
    assert event.object_id == str(flag.pk)


def test_a_ta_whose_review_is_flagged_is_not_told_who_flagged_it(personas, reviewed):
    p = personas
    flag = quality.review_flag(decision=reviewed["tina"], actor=p.alice, reason="Unfair.")
    told = Notification.objects.filter(kind=NotificationKind.REVIEW_FLAGGED)
    assert list(told.values_list("recipient__email", flat=True)) == ["ian@example.test"]
    with pytest.raises(IllegalTransition):
        quality.review_flag_resolve(flag=flag, actor=p.tina, note="Mine was fine.")
    page = client_for(p, "tina").get(reverse("reviews:course_flags", args=[p.course.pk]))
    body = page.content.decode()
    assert "A team member flagged the review by Tina" in body
    assert "Alice" not in body and "alice@example.test" not in body
    assert reverse("reviews:flag_resolve", args=[flag.pk]) not in body


def test_a_second_open_flag_is_refused_until_the_first_is_withdrawn(personas, reviewed):
    p, decision = personas, reviewed["tina"]
    quality.review_flag(decision=decision, actor=p.alice, reason="Unfair.")
    with pytest.raises(IllegalTransition):
        quality.review_flag(decision=decision, actor=p.alice, reason="Still unfair.")
    withdrawn = quality.review_flag_withdraw(decision=decision, actor=p.alice)
    assert withdrawn.state == FlagState.WITHDRAWN and withdrawn.closed_at is not None
    quality.review_flag(decision=decision, actor=p.alice, reason="Unfair after all.")
    assert ReviewFlag.objects.filter(decision=decision, state=FlagState.OPEN).count() == 1
    assert AuditEvent.objects.filter(verb="review.flag_withdraw").count() == 1


def test_only_who_raised_a_flag_withdraws_it(personas, reviewed):
    p, decision = personas, reviewed["tina"]
    quality.review_flag(decision=decision, actor=p.alice, reason="Unfair.")
    with pytest.raises(IllegalTransition):
        quality.review_flag_withdraw(decision=decision, actor=p.bob)
    assert ReviewFlag.objects.get().state == FlagState.OPEN


def test_course_staff_resolve_a_flag_with_a_note_once(personas, reviewed):
    p = personas
    flag = quality.review_flag(decision=reviewed["tina"], actor=p.alice, reason="Unfair.")
    with pytest.raises(InvalidAnswers):
        quality.review_flag_resolve(flag=flag, actor=p.ian, note="")
    with pytest.raises(NotAllowed):
        quality.review_flag_resolve(flag=flag, actor=p.alice, note="I resolve it myself.")
    resolved = quality.review_flag_resolve(flag=flag, actor=p.ian, note="Talked to Tina.")
    assert resolved.state == FlagState.RESOLVED and resolved.resolved_by == p.ian
    assert AuditEvent.objects.get(verb="review.flag_resolve").new["note"] == "Talked to Tina."
    with pytest.raises(IllegalTransition):
        quality.review_flag_resolve(flag=flag, actor=p.tina, note="Again.")
    with pytest.raises(IllegalTransition):
        quality.review_flag_withdraw(decision=reviewed["tina"], actor=p.alice)


# --- views ------------------------------------------------------------------------------------


def rate_url(decision: Decision) -> str:
    return reverse("reviews:review_rate", args=[decision.pk])


def test_the_stage_page_offers_the_team_a_rating_and_a_flag_beside_each_review(personas, reviewed):
    page = client_for(personas, "alice").get(reviewed["stage"].get_absolute_url()).content.decode()
    for decision in (reviewed["erin"], reviewed["tina"]):
        assert f'id="quality-{decision.pk}"' in page
        assert f'id="rate-{decision.pk}"' in page and f'form="rate-{decision.pk}"' in page
        assert f'id="flag-{decision.pk}"' in page
        assert f'hx-post="{rate_url(decision)}"' in page


def test_a_team_member_rates_without_script_and_comes_back_to_the_review(personas, reviewed):
    decision, stage = reviewed["erin"], reviewed["stage"]
    response = client_for(personas, "alice").post(
        rate_url(decision),
        {"helpfulness": "4", "note": "Good pointer.", "next": stage.get_absolute_url()},
    )
    assert response.status_code == 302
    assert response["Location"] == stage.get_absolute_url()
    rating = ReviewRating.objects.get(decision=decision, rater=personas.alice)
    assert (rating.helpfulness, rating.note) == (4, "Good pointer.")
    page = client_for(personas, "alice").get(stage.get_absolute_url()).content.decode()
    assert "You rated it 4 of 5." in page


def test_htmx_gets_the_one_review_box_back(personas, reviewed):
    decision = reviewed["erin"]
    response = client_for(personas, "alice").post(
        rate_url(decision), {"helpfulness": "3"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert f'id="quality-{decision.pk}"' in body and "You rated it 3 of 5." in body
    assert "Your rating is saved." in body


def test_htmx_shows_a_refusal_inside_the_box(personas, reviewed):
    response = client_for(personas, "alice").post(
        rate_url(reviewed["erin"]), {"helpfulness": "9"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "Not rated" in response.content.decode()
    assert not ReviewRating.objects.exists()


def test_a_team_member_flags_and_withdraws_from_the_page(personas, reviewed):
    decision = reviewed["tina"]
    client = client_for(personas, "alice")
    flagged = client.post(
        reverse("reviews:review_flag", args=[decision.pk]), {"reason": "Not what we were asked."}
    )
    assert flagged.status_code == 302
    page = client.get(reviewed["stage"].get_absolute_url()).content.decode()
    assert "You flagged this review as unfair:" in page and "Not what we were asked." in page
    withdrawn = client.post(
        reverse("reviews:review_flag_withdraw", args=[decision.pk]), HTTP_HX_REQUEST="true"
    )
    assert withdrawn.status_code == 200 and "Your flag is withdrawn." in withdrawn.content.decode()
    assert ReviewFlag.objects.get().state == FlagState.WITHDRAWN


def test_a_flag_without_a_reason_is_not_recorded(personas, reviewed):
    response = client_for(personas, "alice").post(
        reverse("reviews:review_flag", args=[reviewed["tina"].pk]), {"reason": ""}
    )
    assert response.status_code == 302
    assert not ReviewFlag.objects.exists()


@pytest.mark.parametrize("who", ["carol", "oscar", "tina", "ian", "erin"])
@pytest.mark.parametrize("name", ["review_rate", "review_flag", "review_flag_withdraw"])
def test_nobody_but_the_team_reaches_the_rating_and_flag_urls(personas, reviewed, who, name):
    url = reverse(f"reviews:{name}", args=[reviewed["erin"].pk])
    response = client_for(personas, who).post(url, {"helpfulness": "5", "reason": "Unfair."})
    assert response.status_code == 404
    assert not ReviewRating.objects.exists() and not ReviewFlag.objects.exists()


@pytest.mark.parametrize("name", ["review_rate", "review_flag", "review_flag_withdraw"])
def test_the_rating_and_flag_urls_take_only_post(personas, reviewed, name):
    url = reverse(f"reviews:{name}", args=[reviewed["erin"].pk])
    assert client_for(personas, "alice").get(url).status_code == 405


def test_anonymous_visitors_are_sent_to_sign_in(personas, reviewed):
    response = Client().post(rate_url(reviewed["erin"]), {"helpfulness": "5"})
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_the_staff_flag_page_lists_reason_and_review_and_resolves(personas, reviewed):
    p = personas
    quality.review_flag(decision=reviewed["tina"], actor=p.alice, reason="Asks the impossible.")
    url = reverse("reviews:course_flags", args=[p.course.pk])
    page = client_for(p, "ian").get(url).content.decode()
    assert "Asks the impossible." in page and "Cite the ward&#x27;s own numbers." in page
    assert "Alice flagged the review by Tina" in page
    flag = ReviewFlag.objects.get()
    resolve = reverse("reviews:flag_resolve", args=[flag.pk])
    assert client_for(p, "ian").get(resolve).status_code == 405
    done = client_for(p, "ian").post(resolve, {"note": "Discussed; the request stands."})
    assert done.status_code == 302 and done["Location"] == url
    flag.refresh_from_db()
    assert flag.state == FlagState.RESOLVED
    assert "No open flags." in client_for(p, "tina").get(url).content.decode()
    resolved = client_for(p, "tina").get(url + "?state=resolved").content.decode()
    assert "Discussed; the request stands." in resolved


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_the_flag_pages_are_staff_only(personas, reviewed, who):
    p = personas
    flag = quality.review_flag(decision=reviewed["tina"], actor=p.alice, reason="Unfair.")
    client = client_for(p, who)
    assert client.get(reverse("reviews:course_flags", args=[p.course.pk])).status_code == 404
    resolve = reverse("reviews:flag_resolve", args=[flag.pk])
    assert client.post(resolve, {"note": "Mine now."}).status_code == 404
    assert ReviewFlag.objects.get().state == FlagState.OPEN


# --- anonymity --------------------------------------------------------------------------------


def test_under_anonymous_review_the_rater_never_reads_the_reviewers_name(personas, reviewed):
    p = personas
    Course.objects.filter(pk=p.course.pk).update(anonymous_reviewers=True)
    client = client_for(p, "alice")
    page = client.get(reviewed["stage"].get_absolute_url()).content.decode()
    box_start = page.index(f'id="quality-{reviewed["erin"].pk}"')
    assert "How helpful was this review from Reviewer" in page[box_start : box_start + 600]
    assert "Dr Erin Chen" not in page and "erin@example.test" not in page
    partial = client.post(
        rate_url(reviewed["erin"]), {"helpfulness": "2"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Reviewer" in partial and "Dr Erin Chen" not in partial
    assert (
        "Tina"
        not in client.post(
            reverse("reviews:review_flag", args=[reviewed["tina"].pk]),
            {"reason": "Unfair."},
            HTTP_HX_REQUEST="true",
        ).content.decode()
    )


def test_the_reviewer_never_learns_who_rated_or_flagged_them(personas, reviewed):
    p = personas
    quality.review_rate(
        decision=reviewed["erin"], rater=p.bob, helpfulness=1, note="Bob's private view."
    )
    quality.review_flag(decision=reviewed["erin"], actor=p.bob, reason="Bob finds it unfair.")
    erin = client_for(p, "erin")
    for url in (
        reverse("reviews:review_stage", args=[reviewed["stage"].pk]),
        reverse("reviews:inbox"),
        reverse("notifications:list"),
    ):
        page = erin.get(url).content.decode()
        assert "Bob" not in page and "bob@example.test" not in page, url
    assert not Notification.objects.filter(recipient=p.erin, kind=NotificationKind.REVIEW_FLAGGED)
    review = erin.get(reverse("reviews:review_stage", args=[reviewed["stage"].pk])).content
    assert "The team rated this review 1.0 of 5 for helpfulness (1 rating)." in review.decode()
    assert "Bob&#x27;s private view." not in review.decode()


def test_course_staff_read_who_rated_and_flagged_other_reviewers_decisions(personas, reviewed):
    p = personas
    quality.review_rate(decision=reviewed["erin"], rater=p.bob, helpfulness=2, note="Thin.")
    quality.review_flag(decision=reviewed["erin"], actor=p.bob, reason="Ignores the clinic.")
    quality.review_rate(decision=reviewed["tina"], rater=p.alice, helpfulness=5, note="Sharp.")
    url = reverse("reviews:review_stage", args=[reviewed["stage"].pk])
    ian = client_for(p, "ian").get(url).content.decode()
    assert "Bob: 2 of 5 — Thin." in ian and "Flagged as unfair by Bob: Ignores the clinic." in ian
    assert "Alice: 5 of 5 — Sharp." in ian
    # Tina is staff, but a reviewer too: of her own review she reads the mean only.
    tina = client_for(p, "tina").get(url).content.decode()
    assert "Bob: 2 of 5 — Thin." in tina
    assert "Alice: 5 of 5" not in tina and "Sharp." not in tina
    assert "The team rated this review 5.0 of 5 for helpfulness (1 rating)." in tina


# --- the staff's figures per reviewer ---------------------------------------------------------


def _reference(course: Course) -> dict[int, dict[str, Any]]:
    """The figures worked out row by row, the plain way, to compare with the aggregates."""
    out: dict[int, dict[str, Any]] = {}

    def entry(person: int) -> dict[str, Any]:
        return out.setdefault(
            person,
            {"turnarounds": [], "declines": 0, "ratings": [], "open_flags": 0},
        )

    decisions = list(
        Decision.objects.filter(revision__stage__project__course=course).select_related(
            "revision", "assignment"
        )
    )
    seen: dict[tuple[int, int], Decision] = {}
    for d in sorted(decisions, key=lambda d: d.created_at):
        seen.setdefault((d.reviewer_id, d.revision_id), d)
    for (person, _), first in seen.items():
        asked = first.revision.created_at
        same = [
            d.assignment.created_at
            for d in decisions
            if d.reviewer_id == person and d.revision_id == first.revision_id and d.assignment
        ]
        if same:
            asked = max(asked, min(same))
        entry(person)["turnarounds"].append(
            max(0.0, (first.created_at - asked).total_seconds() / 86400)
        )
    for a in ReviewAssignment.objects.filter(project__course=course):
        ended = a.state in (AssignmentState.WITHDRAWN, AssignmentState.REVOKED)
        if ended and not any(d.assignment_id == a.pk for d in decisions):
            entry(a.reviewer_id)["declines"] += 1
    for r in ReviewRating.objects.filter(decision__revision__stage__project__course=course):
        entry(r.decision.reviewer_id)["ratings"].append(r.helpfulness)
    for f in ReviewFlag.objects.filter(decision__revision__stage__project__course=course):
        if f.state == FlagState.OPEN:
            entry(f.decision.reviewer_id)["open_flags"] += 1
    return out


def _busy_course(p, projects: int) -> list[Any]:
    """``projects`` more projects of the course, each with stage 1 reviewed by Erin (approve)
    and a TA (request changes, a day later), rated and flagged by the team; a withdrawn
    assignment of a third reviewer with no decision. Returns the extra reviewers."""
    ta = UserFactory(display_name=f"TA of {projects}")
    enrol(p.course, ta, Role.TA)
    idle = UserFactory(display_name=f"Idle of {projects}")
    enrol(p.course, idle, Role.TA)
    for i in range(projects):
        student = UserFactory()
        enrol(p.course, student, Role.STUDENT)
        project = lifecycle_services.project_create(
            course=p.course, actor=student, title=f"Project {projects}-{i}"
        )
        stage = current_stage(project)
        services.assignment_create(
            project=project,
            actor=p.ian,
            reviewer=p.erin,
            role="expert",
            stage_definition=stage.definition,
        )
        declare_no_conflict(project, p.erin)
        gone = services.assignment_create(
            project=project, actor=p.ian, reviewer=idle, role="staff", stage_definition=None
        )
        services.assignment_withdraw(assignment=gone, actor=p.ian)
        revision = fill_and_submit(stage, student)
        erin = services.decision_record(
            revision=revision, reviewer=p.erin, outcome="approve", comment="Fine."
        )
        tas = services.decision_record(
            revision=revision, reviewer=ta, outcome="request_changes", comment="More data."
        )
        Decision.objects.filter(pk=tas.pk).update(created_at=tas.created_at + dt.timedelta(days=i))
        quality.review_rate(decision=erin, rater=student, helpfulness=1 + i % 5)
        quality.review_rate(decision=tas, rater=student, helpfulness=5 - i % 3)
        if i % 2:
            quality.review_flag(decision=tas, actor=student, reason="Too much.")
    return [ta, idle]


def test_the_staff_figures_per_reviewer_match_a_reference_worked_out_row_by_row(personas, reviewed):
    p = personas
    quality.review_rate(decision=reviewed["erin"], rater=p.alice, helpfulness=5)
    quality.review_rate(decision=reviewed["erin"], rater=p.bob, helpfulness=2)
    quality.review_flag(decision=reviewed["tina"], actor=p.alice, reason="Unfair.")
    # Tina changes her decision: still one review, timed from her first decision.
    services.decision_record(
        revision=reviewed["revision"],
        reviewer=p.tina,
        outcome="request_changes",
        comment="And the clinic's.",
        change=True,
    )
    _busy_course(p, 5)
    table = quality.reviewer_quality(course=p.course, cap=None)
    reference = _reference(p.course)
    assert {r.reviewer_id for r in table.rows} == set(reference)
    for row in table.rows:
        want = reference[row.reviewer_id]
        assert row.reviews == len(want["turnarounds"]), row.name
        if want["turnarounds"]:
            assert row.median_turnaround_days == pytest.approx(
                statistics.median(want["turnarounds"]), abs=1e-6
            )
        else:
            assert row.median_turnaround_days is None
        assert row.declines == want["declines"], row.name
        assert row.ratings == len(want["ratings"]), row.name
        if want["ratings"]:
            assert row.mean_helpfulness == pytest.approx(statistics.mean(want["ratings"]))
        else:
            assert row.mean_helpfulness is None
        assert row.open_flags == want["open_flags"], row.name
    erin = next(r for r in table.rows if r.reviewer_id == p.erin.pk)
    assert erin.reviews == 6 and erin.ratings == 7
    tina = next(r for r in table.rows if r.reviewer_id == p.tina.pk)
    assert (tina.reviews, tina.open_flags) == (1, 1)
    # Open flags first.
    assert table.rows[0].open_flags >= table.rows[-1].open_flags


def test_the_board_lists_each_reviewers_figures(personas, reviewed):
    p = personas
    quality.review_rate(decision=reviewed["erin"], rater=p.alice, helpfulness=4)
    quality.review_flag(decision=reviewed["tina"], actor=p.alice, reason="Unfair.")
    page = client_for(p, "tina").get(reverse("reviews:board", args=[p.course.pk]))
    body = page.content.decode()
    start = body.index('id="reviewer-quality-table"')
    table = body[start : body.index("</table>", start)]
    erin_row = table[table.index(f'data-reviewer="{p.erin.pk}"') :].split("</tr>")[0]
    assert "Dr Erin Chen" in erin_row and "4.0" in erin_row and "(1 rating)" in erin_row
    tina_row = table[table.index(f'data-reviewer="{p.tina.pk}"') :].split("</tr>")[0]
    assert "text-danger" in tina_row  # one open flag
    # Open flags first: Tina above Erin.
    assert table.index(f'data-reviewer="{p.tina.pk}"') < table.index(f'data-reviewer="{p.erin.pk}"')


def test_the_board_caps_the_reviewer_list(personas, reviewed, monkeypatch):
    monkeypatch.setattr(quality, "BOARD_REVIEWER_CAP", 1)
    body = (
        client_for(personas, "tina")
        .get(reverse("reviews:board", args=[personas.course.pk]))
        .content.decode()
    )
    start = body.index('id="reviewer-quality-table"')
    assert body[start : body.index("</table>", start)].count("<tr data-reviewer=") == 1
    assert "1 more reviewer not listed" in body


def _count(fn) -> int:
    with CaptureQueriesContext(connection) as queries:
        fn()
    return len(queries)


def test_the_figures_cost_the_same_queries_at_two_sizes(personas, reviewed):
    p = personas
    _busy_course(p, 2)
    small = _count(lambda: quality.reviewer_quality(course=p.course))
    _busy_course(p, 12)
    large = _count(lambda: quality.reviewer_quality(course=p.course))
    assert small == large == 2  # the decisions with their ratings and flags; the declines


def test_the_board_and_the_flag_page_cost_the_same_queries_at_two_sizes(personas, reviewed):
    p = personas
    client = client_for(p, "tina")
    board = reverse("reviews:board", args=[p.course.pk])
    flags = reverse("reviews:course_flags", args=[p.course.pk]) + "?state=all"
    _busy_course(p, 2)
    client.get(board), client.get(flags)  # warm: the navbar's answer is cached per person
    small = (_count(lambda: client.get(board)), _count(lambda: client.get(flags)))
    _busy_course(p, 10)
    client.get(board), client.get(flags)
    large = (_count(lambda: client.get(board)), _count(lambda: client.get(flags)))
    assert small == large
