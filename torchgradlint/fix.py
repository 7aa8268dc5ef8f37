"""Apply the fixes that findings carry, keeping the file's formatting and comments (libcst).

A :class:`~torchgradlint.findings.Fix` names an edit on ``ast`` positions (1-based lines, 0-based
UTF-8 byte columns). This module turns those positions into libcst nodes and edits the concrete
syntax tree, so everything the fix does not touch -- comments, blank lines, quotes, line breaks
inside brackets -- comes out exactly as it went in.

Layers:

- :func:`fix_source` applies the fixes of a list of findings to a module's text. Several findings
  may carry the same fix (three forwards in one evaluation loop, one ``wrap``): it is applied
  once. Fixes that change what the analysis sees -- a ``call`` (``no_grad`` -> ``no_grad()``,
  ``model.eval`` -> ``model.eval()``), then a ``wrap`` / ``decorate`` (grad mode) or an
  ``insert-before`` (module mode), then a ``method`` (``.detach()`` / ``.item()``) -- go in that
  order, one group per round, and the module is linted again between rounds: calling
  ``model.eval`` already puts the model in eval mode, which then needs no inserted
  ``model.eval()``; wrapping an evaluation loop in ``no_grad`` already cures the loss accumulated
  in it, which then needs no ``.item()``.
- :func:`fix_text` lints a module itself (selection and ``# noqa`` as in ``check``) and fixes it.
- :func:`fix_file` reads a file, fixes it and writes it back safely: same encoding, byte order
  mark and line endings; only when the code changed and still compiles; atomically (temporary
  file in the same folder, then ``os.replace``), keeping the file's permissions; never over a
  read-only file or one that changed on disk meanwhile.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .config import DEFAULT_CONFIG, Config
from .findings import Finding, Fix
from .rules import is_safe_fix
from .noqa import NoqaIndex, physical_lines, reported
from .output import non_ascii_lines
from .sourcefile import (SourceError, decode_source, encode_source, is_read_only, parse_module,
                         read_bytes, syntax_error_position, write_atomically)

# Fix kinds in the order they are applied: one group per round, the module linted in between.
ROUNDS: Tuple[Tuple[str, ...], ...] = (
    ("call",), ("wrap", "decorate", "insert-before"), ("method",))
KINDS = frozenset(kind for kinds in ROUNDS for kind in kinds)
MAX_ROUNDS = 8

CharPosition = Tuple[int, int]  # (1-based line, 0-based column in characters), as libcst counts


class FixError(Exception):
    """The fixed code would not be valid Python: nothing is changed."""


# --------------------------------------------------------------------------- positions


class _Columns:
    """Converts ``ast`` columns (UTF-8 bytes) to libcst columns (characters)."""

    def __init__(self, source: str) -> None:
        self.lines = physical_lines(source)

    def char(self, position: Tuple[int, int]) -> CharPosition:
        line, column = position
        if not 1 <= line <= len(self.lines):
            return position
        text = self.lines[line - 1]
        if text.isascii():
            return line, column
        return line, len(text.encode("utf-8")[:column].decode("utf-8", "ignore"))


def _is_statement(node) -> bool:
    import libcst as cst

    return isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement))


def _needs_parentheses(node) -> bool:
    """Would ``node.attr`` or ``node()`` bind to less than the whole expression?"""
    import libcst as cst

    if node.lpar:
        return False
    atoms = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.List, cst.Dict, cst.Set,
             cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.SimpleString,
             cst.FormattedString, cst.Float, cst.Imaginary, cst.Ellipsis)
    return not isinstance(node, atoms)  # 1.item() is a syntax error: Integer needs them too


def _is_literal(node) -> bool:
    """A display or constant: ``[a, b]``, ``(a, b)``, ``{...}``, ``"s"``, ``1``, a lambda."""
    import libcst as cst

    return isinstance(node, (cst.List, cst.Tuple, cst.Dict, cst.Set, cst.ListComp, cst.SetComp,
                             cst.DictComp, cst.SimpleString, cst.ConcatenatedString,
                             cst.FormattedString, cst.Integer, cst.Float, cst.Imaginary,
                             cst.Ellipsis, cst.Lambda))


def _parenthesized(node):
    import libcst as cst

    if _needs_parentheses(node):
        return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return node


def _text_root(text: str) -> str:
    match = re.match(r"\s*@?\s*([A-Za-z_][A-Za-z0-9_]*)", text)
    return match.group(1) if match else ""


# --------------------------------------------------------------------------- one batch


@dataclass
class _Request:
    fix: Fix
    start: CharPosition
    end: CharPosition
    order: int
    applied: bool = False
    covered_by: List["_Request"] = field(default_factory=list)  # wider wraps, same context


@dataclass
class _Container:
    """A statement list to rebuild: an indented block, the module, or a one-line suite."""

    wraps: List[_Request] = field(default_factory=list)
    inserts: List[_Request] = field(default_factory=list)


class _Plan:
    """Where each fix lands in the tree, decided on the original module's positions."""

    def __init__(self, wrapper, requests: Sequence[_Request]) -> None:
        import libcst as cst
        from libcst.metadata import ParentNodeProvider, PositionProvider

        self.positions = wrapper.resolve(PositionProvider)
        self.parents = wrapper.resolve(ParentNodeProvider)
        expressions: Dict[Tuple[CharPosition, CharPosition], object] = {}
        statements: Dict[CharPosition, object] = {}
        definitions: Dict[CharPosition, object] = {}
        for node, where in self.positions.items():
            start = (where.start.line, where.start.column)
            end = (where.end.line, where.end.column)
            if isinstance(node, cst.BaseExpression):
                previous = expressions.get((start, end))
                if previous is None or self._contains(node, previous):
                    expressions[(start, end)] = node  # the outermost of equal spans
            if _is_statement(node):
                statements.setdefault(start, node)
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                definitions[start] = node
        self.expressions: Dict[int, _Request] = {}
        self.definitions: Dict[int, List[_Request]] = {}
        self.containers: Dict[int, _Container] = {}
        self.skipped: List[_Request] = []

        wraps = [r for r in requests if r.fix.kind == "wrap"]
        for request in requests:
            kind = request.fix.kind
            if kind in ("call", "method"):
                node = expressions.get((request.start, request.end))
                if node is None:
                    node = self._parenthesized_match(expressions, request)
                if node is None or id(node) in self.expressions or (
                        kind == "method" and _is_literal(node)):
                    # not found, another edit of that node, or `.item()` of a list or tuple:
                    # a literal has no tensor methods, the finding stays for a human
                    self.skipped.append(request)
                    continue
                self.expressions[id(node)] = request
            elif kind == "decorate":
                node = definitions.get(request.start)
                if node is None:
                    self.skipped.append(request)
                    continue
                self.definitions.setdefault(id(node), []).append(request)
            elif kind in ("wrap", "insert-before"):
                wider = [other for other in wraps if kind == "wrap"
                         and other.fix.text == request.fix.text
                         and other.start <= request.start and request.end <= other.end
                         and (other.start, other.end) != (request.start, request.end)]
                if wider:
                    request.covered_by = wider
                    continue
                node = statements.get(request.start)
                container = self._container_of(node) if node is not None else None
                if container is None:
                    self.skipped.append(request)
                    continue
                entry = self.containers.setdefault(id(container), _Container())
                (entry.wraps if kind == "wrap" else entry.inserts).append(request)
            else:
                self.skipped.append(request)

    def _contains(self, outer, inner) -> bool:
        parent = self.parents.get(inner)
        while parent is not None:
            if parent is outer:
                return True
            parent = self.parents.get(parent)
        return False

    @staticmethod
    def _parenthesized_match(expressions, request):
        """``ast`` spans of tuples and generator expressions include their parentheses;
        libcst's do not."""
        import libcst as cst

        (line, column), (end_line, end_column) = request.start, request.end
        node = expressions.get(((line, column + 1), (end_line, end_column - 1)))
        return node if isinstance(node, (cst.Tuple, cst.GeneratorExp)) else None

    def _container_of(self, statement):
        import libcst as cst

        parent = self.parents.get(statement)
        if isinstance(statement, cst.BaseSmallStatement):
            if isinstance(parent, cst.SimpleStatementSuite):
                return parent
            if isinstance(parent, cst.SimpleStatementLine):
                parent = self.parents.get(parent)
            else:
                return None
        if isinstance(parent, (cst.IndentedBlock, cst.Module)):
            return parent
        return None  # an ``elif`` branch: nothing can go before or around it

    def span(self, node) -> Tuple[CharPosition, CharPosition]:
        where = self.positions[node]
        return (where.start.line, where.start.column), (where.end.line, where.end.column)


