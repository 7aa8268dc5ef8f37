"""Report formats of ``torchgradlint check``: text, json, sarif and github.

Every format prints 1-based line and column numbers. A Finding's column is the ``ast`` one
(0-based, UTF-8 bytes; the flake8 plugin hands it to flake8 as it is, flake8's convention for
ast-based plugins); the formats count what their readers count: characters for text, JSON and
GitHub annotations (as ruff does), UTF-16 code units for SARIF (its default ``columnKind``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence
from urllib.parse import quote

from . import __version__
from .findings import Finding, RuleInfo
from .rules import RULES, RULES_BY_CODE, is_safe_fix

PROJECT_URL = "https://github.com/torchgradlint/torchgradlint"
DOCS_BASE_URL = PROJECT_URL + "/blob/main/docs/rules/"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
FORMATS = ("text", "json", "sarif", "github")


def rule_url(code: str) -> str:
    return f"{DOCS_BASE_URL}{code}.md"


def non_ascii_lines(source: str, findings) -> Dict[int, str]:
    """The lines of ``source`` that findings point into and that hold non-ASCII text (their
    columns need converting); empty for an ASCII source."""
    if source.isascii():
        return {}
    from .noqa import physical_lines

    lines = physical_lines(source)
    wanted = {f.line for f in findings}
    return {number: lines[number - 1] for number in wanted
            if 1 <= number <= len(lines) and not lines[number - 1].isascii()}


@dataclass(frozen=True)
class Report:
    """One finding in one file (``path`` as displayed)."""

    path: str
    finding: Finding
    line_text: str = ""  # the text of the finding's line, when it is not ASCII

    @property
    def line(self) -> int:
        return self.finding.line

    def _prefix(self) -> Optional[str]:
        """The line's text before the finding, when it holds more than ASCII."""
        if not self.line_text or self.line_text.isascii():
            return None
        return self.line_text.encode("utf-8")[:self.finding.col].decode("utf-8", "ignore")

    @property
    def column(self) -> int:
        """1-based, in characters (code points)."""
        prefix = self._prefix()
        return self.finding.col + 1 if prefix is None else len(prefix) + 1

    @property
    def utf16_column(self) -> int:
        """1-based, in UTF-16 code units (SARIF's default column kind)."""
        prefix = self._prefix()
        return self.finding.col + 1 if prefix is None else len(prefix.encode("utf-16-le")) // 2 + 1

    @property
    def rule(self) -> Optional[RuleInfo]:
        return RULES_BY_CODE.get(self.finding.code)


@dataclass(frozen=True)
class Problem:
    """A file that could not be analysed: unreadable, undecodable or unparsable (``internal``
    False), or the linter failed on it (``internal`` True)."""

    path: str
    reason: str
    internal: bool = False
    line: int = 1  # where Python's parser stopped, for a syntax error
    col: int = 0

    def describe(self) -> str:
        kind = "internal error" if self.internal else "cannot analyse"
        return f"{kind}: {self.reason}"


def printable(path: str) -> str:
    """A file name as one line of text: control characters (a newline in a name would start a
    forged line, a GitHub Actions ``::error`` command among them) and undecodable bytes (kept by
    Python as lone surrogates, which no UTF-8 stream accepts) escaped as ``\\n``, ``\\xNN``."""
    if path.isprintable():
        return path
    out = []
    for char in path:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif not char.isprintable() and char != " ":
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def format_text(reports: Sequence[Report], problems: Sequence[Problem] = ()) -> str:
    return "".join(
        f"{printable(r.path)}:{r.line}:{r.column}: {r.finding.code} {r.finding.message}\n"
        for r in reports
    )


def format_json(reports: Sequence[Report], problems: Sequence[Problem] = ()) -> str:
    items = []
    for report in reports:
        rule = report.rule
        items.append({
            "path": report.path.replace(os.sep, "/"),
            "line": report.line,
            "column": report.column,
            "code": report.finding.code,
            "name": rule.name if rule else None,
            "message": report.finding.message,
            "fix_safety": rule.fix_safety if rule else None,
            "fix": _fix_of(report.finding),
            "url": rule_url(report.finding.code) if rule else None,
        })
    return json.dumps(items, indent=2) + "\n"


