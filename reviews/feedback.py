"""The reviewers' feedback where the team revises: on the stage page, the reasons of the
standing decisions and every unresolved thread of the stage sit beside the question they are
about, with reply and resolve in place (plain forms; no script needed)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string

from lifecycle import permissions as lifecycle_permissions
from lifecycle.models import ProjectStage, StageStatus
from lifecycle.panels import OpenThread, StageFeedback

from .anonymity import names_for
from .models import Comment, Decision, DecisionOutcome
from .quality import attach_team_member_view
from .selectors import Thread

GENERAL = ""


def open_threads(stage: ProjectStage) -> list[Thread]:
    """Every unresolved thread on any revision of the stage, oldest first, with its replies.
    Two queries whatever the number of threads."""
    roots = list(
        Comment.objects.filter(revision__stage=stage, parent__isnull=True, resolved_at__isnull=True)
        .select_related("author", "revision")
        .order_by("created_at", "pk")
    )
    by_pk = {c.pk: Thread(c) for c in roots}
    if by_pk:
        # Replies to replies hang from their root; comments are few per stage, so the
        # stage's replies are read at once and attached in time order.
        parent_of: dict[int, int] = {}
        for reply in (
            Comment.objects.filter(revision__stage=stage, parent__isnull=False)
            .select_related("author")
            .order_by("created_at", "pk")
        ):
            parent_id = reply.parent_id or 0
            root = parent_of.get(parent_id, parent_id)
            parent_of[reply.pk] = root
            if root in by_pk:
                by_pk[root].replies.append(reply)
    return list(by_pk.values())


def standing_decisions(stage: ProjectStage) -> list[Decision]:
    if stage.current_revision_id is None:
        return []
    return list(
        Decision.objects.filter(revision_id=stage.current_revision_id, replaced_at__isnull=True)
        .select_related("reviewer")
        .order_by("created_at", "pk")
    )


def _excerpt(text: str, limit: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stage_feedback(request: HttpRequest, stage: Any, *, next_url: str) -> StageFeedback | None:
    """For the team only: reviewers read the same on their review page."""
    user = request.user
    if stage.status == StageStatus.LOCKED or not lifecycle_permissions.is_project_member(
        user, stage.project
    ):
        return None
    decisions = [d for d in standing_decisions(stage) if d.comment.strip()]
    threads = open_threads(stage)
    if not decisions and not threads:
        return None
    # A course with anonymous reviewers shows the team labels, never names.
    names = names_for(user, stage.project, is_member=True)
    names.mask(decisions, "reviewer")
    names.mask_threads(threads)
    # The reader's own rating and open flag beside each review (quality loop, issue 15).
    attach_team_member_view(decisions, user)
    questions = list(stage.definition.questions.all())
    labels = {q.key: q.prompt for q in questions}
    numbers = {q.key: n for n, q in enumerate(questions, start=1)}
    by_key: dict[str, dict[str, list[Any]]] = {}

    def slot(key: str) -> dict[str, list[Any]]:
        key = key if key in labels else GENERAL
        return by_key.setdefault(key, {"decisions": [], "threads": []})

    for decision in decisions:
        slot(decision.question_key).setdefault("decisions", []).append(decision)
    for thread in threads:
        slot(thread.comment.question_key)["threads"].append(thread)
    can_act = stage.project.is_active
    common = {"stage": stage, "next_url": next_url, "can_act": can_act}
    by_question: dict[str, str] = {
        key: render_to_string(
            "reviews/partials/stage_feedback.html",
            {**common, **found, "key": key, "number": numbers[key]},
            request=request,
        )
        for key, found in by_key.items()
        if key != GENERAL
    }
    general = by_key.get(GENERAL, {"decisions": [], "threads": []})
    changes_requested = any(d.outcome == DecisionOutcome.REQUEST_CHANGES for d in decisions)
    summary = render_to_string(
        "reviews/partials/stage_feedback_summary.html",
        {
            **common,
            **general,
            "open_count": len(threads),
            "changes_requested": changes_requested,
            "reasons_count": len(decisions),
            "placed": [
                {"key": k, "number": numbers[k], "label": labels[k]}
                for k in sorted(by_question, key=lambda k: numbers[k])
            ],
        },
        request=request,
    )
    forms = (
        render_to_string(
            "reviews/partials/stage_feedback_forms.html",
            {**common, "threads": threads, "decisions": decisions},
            request=request,
        )
        if can_act
        else ""
    )
    return StageFeedback(
        summary=summary,
        by_question=by_question,
        forms=forms,
        open_threads=[
            OpenThread(
                id=t.comment.pk,
                label=labels.get(t.comment.question_key, "The stage as a whole"),
                excerpt=f"{t.comment.author.name}: {_excerpt(t.comment.body)}",
            )
            for t in threads
        ],
        changes_requested=changes_requested,
    )


def thread_ids(threads: Iterable[Thread]) -> set[int]:
    return {t.comment.pk for t in threads}


def post_thread_responses(
    *, stage: ProjectStage, revision: Any, actor: Any, resubmission: bool, **_: Any
) -> None:
    """The team's per-thread answers given on resubmission go into their threads too, so a
    reviewer reading a thread sees them where they asked. In the submission's transaction."""
    from .services import comment_add

    wanted = {int(k): v for k, v in (revision.thread_responses or {}).items() if str(k).isdigit()}
    if not wanted:
        return
    roots = Comment.objects.filter(
        pk__in=wanted, revision__stage=stage, parent__isnull=True, resolved_at__isnull=True
    ).select_related("revision__stage__definition")
    for root in roots.order_by("created_at", "pk"):
        comment_add(
            revision=root.revision,
            author=actor,
            body=f"(With revision {revision.number}) {wanted[root.pk]}",
            question_key=root.question_key,
            parent=root,
        )
