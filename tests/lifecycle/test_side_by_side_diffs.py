"""Readable differences (issue 11, item 6): each changed question side by side, the earlier
answer on the left with its removed words marked and the new one on the right with its added
words marked; choices and the stakeholder register as before → after, kinds by their labels.
Read as a person would on the revisions page, the review page and the dossier (page and the
HTML the PDF is printed from)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from factories import current_stage, declare_no_conflict, fill_and_submit

from lifecycle import diffs, services
from lifecycle.models import Question, QuestionKind, Stakeholder
from reviews import services as review_services

pytestmark = pytest.mark.django_db

STATEMENT = "problem-statement"
METRIC = "success-metric"
CONSULTED = "stakeholders-consulted"
ENCODE = "encode-relevant-features"


def question(kind: str, key: str = "q") -> Question:
    return Question(key=key, prompt=f"The {key}?", kind=kind)


# --- the module ----------------------------------------------------------------------------


def test_a_rewritten_answer_keeps_removed_words_left_and_added_words_right():
    d = diffs.diff_question(
        question(QuestionKind.LONG_TEXT),
        "The nurses sort every referral by hand",
        "The clinic staff sort urgent referrals by hand",
    )
    assert d.changed and d.values is None and not d.text.too_large
    left = [(c.op, c.text) for c in d.text.old]
    right = [(c.op, c.text) for c in d.text.new]
    # Nothing added on the left, nothing removed on the right: no interleaving.
    assert {op for op, _ in left} == {"same", "del"}
    assert {op for op, _ in right} == {"same", "ins"}
    assert "".join(t for _, t in left) == "The nurses sort every referral by hand"
    assert "".join(t for _, t in right) == "The clinic staff sort urgent referrals by hand"
    # Neighbouring changed words read as one marked run, blanks included.
    assert ("ins", "clinic staff") in right and ("del", "nurses") in left
    assert ("del", "every referral") in left and ("ins", "urgent referrals") in right


def test_choices_read_before_and_after_with_dropped_and_added_items_marked():
    d = diffs.diff_question(
        question(QuestionKind.MULTIPLE_CHOICE),
        ["Direct users", "Operators"],
        ["Direct users", "Regulators"],
    )
    assert d.text is None
    assert [(i.text, i.op) for i in d.values.before] == [
        ("Direct users", "same"),
        ("Operators", "del"),
    ]
    assert [(i.text, i.op) for i in d.values.after] == [
        ("Direct users", "same"),
        ("Regulators", "ins"),
    ]


def test_a_yes_no_answer_shows_its_choice_before_after_and_its_justification_side_by_side():
    d = diffs.diff_question(
        question(QuestionKind.YES_NO_UNSURE),
        {"choice": "unsure", "justification": "We lack data."},
        {"choice": "yes", "justification": "We lack no data."},
    )
    assert [i.text for i in d.values.before] == ["Unsure"]
    assert [i.text for i in d.values.after] == ["Yes"]
    assert ("ins", "no ") in [(c.op, c.text) for c in d.text.new]
    only_why = diffs.diff_question(
        question(QuestionKind.YES_NO_UNSURE),
        {"choice": "yes", "justification": "One."},
        {"choice": "yes", "justification": "Two."},
    )
    assert only_why.values is None and only_why.text is not None


def test_numbers_dates_and_links_read_before_and_after():
    for kind, old, new in [
        (QuestionKind.NUMBER, 41, 42),
        (QuestionKind.DATE, "2026-11-01", "2026-12-01"),
        (QuestionKind.URL, "https://a.example", "https://b.example"),
    ]:
        d = diffs.diff_question(question(kind), old, new)
        assert d.text is None
        assert [(i.text, i.op) for i in d.values.before] == [(str(old), "del")]
        assert [(i.text, i.op) for i in d.values.after] == [(str(new), "ins")]


def test_an_unchanged_answer_has_no_difference_to_lay_out():
    d = diffs.diff_question(question(QuestionKind.SHORT_TEXT), "same", "same")
    assert not d.changed and d.text is None and d.values is None


def test_answers_above_the_size_guard_are_shown_whole_on_both_sides():
    old = " ".join(f"first{n}" for n in range(1200))
    new = " ".join(f"second{n}" for n in range(1200))
    d = diffs.diff_question(question(QuestionKind.LONG_TEXT), old, new)
    assert d.text.too_large
    assert d.text.note.startswith("Too large to diff word by word")
    assert [(c.op, c.text) for c in d.text.old] == [("same", old)]
    assert [(c.op, c.text) for c in d.text.new] == [("same", new)]
    small = diffs.diff_question(question(QuestionKind.LONG_TEXT), "a b c", "a x c")
    assert not small.text.too_large


def test_the_stakeholder_register_changes_entry_by_entry_with_kind_labels():
    teachers = {"id": 1, "name": "Teachers", "kind": "direct_user", "interests": "Time"}
    parents = {"id": 2, "name": "Parents", "kind": "affected_community"}
    changes = diffs.stakeholder_changes(
        [teachers, parents],
        [
            {**teachers, "kind": "decision_maker", "consulted": True, "consultation": "Survey"},
            {"id": 3, "name": "Ministry", "kind": "regulator"},
        ],
    )
    by_op = {c.op: c for c in changes}
    assert set(by_op) == {"changed", "ins", "del"}
    assert [(f.label, f.before, f.after) for f in by_op["changed"].fields] == [
        ("Kind", "Direct user", "Decision maker"),
        ("Consulted", "No", "Yes: Survey"),
    ]
    assert (by_op["ins"].name, by_op["ins"].kind_label) == ("Ministry", "Regulator")
    assert (by_op["del"].name, by_op["del"].kind_label) == ("Parents", "Affected community")
    assert diffs.stakeholder_changes([teachers], [teachers]) == []
    assert "[Direct user]" in diffs.stakeholders_text([teachers])


# --- the pages -----------------------------------------------------------------------------


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def side(html: str, question_key: str, which: str) -> str:
    """The text of one side ("old" or "new") of one question's difference, tags kept."""
    start = html.index(f'changed" data-question="{question_key}"')
    block = html[start:]
    block = block[: block.index("</section>")]
    match = re.search(rf'class="diff-side diff-{which}">(.*?)</div></div>', block, re.S)
    assert match, f"no {which} side for {question_key}"
    return match.group(1)


