"""Roster invitations through the outbox: an uploaded roster's new addresses get the course's
join link, and the people it enrolled at once are told so. One row per course and address
(its dedupe key), so a replayed event or a re-uploaded file sends nothing new; delivery retries
with back-off like every other notification.

An address with no account yet has no recipient: its row is an e-mail only, never shown in
anyone's centre. An address whose account is not verified yet is its recipient's row."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from accounts.models import User
from lifecycle import events
from lifecycle.models import Course, Role

from .models import EmailStatus, Notification, NotificationKind
from .services import absolute, notify, store


def _address_key(course: Course, email: str) -> str:
    # The address is hashed: dedupe keys are shown in mail headers and the admin.
    return f"roster:c{course.pk}:{hashlib.sha256(email.encode()).hexdigest()[:24]}"


def join_link(course: Course) -> str:
    return absolute(reverse("lifecycle:course_join")) + "?" + urlencode({"code": course.join_code})


def _course_name(course: Course) -> str:
    return f"“{course.title}”" + (f" ({course.term})" if course.term else "")


def invitation_body(course: Course, inviter: Any, team: str, role: str = Role.STUDENT) -> str:
    what = (
        "In this course student teams walk machine-learning projects through the stages of the "
        "ML life cycle; you join its staff as a teaching assistant and review their stages."
        if role == Role.TA
        else "In this course your team walks a machine-learning project through the stages "
        "of the ML life cycle, and course staff and domain experts review each stage before "
        "you move on."
    )
    lines = [
        f"{inviter.name} invites you to join {_course_name(course)} on the Lifecycle Review "
        f"Board. {what}",
        "",
        "If you have no account yet, the link lets you create one; the join code "
        f"{course.join_code} is filled in for you.",
    ]
    if team:
        lines += ["", f"Course staff put you on the team “{team}”: you join it with the course."]
    lines += ["", "If you did not expect this e-mail, you can ignore it."]
    return "\n".join(lines)


def on_roster_applied(
    *,
    course: Course,
    actor: Any,
    role: str = Role.STUDENT,
    invited: list[tuple[str, str, str]],
    enrolled: list[tuple[Any, str]],
) -> None:
    subject = " ".join(f"Join {course.title} on the Lifecycle Review Board".split())
    link = join_link(course)
    accounts = {
        u.email.lower(): u for u in User.objects.filter(email__in=[e for e, _n, _t in invited])
    }
    rows = []
    for email, _name, team in invited:
        user = accounts.get(email)
        rows.append(
            Notification(
                recipient=user if user is not None and user.is_active else None,
                email=email,
                kind=NotificationKind.INVITATION,
                subject=subject[:250],
                body=invitation_body(course, actor, team, role),
                link=link,
                payload={"course": course.pk, "roster": "invited", "team": team},
                dedupe_key=_address_key(course, email),
                # An invitation waits for nobody's daily digest.
                email_status=EmailStatus.PENDING,
            )
        )
    store(rows)
    course_link = absolute(reverse("lifecycle:course_detail", args=[course.pk]))
    for user, team in enrolled:
        notify(
            recipients=[user],
            kind=NotificationKind.INVITATION,
            key=_address_key(course, user.email.lower()),
            subject=" ".join(f"You are enrolled in {course.title}".split()),
            body=(
                f"{actor.name} added you to {_course_name(course)} on the Lifecycle Review Board"
                + (" as a teaching assistant." if role == Role.TA else ".")
                + (f" You are on the team “{team}”." if team else "")
            ),
            link=course_link,
            payload={"course": course.pk, "roster": "enrolled", "team": team},
        )


def connect() -> None:
    events.subscribe(events.ROSTER_APPLIED, on_roster_applied)
