"""The planner's view of the busiest pages (PostgreSQL only: SQLite has no comparable planner).

With many unrelated courses in the database and fresh statistics, every query of the home
page, the project overview, the stage page and the reviewer inbox reaches the big tables
through an index, and no query's row estimate grows when a few hundred more unrelated courses
arrive: the pages cost what the person's own courses hold, not what the board has ever stored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from factories import current_stage, fill_and_submit
from scale import analyze, seed_unrelated_courses

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="EXPLAIN plans are PostgreSQL's; CI runs this on PostgreSQL",
)

BIG_TABLES = {
    "lifecycle_project",
    "lifecycle_membership",
    "lifecycle_projectstage",
    "lifecycle_auditevent",
    "reviews_decision",
    "reviews_notification",
    "lifecycle_project_members",
    "reviews_reviewassignment",
    "lifecycle_stagerevision",
}


def _nodes(plan: dict[str, Any]):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(sql: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        raw = cursor.fetchone()[0]
    data = raw if isinstance(raw, list) else json.loads(raw)
    return data[0]["Plan"]


def _page_plans(client: Client, url: str) -> list[tuple[str, dict[str, Any]]]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    plans = []
    for query in ctx.captured_queries:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        plans.append((sql, _explain(sql)))
    return plans


def _seq_scans(plans: list[tuple[str, dict[str, Any]]]) -> list[str]:
    found = []
    for sql, plan in plans:
        for node in _nodes(plan):
            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in BIG_TABLES:
                found.append(f"{node['Relation Name']} in: {sql[:300]}")
    return found


def _estimates(plans: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """The largest row estimate of any node of each query (what the plan expects to touch)."""
    return [max(node["Plan Rows"] for node in _nodes(plan)) for _, plan in plans]


@pytest.fixture
def busy_course(personas):
    """Alice's team has stage 1 in review; Tina (TA) reviews it."""
    p = personas
    stage = current_stage(p.project)
    fill_and_submit(stage, p.alice)
    return p


def _pages(p) -> dict[str, tuple[Any, str]]:
    stage = current_stage(p.project)
    return {
        "home (student)": (p.alice, "/"),
        "home (instructor)": (p.ian, "/"),
        "project overview": (p.alice, p.project.get_absolute_url()),
        "stage page": (p.alice, stage.get_absolute_url()),
        "inbox": (p.tina, "/reviews/"),
    }


@pytest.mark.django_db
def test_the_busiest_pages_use_indexes_and_their_estimates_do_not_grow_with_other_courses(
    busy_course, settings
):
    from django.core.cache import cache

    # Every query of every page, as rendered: no page content, unread count or navbar answer
    # read from the cache.
    settings.FRAGMENT_CACHE_SECONDS = 0
    p = busy_course
    client = Client()
    seed_unrelated_courses(courses=60, projects_per_course=10)
    analyze()
    small: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, (user, url) in _pages(p).items():
        client.force_login(user)
        cache.clear()
        small[name] = _page_plans(client, url)

    seed_unrelated_courses(courses=240, projects_per_course=10)
    analyze()
    for name, (user, url) in _pages(p).items():
        client.force_login(user)
        cache.clear()
        large = _page_plans(client, url)
        assert _seq_scans(large) == [], name
        assert len(large) == len(small[name]), name
        before, after = _estimates(small[name]), _estimates(large)
        grown = [
            (b, a, sql[:200])
            for b, a, (sql, _) in zip(before, after, large, strict=True)
            # Estimates wobble with sampling; growth with the database is 5 times here.
            if a > max(2 * b, b + 20)
        ]
        assert grown == [], name
