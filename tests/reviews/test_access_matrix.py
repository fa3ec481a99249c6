"""Every URL of the ``reviews`` namespace, for every persona, → the status written in TABLE.

The URLs are enumerated from the URLconf, so a new reviews URL without a row here fails the
suite. Only the people a page is for get a 2xx (or, for a POST that worked, a redirect); everyone
else a 404 (the object's existence stays private) or a 403, and anonymous visitors go to sign in
(except on the invitation link, which is the credential itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from factories import UserFactory, current_stage, declare_no_conflict, fill_and_submit
from reauth import confirm_password

from lifecycle import template_services
from lifecycle.models import Course, ExpertInvitationPolicy
from lifecycle.proposals import proposal_submit
from notifications.models import Notification
from reviews import quality, services
from reviews.models import Decision, DossierRender

pytestmark = pytest.mark.django_db

PERSONAS = [
    "alice",  # team member
    "carol",  # another team's student
    "tina",  # TA
    "ian",  # instructor
    "expert",  # domain expert who accepted an invitation for this project's stage 1
    "other_expert",  # domain expert for the other project only
    "oscar",  # outsider with an account
    "anonymous",
]
LOGIN = "login"  # a redirect to the sign-in page
DONE = "redirect"  # a POST that worked: a redirect that is not to the sign-in page
PASSWORD = "a-long-and-unusual-passphrase-2026"


def _row(default: int | str, anonymous: int | str = LOGIN, **overrides: int | str) -> dict:
    row = dict.fromkeys(PERSONAS, default)
    row["anonymous"] = anonymous
    row.update(overrides)
    return row


def _post_only(**allowed: int | str) -> dict[str, dict]:
    """A POST-only view: GET is 405 for whoever is signed in; POST as given, else 404."""
    return {"GET": _row(405), "POST": _row(404, **allowed)}


STAFF = {"tina": DONE, "ian": DONE}

TABLE: dict[str, dict[str, dict]] = {
    "inbox": {"GET": _row(200)},
    "project_reviewers": {"GET": _row(404, alice=200, tina=200, ian=200)},
    "assignment_create": _post_only(**STAFF),
    "assignment_withdraw": _post_only(**STAFF),
    "assignment_reassign": _post_only(**STAFF),
    "invitation_create": _post_only(alice=DONE, **STAFF),
    "invitation_confirm": _post_only(**STAFF),
    "invitation_revoke": _post_only(alice=DONE, **STAFF),  # alice sent it
    # the sample invitation awaits staff confirmation: its sender and staff are told why not
    "invitation_resend": _post_only(alice=409, tina=409, ian=409),
    "invitation_accept": {
        # The link is bound to the invited address (which has no account yet): every signed-in
        # person is someone else and is refused (403); a newcomer sets up that address.
        "GET": _row(403, anonymous=200),
        "POST": _row(403, anonymous=DONE),
    },
    "invitation_readdress": _post_only(**STAFF),
    # The sample expert declared already (409); nobody else declares on this project.
    "conflict_declare": _post_only(expert=409),
    # The sample expert was invited by staff: nothing to confirm (409); revoking works.
    "expert_confirm": _post_only(tina=409, ian=409),
    "expert_revoke": _post_only(**STAFF),
    "review_stage": {"GET": _row(404, alice=200, tina=200, ian=200, expert=200)},
    "stage_decide": _post_only(expert=DONE, **STAFF),
    "comment_add": _post_only(alice=DONE, expert=DONE, **STAFF),
    "comment_resolve": _post_only(alice=DONE),
    "stage_override": {"GET": _row(404, ian=200), "POST": _row(404, ian=DONE)},
    "course_settings": {"GET": _row(404, ian=200), "POST": _row(404, ian=DONE)},
    # The notification centre: each person's own. The sample notification is the expert's.
    "notifications:list": {"GET": _row(200)},
    "notifications:read": _post_only(expert=DONE),
    "notifications:read_all": {"GET": _row(405), "POST": _row(DONE)},
    # The course staff's board and its bulk actions: staff of the course only.
    "board": {"GET": _row(404, tina=200, ian=200)},
    "board_bulk": _post_only(**STAFF),
    # The project dossier: its team and course staff, never a reviewer from outside the course.
    "project_dossier": {"GET": _row(404, alice=200, tina=200, ian=200)},
    "project_dossier_pdf": {"GET": _row(404, alice=200, tina=200, ian=200)},
    # A rendered PDF is its reader's own (it shows what they may see): Alice asked for this one.
    "project_dossier_pdf_download": {"GET": _row(404, alice=200)},
    # "We should not build this", proposed at stage 1: the team, course staff and the stage's
    # expert read it; staff and that expert decide.
    "review_proposal": {"GET": _row(404, alice=200, tina=200, ian=200, expert=200)},
    "proposal_decide": _post_only(expert=DONE, **STAFF),
    # The template editor's gate pages: course staff only, a 404 for everyone else. Staff add
    # a rule to stage 1 of the sample draft.
    "template_rule_add": _post_only(**STAFF),
    "template_migrations": {"GET": _row(404, tina=200, ian=200)},
    # The sample project runs on the course's current version already: nothing to migrate.
    "project_migrate": _post_only(tina=409, ian=409),
    # Whoever may see the stage reaches the service; the sample revision is not marked
    # editorial, so there is nothing to accept (409). Everyone else: 404.
    "editorial_accept": _post_only(alice=409, tina=409, ian=409, expert=409),
    # The quality loop: the team rates and flags the reviews it received (never a reviewer,
    # course staff or another team); Alice has flagged the sample review already (409), so
    # withdrawing works. Course staff list and resolve the flags of their course.
    "review_rate": _post_only(alice=DONE),
    "review_flag": _post_only(alice=409),
    "review_flag_withdraw": _post_only(alice=DONE),
    "course_flags": {"GET": _row(404, tina=200, ian=200)},
    "flag_resolve": _post_only(**STAFF),
}


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, list[str]]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix)
        elif isinstance(entry, URLPattern) and entry.name:
            yield prefix + entry.name, list(entry.pattern.converters)


# The notification centre moved to its own app; its URLs are checked here all the same, under
# their qualified names.
NAMESPACES = {"reviews": "", "notifications": "notifications:"}


def reviews_urls() -> list[tuple[str, list[str]]]:
    """(name, parameter names) of every pattern under the ``reviews`` namespace (and the
    ``notifications`` one, as "notifications:<name>")."""
    found: list[tuple[str, list[str]]] = []
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace in NAMESPACES:
            found += _walk(entry.url_patterns, NAMESPACES[entry.namespace])
    assert {n for n, _ in found if ":" not in n}, "The reviews URLs are not in the root URLconf."
    return sorted(found)


def qualified(name: str) -> str:
    return name if ":" in name else f"reviews:{name}"


URLS = reviews_urls()


@dataclass
class World:
    users: dict[str, Any]
    kwargs: dict[str, Any]  # sample objects keyed by URL parameter name
    posts: dict[str, Any]  # POST data per URL name
    # Where one parameter name means another object for some URL ("pk" of a notification).
    kwargs_for: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def world(module_personas, tmp_path_factory) -> Iterator[World]:
    """Built once for the whole matrix (tests/conftest.py, module_db): every case runs in a
    savepoint of the module's transaction and starts from these same rows."""
    # The sample dossier PDF below.
    with override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("access-matrix-media")):
        yield _build_world(module_personas)