@pytest.fixture
def revised(personas) -> Any:
    """Stage 1 submitted twice: the statement rewritten, the metric changed, one consulted
    kind swapped, a yes/no flipped, and the register's teachers turned into decision makers
    with a new regulator beside them. Tina asked for changes on revision 1."""
    p = personas
    stage = current_stage(p.project)
    first = fill_and_submit(
        stage,
        p.alice,
        **{
            STATEMENT: "The nurses sort every referral by hand",
            METRIC: "time to triage",
            CONSULTED: ["Direct users", "Operators"],
        },
    )
    review_services.decision_record(
        revision=first, reviewer=p.tina, outcome="request_changes", comment="Be precise."
    )
    teachers = Stakeholder.objects.get(project=p.project)
    services.stakeholder_update(stakeholder=teachers, actor=p.alice, kind="decision_maker")
    services.stakeholder_add(project=p.project, actor=p.alice, name="Ministry", kind="regulator")
    fill_and_submit(
        stage,
        p.alice,
        **{
            STATEMENT: "The clinic staff sort urgent referrals by hand",
            METRIC: "Median time to triage",
            CONSULTED: ["Direct users", "Regulators"],
            ENCODE: {"choice": "yes", "justification": "Because we asked."},
        },
    )
    return p, stage


def assert_side_by_side(html: str) -> None:
    old, new = side(html, STATEMENT, "old"), side(html, STATEMENT, "new")
    assert "<del>nurses</del>" in old and "<del>every referral</del>" in old
    assert "<ins" not in old
    assert "<ins>clinic staff</ins>" in new and "<ins>urgent referrals</ins>" in new
    assert "<del" not in new
    # A short text: its words marked on each side too.
    assert "<ins>Median </ins>" in side(html, METRIC, "new")
    # Choices before → after, the dropped one struck, the new one added.
    block = html[html.index(f'changed" data-question="{CONSULTED}"') :]
    block = block[: block.index("</section>")]
    assert '<span class="diff-before">' in block and '<span class="diff-after">' in block
    assert "<del>Operators</del>" in block and "<ins>Regulators</ins>" in block
    assert "→" in block
    encode = html[html.index(f'changed" data-question="{ENCODE}"') :]
    encode = encode[: encode.index("</section>")]
    assert "<del>Unsure</del>" in encode and "<ins>Yes</ins>" in encode
    # The register: kind labels, never raw keys.
    register = html[html.index('data-question="__stakeholders__"') :]
    register = register[: register.index("</section>")]
    assert "Kind: <del>Direct user</del>" in register and "<ins>Decision maker</ins>" in register
    assert "Ministry" in register and "Regulator" in register and 'data-change="ins"' in register
    assert "direct_user" not in register and "decision_maker" not in register