def _fix_of(finding: Finding) -> Optional[str]:
    """This finding's own fix: ``safe``, ``unsafe`` (a safe rule's fix in one of the shapes it
    declares unsafe), or None (no automatic fix here)."""
    if finding.fix is None:
        return None
    return "safe" if is_safe_fix(finding) else "unsafe"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(reports: Sequence[Report], problems: Sequence[Problem] = ()) -> str:
    """GitHub Actions workflow commands: one annotation per finding."""
    lines = []
    for report in reports:
        lines.append(
            f"::warning file={_escape_property(report.path.replace(os.sep, '/'))},"
            f"line={report.line},col={report.column},"
            f"title={_escape_property(report.finding.code)}::"
            f"{_escape_data(report.finding.message)}\n"
        )
    return "".join(lines)


def artifact_location(path: str, root: str) -> Dict[str, str]:
    """A SARIF artifactLocation: relative to %SRCROOT% when the file is under ``root``."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, root) if _same_drive(absolute, root) else None
    if relative is not None and not relative.startswith(os.pardir):
        return {"uri": quote(relative.replace(os.sep, "/")), "uriBaseId": "%SRCROOT%"}
    return {"uri": _file_uri(absolute)}


def _same_drive(a: str, b: str) -> bool:
    return os.path.splitdrive(a)[0].lower() == os.path.splitdrive(b)[0].lower()


def _file_uri(absolute: str) -> str:
    posix = absolute.replace(os.sep, "/")
    if not posix.startswith("/"):
        posix = "/" + posix  # C:/x -> /C:/x
    return "file://" + quote(posix)


def _sarif_rule(rule: RuleInfo, doc: Optional[str]) -> Dict[str, object]:
    entry: Dict[str, object] = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": _full_description(rule, doc)},
        "helpUri": rule_url(rule.code),
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["pytorch", "correctness"], "fixSafety": rule.fix_safety,
                       "fixUnsafeWhen": list(rule.unsafe_when)},
    }
    if doc:
        entry["help"] = {"text": doc, "markdown": doc}
    return entry


def _full_description(rule: RuleInfo, doc: Optional[str]) -> str:
    """The doc page's first paragraph after its title, else the summary."""
    if doc:
        paragraph: List[str] = []
        for line in doc.splitlines():
            stripped = line.strip()
            if not stripped:
                if paragraph:
                    break
                continue
            if stripped.startswith("#"):
                if paragraph:
                    break
                continue
            paragraph.append(stripped)
        if paragraph:
            text = " ".join(paragraph)
            return text if len(text) <= 1000 else text[:997].rstrip() + "..."
    summary = rule.summary
    return summary[:1].upper() + summary[1:] + "."


def format_sarif(
    reports: Sequence[Report],
    problems: Sequence[Problem] = (),
    root: Optional[str] = None,
    doc_loader: Optional[Callable[[str], Optional[str]]] = None,
) -> str:
    """SARIF 2.1.0 as GitHub code scanning reads it: every rule in the driver's catalogue, each
    result pointing at its rule by id and index, locations relative to %SRCROOT%."""
    root = os.path.abspath(root or os.getcwd())
    rules = list(RULES)
    index = {rule.code: number for number, rule in enumerate(rules)}
    results = []
    for report in reports:
        code = report.finding.code
        result: Dict[str, object] = {
            "ruleId": code,
            "level": "warning",
            "message": {"text": report.finding.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": artifact_location(report.path, root),
                    "region": {"startLine": report.line, "startColumn": report.utf16_column},
                },
            }],
        }
        if code in index:
            result["ruleIndex"] = index[code]
        results.append(result)
    notifications = [
        {
            "level": "error" if problem.internal else "warning",
            "message": {"text": problem.describe()},
            "locations": [{
                "physicalLocation": {"artifactLocation": artifact_location(problem.path, root)},
            }],
        }
        for problem in problems
    ]
    root_uri = _file_uri(root)
    if not root_uri.endswith("/"):
        root_uri += "/"
    document = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {
                "driver": {
                    "name": "torchgradlint",
                    "version": __version__,
                    "semanticVersion": __version__,
                    "informationUri": PROJECT_URL,
                    "rules": [
                        _sarif_rule(rule, doc_loader(rule.code) if doc_loader else None)
                        for rule in rules
                    ],
                },
            },
            "invocations": [{
                "executionSuccessful": not any(problem.internal for problem in problems),
                "toolExecutionNotifications": notifications,
            }],
            "originalUriBaseIds": {"%SRCROOT%": {"uri": root_uri}},
            "results": results,
        }],
    }
    return json.dumps(document, indent=2) + "\n"


FORMATTERS = {
    "text": format_text,
    "json": format_json,
    "github": format_github,
    "sarif": format_sarif,
}