def _build_world(p: Any) -> World:
    stage = current_stage(p.project)
    other_stage = current_stage(p.other_project)
    other_expert = UserFactory(email="xavier@elsewhere.example", display_name="Xavier")

    def invite_and_accept(user: Any, project: Any, on: Any) -> Any:
        _, token = services.invitation_create(
            actor=p.tina,
            course=p.course,
            project=project,
            stage_definition=on.definition,
            email=user.email,
        )
        accepted = services.invitation_accept(token=token, user=user)[1]
        declare_no_conflict(project, user)
        return accepted

    expert_assignment = invite_and_accept(p.erin, p.project, stage)
    invite_and_accept(other_expert, p.other_project, other_stage)
    assignment = services.assignment_create(
        project=p.project,
        actor=p.tina,
        reviewer=p.ian,
        role="staff",
        stage_definition=stage.definition,
    )
    revision = fill_and_submit(stage, p.alice)
    fill_and_submit(other_stage, p.carol)
    comment = services.comment_add(revision=revision, author=p.erin, body="Which clinics?")

    # A team invitation waiting for staff confirmation, then the policy back to "allowed".
    Course.objects.filter(pk=p.course.pk).update(
        expert_invitations=ExpertInvitationPolicy.AFTER_CONFIRMATION
    )
    p.course.refresh_from_db()
    awaiting, _ = services.invitation_create(
        actor=p.alice, course=p.course, project=p.project, email="awaiting@example.test"
    )
    Course.objects.filter(pk=p.course.pk).update(expert_invitations=ExpertInvitationPolicy.ALLOWED)
    _, token = services.invitation_create(
        actor=p.tina,
        course=p.course,
        project=p.project,
        stage_definition=stage.definition,
        email="fresh@example.test",
    )

    proposal_revision = proposal_submit(
        project=p.project,
        actor=p.alice,
        answers={"reasons": ["social"], "reasoning": "A social solution fits."},
    )

    # A template draft for the editor's rule page (the course's current version).
    draft = template_services.template_draft_start(course=p.course, actor=p.ian, source="current")

    # A review the team received (written directly: the gate and the other rows stay as they
    # were), flagged by Alice.
    received = Decision.objects.create(
        revision=revision, reviewer=other_expert, role="expert", outcome="approve", comment="Ok."
    )
    flag = quality.review_flag(decision=received, actor=p.alice, reason="Too short to help.")

    dossier_pdf = DossierRender.objects.create(
        project=p.project, requested_by=p.alice, content_hash="0" * 64, status="ready"
    )
    dossier_pdf.file.save("sample.pdf", ContentFile(b"%PDF-1.7 sample"), save=True)

    users = {
        "alice": p.alice,
        "carol": p.carol,
        "tina": p.tina,
        "ian": p.ian,
        "expert": p.erin,
        "other_expert": other_expert,
        "oscar": p.oscar,
        "anonymous": None,
    }
    kwargs = {
        "pk": p.project.pk,
        "stage_pk": stage.pk,
        "course_pk": p.course.pk,
        "assignment_pk": assignment.pk,
        "invitation_pk": awaiting.pk,
        "comment_pk": comment.pk,
        "token": token,
        "render_pk": dossier_pdf.pk,
        "index": 0,
        "project_pk": p.project.pk,
        "decision_pk": received.pk,
        "flag_pk": flag.pk,
    }
    posts = {
        "assignment_create": {"email": p.oscar.email, "role": "expert", "stage_definition": ""},
        "assignment_reassign": {"reviewer": p.tina.pk},
        "invitation_create": {"email": "someone@example.test", "stage_definition": ""},
        "invitation_accept": {
            "display_name": "Fresh Expert",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
        "stage_decide": {"revision": revision.pk, "outcome": "approve"},
        "conflict_declare": {"has_conflict": "no"},
        "invitation_readdress": {"email": "new-address@example.test"},
        "comment_add": {"revision": revision.pk, "body": "A fair question."},
        "stage_override": {"justification": "The expert is ill; approved by the clinic."},
        "board_bulk": {"action": "nudge", "projects": [p.project.pk], "message": "Any news?"},
        "course_settings": {
            "allows_experts": "on",
            "expert_invitations": ExpertInvitationPolicy.ALLOWED,
            "invitation_expiry_days": 10,
            "reminder_interval_days": 3,
            "reminder_limit": 2,
        },
    }
    posts["template_rule_add"] = {
        "base_revision": draft.revision,
        "kind": "min_approvals",
        "role": "staff",
        "count": 1,
    }
    posts["review_rate"] = {"helpfulness": 4, "note": "Clear."}
    posts["review_flag"] = {"reason": "Unfair."}
    posts["flag_resolve"] = {"note": "Discussed with the reviewer."}
    posts["project_migrate"] = {"target": p.course.template_id}
    posts["proposal_decide"] = {"revision": proposal_revision.pk, "outcome": "approve"}
    notification = Notification.objects.filter(recipient=p.erin).order_by("pk").first()
    assert notification is not None, "the expert was told about the submitted stage"
    kwargs_for = {
        "notifications:read": {"pk": notification.pk},
        "expert_confirm": {"assignment_pk": expert_assignment.pk},
        "expert_revoke": {"assignment_pk": expert_assignment.pk},
        "review_proposal": {"pk": proposal_revision.proposal_id},
        "proposal_decide": {"pk": proposal_revision.proposal_id},
    }
    return World(users, kwargs, posts, kwargs_for)


def assert_status(response: Any, expected: int | str, where: str) -> None:
    login = reverse("accounts:login")
    location = response.get("Location", "")
    if expected == LOGIN:
        assert response.status_code == 302 and location.startswith(login + "?next="), where
    elif expected == DONE:
        assert response.status_code == 302 and not location.startswith(login), (
            f"{where}: {response.status_code} {location}"
        )
    else:
        assert response.status_code == expected, f"{where}: {response.status_code}"


def test_every_reviews_url_has_a_row_and_every_row_a_url():
    names = {name for name, _ in URLS}
    missing = sorted(names - set(TABLE))
    assert not missing, f"reviews URLs without a row in the access table: {missing}"
    assert not sorted(set(TABLE) - names), "rows for URLs that no longer exist"


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize(("name", "params"), URLS, ids=[name for name, _ in URLS])
def test_access(world, name, params, persona):
    row = TABLE.get(name)
    if row is None:
        pytest.fail(f"{qualified(name)} has no row in the access table")
    samples = {**world.kwargs, **world.kwargs_for.get(name, {})}
    url = reverse(qualified(name), kwargs={k: samples[k] for k in params})
    client = Client()
    user = world.users[persona]
    if user is not None:
        client.force_login(user)
        confirm_password(client)  # the override asks for it; the matrix is about who may
    for method in ("GET", "POST"):
        if method not in row:
            continue
        expected = row[method][persona]
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, world.posts.get(name, {}))
        assert_status(response, expected, f"{method} {qualified(name)} as {persona}")
