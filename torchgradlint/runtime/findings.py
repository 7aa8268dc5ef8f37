"""Result types of the runtime monitor (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass(frozen=True)
class RuntimeFinding:
    """The symptom of one bug, observed at run time at one line of user code."""

    code: str
    filename: str
    line: int
    message: str

    def sort_key(self):
        return (self.filename, self.line, self.code, self.message)

    def format(self) -> str:
        return f"{self.filename}:{self.line}: {self.code} {self.message}"


@dataclass
class RuntimeReport:
    """What a :func:`~torchgradlint.runtime.watch` observed.

    ``findings`` is filled when the watch ends: sorted by (filename, line, code) and deduplicated
    on that triple (the first message wins). ``error`` holds the formatted traceback of an
    uncaught exception of a script run by :func:`~torchgradlint.runtime.run_path`, and
    ``error_type`` its class name; both are ``None`` when the script ran to its end.
    ``monitor_errors`` holds tracebacks of the monitor's own failures (it never raises them into
    the watched code); it should stay empty.
    """

    findings: List[RuntimeFinding] = field(default_factory=list)
    error: Optional[str] = None
    error_type: Optional[str] = None
    monitor_errors: List[str] = field(default_factory=list)

    def codes(self):
        """``[(line, code), ...]`` in report order: what fixture tests compare with marks."""
        return [(f.line, f.code) for f in self.findings]

    def _set(self, findings) -> None:
        seen = {}
        for f in sorted(findings, key=RuntimeFinding.sort_key):
            seen.setdefault((f.filename, f.line, f.code), f)
        self.findings = list(seen.values())
