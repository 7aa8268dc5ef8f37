"""The data every part of torchgradlint exchanges: rules, findings and fixtures' marks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple


Position = Tuple[int, int]  # (line, column) as the ``ast`` module gives them: 1-based line,
# 0-based column counted in UTF-8 bytes of the line


@dataclass(frozen=True)
class Fix:
    """The edit that repairs a finding, described on source positions so that the fixer (libcst,
    formatting-preserving) can apply it without re-running the analysis.

    kinds:
    - ``call``: ``target`` spans an expression that must be called: append ``()``
      (``with torch.no_grad:`` -> ``with torch.no_grad():``, ``model.eval`` -> ``model.eval()``).
    - ``method``: ``target`` spans an expression; append ``.{text}()`` to it, parenthesized when
      needed (``fake`` -> ``fake.detach()``, ``loss * n`` -> ``(loss * n).item()``).
    - ``wrap``: ``target`` spans one or more whole statements; wrap them in ``with {text}:``
      (``with torch.no_grad():`` around an evaluation loop).
    - ``decorate``: ``target`` spans a function definition; add the decorator ``@{text}``.
    - ``insert-before``: ``target`` spans a statement; insert the statement ``{text}`` just
      before it, at its indentation (``model.eval()`` before the evaluation loop).
    ``imports``: modules the new code needs (``torch``); the fixer adds ``import torch`` when
    the name is not bound.
    """

    kind: str
    target: Tuple[Position, Position]
    text: str = ""
    safe: bool = True
    imports: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One problem at one place. ``col`` is 0-based (flake8 adds 1 when it prints)."""

    code: str
    line: int
    col: int
    message: str
    fix: Optional[Fix] = field(default=None, compare=False, hash=False)

    def text(self) -> str:
        return f"{self.code} {self.message}"


FIX_SAFETIES = ("safe", "unsafe", "none")


@dataclass(frozen=True)
class RuleInfo:
    """A rule's metadata, declared by its module as ``RULE`` (see ``rules/__init__.py``).

    ``summary``: what it finds, in one line. ``fix_safety``: ``safe`` (the fix keeps what the
    program computes, except for the bug), ``unsafe`` (review it) or ``none`` (no automatic
    fix). ``unsafe_when``: the shapes in which a ``safe`` rule marks its fix unsafe; a safe rule
    emits unsafe fixes only there. ``fix_summary``: what the fix does, in a few words.
    """

    code: str
    name: str
    summary: str
    fix_safety: str = "none"
    unsafe_when: Tuple[str, ...] = ()
    fix_summary: str = ""

    def __post_init__(self) -> None:
        if self.fix_safety not in FIX_SAFETIES:
            raise ValueError(f"{self.code}: fix_safety must be one of {FIX_SAFETIES}")
        if self.unsafe_when and self.fix_safety != "safe":
            raise ValueError(f"{self.code}: unsafe_when qualifies a safe fix only")
        if bool(self.fix_summary) != (self.fix_safety != "none"):
            raise ValueError(f"{self.code}: a rule with a fix says what it does (fix_summary)")

    @property
    def doc_path(self) -> str:
        return f"docs/rules/{self.code}.md"

    @property
    def fix_label(self) -> str:
        """``safe``, ``unsafe``, ``none`` or ``safe (unsafe for ...; ...)``."""
        if self.unsafe_when:
            return f"safe (unsafe for {'; '.join(self.unsafe_when)})"
        return self.fix_safety


def source_text(node, limit: int = 60) -> str:
    """The source of an expression for a message: shortened, and safe on expressions nested too
    deep to print."""
    import ast

    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError, MemoryError):
        return "..."
    return text if len(text) <= limit else text[:limit - 3] + "..."


def line_ref(line: int) -> str:
    """``line 25``, or ``main.py:25`` for a line of another file (a :class:`ForeignLine`)."""
    where = getattr(line, "file", None)
    return f"{where}:{int(line)}" if where else f"line {int(line)}"


class ForeignLine(int):
    """A line number of another file (a caller in another module of the project): equal to its
    number, so that analyses treat it as one; messages name the file (:func:`line_ref`)."""

    file: str

    def __new__(cls, line: int, file: str) -> "ForeignLine":
        value = super().__new__(cls, line)
        value.file = file
        return value

    def __reduce__(self):
        return ForeignLine, (int(self), self.file)


def span(node) -> Tuple[Position, Position]:
    """The ``ast`` positions of a node, as a Fix target."""
    return ((node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset))
