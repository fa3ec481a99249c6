"""The pure gate with rules: unit examples of every rule kind and dismissal, and Hypothesis
property tests over random policies, owners, tiers and votes against a slow reference written
here from the issue's words (not from the implementation)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviews.gate import (
    APPROVE,
    EXPERT,
    REQUEST_CHANGES,
    RULE_KINDS,
    STAFF,
    GatePolicy,
    RevisionDelta,
    Vote,
    evaluate_gate,
    rule_errors,
)

CURRENT = 10
EARLIER = 9


def vote(rid, role=STAFF, outcome=APPROVE, revision=CURRENT, expertise=(), assigned=True):
    return Vote(
        reviewer_id=rid,
        reviewer_name=f"r{rid}",
        role=role,
        outcome=outcome,
        revision_id=revision,
        assigned=assigned,
        expertise=frozenset(expertise),
    )


# --- examples --------------------------------------------------------------------------------


def test_two_expert_approvals_are_needed_only_when_the_risk_tier_is_high():
    rule = {
        "kind": "min_approvals",
        "role": EXPERT,
        "count": 2,
        "applies_if": {"risk_tier": ["high"]},
    }
    policy = GatePolicy(2, 1, 1, rules=(rule,))
    votes = [vote(1), vote(2, EXPERT)]
    low = evaluate_gate(policy, votes, current_revision_id=CURRENT, attributes={"risk_tier": "low"})
    high = evaluate_gate(
        policy, votes, current_revision_id=CURRENT, attributes={"risk_tier": "high"}
    )
    assert low.satisfied
    assert not high.satisfied
    assert high.missing == ["needs 1 more domain-expert approval (as risk tier is high)"]
    three = evaluate_gate(
        policy,
        [*votes, vote(3, EXPERT)],
        current_revision_id=CURRENT,
        attributes={"risk_tier": "high"},
    )
    assert three.satisfied


def test_an_unset_attribute_matches_no_condition():
    rule = {
        "kind": "min_approvals",
        "role": STAFF,
        "count": 3,
        "applies_if": {"domain": ["health"]},
    }
    policy = GatePolicy(1, 1, 0, rules=(rule,))
    assert evaluate_gate(policy, [vote(1)], current_revision_id=CURRENT).satisfied


def test_a_question_owned_by_ethics_needs_an_ethics_experts_approval():
    policy = GatePolicy(1, 1, 0, owners=(("consent", "ethics"),))
    staff_only = evaluate_gate(
        policy, [vote(1)], current_revision_id=CURRENT, question_labels={"consent": "question 2"}
    )
    assert not staff_only.satisfied
    assert staff_only.missing == ["needs 1 more “ethics” approval for question 2"]
    with_ethics = evaluate_gate(
        policy, [vote(1), vote(2, EXPERT, expertise={"ethics"})], current_revision_id=CURRENT
    )
    assert with_ethics.satisfied
    other_expert = evaluate_gate(
        policy, [vote(1), vote(2, EXPERT, expertise={"clinical"})], current_revision_id=CURRENT
    )
    assert not other_expert.satisfied


def test_a_new_revision_dismisses_every_approval_by_default():
    policy = GatePolicy(1, 1, 0)
    earlier = {EARLIER: RevisionDelta(changed_questions=frozenset({"x"}))}
    result = evaluate_gate(
        policy, [vote(1, revision=EARLIER)], current_revision_id=CURRENT, earlier=earlier
    )
    assert not result.satisfied


def test_under_owners_dismissal_only_owners_of_changed_questions_lose_their_approval():
    policy = GatePolicy(
        2, 1, 1, dismissal="owners", owners=(("consent", "ethics"), ("metric", "stats"))
    )
    staff = vote(1, revision=EARLIER)
    ethics = vote(2, EXPERT, revision=EARLIER, expertise={"ethics"})
    consent_changed = {EARLIER: RevisionDelta(changed_questions=frozenset({"consent"}))}
    result = evaluate_gate(
        policy, [staff, ethics], current_revision_id=CURRENT, earlier=consent_changed
    )
    assert result.approvers == ["r1"]
    assert not result.satisfied
    # The stats owner must still approve, but only "metric" is theirs.
    stats = vote(3, EXPERT, revision=EARLIER, expertise={"stats"})
    result = evaluate_gate(
        policy, [staff, ethics, stats], current_revision_id=CURRENT, earlier=consent_changed
    )
    assert result.approvers == ["r1", "r3"]
    assert not result.satisfied  # the ethics owner's question changed: they must approve again


def test_under_editorial_dismissal_an_approval_carries_only_when_its_reviewer_accepts():
    policy = GatePolicy(1, 1, 0, dismissal="editorial")
    earlier_vote = vote(1, revision=EARLIER)
    not_accepted = {EARLIER: RevisionDelta(frozenset({"x"}), editorial=True)}
    accepted = {
        EARLIER: RevisionDelta(frozenset({"x"}), editorial=True, accepted_by=frozenset({1}))
    }
    not_editorial = {
        EARLIER: RevisionDelta(frozenset({"x"}), editorial=False, accepted_by=frozenset({1}))
    }
    assert not evaluate_gate(
        policy, [earlier_vote], current_revision_id=CURRENT, earlier=not_accepted
    ).satisfied
    assert evaluate_gate(
        policy, [earlier_vote], current_revision_id=CURRENT, earlier=accepted
    ).satisfied
    assert not evaluate_gate(
        policy, [earlier_vote], current_revision_id=CURRENT, earlier=not_editorial
    ).satisfied


def test_a_request_for_changes_on_the_current_revision_beats_a_carried_approval():
    policy = GatePolicy(1, 1, 0, dismissal="owners")
    delta = {EARLIER: RevisionDelta(frozenset())}
    votes = [vote(1, revision=EARLIER), vote(1, outcome=REQUEST_CHANGES)]
    result = evaluate_gate(policy, votes, current_revision_id=CURRENT, earlier=delta)
    assert not result.satisfied
    assert result.blocking == ["r1 requested changes"]


def test_a_rule_of_unknown_kind_never_passes_silently():
    policy = GatePolicy(1, 1, 0, rules=({"kind": "nonsense"},))
    assert not evaluate_gate(policy, [vote(1)], current_revision_id=CURRENT).satisfied


def test_rule_errors_name_the_field():
    assert rule_errors({"kind": "min_approvals", "role": "dean", "count": 0}) == [
        ("count", "must be a whole number from 1 to 20"),
        ("role", "must be staff, expert or any"),
    ]
    assert rule_errors({"kind": "question_owner"})[0][0] == "question"
    assert rule_errors({"kind": "what"})[0][0] == "kind"
    assert ("applies_if", "must map attribute names to non-empty lists of values") in rule_errors(
        {"kind": "min_approvals", "applies_if": {"risk_tier": "high"}}
    )


def test_every_registered_kind_has_a_valid_example():
    assert {"min_approvals", "question_owner"} <= set(RULE_KINDS)
    for kind in RULE_KINDS.values():
        assert rule_errors(kind.example) == [], kind.name


# --- the slow reference ----------------------------------------------------------------------


def reference_gate(policy, votes, current, members, attributes, earlier):
    """Satisfied iff: a current revision exists; no assigned non-member asked for changes on
    it; and the set of counting approvers — non-members who approved it, plus non-members whose
    approval of an earlier revision the dismissal lets carry, minus anyone asking for changes —
    meets every minimum and every applicable rule."""
    if current is None:
        return False, 0
    blockers = set()
    for v in votes:
        on_current = v.revision_id == current and v.reviewer_id not in members
        if on_current and v.outcome == REQUEST_CHANGES and v.assigned:
            blockers.add(v.reviewer_id)
    counting = {}
    for v in votes:
        if v.reviewer_id in members or v.reviewer_id in blockers or v.outcome != APPROVE:
            continue
        if v.revision_id == current:
            counting[v.reviewer_id] = v
    for v in votes:
        if v.reviewer_id in members or v.reviewer_id in blockers or v.outcome != APPROVE:
            continue
        if v.revision_id == current or v.reviewer_id in counting:
            continue
        delta = earlier.get(v.revision_id)
        if delta is None:
            continue
        owners = dict(policy.owners)
        if policy.dismissal == "owners":
            lost = any(owners.get(q) in v.expertise for q in delta.changed_questions)
            if not lost:
                counting[v.reviewer_id] = v
        elif (
            policy.dismissal == "editorial"
            and delta.editorial
            and v.reviewer_id in delta.accepted_by
        ):
            counting[v.reviewer_id] = v
    approvers = list(counting.values())
    ok = not blockers
    ok = ok and len(approvers) >= policy.min_approvals
    ok = ok and len([a for a in approvers if a.role == STAFF]) >= policy.min_staff
    ok = ok and len([a for a in approvers if a.role == EXPERT]) >= policy.min_expert
    rules = [
        {"kind": "question_owner", "question": q, "expertise": tag} for q, tag in policy.owners
    ] + list(policy.rules)
    for rule in rules:
        condition = rule.get("applies_if") or {}
        if not all(attributes.get(k, "") in vals for k, vals in condition.items()):
            continue
        need = rule.get("count", 1)
        if rule["kind"] == "min_approvals":
            role = rule.get("role", "any")
            have = len([a for a in approvers if role == "any" or a.role == role])
        else:
            have = len([a for a in approvers if rule["expertise"] in a.expertise])
        ok = ok and have >= need
    return ok, len(approvers)


TAGS = ["ethics", "clinical", "stats"]
QUESTIONS = ["q1", "q2", "q3"]
TIERS = ["", "low", "medium", "high"]

conditions = st.one_of(
    st.just({}),
    st.builds(
        lambda tiers: {"risk_tier": tiers},
        st.lists(st.sampled_from(["low", "medium", "high"]), min_size=1, max_size=3, unique=True),
    ),
    st.builds(
        lambda d: {"domain": d},
        st.lists(st.sampled_from(["health", "edu"]), min_size=1, max_size=2, unique=True),
    ),
)
min_rules = st.builds(
    lambda role, count, cond: {
        "kind": "min_approvals",
        "role": role,
        "count": count,
        **({"applies_if": cond} if cond else {}),
    },
    st.sampled_from(["staff", "expert", "any"]),
    st.integers(1, 4),
    conditions,
)
owner_rules = st.builds(
    lambda q, tag, count, cond: {
        "kind": "question_owner",
        "question": q,
        "expertise": tag,
        "count": count,
        **({"applies_if": cond} if cond else {}),
    },
    st.sampled_from(QUESTIONS),
    st.sampled_from(TAGS),
    st.integers(1, 2),
    conditions,
)


@st.composite
def scenarios(draw):
    min_staff = draw(st.integers(0, 2))
    min_expert = draw(st.integers(0, 2))
    min_total = draw(st.integers(max(1, min_staff + min_expert), 4))
    owners = tuple(
        draw(st.dictionaries(st.sampled_from(QUESTIONS), st.sampled_from(TAGS), max_size=2)).items()
    )
    policy = GatePolicy(
        min_total,
        min_staff,
        min_expert,
        rules=tuple(draw(st.lists(st.one_of(min_rules, owner_rules), max_size=3))),
        dismissal=draw(st.sampled_from(["all", "owners", "editorial"])),
        owners=owners,
    )
    reviewers = draw(st.integers(1, 6))
    people = {
        rid: (
            draw(st.sampled_from([STAFF, EXPERT])),
            frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=2))),
        )
        for rid in range(1, reviewers + 1)
    }
    votes = []
    for _ in range(draw(st.integers(0, 10))):
        rid = draw(st.integers(1, reviewers))
        role, tags = people[rid]
        votes.append(
            vote(
                rid,
                role,
                draw(st.sampled_from([APPROVE, APPROVE, REQUEST_CHANGES])),
                draw(st.sampled_from([CURRENT, EARLIER, 8])),
                tags,
                draw(st.booleans()),
            )
        )
    earlier = {}
    for revision in (EARLIER, 8):
        if draw(st.booleans()):
            earlier[revision] = RevisionDelta(
                changed_questions=frozenset(draw(st.sets(st.sampled_from(QUESTIONS)))),
                editorial=draw(st.booleans()),
                accepted_by=frozenset(draw(st.sets(st.integers(1, reviewers)))),
            )
    members = frozenset(draw(st.sets(st.integers(1, reviewers), max_size=1)))
    attributes = {
        "risk_tier": draw(st.sampled_from(TIERS)),
        "domain": draw(st.sampled_from(["", "health", "edu"])),
    }
    current = draw(st.sampled_from([CURRENT, CURRENT, None]))
    return policy, votes, current, members, attributes, earlier


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_gate_agrees_with_the_slow_reference(scenario):
    policy, votes, current, members, attributes, earlier = scenario
    result = evaluate_gate(
        policy,
        votes,
        current_revision_id=current,
        member_ids=members,
        attributes=attributes,
        earlier=earlier,
    )
    satisfied, count = reference_gate(policy, votes, current, members, attributes, earlier)
    assert result.satisfied == satisfied
    if current is not None:
        assert result.approvals == count


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_an_unsatisfied_gate_always_says_why(scenario):
    policy, votes, current, members, attributes, earlier = scenario
    result = evaluate_gate(
        policy,
        votes,
        current_revision_id=current,
        member_ids=members,
        attributes=attributes,
        earlier=earlier,
    )
    if current is not None and not result.satisfied:
        assert result.missing or result.blocking


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.sampled_from([STAFF, EXPERT]), st.sets(st.sampled_from(TAGS)))
def test_one_more_approval_never_unsatisfies_a_gate(scenario, role, tags):
    policy, votes, current, members, attributes, earlier = scenario
    before = evaluate_gate(
        policy,
        votes,
        current_revision_id=current,
        member_ids=members,
        attributes=attributes,
        earlier=earlier,
    )
    newcomer = vote(99, role, APPROVE, CURRENT, tags)
    after = evaluate_gate(
        policy,
        [*votes, newcomer],
        current_revision_id=current,
        member_ids=members,
        attributes=attributes,
        earlier=earlier,
    )
    assert not (before.satisfied and not after.satisfied)
