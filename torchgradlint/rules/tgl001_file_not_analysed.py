"""TGL001: a file that cannot be analysed: unreadable, undecodable, a syntax error, or nested
deeper (or bigger) than the analysis goes.

No rule can look at such a file, so it is a finding of its own: a CI run must not pass silently
over it. The command line reports it (``check`` and ``fix``, every output format) where reading,
decoding or parsing failed; the flake8 plugin reports it for files too deep or too big to
analyse (flake8 reports syntax errors itself, as E999, and unreadable files as E902, and runs no
plugin on them). There is nothing for ``check(model)`` to do: a model exists only for files that
could be analysed.
"""

import re

from ..findings import Finding, RuleInfo

RULE = RuleInfo(
    "TGL001", "file-not-analysed",
    "a file that cannot be read, decoded, parsed or analysed (a syntax error): "
    "reported, so that CI does not pass over it",
    fix_safety="none",
)


def check(analysis):
    return iter(())


def finding(reason: str, line: int = 1, col: int = 0) -> Finding:
    """The TGL001 finding of a file, at the place Python's parser stopped (else its start; the
    position is then left in the reason)."""
    if (line, col) != (1, 0):
        reason = re.sub(r"^syntax error at line \d+(, column \d+)?", "syntax error", reason)
    return Finding(RULE.code, line, col, f"file not analysed: {reason}")
