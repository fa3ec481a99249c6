"""What the editor's pages cost does not grow with the database: the template overview (its
versions), the draft's stage and question pages (with the gate rules), the dry run of a rule
over the projects in review, the migration preview of the projects behind, and the roster page
and its preview make as many queries with a little data as with eight times more (projects in
review, versions, roster entries, other courses, and a longer roster file)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from scale import seed_projects, seed_unrelated_courses

from lifecycle import template_services as ts
from lifecycle.models import Course, RosterEntry, TemplateDraft

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _count(send) -> int:
    send()  # warm: sessions, content types, the template cache
    with CaptureQueriesContext(connection) as captured:
        response = send()
    assert response.status_code == 200, response
    return len(captured)


def _roster_file(rows: int) -> str:
    lines = ["email,name,team"]
    lines += [f"student{i}@example.test,Student {i},Team {i % 3}" for i in range(rows)]
    lines += ["alice@example.test,Alice,Triage assistant"]
    return "\n".join(lines) + "\n"


def _draft(p: Any) -> TemplateDraft:
    draft = TemplateDraft.objects.filter(course=p.course).first()
    if draft is None:
        ts.template_draft_start(course=p.course, actor=p.ian, source="current")
        draft = TemplateDraft.objects.get(course=p.course)
    return draft


def _grow(p: Any, old_template: Any, n: int, rows: int) -> None:
    """n more projects in review on the course's previous version (so they are behind the
    current one and in the dry run), n other courses, n more versions and roster entries."""
    current = p.course.template_id
    Course.objects.filter(pk=p.course.pk).update(template=old_template)
    p.course.refresh_from_db()
    seed_projects(course=p.course, instructor=p.ian, ta=p.tina, projects=n)
    Course.objects.filter(pk=p.course.pk).update(template_id=current)
    p.course.refresh_from_db()
    seed_unrelated_courses(courses=n, projects_per_course=2)
    for _ in range(n):
        draft = _draft(p)
        ts.template_draft_edit(
            course=p.course,
            actor=p.ian,
            base_revision=draft.revision,
            change=lambda data: data["stages"][0].update(title=data["stages"][0]["title"] + "!"),
            what="rename",
        )
        draft.refresh_from_db()
        ts.template_publish(course=p.course, actor=p.ian, base_revision=draft.revision)
    p.course.refresh_from_db()
    start = RosterEntry.objects.count()
    RosterEntry.objects.bulk_create(
        RosterEntry(course=p.course, email=f"entry{start + i}@example.test", name=f"E {i}")
        for i in range(n * 10)
    )
    _draft(p)


def _costs(p: Any, rows: int) -> dict[str, int]:
    c = p.course.pk
    ian = _client(p.ian)
    tina = _client(p.tina)
    draft = TemplateDraft.objects.get(course=p.course)
    roster = reverse("lifecycle:course_roster", args=[c])

    def preview():
        upload = io.BytesIO(_roster_file(rows).encode())
        upload.name = "roster.csv"
        return tina.post(roster, {"file": upload, "role": "student", "action": "preview"})

    def dry_run():
        return ian.post(
            reverse("reviews:template_rule_add", args=[c, 0]),
            {
                "kind": "min_approvals",
                "count": 1,
                "role": "staff",
                "action": "dry_run",
                "base_revision": draft.revision,
            },
        )

    pages = {
        "template overview": lambda: ian.get(reverse("lifecycle:template_editor", args=[c])),
        "draft stage with its rules": lambda: ian.get(
            reverse("lifecycle:template_stage", args=[c, 0])
        ),
        "draft question": lambda: ian.get(reverse("lifecycle:template_question", args=[c, 0, 0])),
        "version preview of projects behind": lambda: ian.get(
            reverse("reviews:template_migrations", args=[c])
        ),
        "gate rule dry run": dry_run,
        "roster page": lambda: tina.get(roster),
        "roster preview": preview,
    }
    return {name: _count(send) for name, send in pages.items()}


def test_every_editor_page_makes_as_many_queries_with_a_little_data_as_with_much_more(
    personas,
):
    p = personas
    old = p.course.template
    # Every project then runs an older version than the course's.
    ts.template_publish(course=p.course, actor=p.ian, base_revision=_draft(p).revision)
    p.course.refresh_from_db()
    _grow(p, old, 1, rows=2)
    small = _costs(p, rows=2)
    _grow(p, old, 7, rows=16)
    large = _costs(p, rows=16)
    assert large == small
