"""Fragments of pages cached by what they show (issue 9: "fragment caching keyed by the stage's
version"), so that looking at a project again costs a few cache reads instead of a dozen queries
and a template.

Every project and every course has a *version token* in Django's cache: a random string that a
write replaces after its transaction commits (one cache write per transaction). A fragment's
key holds the tokens of the projects and courses it shows, so a fragment is used only while
nothing it shows has changed:

- any audit event (every action of a service is one, ``lifecycle.audit.audit_record``) replaces
  the tokens of its project and its course;
- so does any row saved or deleted of the domain's models (``post_save``/``post_delete`` on the
  lifecycle, reviews, evidence and grading apps, mapped to their project or course below), and a
  change of a team (``m2m_changed``); the templates' models replace a token every fragment has;
- a fragment lives at most ``settings.FRAGMENT_CACHE_SECONDS`` (120) in any case, and its key
  has today's date, the person's id and their CSRF secret (fragments hold forms), the full path
  with its query, so what depends on time or on who looks stays theirs.

A reader takes the tokens *before* it reads the rows it renders (``render`` reads them again
if the view read them before), and a writer replaces them *after* its commit, so a fragment can
be newer than its tokens, never older. A token that the
cache evicted is made anew, which only misses. Tests clear the cache between tests.

Where a change does not go through a save, a delete or an audit event (a queryset ``update()``
that no event records), call :func:`touch` on commit yourself.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

# How long a token lives unless replaced: an evicted or expired token is made anew, which only
# costs a miss. (settings.FRAGMENT_CACHE_SECONDS: how long a fragment lives at most; 0 turns
# the caching off.)
TOKEN_SECONDS = 7 * 24 * 3600
TEMPLATES_KEY = "lrbv:templates"


def _project_key(pk: int) -> str:
    return f"lrbv:p:{pk}"


def _course_key(pk: int) -> str:
    return f"lrbv:c:{pk}"


def _owner_keys(project_ids: Iterable[int], course_ids: Iterable[int]) -> list[str]:
    keys = [_project_key(pk) for pk in sorted(set(project_ids)) if pk is not None]
    return keys + [_course_key(pk) for pk in sorted(set(course_ids)) if pk is not None]


def _keys(project_ids: Iterable[int], course_ids: Iterable[int]) -> list[str]:
    """Every token a fragment of these projects and courses depends on: theirs and the
    templates'."""
    return [*_owner_keys(project_ids, course_ids), TEMPLATES_KEY]


def tokens(*, project_ids: Iterable[int] = (), course_ids: Iterable[int] = ()) -> str:
    """The current tokens of these projects and courses (and of the templates), as one string.
    One cache round trip when they exist; a missing one is made (and, if another process made
    one meanwhile, theirs is used).

    Inside a transaction that changed any of them, the string also names that transaction and
    how many touches it made so far: what it reads of its own uncommitted rows is cached under
    tokens no other reader has, and a further touch of one of them moves it on."""
    keys = _keys(project_ids, course_ids)
    found = cache.get_many(keys)
    missing = {key: uuid.uuid4().hex for key in keys if key not in found}
    if missing:
        for key, token in missing.items():
            if not cache.add(key, token, TOKEN_SECONDS):
                token = cache.get(key) or token
            found[key] = token
    versions = ".".join(found[key] for key in keys)
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        replacement = _replacement(connection)
        if replacement is not None and not replacement.keys.isdisjoint(keys):
            counts = ".".join(str(replacement.touches.get(key, 0)) for key in keys)
            versions += f"+{replacement.own}.{counts}"
    return versions


class _Replacement:
    """The tokens a transaction changed, replaced in one cache write once it commits (one per
    transaction: :func:`touch` adds its keys to the transaction's own, if it has one)."""

    refreshes_fragments = True

    def __init__(self) -> None:
        self.keys: set[str] = set()
        # What the transaction's own reads add to the tokens it changed (see tokens()).
        self.own = uuid.uuid4().hex
        self.touches: dict[str, int] = {}
        # What Django's robust on_commit names in its log line if the cache fails.
        self.__qualname__ = "lifecycle.freshness.touch"

    def __call__(self) -> None:
        cache.set_many({key: uuid.uuid4().hex for key in sorted(self.keys)}, TOKEN_SECONDS)


def _replacement(connection: Any) -> _Replacement | None:
    """The open transaction's replacement, if it touched anything. It lives in Django's list of
    on-commit callbacks, so a rolled-back savepoint that registered it takes it away."""
    for _savepoints, func, _robust in connection.run_on_commit:
        if isinstance(func, _Replacement):
            return func
    return None


