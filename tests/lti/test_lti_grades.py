"""Assignment and Grade Services: a line item per graded stage, scores through the outbox with
retries and back-off, failures shown to course staff and never lost."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from factories import CourseFactory, UserFactory, enrol

from lifecycle.models import AuditEvent, Role
from lti import services
from lti.models import LtiContext, LtiLineItem, LtiScore, LtiUser, ScoreState
from lti.tasks import sweep_scores

pytestmark = pytest.mark.django_db
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"


@pytest.fixture
def world(platform, sim, client):
    sim.trust_tool_jwks(client.get("/lti/jwks/").json())
    course = CourseFactory()
    context = LtiContext.objects.create(
        platform=platform,
        context_id="ctx-1",
        course=course,
        nrps_url=sim.nrps_url("ctx-1"),
        ags_lineitems_url=sim.lineitems_url("ctx-1"),
    )
    ann = UserFactory(email="ann@uni.example", display_name="Ann")
    enrol(course, ann, Role.STUDENT)
    LtiUser.objects.create(platform=platform, sub="lms-ann", user=ann)
    ian = UserFactory(email="ian@uni.example")
    enrol(course, ian, Role.INSTRUCTOR)

    class World:
        pass

    w = World()
    w.course, w.context, w.ann, w.ian, w.sim = course, context, ann, ian, sim
    return w


def queue(world, capture, *, stage="problem", given="8.5", maximum="10", comment="Well argued."):
    with capture(execute=True):
        return services.queue_score(
            course=world.course,
            stage_key=stage,
            user=world.ann,
            score_given=Decimal(given),
            score_maximum=Decimal(maximum),
            comment=comment,
        )


def _due_now(score):
    LtiScore.objects.filter(pk=score.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_a_grade_creates_the_stages_line_item_and_posts_the_score(
    world, django_capture_on_commit_callbacks
):
    (score,) = queue(world, django_capture_on_commit_callbacks)
    score.refresh_from_db()
    assert score.state == ScoreState.SENT and score.attempts == 1
    (item,) = world.sim.state.line_items["ctx-1"]
    assert item["resourceId"] == "problem"
    assert item["scoreMaximum"] == 10
    assert item["label"]  # the stage's title
    (posted,) = world.sim.state.scores
    assert posted.headers["content-type"] == SCORE_TYPE
    assert posted.path == "/ags/ctx-1/lineitems/1/scores"
    body = posted.body
    assert body["userId"] == "lms-ann"
    assert body["scoreGiven"] == 8.5 and body["scoreMaximum"] == 10
    assert body["activityProgress"] == "Completed"
    assert body["gradingProgress"] == "FullyGraded"
    assert body["comment"] == "Well argued."
    assert body["timestamp"].endswith("+00:00")
    assert AuditEvent.objects.filter(course=world.course, verb="lti.score_sent").exists()


def test_a_second_grade_reuses_the_line_item(world, django_capture_on_commit_callbacks):
    queue(world, django_capture_on_commit_callbacks)
    queue(world, django_capture_on_commit_callbacks, given="9")
    assert len(world.sim.state.line_items["ctx-1"]) == 1
    assert [s.body["scoreGiven"] for s in world.sim.state.scores] == [8.5, 9]


def test_an_existing_line_item_on_the_platform_is_found_by_resource_id(
    world, django_capture_on_commit_callbacks
):
    world.sim.state.line_items["ctx-1"].append(
        {
            "id": world.sim.lineitems_url("ctx-1") + "/1",
            "label": "Made in the LMS",
            "scoreMaximum": 10,
            "resourceId": "problem",
        }
    )
    queue(world, django_capture_on_commit_callbacks)
    assert len(world.sim.state.line_items["ctx-1"]) == 1
    assert LtiLineItem.objects.get().url.endswith("/lineitems/1")


def test_the_project_total_has_its_own_column(world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.queue_project_total(
            course=world.course,
            user=world.ann,
            score_given=Decimal("71"),
            score_maximum=Decimal("100"),
            comment="",
        )
    (item,) = world.sim.state.line_items["ctx-1"]
    assert item["resourceId"] == "project-total" and item["label"] == "Project total"


def test_a_refused_score_is_retried_after_the_back_off_then_sent(
    world, django_capture_on_commit_callbacks
):
    world.sim.fail_next("scores", 500)
    (score,) = queue(world, django_capture_on_commit_callbacks)
    score.refresh_from_db()
    assert score.state == ScoreState.PENDING and score.attempts == 1
    assert "500" in score.last_error
    assert score.next_attempt_at > timezone.now()
    assert sweep_scores() == 0  # not due yet
    _due_now(score)
    assert sweep_scores() == 1
    score.refresh_from_db()
    assert score.state == ScoreState.SENT and score.attempts == 2
    assert len(world.sim.state.scores) == 1


def test_the_back_off_doubles(world, django_capture_on_commit_callbacks, settings):
    settings.LTI_SCORE_BACKOFF_SECONDS = 60
    world.sim.fail_next("scores", 422, times=2)
    (score,) = queue(world, django_capture_on_commit_callbacks)
    score.refresh_from_db()
    first = score.next_attempt_at - timezone.now()
    _due_now(score)
    sweep_scores()
    score.refresh_from_db()
    second = score.next_attempt_at - timezone.now()
    assert timedelta(seconds=50) < first <= timedelta(seconds=60)
    assert timedelta(seconds=110) < second <= timedelta(seconds=120)


def test_running_the_delivery_twice_sends_once(world, django_capture_on_commit_callbacks):
    (score,) = queue(world, django_capture_on_commit_callbacks)
    assert services.score_deliver(score_id=score.pk) == "skipped"
    assert len(world.sim.state.scores) == 1


def test_exhausted_retries_leave_the_score_failed_and_visible_to_staff(
    world, django_capture_on_commit_callbacks, settings, client
):
    settings.LTI_SCORE_MAX_ATTEMPTS = 3
    world.sim.fail_next("scores", 422, times=3, body="userId is not in this course")
    (score,) = queue(world, django_capture_on_commit_callbacks)
    for _ in range(2):
        _due_now(score)
        sweep_scores()
    score.refresh_from_db()
    assert score.state == ScoreState.FAILED and score.attempts == 3
    assert "userId is not in this course" in score.last_error
    event = AuditEvent.objects.get(course=world.course, verb="lti.score_failed")
    assert event.flagged
    client.force_login(world.ian)
    page = client.get(f"/lti/courses/{world.course.pk}/")
    assert page.status_code == 200
    assert b"userId is not in this course" in page.content
    assert b"1 failed" in page.content
    # Staff retry: it is sent this time.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/lti/courses/{world.course.pk}/scores/{score.pk}/retry/")
    assert response.status_code == 302
    score.refresh_from_db()
    assert score.state == ScoreState.SENT
    assert AuditEvent.objects.filter(course=world.course, verb="lti.score_retry").exists()


def test_a_platform_that_deleted_the_column_gets_it_again(
    world, django_capture_on_commit_callbacks
):
    queue(world, django_capture_on_commit_callbacks)
    world.sim.state.line_items["ctx-1"].clear()
    (score,) = queue(world, django_capture_on_commit_callbacks, given="9")
    score.refresh_from_db()
    assert score.state == ScoreState.PENDING  # 404: the remembered column is forgotten
    _due_now(score)
    sweep_scores()
    score.refresh_from_db()
    assert score.state == ScoreState.SENT
    assert len(world.sim.state.line_items["ctx-1"]) == 1


def test_a_newer_grade_replaces_one_still_waiting(world, django_capture_on_commit_callbacks):
    world.sim.fail_next("scores", 500)
    queue(world, django_capture_on_commit_callbacks, given="5")
    (score,) = queue(world, django_capture_on_commit_callbacks, given="7")
    assert LtiScore.objects.count() == 1
    score.refresh_from_db()
    assert score.state == ScoreState.SENT
    assert world.sim.state.scores[-1].body["scoreGiven"] == 7


def test_a_person_unknown_to_the_platform_gets_no_passback(
    world, django_capture_on_commit_callbacks
):
    bea = UserFactory()
    enrol(world.course, bea, Role.STUDENT)
    with django_capture_on_commit_callbacks(execute=True):
        queued = services.queue_score(
            course=world.course,
            stage_key="problem",
            user=bea,
            score_given=Decimal(1),
            score_maximum=Decimal(2),
            comment="",
        )
    assert queued == [] and not world.sim.state.requests


def test_a_course_without_lti_queues_nothing(db):
    course = CourseFactory()
    user = UserFactory()
    assert (
        services.queue_score(
            course=course,
            stage_key="problem",
            user=user,
            score_given=Decimal(1),
            score_maximum=Decimal(2),
            comment="",
        )
        == []
    )


def test_a_score_outside_zero_to_maximum_is_refused(world):
    from lifecycle.errors import IllegalTransition

    with pytest.raises(IllegalTransition):
        services.queue_score(
            course=world.course,
            stage_key="problem",
            user=world.ann,
            score_given=Decimal(1),
            score_maximum=Decimal(0),
            comment="",
        )


# --- the course's LTI page ------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.INSTRUCTOR, Role.TA])
def test_staff_see_the_lti_page(world, client, role):
    person = UserFactory()
    enrol(world.course, person, role)
    client.force_login(person)
    response = client.get(f"/lti/courses/{world.course.pk}/")
    assert response.status_code == 200
    assert b"Sync roster" in response.content


@pytest.mark.parametrize("who", ["student", "outsider", "other course's instructor"])
def test_others_get_a_404_from_the_lti_page_and_its_actions(world, client, who):
    person = world.ann if who == "student" else UserFactory()
    if who.startswith("other"):
        enrol(CourseFactory(), person, Role.INSTRUCTOR)
    score = LtiScore.objects.create(
        context=world.context,
        user=world.ann,
        lti_user=LtiUser.objects.get(sub="lms-ann"),
        stage_key="problem",
        score_given=1,
        score_maximum=2,
        state=ScoreState.FAILED,
    )
    client.force_login(person)
    assert client.get(f"/lti/courses/{world.course.pk}/").status_code == 404
    assert (
        client.post(f"/lti/courses/{world.course.pk}/scores/{score.pk}/retry/").status_code == 404
    )


def test_anonymous_visitors_are_sent_to_sign_in(world, client):
    response = client.get(f"/lti/courses/{world.course.pk}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_lti_page_and_retry_answer_no_other_method(world, client):
    client.force_login(world.ian)
    assert client.post(f"/lti/courses/{world.course.pk}/").status_code == 405
    assert client.get(f"/lti/courses/{world.course.pk}/scores/1/retry/").status_code == 405


def test_a_score_of_another_course_cannot_be_retried_from_this_one(world, client):
    other = CourseFactory()
    enrol(other, world.ian, Role.INSTRUCTOR)
    score = LtiScore.objects.create(
        context=world.context,
        user=world.ann,
        lti_user=LtiUser.objects.get(sub="lms-ann"),
        stage_key="problem",
        score_given=1,
        score_maximum=2,
        state=ScoreState.FAILED,
    )
    client.force_login(world.ian)
    assert client.post(f"/lti/courses/{other.pk}/scores/{score.pk}/retry/").status_code == 404


def _failed_scores(world, n):
    lti_user = LtiUser.objects.get(sub="lms-ann")
    LtiScore.objects.bulk_create(
        LtiScore(
            context=world.context,
            user=world.ann,
            lti_user=lti_user,
            stage_key=f"stage-{i}",
            score_given=1,
            score_maximum=2,
            state=ScoreState.FAILED,
        )
        for i in range(n)
    )


def test_the_lti_page_costs_the_same_queries_for_few_and_many_scores(
    world, client, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(world.ian)
    _failed_scores(world, 2)
    client.get(f"/lti/courses/{world.course.pk}/")  # warm: the navbar's answers are cached
    with CaptureQueriesContext(connection) as few:
        assert client.get(f"/lti/courses/{world.course.pk}/").status_code == 200
    _failed_scores(world, 40)
    client.get(f"/lti/courses/{world.course.pk}/")
    with CaptureQueriesContext(connection) as many:
        assert client.get(f"/lti/courses/{world.course.pk}/").status_code == 200
    assert len(many) == len(few)


def test_with_the_broker_down_the_score_waits_for_the_sweep(
    world, django_capture_on_commit_callbacks, monkeypatch
):
    from lti import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.deliver_score, "delay", broker_down)
    (score,) = queue(world, django_capture_on_commit_callbacks)
    score.refresh_from_db()
    assert score.state == ScoreState.PENDING and score.attempts == 0
    monkeypatch.undo()
    assert sweep_scores() == 1
    score.refresh_from_db()
    assert score.state == ScoreState.SENT
