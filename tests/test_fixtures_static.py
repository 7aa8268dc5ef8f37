"""The linter's findings on every fixture equal the fixture's ``# expect:`` marks."""

import pytest

from conftest import FIXTURES, fixture_files, fixture_id
from torchgradlint.engine import lint_file
from fixture_marks import FixtureMarks

FILES = fixture_files()


@pytest.mark.parametrize("path", FILES, ids=[fixture_id(p) for p in FILES])
def test_static_findings_match_marks(path):
    marks = FixtureMarks.parse(path.read_text(encoding="utf-8"))
    assert marks.static_mismatches(lint_file(str(path))) == []


def test_every_rule_has_bad_and_good_fixtures():
    from torchgradlint.rules import RULES

    for rule in RULES:
        if rule.code.startswith("TGL0"):
            continue  # files the linter cannot analyse: tests/test_cli.py, not programs to run
        folder = FIXTURES / rule.code
        bad = sorted(folder.glob("bad_*.py"))
        good = sorted(folder.glob("good_*.py"))
        assert len(bad) >= 4 and len(good) >= 4, rule.code
        for path in bad:
            codes = [code for _, code in FixtureMarks.parse(path.read_text()).static +
                     FixtureMarks.parse(path.read_text()).runtime]
            assert rule.code in codes, path