def touch(
    *, project_ids: Iterable[int] = (), course_ids: Iterable[int] = (), templates: bool = False
) -> None:
    """Replace these tokens once the current transaction commits (at once outside one).

    All the touches of one transaction make one cache write, after the commit: a reader before
    it may render the rows as they were under the old tokens, and the write replaces them. The
    transaction's own reads (a test's requests run inside the transaction that wrote) get
    tokens of their own from :func:`tokens`, new after each touch."""
    keys = _owner_keys(project_ids, course_ids)
    if templates:
        keys.append(TEMPLATES_KEY)
    if not keys:
        return
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        cache.set_many({key: uuid.uuid4().hex for key in keys}, TOKEN_SECONDS)
        return
    replacement = _replacement(connection)
    if replacement is None:
        replacement = _Replacement()
        # robust: the rows are committed; a cache that fails now costs at most a stale
        # fragment for FRAGMENT_CACHE_SECONDS, not an error page for a write that succeeded.
        transaction.on_commit(replacement, robust=True)
    replacement.keys.update(keys)
    for key in keys:
        replacement.touches[key] = replacement.touches.get(key, 0) + 1


def other_callbacks(callbacks: Iterable[Callable[..., Any]]) -> list[Callable[..., Any]]:
    """The on-commit callbacks that are not touch()'s (for tests that count what a service
    defers to its commit)."""
    return [c for c in callbacks if not getattr(c, "refreshes_fragments", False)]


def cached_fragment(
    request: HttpRequest,
    name: str,
    render: Callable[[], str],
    *,
    project_ids: Iterable[int] = (),
    course_ids: Iterable[int] = (),
    parts: Iterable[Any] = (),
) -> SafeString:
    """``render()``'s HTML, from the cache while none of the tokens changed. Only a GET with a
    CSRF secret already set is cached: a fragment made for a first visit would hold a token for
    a cookie this response then no longer sets."""
    seconds = settings.FRAGMENT_CACHE_SECONDS
    secret = request.META.get("CSRF_COOKIE")
    user_id = getattr(getattr(request, "user", None), "pk", None)
    if request.method != "GET" or not secret or user_id is None or seconds <= 0:
        return mark_safe(render())  # our templates' output, escaped when rendered
    versions = tokens(project_ids=project_ids, course_ids=course_ids)
    shape = "|".join(
        [
            name,
            str(user_id),
            secret,
            request.get_full_path(),
            timezone.localdate().isoformat(),
            versions,
            *(str(part) for part in parts),
        ]
    )
    key = "lrbf:" + hashlib.sha256(shape.encode()).hexdigest()
    html = cache.get(key)
    if html is None:
        html = render()
        cache.set(key, html, seconds)
    return mark_safe(html)  # our templates' output, escaped when rendered


# --- What a saved or deleted row changes ---------------------------------------------------------

# The apps whose rows pages show; notifications, accounts and the LTI outbox are not in fragments.
WATCHED_APPS = frozenset({"lifecycle", "reviews", "evidence", "grading"})
TEMPLATE_MODELS = frozenset(
    {
        "lifecycle.lifecycletemplate",
        "lifecycle.stagedefinition",
        "lifecycle.question",
        "lifecycle.templatedraft",
    }
)
# Followed, in this order, from a row with neither project_id nor course_id to one that has them
# (a comment's revision's stage, a rating's decision's revision's stage, ...).
PARENT_FIELDS = ("stage", "revision", "proposal", "decision", "assignment", "context")


def owners(instance: Any, depth: int = 0) -> tuple[int | None, int | None]:
    """(project id, course id) of a row of the domain, following its parents where needed."""
    label = instance._meta.label_lower
    if label == "lifecycle.project":
        return instance.pk, instance.course_id
    if label == "lifecycle.course":
        return None, instance.pk
    project_id = getattr(instance, "project_id", None)
    course_id = getattr(instance, "course_id", None)
    if project_id is not None or course_id is not None or depth >= 3:
        return project_id, course_id
    for name in PARENT_FIELDS:
        try:
            field = instance._meta.get_field(name)
        except FieldDoesNotExist:  # not a field of this model
            continue
        if not field.many_to_one or getattr(instance, field.attname, None) is None:
            continue
        try:
            parent = getattr(instance, name)
        except ObjectDoesNotExist:  # deleted with it (a cascade): nothing left to show
            return None, None
        return owners(parent, depth + 1)
    return None, None


def row_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    meta = sender._meta
    if meta.app_label not in WATCHED_APPS or kwargs.get("raw"):
        return
    if meta.label_lower in TEMPLATE_MODELS:
        touch(templates=True)
        return
    project_id, course_id = owners(instance)
    if project_id is not None or course_id is not None:
        touch(
            project_ids=[project_id] if project_id is not None else [],
            course_ids=[course_id] if course_id is not None else [],
        )


def team_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any
) -> None:
    if not action.startswith("post_"):
        return
    if reverse:  # user.projects.add(...): the projects are pk_set
        touch(project_ids=list(pk_set or ()))
    else:
        touch(project_ids=[instance.pk], course_ids=[instance.course_id])


def connect() -> None:
    """Called once, from the lifecycle app's ready()."""
    from django.db.models.signals import m2m_changed, post_delete, post_save

    from .models import Project

    post_save.connect(row_changed, dispatch_uid="lifecycle.freshness.saved")
    post_delete.connect(row_changed, dispatch_uid="lifecycle.freshness.deleted")
    m2m_changed.connect(
        team_changed, sender=Project.members.through, dispatch_uid="lifecycle.freshness.team"
    )