@dataclass
class _Unit:
    start: CharPosition
    end: CharPosition
    node: object  # a whole statement: a SimpleStatementLine or a compound statement


def _without_leading_lines(node):
    return node.with_changes(leading_lines=[]), list(node.leading_lines)


def _editor(plan: _Plan):
    """The CSTTransformer that applies ``plan`` (libcst is imported only when fixing)."""
    import libcst as cst

    class Editor(cst.CSTTransformer):
        def on_leave(self, original_node, updated_node):
            updated = super().on_leave(original_node, updated_node)
            key = id(original_node)
            request = plan.expressions.get(key)
            if request is not None and isinstance(updated, cst.BaseExpression):
                updated = _expression_fix(updated, request)
                request.applied = True
            decorations = plan.definitions.get(key)
            if decorations and isinstance(updated, (cst.FunctionDef, cst.ClassDef)):
                updated = _decorate(updated, decorations)
            container = plan.containers.get(key)
            if container is not None:
                updated = _rebuild(plan, original_node, updated, container)
            return updated

    return Editor()


def _expression_fix(node, request: _Request):
    import libcst as cst

    if request.fix.kind == "call":
        return cst.Call(func=_parenthesized(node))
    return cst.Call(func=cst.Attribute(value=_parenthesized(node), attr=cst.Name(request.fix.text)))


