"""The project dossier: everything a team and its course staff need to print about one project —
the stakeholder register, every stage of every cycle with its approved answers, its revisions
and their diffs, every decision and comment thread, overrides, the outcome, and the audit chain
head at the time of printing.

It lives in the review layer because it needs decisions and comments; lifecycle never imports
it. A fixed number of queries, however many stages, revisions and decisions the project has.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, Sum, TextField
from django.db.models.functions import Cast, Length
from django.utils import timezone
from django.utils.safestring import SafeString

from lifecycle.audit import chain_head
from lifecycle.diffs import (
    MAX_WORD_DIFF_WORK,
    DiffBudget,
    QuestionDiff,
    StakeholderChange,
    answer_text,
    diff_answers,
    stakeholder_changes,
)
from lifecycle.markdown import render_markdown
from lifecycle.models import (
    AuditEvent,
    IndependentReview,
    Project,
    ProjectStage,
    Question,
    QuestionKind,
    StageRevision,
    StageStatus,
    Stakeholder,
)
from lifecycle.policy import independent_review_mode
from lifecycle.traceability import project_traceability

from .anonymity import names_for
from .models import Comment, Decision, DecisionOutcome

# Word diffs a whole dossier may compute (about a second at most); later changes show whole.
DOSSIER_DIFF_WORK = 10 * MAX_WORD_DIFF_WORK

STANDING = "standing"
STALE = "stale"  # on a revision the team has since replaced
REPLACED = "replaced"  # the reviewer changed their mind on the same revision


@dataclass(frozen=True)
class AnswerEntry:
    number: int
    question: Question
    html: SafeString | None  # Markdown answers, rendered and sanitised
    text: str  # every other kind, as plain text (escaped by the template)


@dataclass(frozen=True)
class DecisionEntry:
    decision: Decision
    meaning: str  # "approved revision 2", "requested changes on question 3: …"
    state: str  # STANDING, STALE or REPLACED


@dataclass
class ThreadEntry:
    comment: Comment
    about: str  # "question 3" or "the revision as a whole"
    replies: list[Comment] = field(default_factory=list)


@dataclass(frozen=True)
class RevisionEntry:
    revision: StageRevision
    compared_with: StageRevision | None  # the previous revision, or the one it was prefilled from
    diffs: list[QuestionDiff]  # changed questions only
    unchanged: int
    stakeholder_changes: list[StakeholderChange]
    first_answers: list[AnswerEntry]  # a first submission's answers, when nothing precedes it
    is_approved: bool
    decisions: list[DecisionEntry]
    threads: list[ThreadEntry]
    hidden_reviews: bool  # independent review: others' decisions are withheld from this viewer

    @property
    def old_label(self) -> str:
        if self.compared_with is None:
            return ""
        earlier = self.compared_with.stage_id != self.revision.stage_id
        return f"Revision {self.compared_with.number}{' (earlier cycle)' if earlier else ''}"

    @property
    def new_label(self) -> str:
        return f"Revision {self.revision.number}"


@dataclass(frozen=True)
class StageEntry:
    stage: ProjectStage
    approved_revision: StageRevision | None
    approved_answers: list[AnswerEntry]
    revisions: list[RevisionEntry]


@dataclass(frozen=True)
class CycleEntry:
    number: int
    stages: list[StageEntry]
    loop_back: AuditEvent | None  # the event that opened this cycle (none for cycle 1)


@dataclass(frozen=True)
class Dossier:
    project: Project
    members: list[Any]
    stakeholders: list[Stakeholder]
    cycles: list[CycleEntry]
    overrides: list[ProjectStage]
    chain_count: int
    chain_hash: str
    project_event_count: int
    printed_at: dt.datetime
    # Every file frozen into a revision, with its hash; the risk register and its trace.
    evidence: list[dict[str, Any]] = field(default_factory=list)
    traceability: Any = None


def _answers(questions: list[Question], answers: Mapping[str, Any]) -> list[AnswerEntry]:
    rows = []
    for number, question in enumerate(questions, start=1):
        value = answers.get(question.key)
        if question.kind == QuestionKind.LONG_TEXT:
            rows.append(AnswerEntry(number, question, render_markdown(str(value or "")), ""))
        else:
            rows.append(AnswerEntry(number, question, None, answer_text(question, value)))
    return rows


def decision_meaning(decision: Decision, question_numbers: Mapping[str, int]) -> str:
    """What a decision said, in one line an auditor can read aloud."""
    number = decision.revision.number
    if decision.outcome == DecisionOutcome.APPROVE:
        meaning = f"approved revision {number}"
    elif decision.question_key in question_numbers:
        meaning = f"requested changes on question {question_numbers[decision.question_key]}"
    else:
        meaning = f"requested changes on revision {number}"
    return f"{meaning}: {decision.comment}" if decision.comment else meaning


def _threads(comments: Iterable[Comment], question_numbers: Mapping[str, int]) -> list[ThreadEntry]:
    threads: list[ThreadEntry] = []
    by_pk: dict[int, ThreadEntry] = {}
    for comment in comments:
        if comment.parent_id is None:
            number = question_numbers.get(comment.question_key)
            about = f"question {number}" if number else "the revision as a whole"
            by_pk[comment.pk] = ThreadEntry(comment, about)
            threads.append(by_pk[comment.pk])
        elif comment.parent_id in by_pk:
            # A reply to a reply joins the thread of its root, in time order (as on the
            # review page).
            by_pk[comment.pk] = by_pk[comment.parent_id]
            by_pk[comment.pk].replies.append(comment)
    return threads


def _hides_other_reviews(stage: ProjectStage, viewer: Any, viewer_is_member: bool) -> bool:
    """Independent review, as on the review page: course staff who decide blind on this stage
    (the dossier's readers are the team and course staff) and have not decided on the current
    revision see neither the other reviewers' decisions nor their comments."""
    if viewer_is_member or not stage.current_revision_id:
        return False
    if independent_review_mode(stage.project.course, stage.definition) != (
        IndependentReview.EVERYONE
    ):
        return False
    current = next((r for r in stage.revisions.all() if r.pk == stage.current_revision_id), None)
    decided = current is not None and any(
        d.reviewer_id == viewer.pk and d.replaced_at is None for d in current.decisions.all()
    )
    return not decided


def _revision_entries(
    stage: ProjectStage,
    questions: list[Question],
    question_numbers: Mapping[str, int],
    revisions_by_pk: Mapping[int, StageRevision],
    hide_others_from: Any,
    budget: DiffBudget,
) -> list[RevisionEntry]:
    entries = []
    previous: StageRevision | None = (
        revisions_by_pk.get(stage.prefilled_from_id) if stage.prefilled_from_id else None
    )
    approved_pk = stage.current_revision_id if stage.status == StageStatus.APPROVED else None
    for revision in stage.revisions.all():
        diffs: list[QuestionDiff] = []
        first_answers: list[AnswerEntry] = []
        register: list[StakeholderChange] = []
        if previous is None:
            first_answers = (
                [] if revision.pk == approved_pk else _answers(questions, revision.answers)
            )
        else:
            diffs = diff_answers(questions, previous.answers, revision.answers, budget)
            if stage.definition.requires_stakeholders and (
                previous.stakeholders != revision.stakeholders
            ):
                register = stakeholder_changes(previous.stakeholders, revision.stakeholders)
        decisions = []
        for decision in revision.decisions.all():
            if hide_others_from is not None and decision.reviewer_id != hide_others_from.pk:
                continue
            if decision.replaced_at is not None:
                state = REPLACED
            elif revision.pk != stage.current_revision_id:
                state = STALE
            else:
                state = STANDING
            decisions.append(
                DecisionEntry(decision, decision_meaning(decision, question_numbers), state)
            )
        comments = [
            c
            for c in revision.comments.all()
            if hide_others_from is None or c.author_id == hide_others_from.pk
        ]
        changed = [d for d in diffs if d.changed]
        entries.append(
            RevisionEntry(
                revision=revision,
                compared_with=previous,
                diffs=changed,
                unchanged=len(diffs) - len(changed),
                stakeholder_changes=register,
                first_answers=first_answers,
                is_approved=revision.pk == approved_pk,
                decisions=decisions,
                threads=_threads(comments, question_numbers),
                hidden_reviews=hide_others_from is not None,
            )
        )
        previous = revision
    return entries


@dataclass(frozen=True)
class DossierSources:
    """The rows a dossier is built from: a fixed number of queries, whatever the history."""

    stages: list[ProjectStage]
    questions_by_definition: Mapping[int, list[Question]]
    loop_backs: list[AuditEvent]
    members: list[Any]
    stakeholders: list[Stakeholder]
    risks: list[Any] = field(default_factory=list)


def dossier_sources(project: Project) -> DossierSources:
    decisions = Decision.objects.select_related("reviewer").order_by("created_at", "pk")
    comments = Comment.objects.select_related("author", "resolved_by").order_by("created_at", "pk")
    revisions = (
        StageRevision.objects.select_related("created_by")
        .prefetch_related(
            Prefetch("decisions", queryset=decisions),
            Prefetch("comments", queryset=comments),
        )
        .order_by("number")
    )
    stages = list(
        ProjectStage.objects.filter(project=project)
        .select_related("definition")
        .prefetch_related(Prefetch("revisions", queryset=revisions))
        .order_by("cycle", "definition__order")
    )
    for stage in stages:
        stage.project = project  # the blind-review settings are the course's: no query per stage
    questions_by_definition: dict[int, list[Question]] = defaultdict(list)
    for question in Question.objects.filter(stage__template_id=project.template_id).order_by(
        "stage_id", "order"
    ):
        questions_by_definition[question.stage_id].append(question)
    loop_backs = list(
        AuditEvent.objects.filter(project=project, verb="project.loop_back")
        .select_related("actor")
        .order_by("seq")
    )
    return DossierSources(
        stages=stages,
        questions_by_definition=questions_by_definition,
        loop_backs=loop_backs,
        members=list(project.members.order_by("display_name", "email")),
        stakeholders=list(project.stakeholders.order_by("created_at", "pk")),
        risks=list(project.risks.prefetch_related("stakeholders").order_by("pk")),
    )


def _person(user: Any) -> list[Any] | None:
    # Only what a dossier prints of a person: a login (last_login) must not change the hash.
    return None if user is None else [user.pk, user.name, user.email]


def _row(obj: Any, **people: Any) -> list[Any]:
    fields = [[f.attname, getattr(obj, f.attname)] for f in obj._meta.concrete_fields]
    return [type(obj).__name__, fields, {k: _person(v) for k, v in people.items()}]


def dossier_content_hash(*, project: Project, viewer: Any, sources: DossierSources) -> str:
    """A fingerprint of everything the dossier shows this viewer: every field of every row it
    is built from, the people it names, and which stages hide other reviews from the viewer.
    It leaves out what only says when it was printed (the time, the global chain head): those
    are the render's own, so a PDF is not re-rendered whenever another course writes an event.
    Cheap (no diffs, no Markdown), so a web request can compute it."""
    viewer_is_member = any(m.pk == viewer.pk for m in sources.members)
    rows: list[Any] = [
        _row(project),
        _row(project.course),
        _row(project.template),
        _person(viewer),
        [_person(m) for m in sources.members],
        [_row(s) for s in sources.stakeholders],
        [[_row(r), sorted(s.pk for s in r.stakeholders.all())] for r in sources.risks],
        [_row(e, actor=e.actor) for e in sources.loop_backs],
        [_row(q) for qs in sources.questions_by_definition.values() for q in qs],
    ]
    names = names_for(viewer, project, is_member=viewer_is_member)
    rows.append(sorted(names.labels.items()) if names.labels is not None else None)
    for stage in sources.stages:
        rows.append(_row(stage))
        rows.append(_row(stage.definition))
        rows.append(_hides_other_reviews(stage, viewer, viewer_is_member))
        for revision in stage.revisions.all():
            rows.append(_row(revision, created_by=revision.created_by))
            rows.extend(_row(d, reviewer=d.reviewer) for d in revision.decisions.all())
            rows.extend(
                _row(c, author=c.author, resolved_by=c.resolved_by) for c in revision.comments.all()
            )
    encoded = json.dumps(rows, default=str, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()


def project_dossier(
    *, project: Project, viewer: Any, sources: DossierSources | None = None
) -> Dossier:
    """The dossier of a project the viewer may see (the caller has scoped it already)."""
    sources = sources or dossier_sources(project)
    stages = sources.stages
    questions_by_definition = sources.questions_by_definition
    revisions_by_pk = {r.pk: r for stage in stages for r in stage.revisions.all()}
    loop_backs = {(event.new or {}).get("cycle"): event for event in sources.loop_backs}
    members = sources.members
    viewer_is_member = any(m.pk == viewer.pk for m in members)
    # Anonymous reviewers: the team's dossier (page and PDF) names no reviewer.
    names = names_for(viewer, project, is_member=viewer_is_member)
    if names.anonymous:
        for stage in stages:
            for revision in stage.revisions.all():
                names.mask(revision.decisions.all(), "reviewer")
                names.mask(revision.comments.all(), "author", "resolved_by")

    budget = DiffBudget(DOSSIER_DIFF_WORK)
    by_cycle: dict[int, list[StageEntry]] = defaultdict(list)
    for stage in stages:
        questions = questions_by_definition.get(stage.definition_id, [])
        numbers = {q.key: n for n, q in enumerate(questions, start=1)}
        hidden = _hides_other_reviews(stage, viewer, viewer_is_member)
        approved = (
            revisions_by_pk.get(stage.current_revision_id)
            if stage.status == StageStatus.APPROVED and stage.current_revision_id
            else None
        )
        by_cycle[stage.cycle].append(
            StageEntry(
                stage=stage,
                approved_revision=approved,
                approved_answers=_answers(questions, approved.answers) if approved else [],
                revisions=_revision_entries(
                    stage,
                    questions,
                    numbers,
                    revisions_by_pk,
                    viewer if hidden else None,
                    budget,
                ),
            )
        )
    count, head = chain_head()
    evidence = [
        {
            "stage": stage.definition.title,
            "cycle": stage.cycle,
            "revision": revision.number,
            **f,
        }
        for stage in stages
        for revision in stage.revisions.all()
        for f in revision.evidence
    ]
    return Dossier(
        project=project,
        members=members,
        stakeholders=sources.stakeholders,
        cycles=[
            CycleEntry(number, entries, loop_backs.get(number))
            for number, entries in sorted(by_cycle.items())
        ],
        overrides=[s for s in stages if s.approved_by_override],
        chain_count=count,
        chain_hash=head,
        project_event_count=AuditEvent.objects.filter(project=project).count(),
        printed_at=timezone.now(),
        evidence=evidence,
        traceability=project_traceability(project),
    )


# Above this much answer and comment text the dossier is not laid out inside a web request
# (the page offers the PDF, which a worker renders under a time limit). Some fifty
# full-length long answers; the demo's fullest project has a fraction of it.
DOSSIER_PAGE_MAX_CHARS = 2_500_000


def dossier_text_size(project: Project) -> int:
    """Characters of answers and comments the dossier would lay out: two aggregate queries."""
    answers = StageRevision.objects.filter(stage__project=project).aggregate(
        n=Sum(Length(Cast("answers", TextField())))
    )["n"]
    comments = Comment.objects.filter(revision__stage__project=project).aggregate(
        n=Sum(Length("body"))
    )["n"]
    return int(answers or 0) + int(comments or 0)
