"""The grades CSV: one row per student (with or without a team), the graded stages' final
points under headers naming their maxima, the moderated project total, the LMS id where a
source knows it; injection-safe, staff only, streamed in flat queries, and audited; and the
course's audit trail export carries the grade events."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from factories import UserFactory, current_stage, enrol, fill_and_submit
from grading_support import grade_stages, set_grade

from grading import export, late_services
from grading.models import ProjectGrade
from lifecycle import services as lifecycle_services
from lifecycle.exports import ExportFilters, chain_head_at, stream_export
from lifecycle.models import AuditEvent, Project, Role

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def download(user, course) -> tuple[list[str], list[dict[str, str]]]:
    response = client_for(user).get(reverse("grading:grades_csv", args=[course.pk]))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="grades-')
    text = b"".join(response.streaming_content).decode("utf-8")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def project_grade(project, *, points: str, moderator) -> ProjectGrade:
    return ProjectGrade.objects.create(
        project=project, points=Decimal(points), max_points=Decimal(100), moderator=moderator
    )


@pytest.fixture
def graded(personas):
    p = personas
    first, second = grade_stages(p.course)
    stage = current_stage(p.project)
    fill_and_submit(stage, p.alice)
    set_grade(stage, points="8", moderator=p.ian, late_percent="25")
    project_grade(p.project, points="61.5", moderator=p.ian)
    return p, first, second


def test_the_csv_has_a_row_per_student_with_the_final_points_under_each_stages_maximum(graded):
    p, first, second = graded
    dave = UserFactory(email="dave@example.test", display_name="Dave")
    enrol(p.course, dave, Role.STUDENT)  # on no team
    header, rows = download(p.tina, p.course)
    assert header == [
        "email",
        "name",
        "lms_user_id",
        "project",
        f"1. {first.title} (max 10.00)",
        f"2. {second.title} (max 10.00)",
        "project_total",
        "project_total_max",
    ]
    by_email = {row["email"]: row for row in rows}
    # Every student of the course, staff and outsiders not; ordered by e-mail.
    assert [row["email"] for row in rows] == [
        "alice@example.test",
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
    ]
    for email in ("alice@example.test", "bob@example.test"):
        row = by_email[email]
        assert row["project"] == "Triage assistant"
        assert row[header[4]] == "6.00"  # 8 points, 25 % late
        assert row[header[5]] == ""
        assert (row["project_total"], row["project_total_max"]) == ("61.50", "100.00")
    assert by_email["alice@example.test"]["name"] == "Alice"
    assert by_email["carol@example.test"]["project"] == "Crop yield forecaster"
    assert by_email["carol@example.test"][header[4]] == ""
    assert by_email["dave@example.test"]["project"] == ""
    assert by_email["dave@example.test"]["project_total"] == ""
    assert all(row["lms_user_id"] == "" for row in rows)


def test_a_replaced_grade_gives_way_to_the_standing_one(graded):
    p, _, _ = graded
    set_grade(current_stage(p.project), points="10", moderator=p.ian)
    header, rows = download(p.ian, p.course)
    assert {row[header[4]] for row in rows if row["project"] == "Triage assistant"} == {"10.00"}


def test_the_lms_user_id_comes_from_a_registered_source(graded):
    p, _, _ = graded

    def from_lms(course, users):
        assert course == p.course
        return {user.pk: f"lms-{user.email.split('@')[0]}" for user in users if user != p.carol}

    export.register_lms_id_source(from_lms)
    try:
        _, rows = download(p.ian, p.course)
    finally:
        export.unregister_lms_id_source(from_lms)
    ids = {row["email"]: row["lms_user_id"] for row in rows}
    assert ids["alice@example.test"] == "lms-alice"
    assert ids["carol@example.test"] == ""


def test_cells_a_spreadsheet_would_run_as_formulas_are_defused(graded):
    p, _, _ = graded
    Project.objects.filter(pk=p.other_project.pk).update(title='=HYPERLINK("http://x")')
    p.carol.display_name = "+Carol"
    p.carol.save(update_fields=["display_name"])
    at = UserFactory(email="at@example.test", display_name="@dave")
    enrol(p.course, at, Role.STUDENT)
    minus = UserFactory(email="minus@example.test", display_name="-1+2")
    enrol(p.course, minus, Role.STUDENT)
    _, rows = download(p.ian, p.course)
    by_email = {row["email"]: row for row in rows}
    assert by_email["carol@example.test"]["project"] == '\'=HYPERLINK("http://x")'
    assert by_email["carol@example.test"]["name"] == "'+Carol"
    assert by_email["at@example.test"]["name"] == "'@dave"
    assert by_email["minus@example.test"]["name"] == "'-1+2"


@pytest.mark.parametrize("who", ["alice", "carol", "erin", "oscar"])
def test_only_course_staff_download_the_grades(graded, who):
    p, _, _ = graded
    response = client_for(getattr(p, who)).get(reverse("grading:grades_csv", args=[p.course.pk]))
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(verb="grading.export").exists()


def test_each_download_is_in_the_audit_trail(graded):
    p, first, _ = graded
    download(p.tina, p.course)
    event = AuditEvent.objects.get(verb="grading.export")
    assert (event.actor_id, event.course_id) == (p.tina.pk, p.course.pk)
    assert event.new["rows"] == 3
    assert f"1. {first.title} (max 10.00)" in event.new["columns"]


def test_the_course_audit_export_carries_the_grade_events_in_csv_and_json_lines(graded):
    p, _, _ = graded
    late_services.late_policy_update(
        course=p.course,
        actor=p.ian,
        rule="cutoff",
        percent_per_day=Decimal(10),
        cap_percent=Decimal(50),
    )
    # No due date: the 25 % the grade was set with goes, as a new stage grade.
    late_services.late_penalty_reapply(course=p.course, actor=p.ian)
    download(p.ian, p.course)
    filters = ExportFilters(course_id=p.course.pk)
    head = chain_head_at()
    text = b"".join(stream_export("csv", filters, head)).decode()
    verbs = {row["verb"] for row in csv.DictReader(io.StringIO(text))}
    assert {
        "grading.late_policy",
        "grading.stage_grade_late_reapplied",
        "grading.export",
    } <= verbs
    lines = b"".join(stream_export("jsonl", filters, head)).decode().splitlines()
    records = [json.loads(line) for line in lines[:-1]]  # the last line is the signed head
    grade_events = [r for r in records if r["verb"] == "grading.stage_grade_late_reapplied"]
    assert grade_events[0]["old"]["final_points"] == "6.00"
    assert grade_events[0]["new"]["final_points"] == "8.00"
    assert grade_events[0]["project_id"] == p.project.pk


def _grow(p, n: int) -> None:
    for _ in range(n):
        student = UserFactory()
        enrol(p.course, student, Role.STUDENT)
        project = lifecycle_services.project_create(
            course=p.course, actor=student, title=f"Team of {student.email}"
        )
        stage = current_stage(project)
        fill_and_submit(stage, student)
        set_grade(stage, points="7", moderator=p.ian)
        project_grade(project, points="70", moderator=p.ian)
        enrol(p.course, UserFactory(), Role.STUDENT)  # and one on no team


def _export_queries(user, course) -> tuple[int, int]:
    client = client_for(user)
    url = reverse("grading:grades_csv", args=[course.pk])
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        rows = b"".join(response.streaming_content).decode().count("\r\n") - 1
    return len(captured), rows


def test_the_export_costs_the_same_queries_for_more_students(graded):
    p, _, _ = graded
    _grow(p, 1)
    small, small_rows = _export_queries(p.ian, p.course)
    _grow(p, 6)
    large, large_rows = _export_queries(p.ian, p.course)
    assert (small_rows, large_rows) == (5, 17)
    assert large == small


def test_the_export_reads_students_in_chunks_without_losing_or_repeating_one(graded):
    p, _, _ = graded
    _grow(p, 3)
    whole = list(export.grade_rows(p.course))
    chunked = list(export.grade_rows(p.course, chunk=2))
    assert chunked == whole
    assert len(whole) == 1 + 3 + 6
