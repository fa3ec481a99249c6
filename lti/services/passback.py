"""Assignment and Grade Services: line items per graded stage and the outbox of scores."""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from pylti1p3.exception import LtiException, LtiServiceException
from pylti1p3.service_connector import ServiceConnector

from lifecycle import permissions
from lifecycle.audit import audit_record
from lifecycle.errors import IllegalTransition, NotAllowed
from lifecycle.models import Course, StageDefinition

from ..models import (
    LtiContext,
    LtiLineItem,
    LtiScore,
    LtiUser,
    ScoreState,
)
from .launches import (
    AGS_LINEITEM_SCOPE,
    AGS_SCORE_SCOPE,
    PROJECT_TOTAL,
    _service_error,
    connector,
)

# --- Assignment and Grade Services ----------------------------------------------------------


def _label(course: Course, stage_key: str) -> str:
    if stage_key == PROJECT_TOTAL:
        return "Project total"
    title = (
        StageDefinition.objects.filter(template__courses=course, key=stage_key)
        .values_list("title", flat=True)
        .first()
    )
    return (title or stage_key)[:255]


def queue_score(
    *,
    course: Course,
    stage_key: str,
    user: Any,
    score_given: Decimal,
    score_maximum: Decimal,
    comment: str = "",
    label: str = "",
) -> list[LtiScore]:
    """Put a grade in the passback outbox of every platform course linked to the board that
    knows the person; sent on commit, retried with back-off. A newer grade for the same person
    and column replaces one still waiting. Nothing happens for a course without LTI."""
    score_given = Decimal(score_given)
    score_maximum = Decimal(score_maximum)
    if score_maximum <= 0 or score_given < 0:
        raise IllegalTransition("A score is at least 0 out of a positive maximum.")
    label = label or _label(course, stage_key)
    queued: list[LtiScore] = []
    with transaction.atomic():
        contexts = LtiContext.objects.filter(course=course).exclude(ags_lineitems_url="")
        for context in contexts.select_related("platform"):
            lti_user = LtiUser.objects.filter(platform=context.platform, user=user).first()
            if lti_user is None:
                continue
            now = timezone.now()
            values = {
                "lti_user": lti_user,
                "label": label,
                "score_given": score_given,
                "score_maximum": score_maximum,
                "comment": comment,
                "graded_at": now,
                "next_attempt_at": now,
                "attempts": 0,
                "last_error": "",
            }
            waiting = (
                LtiScore.objects.select_for_update()
                .filter(context=context, stage_key=stage_key, user=user, state=ScoreState.PENDING)
                .first()
            )
            if waiting is not None:
                for name, value in values.items():
                    setattr(waiting, name, value)
                waiting.save(update_fields=list(values))
                score = waiting
            else:
                score = LtiScore.objects.create(
                    context=context, user=user, stage_key=stage_key, **values
                )
            queued.append(score)
        ids = [s.pk for s in queued]
        if ids:
            from ..tasks import enqueue_scores

            transaction.on_commit(lambda: enqueue_scores(ids))
    return queued


