"""The data every part of torchgradlint exchanges: rules, findings and fixtures' marks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass(frozen=True)
class Finding:
    """One problem at one place. ``col`` is 0-based (flake8 adds 1 when it prints)."""

    code: str
    line: int
    col: int
    message: str

    def text(self) -> str:
        return f"{self.code} {self.message}"


@dataclass(frozen=True)
class RuleInfo:
    code: str
    name: str
    summary: str
    fix_safety: str = "none"  # "safe", "unsafe" or "none"

    @property
    def doc_path(self) -> str:
        return f"docs/rules/{self.code}.md"


EXPECT_MARK = re.compile(r"#\s*expect(?P<kind>-static|-runtime)?:\s*(?P<codes>TGL\d{3}(?:\s*,\s*TGL\d{3})*)")


@dataclass
class FixtureMarks:
    """Expected findings written in a fixture as ``# expect: TGL101``.

    ``# expect:`` holds for the linter and the runtime monitor alike; ``# expect-static:`` and
    ``# expect-runtime:`` for one of them, where the two see the same bug at different lines.
    """

    static: List[Tuple[int, str]] = field(default_factory=list)
    runtime: List[Tuple[int, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, source: str) -> "FixtureMarks":
        marks = cls()
        for number, text in enumerate(source.splitlines(), start=1):
            for match in EXPECT_MARK.finditer(text):
                codes = [c.strip() for c in match.group("codes").split(",")]
                kind = match.group("kind")
                for code in codes:
                    if kind in (None, "-static"):
                        marks.static.append((number, code))
                    if kind in (None, "-runtime"):
                        marks.runtime.append((number, code))
        marks.static.sort()
        marks.runtime.sort()
        return marks


def by_line(findings) -> Dict[int, List[str]]:
    lines: Dict[int, List[str]] = {}
    for finding in findings:
        lines.setdefault(finding.line, []).append(finding.code)
    return lines
