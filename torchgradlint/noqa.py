"""``# noqa`` comments, read the way flake8 reads them, so the CLI and the plugin agree.

- ``# noqa`` (any letter case) anywhere on the line silences every finding on that line.
- ``# noqa: TGL101,TGL2`` / ``# noqa:TGL101 TGL2`` silences the findings whose code equals or
  starts with one of the listed codes; other findings on the line are still reported.
- Listed codes are compared case-sensitively: ``# noqa: tgl101`` silences nothing, as in flake8.
- A colon not followed by a code (``# noqa:`` or ``# noqa: TGL``) leaves a blanket ``# noqa``.
- A statement spanning several physical lines through a multi-line token (a triple-quoted string,
  a backslash continuation) is one unit: a comment on any of its lines covers all of them.
- A line that is only ``# flake8: noqa`` (or ``# flake8=noqa``) switches the whole file off.
"""

from __future__ import annotations

import re
import tokenize
from typing import Dict, Iterable, List, Optional, Sequence

from .findings import Finding

# "# noqa", then optionally ":" with at most one whitespace character and one or more codes
# (letters then digits), each optionally followed by commas and/or whitespace. This accepts the
# same texts as flake8's pattern, quirks included (a code glued to the next, "TGL1TGL2", is one
# code that silences nothing).
NOQA_INLINE = re.compile(
    r"# noqa(?::\s?(?P<codes>(?:[A-Z]+[0-9]+(?:[,\s]+)?)+))?",
    re.IGNORECASE,
)
NOQA_FILE = re.compile(r"\s*# flake8[:=]\s*noqa", re.IGNORECASE)
_SPLIT_CODES = re.compile(r"[,\s]+")
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def physical_lines(source: str) -> List[str]:
    """The source's lines with their endings, split only where Python splits lines."""
    return _PHYSICAL_LINE.findall(source)


def file_is_skipped(lines: Sequence[str]) -> bool:
    """True when a line starts with ``# flake8: noqa`` (flake8 then skips the file)."""
    return any(NOQA_FILE.match(line) for line in lines)


def codes_in(comment_line: str) -> Optional[List[str]]:
    """None if the line has no noqa comment; [] for a blanket noqa; else the listed codes."""
    match = NOQA_INLINE.search(comment_line)
    if match is None:
        return None
    codes = match.group("codes")
    if codes is None:
        return []
    return [code for code in _SPLIT_CODES.split(codes) if code]


def silences(comment_line: str, code: str) -> bool:
    listed = codes_in(comment_line)
    if listed is None:
        return False
    if not listed:
        return True
    return any(code.startswith(prefix) for prefix in listed)


def _statement_text(lines: Sequence[str]) -> Dict[int, str]:
    """Map each line number to the text searched for noqa on it.

    Tokens are grouped up to each NEWLINE or NL token; all the physical lines that a group spans
    share the group's joined text. Lines that cannot be tokenized map to themselves.
    """
    mapping: Dict[int, str] = {}
    remaining = iter(lines)

    def readline() -> str:
        return next(remaining, "")

    first = last = 0
    try:
        for token in tokenize.generate_tokens(readline):
            if token.type in (tokenize.ENDMARKER, tokenize.DEDENT):
                continue
            start, end = token.start[0], token.end[0]
            first = start if not first else min(first, start)
            last = max(last, end)
            if token.type in (tokenize.NEWLINE, tokenize.NL):
                if last > first:
                    joined = "".join(lines[first - 1:last])
                    for number in range(first, last + 1):
                        mapping[number] = joined
                first = last = 0
    except (tokenize.TokenError, SyntaxError):
        return {}  # as flake8 does: every line is then read on its own
    return mapping


class NoqaIndex:
    """Answers "is this finding silenced?" for one file's source."""

    def __init__(self, source: str) -> None:
        self.lines = physical_lines(source)
        self._joined: Optional[Dict[int, str]] = None
        # Only files that mention noqa need the token pass.
        self._has_noqa = "noqa" in source.lower()

    def file_skipped(self) -> bool:
        return self._has_noqa and file_is_skipped(self.lines)

    def line_text(self, number: int) -> str:
        if self._joined is None:
            self._joined = _statement_text(self.lines)
        if number in self._joined:
            return self._joined[number]
        if 1 <= number <= len(self.lines):
            return self.lines[number - 1]
        return ""

    def silenced(self, finding: Finding) -> bool:
        if not self._has_noqa:
            return False
        return silences(self.line_text(finding.line), finding.code)

    def filter(self, findings: Iterable[Finding]) -> List[Finding]:
        if self.file_skipped():
            return []
        return [finding for finding in findings if not self.silenced(finding)]


def reported(findings: Iterable[Finding], noqa: NoqaIndex, config) -> List[Finding]:
    """The findings a run reports (``check`` and ``fix`` alike): of the codes the configuration
    selects, and not silenced by a ``# noqa`` comment."""
    return noqa.filter(finding for finding in findings if config.wants(finding.code))


def apply_noqa(source: str, findings: Iterable[Finding]) -> List[Finding]:
    """The findings that no ``# noqa`` comment of ``source`` silences."""
    return NoqaIndex(source).filter(findings)