def test_the_revisions_page_lays_each_change_side_by_side(revised):
    p, stage = revised
    url = reverse(
        "lifecycle:stage_revisions", args=[p.project.pk, stage.cycle, stage.definition.key]
    )
    response = client_for(p.bob).get(url, {"a": 1, "b": 2})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Revision 1 → revision 2" in html
    assert '<div class="diff-side-label">Revision 1</div>' in html
    assert '<div class="diff-side-label">Revision 2</div>' in html
    assert_side_by_side(html)
    # An unchanged answer is shown once, not as two columns.
    unchanged = html[html.index('data-question="who-is-we"') :]
    unchanged = unchanged[: unchanged.index("</section>")]
    assert "diff-unchanged" in unchanged and "diff-columns" not in unchanged


def test_the_review_page_shows_what_changed_since_the_reviewers_decision_side_by_side(revised):
    p, stage = revised
    response = client_for(p.tina).get(reverse("reviews:review_stage", args=[stage.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    diff = html[html.index('id="diff"') :]
    assert "Revision 1 (you decided)" in diff
    assert_side_by_side(diff)


def test_the_dossier_page_and_its_print_html_show_the_same_side_by_side_diff(revised):
    p, _stage = revised
    response = client_for(p.alice).get(reverse("reviews:project_dossier", args=[p.project.pk]))
    assert response.status_code == 200
    assert_side_by_side(response.content.decode())
    from reviews.dossier_pdf import print_html

    printed = print_html(project=p.project, viewer=p.alice)
    assert_side_by_side(printed)
    assert "css/dossier-print.css" in printed


def test_the_print_stylesheet_lays_the_two_sides_out_as_a_table_and_the_site_stacks_them():
    from pathlib import Path

    static = Path(__file__).resolve().parents[2] / "static" / "css"
    printed = (static / "dossier-print.css").read_text()
    assert re.search(r"\.diff-columns \{[^}]*display: table", printed)
    assert re.search(r"\.diff-side \{[^}]*display: table-cell", printed)
    site = (static / "app.css").read_text()
    phone = site[site.index("@media (max-width: 575.98px)") :]
    assert "grid-template-columns: minmax(0, 1fr);" in phone[: phone.index("}\n}")]


def test_large_answers_on_the_review_page_are_shown_whole_side_by_side(personas):
    p = personas
    stage = current_stage(p.project)
    first = fill_and_submit(stage, p.alice, **{STATEMENT: " ".join(f"a{n}" for n in range(1500))})
    review_services.decision_record(
        revision=first, reviewer=p.tina, outcome="request_changes", comment="Shorter."
    )
    fill_and_submit(stage, p.alice, **{STATEMENT: " ".join(f"b{n}" for n in range(1500))})
    html = client_for(p.tina).get(reverse("reviews:review_stage", args=[stage.pk]))
    html = html.content.decode()
    assert "Too large to diff word by word" in html
    old, new = side(html, STATEMENT, "old"), side(html, STATEMENT, "new")
    assert "a1499" in old and "b1499" in new and "<del" not in old and "<ins" not in new


def test_an_expert_reads_the_diff_since_their_own_decision(personas):
    """The diff is the reviewer's: since the revision they last decided on."""
    from reviews.models import ReviewAssignment

    p = personas
    stage = current_stage(p.project)
    ReviewAssignment.objects.create(
        project=p.project, stage_definition=stage.definition, reviewer=p.erin,
        role="expert", assigned_by=p.tina,
    )  # fmt: skip
    declare_no_conflict(p.project, p.erin)
    first = fill_and_submit(stage, p.alice, **{METRIC: "time to triage"})
    review_services.decision_record(
        revision=first, reviewer=p.erin, outcome="request_changes", comment="Which time?"
    )
    fill_and_submit(stage, p.alice, **{METRIC: "Median time to triage"})
    html = client_for(p.erin).get(reverse("reviews:review_stage", args=[stage.pk]))
    assert "<ins>Median </ins>" in side(html.content.decode(), METRIC, "new")
