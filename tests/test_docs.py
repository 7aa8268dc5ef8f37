"""The docs say what the tool does: every example of the rule pages is linted, and every place
that states a rule's fix safety agrees with the rule's own declaration (``RULE`` in its module).

An example block claims its findings in comments: ``# TGL301: ...`` on a line means the linter
reports TGL301 there; ``# TGL303 (runtime)`` is the runtime monitor's line and claims nothing of
the linter. A block without a claim must draw no finding. The examples are linted as written,
after three import lines (``torch``, ``torch.nn as nn``, ``torch.nn.functional as F``) that every
page assumes.
"""

from __future__ import annotations

import re
import pytest

from conftest import FIXTURES, ROOT, fixture_files
from torchgradlint.config import Config
from torchgradlint.engine import lint_file, lint_source
from torchgradlint.rules import RULES, RULES_BY_CODE

PAGES = sorted((ROOT / "docs" / "rules").glob("TGL*.md"))
PREAMBLE = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
CLAIM = re.compile(r"#.*?\b(TGL\d{3})\b(?! \(runtime\))")
NO_PROJECT = Config(project=False)


def _blocks():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"```python\n(.*?)```", text, re.S):
            line = text[:match.start()].count("\n") + 2
            yield pytest.param(match.group(1), id=f"{page.name}:{line}")


BLOCKS = list(_blocks())


@pytest.mark.parametrize("block", BLOCKS)
def test_rule_page_example_draws_exactly_the_findings_it_claims(block):
    claimed = sorted((number, code) for number, text in enumerate(block.splitlines(), start=1)
                     for code in CLAIM.findall(text))
    offset = PREAMBLE.count("\n")
    found = sorted((f.line - offset, f.code)
                   for f in lint_source(PREAMBLE + block, "example.py", NO_PROJECT))
    assert found == claimed


def test_every_rule_has_a_page_with_examples():
    assert {page.stem for page in PAGES} == set(RULES_BY_CODE)
    for rule in RULES:
        if rule.code.startswith("TGL0"):
            continue  # a file that cannot be analysed has no code example
        text = (ROOT / rule.doc_path).read_text(encoding="utf-8")
        assert "## Example (bad)" in text and "```python" in text, rule.code


# --------------------------------------------------------------------------- fix safety


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def _table_rows(text: str, first_cell: str):
    """The rows of a markdown table whose first cell links a rule page, by code."""
    rows = {}
    for line in text.splitlines():
        link = r"\| \[(TGL\d{3})\]\(" + re.escape(first_cell) + r"TGL\d{3}\.md\) \|"
        match = re.match(link, line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return rows


def _agrees(rule, words: str) -> bool:
    """A cell or sentence naming the fix safety says what ``rule`` declares."""
    words = words.strip()
    if rule.fix_safety == "none":
        return words in ("—", "") or words.startswith("—")
    if rule.unsafe_when:
        return words.startswith("safe") and "unsafe" in words
    return re.match(rf"{rule.fix_safety}\b", words) is not None and (
        rule.fix_safety == "unsafe" or "unsafe" not in words.split(":")[0])


@pytest.mark.parametrize("rule", RULES, ids=[rule.code for rule in RULES])
def test_readme_table_states_the_declared_fix_safety(rule):
    rows = _table_rows((ROOT / "README.md").read_text(encoding="utf-8"), "docs/rules/")
    assert rule.code in rows
    assert _agrees(rule, rows[rule.code][-1]), rows[rule.code][-1]


@pytest.mark.parametrize("rule", RULES, ids=[rule.code for rule in RULES])
def test_fixes_page_table_states_the_declared_fix_safety(rule):
    rows = _table_rows((ROOT / "docs" / "fixes.md").read_text(encoding="utf-8"), "rules/")
    assert rule.code in rows
    assert _agrees(rule, rows[rule.code][2]), rows[rule.code]


@pytest.mark.parametrize("rule", RULES, ids=[rule.code for rule in RULES])
def test_rule_page_states_the_declared_fix_safety(rule):
    fix = _section((ROOT / rule.doc_path).read_text(encoding="utf-8"), "Fix")
    says_safe = re.search(r"\*\*safe\*\*|\| safe\b", fix) is not None
    says_unsafe = "**unsafe**" in fix
    if rule.fix_safety == "none":
        assert not says_safe and not says_unsafe and re.search(r"[Nn]o(ne)? automatic", fix)
    elif rule.fix_safety == "unsafe":
        assert says_unsafe and not says_safe
    else:
        assert says_safe and says_unsafe == bool(rule.unsafe_when)


def _all_fixes():
    for path in fixture_files():
        for finding in lint_file(str(path)):
            yield str(path.relative_to(FIXTURES)), finding
    for block in BLOCKS:
        for finding in lint_source(PREAMBLE + block.values[0], "example.py", NO_PROJECT):
            yield block.id, finding


def test_every_fix_has_the_declared_safety():
    seen = set()
    for where, finding in _all_fixes():
        rule = RULES_BY_CODE[finding.code]
        fix = finding.fix
        if rule.fix_safety == "none":
            assert fix is None, (where, finding)
            continue
        if fix is None:
            continue  # a shape with no automatic fix (the finding stays for a human)
        seen.add((finding.code, fix.safe))
        if rule.fix_safety == "unsafe":
            assert not fix.safe, (where, finding)
        elif not fix.safe:
            assert rule.unsafe_when, (where, finding)  # only in a documented shape
    # the fixtures exercise both kinds where a rule has both
    for rule in RULES:
        if rule.unsafe_when:
            assert {(rule.code, True), (rule.code, False)} <= seen, rule.code
