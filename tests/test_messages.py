"""Messages lead with a short statement -- the object, the bug and the fix -- and leave the
explanation to the rule page (linked from JSON and SARIF output); a line they cite in another
file is given with that file's name (editors show messages as hovers at the finding's place)."""

from __future__ import annotations

import re

import pytest

from conftest import FIXTURES, fixture_files, fixture_id
from torchgradlint.engine import lint_file

FILES = fixture_files()
LEAD_LIMIT = 120  # ruff's messages are ~50 characters; ours name a model and a remedy
MESSAGE_LIMIT = 260


def _lead(message: str) -> str:
    """The statement before the first parenthesised detail."""
    return message.split(" (", 1)[0]


@pytest.mark.parametrize("path", FILES, ids=[fixture_id(p) for p in FILES])
def test_messages_lead_with_a_short_statement_and_a_remedy(path):
    for finding in lint_file(str(path)):
        lead = _lead(finding.message)
        assert len(lead) <= LEAD_LIMIT, finding
        assert len(finding.message) <= MESSAGE_LIMIT, finding
        assert ": " in lead, finding  # the statement, then what to do


def test_single_file_messages_cite_plain_lines():
    for path in FILES:
        if "projects" in path.parts:
            continue
        for finding in lint_file(str(path)):
            assert not re.search(r"\.py:\d", finding.message), finding


def _line_of(path, text: str) -> int:
    (number,) = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return number


def test_a_line_of_another_file_is_named_with_its_file():
    project = FIXTURES / "projects" / "classifier"
    by_code = {f.code: f for f in lint_file(str(project / "engine.py"))}
    # validate() leaves the model in eval mode; main.py calls it before training resumes
    validate_call = _line_of(project / "main.py", "validate(model, val_batches)")
    assert f"main.py:{validate_call})" in by_code["TGL202"].message
    for finding in by_code.values():
        assert not re.search(r"\bline \d+", finding.message), finding