def queue_project_total(
    *,
    course: Course,
    user: Any,
    score_given: Decimal,
    score_maximum: Decimal,
    comment: str = "",
) -> list[LtiScore]:
    return queue_score(
        course=course,
        stage_key=PROJECT_TOTAL,
        user=user,
        score_given=score_given,
        score_maximum=score_maximum,
        comment=comment,
        label="Project total",
    )


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _all_line_items(service: ServiceConnector, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url and pages < settings.LTI_NRPS_MAX_PAGES:
        response = service.make_service_request(
            [AGS_LINEITEM_SCOPE],
            next_url,
            accept="application/vnd.ims.lis.v2.lineitemcontainer+json",
        )
        body = response["body"]
        items.extend(b for b in (body if isinstance(body, list) else []) if isinstance(b, dict))
        next_url = response["next_page_url"]
        pages += 1
    return items


def line_item_ensure(
    *,
    context: LtiContext,
    stage_key: str,
    label: str,
    score_maximum: Decimal,
    service: ServiceConnector | None = None,
) -> LtiLineItem:
    """The platform's column for the stage: remembered, else found among its line items by
    resourceId, else created (POST)."""
    known = LtiLineItem.objects.filter(context=context, stage_key=stage_key).first()
    if known is not None:
        return known
    service = service or connector(context.platform)
    found = next(
        (
            item
            for item in _all_line_items(service, context.ags_lineitems_url)
            if item.get("resourceId") == stage_key and item.get("id")
        ),
        None,
    )
    if found is None:
        response = service.make_service_request(
            [AGS_LINEITEM_SCOPE],
            context.ags_lineitems_url,
            is_post=True,
            data=json.dumps(
                {
                    "label": label or stage_key,
                    "scoreMaximum": _number(score_maximum),
                    "resourceId": stage_key,
                    "tag": "lifecycle-review-board",
                }
            ),
            content_type="application/vnd.ims.lis.v2.lineitem+json",
            accept="application/vnd.ims.lis.v2.lineitem+json",
        )
        body = response["body"]
        found = body if isinstance(body, dict) else {}
        if not found.get("id"):
            raise LtiException("The platform created a line item without an id.")
    item, _ = LtiLineItem.objects.get_or_create(
        context=context,
        stage_key=stage_key,
        defaults={
            "url": str(found["id"]),
            "label": str(found.get("label") or label)[:255],
            "score_maximum": Decimal(str(found.get("scoreMaximum") or score_maximum)),
        },
    )
    return item


def scores_url(line_item_url: str) -> str:
    parts = urlsplit(line_item_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def _claim(score_id: int) -> LtiScore | None:
    """Take the score for sending: a conditional UPDATE, so two workers never both send it."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.LTI_SCORE_LEASE_SECONDS)
    due = Q(state=ScoreState.PENDING, next_attempt_at__lte=now) | Q(
        state=ScoreState.SENDING, lease_until__lt=now
    )
    taken = LtiScore.objects.filter(due, pk=score_id).update(
        state=ScoreState.SENDING, lease_until=lease, attempts=F("attempts") + 1
    )
    if not taken:
        return None
    return LtiScore.objects.select_related("context__platform", "lti_user", "user").get(pk=score_id)


def score_deliver(*, score_id: int) -> str:
    """Send one score to the platform. Returns the state it ends in, or "skipped" when it is
    not due or another worker has it (running twice is harmless)."""
    score = _claim(score_id)
    if score is None:
        return "skipped"
    context = score.context
    try:
        service = connector(context.platform)
        item = line_item_ensure(
            context=context,
            stage_key=score.stage_key,
            label=score.label,
            score_maximum=score.score_maximum,
            service=service,
        )
        payload = {
            "userId": score.lti_user.sub,
            "scoreGiven": _number(score.score_given),
            "scoreMaximum": _number(score.score_maximum),
            "activityProgress": "Completed",
            "gradingProgress": "FullyGraded",
            "timestamp": score.graded_at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "comment": score.comment,
        }
        try:
            service.make_service_request(
                [AGS_SCORE_SCOPE],
                scores_url(item.url),
                is_post=True,
                data=json.dumps(payload),
                content_type="application/vnd.ims.lis.v1.score+json",
            )
        except LtiServiceException as error:
            if getattr(error, "response", None) is not None and error.response.status_code == 404:
                # The column was deleted on the platform: make it again on the next attempt.
                LtiLineItem.objects.filter(pk=item.pk).delete()
            raise
    except Exception as error:  # any failure is recorded and retried
        return _score_failed(score, _service_error(error))
    with transaction.atomic():
        LtiScore.objects.filter(pk=score.pk).update(
            state=ScoreState.SENT, sent_at=timezone.now(), lease_until=None, last_error=""
        )
        audit_record(
            actor=None,
            verb="lti.score_sent",
            obj=score,
            course=context.course,
            new={
                "stage": score.stage_key,
                "user": score.user.email,
                "score": f"{score.score_given}/{score.score_maximum}",
                "attempts": score.attempts,
            },
        )
    return ScoreState.SENT


def _score_failed(score: LtiScore, message: str) -> str:
    now = timezone.now()
    exhausted = score.attempts >= settings.LTI_SCORE_MAX_ATTEMPTS
    with transaction.atomic():
        if exhausted:
            LtiScore.objects.filter(pk=score.pk).update(
                state=ScoreState.FAILED, last_error=message, lease_until=None
            )
            audit_record(
                actor=None,
                verb="lti.score_failed",
                obj=score,
                course=score.context.course,
                new={
                    "stage": score.stage_key,
                    "user": score.user.email,
                    "attempts": score.attempts,
                    "error": message[:500],
                },
                flagged=True,
            )
            return ScoreState.FAILED
        backoff = settings.LTI_SCORE_BACKOFF_SECONDS * 2 ** max(score.attempts - 1, 0)
        LtiScore.objects.filter(pk=score.pk).update(
            state=ScoreState.PENDING,
            last_error=message,
            lease_until=None,
            next_attempt_at=now + timedelta(seconds=backoff),
        )
    return ScoreState.PENDING


@transaction.atomic
def score_retry(*, score: LtiScore, actor: Any) -> LtiScore:
    """Course staff send a failed score again (with a fresh count of attempts)."""
    score = LtiScore.objects.select_for_update().select_related("context").get(pk=score.pk)
    course = score.context.course
    if course is None or not permissions.is_course_staff(actor, course):
        raise NotAllowed("Only course staff retry a grade passback.")
    if score.state != ScoreState.FAILED:
        raise IllegalTransition("Only a failed passback can be retried.")
    if LtiScore.objects.filter(
        context=score.context, stage_key=score.stage_key, user=score.user, state=ScoreState.PENDING
    ).exists():
        raise IllegalTransition("A newer grade for this person is waiting to be sent already.")
    score.state = ScoreState.PENDING
    score.attempts = 0
    score.next_attempt_at = timezone.now()
    score.save(update_fields=["state", "attempts", "next_attempt_at"])
    audit_record(
        actor=actor,
        verb="lti.score_retry",
        obj=score,
        course=course,
        old={"state": ScoreState.FAILED, "error": score.last_error[:500]},
        new={"state": ScoreState.PENDING},
    )
    from ..tasks import enqueue_scores

    ids = [score.pk]
    transaction.on_commit(lambda: enqueue_scores(ids))
    return score


def due_score_ids(limit: int = 200) -> list[int]:
    now = timezone.now()
    due = Q(state=ScoreState.PENDING, next_attempt_at__lte=now) | Q(
        state=ScoreState.SENDING, lease_until__lt=now
    )
    return list(
        LtiScore.objects.filter(due)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
