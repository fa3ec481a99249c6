"""What a revision's SHA-256 covers: the answers, the stakeholder register, and, when there are
any, the evidence files' hashes and the risk register. A revision without them hashes exactly as
before they existed, so every earlier hash still verifies."""

from __future__ import annotations

import json

from lifecycle.services import revision_content

ANSWERS = {"q": "a"}
PEOPLE = [{"id": 1, "name": "Nurses"}]
FILE = {"question": "q", "name": "m.png", "sha256": "a" * 64, "size": 3, "type": "image"}
RISK = {"id": 1, "title": "Missed referral", "severity": 5}


def test_without_files_or_risks_the_content_is_what_it_always_was():
    legacy = json.dumps(
        {"answers": ANSWERS, "stakeholders": PEOPLE},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert revision_content(ANSWERS, PEOPLE) == legacy
    assert revision_content(ANSWERS, PEOPLE, [], []) == legacy


def test_the_files_hashes_and_the_risks_are_part_of_the_content():
    with_file = json.loads(revision_content(ANSWERS, PEOPLE, [FILE]))
    assert with_file["evidence"] == [FILE] and "risks" not in with_file
    with_risk = json.loads(revision_content(ANSWERS, PEOPLE, None, [RISK]))
    assert with_risk["risks"] == [RISK] and "evidence" not in with_risk
    swapped = revision_content(ANSWERS, PEOPLE, [{**FILE, "sha256": "b" * 64}])
    assert swapped != revision_content(ANSWERS, PEOPLE, [FILE])
