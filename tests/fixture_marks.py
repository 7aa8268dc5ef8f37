"""The ``# expect:`` marks of the fixtures: what the linter and the runtime monitor must report.

``# expect: TGL101`` holds for the linter and the runtime monitor alike; ``# expect-static:`` and
``# expect-runtime:`` for one of them, where the two see the same bug at different lines. A mark
checks the line and the code; ``TGL301@14`` also checks the column the linter reports (0-based,
as in the ``ast``), where the column matters (two calls on one line, a fix placed by it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple

CODE = r"TGL\d{3}(?:@\d+)?"
EXPECT_MARK = re.compile(rf"#\s*expect(?P<kind>-static|-runtime)?:\s*(?P<codes>{CODE}(?:\s*,\s*{CODE})*)")


@dataclass
class FixtureMarks:
    static: List[Tuple[int, str]] = field(default_factory=list)
    runtime: List[Tuple[int, str]] = field(default_factory=list)
    # (line, code) -> column, for the static marks that give one
    static_columns: Dict[Tuple[int, str], int] = field(default_factory=dict)

    @classmethod
    def parse(cls, source: str) -> "FixtureMarks":
        marks = cls()
        for number, text in enumerate(source.splitlines(), start=1):
            for match in EXPECT_MARK.finditer(text):
                kind = match.group("kind")
                for written in match.group("codes").split(","):
                    code, _, column = written.strip().partition("@")
                    if kind in (None, "-static"):
                        marks.static.append((number, code))
                        if column:
                            marks.static_columns[(number, code)] = int(column)
                    if kind in (None, "-runtime"):
                        marks.runtime.append((number, code))
        marks.static.sort()
        marks.runtime.sort()
        return marks

    def static_mismatches(self, findings: Iterable) -> List[str]:
        """What differs between the linter's findings and the static marks (empty: they agree)."""
        findings = list(findings)
        found = sorted((finding.line, finding.code) for finding in findings)
        problems = []
        if found != self.static:
            problems.append(f"found {found}, marked {self.static}")
        for (line, code), column in sorted(self.static_columns.items()):
            columns = sorted(f.col for f in findings if (f.line, f.code) == (line, code))
            if column not in columns:
                problems.append(f"{code} at line {line}: column {column} marked, found {columns}")
        return problems
