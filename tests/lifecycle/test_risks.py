"""The risk register beside the stakeholder register, frozen into revisions, re-scored each
cycle, and the traceability view that marks every gap from stakeholder to monitor."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from factories import advance_to, current_stage, fill_and_submit

from lifecycle import risks, services
from lifecycle.audit import sha256_hex
from lifecycle.errors import InvalidAnswers, NotAllowed
from lifecycle.models import AuditEvent, Risk
from lifecycle.traceability import project_traceability

pytestmark = pytest.mark.django_db


def add(p, **fields):
    defaults = {"title": "Missed urgent referral", "likelihood": 3, "severity": 5}
    return risks.risk_add(project=p.project, actor=p.alice, **{**defaults, **fields})


def test_a_risk_names_stakeholders_scores_owner_and_links(personas):
    p = personas
    nurses = services.stakeholder_add(
        project=p.project, actor=p.alice, name="Nurses", kind="operator"
    )
    risk = add(
        p,
        stakeholders=[nurses],
        owner=p.bob,
        mitigation="Double check.",
        data_link="compile-data/data-representative",
        test_link="test-extensively/subgroup-margins",
        monitor_link="deploy-and-monitor/monitoring-and-alerts",
    )
    assert risk.score == 15 and risk.scored_cycle == 1
    assert [s.name for s in risk.stakeholders.all()] == ["Nurses"]
    assert AuditEvent.objects.filter(verb="risk.add").count() == 1


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"severity": 6}, "severity"),
        ({"likelihood": 0}, "likelihood"),
        ({"title": "  "}, "title"),
        ({"data_link": "test-extensively/subgroup-margins"}, "data_link"),
        ({"test_link": "no-such/question"}, "test_link"),
    ],
)
def test_a_risk_off_the_scale_or_linked_to_the_wrong_stage_is_refused(personas, fields, error):
    with pytest.raises(InvalidAnswers) as invalid:
        add(personas, **fields)
    assert error in invalid.value.errors


def test_the_owner_is_a_team_member_and_only_the_team_writes(personas):
    p = personas
    with pytest.raises(InvalidAnswers):
        add(p, owner=p.carol)
    for outsider in (p.carol, p.tina, p.oscar):
        with pytest.raises(NotAllowed):
            risks.risk_add(project=p.project, actor=outsider, title="x", likelihood=1, severity=1)


def test_every_revision_freezes_the_register_and_its_hash_covers_it(personas):
    p = personas
    add(p, mitigation="Double check.")
    revision = fill_and_submit(current_stage(p.project), p.alice)
    assert revision.risks[0]["title"] == "Missed urgent referral"
    assert revision.content_sha256 == sha256_hex(
        services.revision_content(
            revision.answers, revision.stakeholders, revision.evidence, revision.risks
        )
    )
    assert revision.content_sha256 != sha256_hex(
        services.revision_content(revision.answers, revision.stakeholders, revision.evidence)
    )


def test_a_risk_not_re_scored_in_a_new_cycle_is_a_gap(personas):
    p = personas
    risk = add(p, mitigation="m")
    Risk.objects.filter(pk=risk.pk).update(scored_cycle=0)
    p.project.refresh_from_db()
    row = project_traceability(p.project).rows[0]
    assert row.stale_score and any("re-scored" in g for g in row.gaps)
    risks.risk_update(risk=risk, actor=p.alice, severity=4)
    risk.refresh_from_db()
    assert risk.scored_cycle == p.project.cycle
    assert not project_traceability(p.project).rows[0].stale_score


def test_the_trace_marks_every_gap_and_each_answered_link(personas):
    p = personas
    nurses = services.stakeholder_add(
        project=p.project, actor=p.alice, name="Nurses", kind="operator"
    )
    services.stakeholder_add(project=p.project, actor=p.alice, name="Parents", kind="other")
    add(p, title="Bare")
    add(
        p,
        title="Traced",
        stakeholders=[nurses],
        mitigation="m",
        data_link="compile-data/data-representative",
        test_link="test-extensively/subgroup-margins",
        monitor_link="deploy-and-monitor/monitoring-and-alerts",
    )
    advance_to(p.project, 4, team_member=p.alice, reviewer=p.ian)  # stage 3 approved
    trace = project_traceability(p.project)
    rows = {r.risk.title: r for r in trace.rows}
    assert rows["Bare"].gaps == [
        "no stakeholder named",
        "no mitigation",
        "no data decision linked",
        "no test linked",
        "no monitor linked",
    ]
    traced = rows["Traced"]
    assert traced.gaps == []
    assert traced.data.state == "approved" and traced.data.revision == 1
    assert traced.test.state == "pending" and traced.monitor.state == "pending"
    assert "Parents" in trace.unharmed_stakeholders


def _trace_queries(project) -> int:
    with CaptureQueriesContext(connection) as queries:
        project_traceability(project)
    return len(queries)


def test_the_trace_costs_the_same_queries_for_two_risks_or_twenty(personas):
    p = personas
    nurses = services.stakeholder_add(
        project=p.project, actor=p.alice, name="Nurses", kind="operator"
    )
    for i in range(2):
        add(p, title=f"r{i}", stakeholders=[nurses])
    small = _trace_queries(p.project)
    for i in range(2, 20):
        add(p, title=f"r{i}", stakeholders=[nurses])
    assert _trace_queries(p.project) == small


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("tina", 200), ("ian", 200), ("carol", 404), ("oscar", 404)],
)
def test_the_register_and_the_trace_are_for_the_project_only(personas, who, status):
    p = personas
    risk = add(p)
    client = Client()
    client.force_login(getattr(p, who))
    for name in ("risks", "traceability"):
        assert client.get(reverse(f"lifecycle:{name}", args=[p.project.pk])).status_code == status
    edit = reverse("lifecycle:risk_edit", args=[p.project.pk, risk.pk])
    assert client.get(edit).status_code == (200 if who in ("alice", "bob") else 404)


def test_the_team_adds_edits_and_removes_a_risk_through_the_pages(personas):
    p = personas
    client = Client(enforce_csrf_checks=False)
    client.force_login(p.alice)
    url = reverse("lifecycle:risks", args=[p.project.pk])
    response = client.post(
        url, {"title": "Bias against rural clinics", "likelihood": 4, "severity": 4}
    )
    assert response.status_code == 302
    risk = Risk.objects.get(title="Bias against rural clinics")
    edit = reverse("lifecycle:risk_edit", args=[p.project.pk, risk.pk])
    response = client.post(
        edit, {"title": risk.title, "likelihood": 2, "severity": 4, "mitigation": "Reweight."}
    )
    assert response.status_code == 302
    risk.refresh_from_db()
    assert (risk.likelihood, risk.mitigation) == (2, "Reweight.")
    assert (
        client.get(reverse("lifecycle:risk_remove", args=[p.project.pk, risk.pk])).status_code
        == 405
    )
    client.post(reverse("lifecycle:risk_remove", args=[p.project.pk, risk.pk]))
    assert not Risk.objects.filter(pk=risk.pk).exists()
    page = client.get(reverse("lifecycle:traceability", args=[p.project.pk]))
    assert "No risk recorded yet." in page.content.decode()