def _decorate(node, requests: List[_Request]):
    import libcst as cst

    present = {cst.Module([]).code_for_node(d.decorator).replace(" ", "") for d in node.decorators}
    decorators = list(node.decorators)
    for request in requests:
        text = request.fix.text.strip().lstrip("@").strip()
        request.applied = True
        if text.replace(" ", "") in present:
            continue
        present.add(text.replace(" ", ""))
        # Closest to the ``def``: under @staticmethod / @property, which must stay outermost.
        decorators.append(cst.Decorator(decorator=cst.parse_expression(text)))
    return node.with_changes(decorators=decorators)


def _units(plan: _Plan, original, updated, split_before: Set[CharPosition],
           split_after: Set[CharPosition]) -> List[_Unit]:
    """The container's statements as whole-statement units; a line of ``;``-separated small
    statements is split where a fix starts or ends inside it."""
    import libcst as cst

    units: List[_Unit] = []
    if isinstance(original, cst.SimpleStatementSuite):
        lines = [(original, cst.SimpleStatementLine(
            body=updated.body, trailing_whitespace=updated.trailing_whitespace))]
    else:
        lines = list(zip(original.body, updated.body))
    for old, new in lines:
        if not isinstance(old, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            start, end = plan.span(old)
            units.append(_Unit(start, end, new))
            continue
        smalls = list(zip(old.body, new.body))
        groups: List[List[Tuple[object, object]]] = [[]]
        for index, (small_old, small_new) in enumerate(smalls):
            start, _ = plan.span(small_old)
            if groups[-1] and (start in split_before or
                               plan.span(smalls[index - 1][0])[1] in split_after):
                groups.append([])
            groups[-1].append((small_old, small_new))
        for number, group in enumerate(groups):
            body = [small for _, small in group]
            if number < len(groups) - 1:
                body[-1] = body[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
            line = new.with_changes(
                body=body,
                leading_lines=new.leading_lines if number == 0 else [],
                trailing_whitespace=(new.trailing_whitespace if number == len(groups) - 1
                                     else cst.TrailingWhitespace()),
            )
            units.append(_Unit(plan.span(group[0][0])[0], plan.span(group[-1][0])[1], line))
    return units


def _rebuild(plan: _Plan, original, updated, container: _Container):
    """Insert statements and wrap runs of statements in ``with`` blocks."""
    import libcst as cst

    split_before = {r.start for r in container.wraps + container.inserts}
    split_after = {r.end for r in container.wraps}
    units = _units(plan, original, updated, split_before, split_after)
    starts = {unit.start: index for index, unit in enumerate(units)}
    ends = {unit.end: index for index, unit in enumerate(units)}

    # Wraps: [first, last] unit ranges, disjoint; a duplicate range is done once.
    wrap_at: Dict[int, Tuple[int, str, List[_Request]]] = {}
    taken: List[Tuple[int, int]] = []
    for request in sorted(container.wraps, key=lambda r: r.order):
        first, last = starts.get(request.start), ends.get(request.end)
        if first is None or last is None or last < first:
            continue
        existing = wrap_at.get(first)
        if existing is not None and existing[0] == last and existing[1] == request.fix.text:
            existing[2].append(request)
            continue
        if any(not (last < a or first > b) for a, b in taken):
            continue  # overlaps another wrap with another context: next round
        taken.append((first, last))
        wrap_at[first] = (last, request.fix.text, [request])

    inserts: Dict[int, List[str]] = {}
    for request in sorted(container.inserts, key=lambda r: r.order):
        index = starts.get(request.start)
        if index is None:
            continue
        request.applied = True
        texts = inserts.setdefault(index, [])
        if request.fix.text not in texts:
            texts.append(request.fix.text)

    def with_inserts(index: int, node) -> List[object]:
        """``node`` preceded by the statements inserted before it, which take over its
        comments and blank lines."""
        texts = inserts.get(index, [])
        if not texts:
            return [node]
        node, leading = _without_leading_lines(node)
        new = [cst.parse_statement(text.strip() + "\n") for text in texts]
        new[0] = new[0].with_changes(leading_lines=leading)
        return new + [node]

    body: List[object] = []
    index = 0
    while index < len(units):
        if index in wrap_at:
            last, text, requests = wrap_at[index]
            inner: List[object] = []
            for position in range(index, last + 1):
                node = units[position].node
                inner.extend([node] if position == index else with_inserts(position, node))
            inner[0], leading = _without_leading_lines(inner[0])
            block = cst.With(
                items=[cst.WithItem(item=cst.parse_expression(text))],
                body=cst.IndentedBlock(body=inner),
                leading_lines=leading,
            )
            body.extend(with_inserts(index, block))
            for request in requests:
                request.applied = True
            index = last + 1
            continue
        body.extend(with_inserts(index, units[index].node))
        index += 1

    if isinstance(original, cst.SimpleStatementSuite):
        return cst.IndentedBlock(body=body)
    return updated.with_changes(body=body)


def _bound_names(tree: ast.Module) -> Set[str]:
    """Names bound at module level (imports and assignments, also inside if/try/with)."""
    names: Set[str] = set()

    def visit(statements: Iterable[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    names.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    names.add(alias.asname or alias.name)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            names.add(sub.id)
            for attribute in ("body", "orelse", "finalbody"):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    visit(getattr(node, attribute, []) or [])
            for handler in getattr(node, "handlers", []) or []:
                visit(handler.body)

    visit(tree.body)
    return names


def _add_imports(module, modules: Sequence[str]):
    """``import X`` after the module's leading imports (after its docstring, else at the top)."""
    import libcst as cst

    body = list(module.body)
    index = 0
    if body and isinstance(body[0], cst.SimpleStatementLine) and len(body[0].body) == 1 and \
            isinstance(body[0].body[0], cst.Expr) and \
            isinstance(body[0].body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
        index = 1  # the docstring
    while index < len(body) and isinstance(body[index], cst.SimpleStatementLine) and all(
            isinstance(small, (cst.Import, cst.ImportFrom)) for small in body[index].body):
        index += 1
    new = [cst.parse_statement(f"import {name}\n") for name in modules]
    if index == 0 and body:
        # Comments above the first statement (a coding cookie, a shebang) stay first.
        body[0], leading = _without_leading_lines(body[0])
        new[0] = new[0].with_changes(leading_lines=leading)
    return module.with_changes(body=body[:index] + new + body[index:])


def _compiles(source: str) -> Optional[str]:
    """None if ``source`` compiles, else why not."""
    tree, reason = parse_module(source, "<fixed>")
    return reason if tree is None else None


def apply_fixes(source: str, fixes: Sequence[Fix]) -> Tuple[str, List[Fix]]:
    """Apply ``fixes`` to ``source`` in one pass over the concrete syntax tree.

    Returns the new text and the fixes that were applied (or made redundant by a wider wrap);
    the others -- a target the tree does not hold, a second edit of the same node -- are left
    for a later round. Raises FixError when the result would not compile.

    Only the top-level statements that hold a target go through libcst, each group of them as a
    module of its own; the rest of the file is kept as text. The cost of a fix follows the code
    it edits, not the size of the file (libcst's tree of a whole 100,000-line module takes
    gigabytes).
    """
    import libcst as cst

    unique: List[Fix] = []
    seen = set()
    for fix in fixes:
        key = (fix.kind, fix.target, fix.text.strip())
        if fix.kind in KINDS and key not in seen:
            seen.add(key)
            unique.append(fix)
    if not unique:
        return source, []
    tree, reason = parse_module(source, "<string>")
    if tree is None:
        raise FixError(f"the module does not parse: {reason}")
    columns = _Columns(source)
    requests = [_Request(fix, columns.char(fix.target[0]), columns.char(fix.target[1]), order)
                for order, fix in enumerate(unique)]
    lines = physical_lines(source)
    pieces: List[str] = []
    done: List[_Request] = []
    cursor = 0  # lines of ``source`` copied or edited so far
    for first, last, group in _statement_groups(tree, requests, len(lines)):
        text = "".join(lines[first - 1:last])
        for request in group:
            request.start = (request.start[0] - first + 1, request.start[1])
            request.end = (request.end[0] - first + 1, request.end[1])
        try:
            module = cst.parse_module(text)
        except Exception as exc:  # libcst's ParserSyntaxError, or a grammar it does not know
            raise FixError(f"libcst cannot parse the module: {exc}".splitlines()[0]) from None
        edited, group_done = _edit(module, group)
        pieces.append("".join(lines[cursor:first - 1]))
        pieces.append(edited)
        cursor = last
        done.extend(group_done)
    pieces.append("".join(lines[cursor:]))

    applied = [r for r in done if r.applied]
    if not applied:
        return source, [r.fix for r in done]
    result = "".join(pieces)
    bound = _bound_names(tree)
    missing: List[str] = []
    for request in applied:
        for name in request.fix.imports:
            root = name.split(".")[0]
            if _text_root(request.fix.text or "") in (root, "") and root not in bound \
                    and name not in missing:
                missing.append(name)
    if missing:
        result = _add_imports(cst.parse_module(result), missing).code
    problem = _compiles(result)
    if problem is not None:
        raise FixError(f"the fixed code would not compile ({problem})")
    return result, [r.fix for r in sorted(done, key=lambda r: r.order)]


def _edit(module, requests: List[_Request]) -> Tuple[str, List[_Request]]:
    """Apply ``requests`` (positions within ``module``) to one module; its new code and the
    requests done (applied, or covered by a wider wrap that was)."""
    from libcst.metadata import MetadataWrapper

    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    plan = _Plan(wrapper, requests)
    new_module = wrapper.module.visit(_editor(plan))
    done = [r for r in requests if r.applied or any(wider.applied for wider in r.covered_by)]
    return new_module.code, done


def _statement_groups(tree: ast.Module, requests: List[_Request], line_count: int):
    """(first line, last line, requests) for each run of top-level statements that holds
    targets; statements that share a line, or that one target spans, go together. A target
    outside every statement puts the whole module in one group."""
    spans = []
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
        spans.append([first, node.end_lineno or node.lineno])
    merged: List[List] = []
    for span in spans:
        if merged and span[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], span[1])
        else:
            merged.append(list(span) + [[]])
    starts = [span[0] for span in merged]
    import bisect

    for request in requests:
        line, end_line = request.start[0], request.end[0]
        index = bisect.bisect_right(starts, line) - 1
        if index < 0 or line > merged[index][1]:
            return [(1, line_count, list(requests))]
        last = index
        while last + 1 < len(merged) and merged[last + 1][0] <= end_line:
            last += 1
        if last != index:  # one target over several statements: they become one group
            merged[index][1] = merged[last][1]
            for other in merged[index + 1:last + 1]:
                merged[index][2].extend(other[2])
            del merged[index + 1:last + 1]
            starts = [span[0] for span in merged]
        merged[index][2].append(request)
    return [(first, last, group) for first, last, group in merged if group]


Failure = Tuple[Optional[Fix], str]


def _apply_checked(source: str, fixes: Sequence[Fix]) -> Tuple[str, List[Fix], List[Failure]]:
    """``apply_fixes``; when the batch as a whole would not compile, each fix on its own, and
    then only those that compile alone. Also returns the fixes left out, and why."""
    def failure(fix: Fix, exc: Exception) -> Failure:
        (line, column), _ = fix.target
        return fix, f"the {fix.kind} fix at line {line}, column {column + 1}: {exc}"

    try:
        new, done = apply_fixes(source, fixes)
        return new, done, []
    except FixError as exc:
        if len(fixes) == 1:
            return source, [], [failure(fixes[0], exc)]
    good: List[Fix] = []
    failures: List[Failure] = []
    for fix in fixes:
        try:
            apply_fixes(source, [fix])
        except FixError as exc:
            failures.append(failure(fix, exc))
            continue
        good.append(fix)
    if not good:
        return source, [], failures
    try:
        new, done = apply_fixes(source, good)
    except FixError as exc:  # each compiles alone, not together: one this round, the rest next
        new, done = apply_fixes(source, good[:1])
        failures.append((None, str(exc)))
    return new, done, failures


# --------------------------------------------------------------------------- rounds


Linter = Callable[[str], List[Finding]]


_last_lines: List[object] = [None, []]  # (text, its physical lines): one split per text, not per finding


def _lines_of(source: str) -> List[str]:
    if _last_lines[0] is not source:
        _last_lines[:] = [source, physical_lines(source)]
    return _last_lines[1]  # type: ignore[return-value]


def _signature(finding: Finding, source: str) -> tuple:
    """What identifies a finding across rounds, whose edits move lines: its code, message
    (without numbers) and fix, and the text of the fix's target."""
    fix = finding.fix
    target = ""
    if fix is not None:
        (line, column), (end_line, end_column) = fix.target
        lines = _lines_of(source)
        if 1 <= line <= end_line <= len(lines):
            chunk = "".join(lines[line - 1:end_line]).encode("utf-8")
            last = len("".join(lines[line - 1:end_line - 1]).encode("utf-8"))
            target = chunk[column:last + end_column].decode("utf-8", "ignore")
    return (finding.code, re.sub(r"\d+", "#", finding.message),
            fix.kind if fix else None, fix.text if fix else None, " ".join(target.split()))


def _wanted(finding: Finding, unsafe: bool) -> bool:
    return finding.fix is not None and finding.fix.kind in KINDS and (
        unsafe or is_safe_fix(finding))


@dataclass
class TextFix:
    """The outcome of fixing one module's text."""

    source: str  # the fixed text (the input when nothing changed)
    fixed: int = 0  # findings of the input that are gone from ``source``
    remaining: List[Finding] = field(default_factory=list)  # findings left in ``source``
    unresolved: int = 0  # fixes applied whose finding is still reported
    problem: Optional[str] = None  # why fixing stopped early, if it did
    initial: List[Finding] = field(default_factory=list)  # the findings before any fix


def _rounds(source: str, findings: List[Finding], lint: Linter, unsafe: bool,
            codes: Optional[Set[str]] = None, max_rounds: int = MAX_ROUNDS) -> TextFix:
    """Apply fixes in rounds (``ROUNDS``), linting again after each, until none is left to try.

    A finding whose fix was applied (or failed) is not tried again in a later round, even if it
    is still reported: a second wrap or ``.detach()`` would not help.
    """
    current = source
    first_findings = list(findings)
    initial = Counter(_signature(f, source) for f in findings)
    attempted: Set[tuple] = set()
    applied: List[tuple] = []
    problems: List[str] = []
    rank = {kind: number for number, kinds in enumerate(ROUNDS) for kind in kinds}
    for _ in range(max_rounds):
        candidates = [f for f in findings if _wanted(f, unsafe)
                      and (codes is None or f.code in codes)
                      and _signature(f, current) not in attempted]
        if not candidates:
            break
        first = min(rank[f.fix.kind] for f in candidates)
        batch = [f for f in candidates if rank[f.fix.kind] == first]
        new, done, failures = _apply_checked(current, [f.fix for f in batch])
        problems.extend(message for fix, message in failures if fix is not None)
        failed = {fix for fix, _ in failures}
        done_set = set(done)
        for finding in batch:
            signature = _signature(finding, current)
            if finding.fix in done_set:
                applied.append(signature)
                attempted.add(signature)
            elif finding.fix in failed or not done:  # broken, or nothing could be placed
                attempted.add(signature)
        if new != current:
            current = new
            findings = lint(current)
    left = Counter(_signature(f, current) for f in findings)
    unresolved = sum(1 for signature in set(applied) if left[signature])
    fixed = 0 if current == source else sum((initial - left).values())
    problem = "; ".join(dict.fromkeys(problems)) or None
    return TextFix(current, fixed, findings, unresolved, problem, first_findings)


def _newline_free(source: str) -> Tuple[str, bool]:
    """``source`` with CRLF line endings turned into LF when every line ends in CRLF."""
    if "\r\n" in source and "\n" not in source.replace("\r\n", ""):
        return source.replace("\r\n", "\n"), True
    return source, False


def fix_source(source: str, findings: Iterable[Finding], unsafe: bool = False, *,
               filename: str = "<string>", config: Optional[Config] = None) -> str:
    """Apply the fixes of ``findings`` (linted on ``source``) and return the new text.

    Unsafe fixes are skipped unless ``unsafe``. Fixes go in rounds (calls, then wraps and
    decorators, then inserted statements, then ``.detach()`` / ``.item()``); between rounds the
    module is linted again (``config``, ``# noqa``) and only codes among ``findings`` are
    fixed further. Raises nothing: a fix that would not compile is left out.
    """
    findings = list(findings)
    config = config or DEFAULT_CONFIG
    text, crlf = _newline_free(source)
    codes = {f.code for f in findings}
    outcome = _rounds(text, findings, _linter(filename, config), unsafe, codes)
    result = outcome.source
    if result == text:
        return source
    return result.replace("\n", "\r\n") if crlf else result


def _linter(filename: str, config: Config, errors: Optional[List[str]] = None) -> Linter:
    from .engine import lint_source

    def on_error(name: str, where: str, error: BaseException) -> None:
        if errors is not None:
            errors.append(f"in {where}: {type(error).__name__}: {error}")

    def lint(source: str) -> List[Finding]:
        noqa = NoqaIndex(source)
        if noqa.file_skipped():
            return []
        findings = lint_source(source, filename, config, on_error)
        return reported(findings, noqa, config)

    return lint


def fix_text(source: str, filename: str = "<string>", config: Optional[Config] = None,
             unsafe: bool = False) -> TextFix:
    """Lint ``source`` (selection and ``# noqa`` applied as ``check`` does) and fix it."""
    config = config or DEFAULT_CONFIG
    text, crlf = _newline_free(source)
    errors: List[str] = []
    lint = _linter(filename, config, errors)
    outcome = _rounds(text, lint(text), lint, unsafe)
    if outcome.source == text:
        outcome.source = source
    elif crlf:
        outcome.source = outcome.source.replace("\n", "\r\n")
    if errors and outcome.problem is None:
        outcome.problem = "internal error " + "; ".join(dict.fromkeys(errors))
    return outcome


# --------------------------------------------------------------------------- files


@dataclass
class FixResult:
    """What ``fix_file`` did to one file."""

    path: str
    fixed: int = 0  # findings fixed (or, with diff_only, that would be)
    remaining: List[Finding] = field(default_factory=list)
    changed: bool = False  # the fixed code differs from the file's
    written: bool = False
    diff: str = ""  # unified diff of the change (computed with diff_only)
    problem: Optional[str] = None  # why the file was not (fully) fixed
    error: bool = False  # the problem is an error (exit status 2), not a skipped file
    unresolved: int = 0
    lines: Dict[int, str] = field(default_factory=dict)  # non-ASCII lines with a remaining finding


def unified_diff(path: str, old: str, new: str) -> str:
    name = path.replace(os.sep, "/")
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                 fromfile=f"a/{name}", tofile=f"b/{name}")
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def fix_file(path: str, config: Optional[Config] = None, unsafe: bool = False,
             diff_only: bool = False) -> FixResult:
    """Fix the file at ``path`` in place (or, with ``diff_only``, only compute the diff)."""
    config = config or DEFAULT_CONFIG
    result = FixResult(path)
    try:
        before = os.stat(path)
        data = read_bytes(path)
    except SourceError as exc:  # not a regular file, too big, unreadable
        result.problem = f"cannot fix: {exc.reason}"
        return result
    except OSError as exc:
        result.problem = f"cannot fix: {exc.strerror or exc}"
        return result
    from .rules.tgl001_file_not_analysed import finding as unanalysable

    try:
        source = decode_source(data, path)
    except SourceError as exc:
        result.problem = f"cannot fix: {exc.reason}"
        result.remaining = [unanalysable(exc.reason)] if config.wants("TGL001") else []
        return result

    tree, reason = parse_module(source, path)
    if tree is None:
        result.problem = f"cannot fix: {reason}"
        if config.wants("TGL001"):
            result.remaining = [unanalysable(reason, *syntax_error_position(source, path))]
            result.lines = non_ascii_lines(source, result.remaining)
        return result
    try:
        outcome = fix_text(source, path, config, unsafe)
    except Exception as exc:  # noqa: BLE001 -- report, never break the run or the file
        result.problem = f"internal error while fixing: {type(exc).__name__}: {exc} " \
                         "(please report it)"
        result.error = True
        return result
    result.fixed = outcome.fixed
    result.remaining = outcome.remaining
    result.lines = non_ascii_lines(outcome.source, outcome.remaining)
    result.unresolved = outcome.unresolved

    def unchanged(problem: str) -> FixResult:
        result.problem = problem
        result.error = True
        result.fixed = 0
        result.remaining = outcome.initial
        result.lines = non_ascii_lines(source, outcome.initial)
        return result

    if outcome.problem:
        result.problem = f"internal error: {outcome.problem} (please report it)"
        result.error = True
    new = outcome.source
    if new == source:
        result.fixed = 0
        return result
    problem = _compiles(new)
    if problem is not None:  # apply_fixes checks it already; never write broken code
        return unchanged(f"internal error: the fixed code would not compile ({problem}); "
                         "left unchanged (please report it)")
    result.changed = True
    if diff_only:
        result.diff = unified_diff(path, source, new)
        return result
    try:
        encoded = encode_source(new, data)
    except UnicodeEncodeError as exc:
        return unchanged(f"cannot fix: the fixed code cannot be encoded as {exc.encoding}; "
                         "left unchanged")
    if is_read_only(path, before.st_mode):
        return unchanged("cannot fix: the file is read-only; left unchanged")
    failure = write_atomically(path, encoded, data, before)
    if failure is not None:
        return unchanged(f"cannot fix: {failure}")
    result.written = True
    return result
