"""torchgradlint's runtime monitor: watch real PyTorch code and report the symptoms of its bugs.

This subpackage uses torch; the linter proper never imports it. torch is imported when a watch
starts (``watch()``, ``@watched``, ``run_path``), not when the package is imported, so that the
pytest plugin (``torchgradlint.runtime.pytest_plugin``) can be loaded by every pytest run without
torch. User guide: docs/runtime.md.

>>> from torchgradlint.runtime import watch, run_path
>>> with watch() as report:                     # doctest: +SKIP
...     train_one_epoch(model, loader, optimizer)
>>> report.findings                             # doctest: +SKIP
[RuntimeFinding(code='TGL201', filename='.../train.py', line=42, message='forward of Net ...')]
>>> run_path("fixtures/TGL101/bad_eval_loop.py").codes()   # doctest: +SKIP
[(12, 'TGL101')]
>>> @watched(on_finding="warn")                 # doctest: +SKIP
... def evaluate(model, loader): ...

Each finding is reported at the *call site* of the event that shows the symptom: the innermost
stack frame that belongs to a watched file (``paths``; by default any file outside torch,
torchgradlint, the standard library and site-packages). What each code observes:

TGL101  a top-level forward of a model with parameters ran with autograd on, its output had a
        graph, and no backward pass (``.backward()`` / ``torch.autograd.grad``) ever went through
        that output by the end of the watch. Line: the forward call.
TGL102  ``.backward()`` / ``autograd.grad`` of a tensor that does not require grad (built under
        ``no_grad``/``inference_mode``; torch raises). Line: the backward call. Also an optimizer
        step whose parameters received no gradient while every backward since its previous step
        had a graphless loss. Line: the step call.
TGL103  (``run_path`` only) an uncaught TypeError about the context manager protocol raised at a
        ``with`` statement of the script (``with torch.no_grad:``). Line: the ``with``.
TGL201  a top-level forward of a model that has an active Dropout (p > 0) or BatchNorm submodule
        in training mode, whose output never reached a backward pass. Line: the forward call.
TGL202  a top-level forward whose output reached a backward pass followed by an optimizer step
        updating that model, with a Dropout/BatchNorm submodule in eval mode that an earlier
        trained forward of the same model ran in training mode. Line: the forward call.
TGL301  a backward pass wrote gradients into a model that the optimizer steps following it (all
        steps before the next backward) do not update, while also writing into a model they do
        update, and that model's input did not derive from a model those steps update. Line:
        the forward of the updated model that consumed its output (``netD(fake)``), else the
        forward of that model itself (target network, teacher). Also a "backward through the
        graph a second time" error caused by a graph an earlier backward consumed (same lines).
TGL302  the graph of a forward stayed alive while two more forwards ran at the same call (same
        call path through user code) after it reached backward, or, never reaching backward,
        while two more forwards ran there (so a loop needs three iterations). Line: where the
        live tensor keeping it is held: ``name.append(...)``/``name[k] = ...``/``name += ...``
        when it sits in a list/dict bound to a name of a running user frame; else the line whose
        tensor operation created its autograd node (``total += loss``), taken in the frame of
        the forward's loop (a helper ``meter.update(loss)`` is reported at its call); else the
        forward call (e.g. a hidden state ``h = rnn(x, h)`` never detached).
TGL303  an optimizer step none of whose parameters received a gradient (observed with
        post-accumulate-grad hooks) since its previous step. Line: the step call.

Not reported as TGL101/TGL201 (the unused graph is another bug's symptom, or deliberate): the
forwards of a model whose optimizer had a TGL303 step; graphless forwards followed by a TGL102
backward; forwards whose output (or a value derived from it) user code ``.detach()``-ed, when an
optimizer step ran before the next forward at the same call (a target network inside training).
"""

from __future__ import annotations

import builtins
import fnmatch
import functools
import inspect
import os
import re
import sys
import traceback
import types
import warnings
from typing import TYPE_CHECKING, Callable, Iterable, List, Optional, Union

from .findings import RuntimeFinding, RuntimeReport

if TYPE_CHECKING:
    from .monitor import Monitor

__all__ = ["RuntimeFinding", "RuntimeReport", "Watch", "watch", "run_path", "watched",
           "FindingsError", "RuntimeFindingWarning", "IgnoreList"]

PathLike = Union[str, "os.PathLike[str]"]


def __getattr__(name):
    # ``torchgradlint.runtime.Monitor`` stays available without importing torch at package import
    if name == "Monitor":
        from .monitor import Monitor

        return Monitor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Watch:
    """Context manager returned by :func:`watch`; ``__enter__`` returns the (empty) report,
    which is filled when the block ends. Watches cannot be nested."""

    def __init__(self, paths: Optional[Iterable[PathLike]] = None):
        self._paths = None if paths is None else [os.fspath(p) for p in paths]
        self.report = RuntimeReport()
        self._monitor: Optional[Monitor] = None

    def __enter__(self) -> RuntimeReport:
        from .monitor import Monitor

        self._monitor = Monitor(self._paths)
        self._monitor.start()
        return self.report

    def __exit__(self, exc_type, exc, tb) -> bool:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop(self.report)
        return False


def watch(paths: Optional[Iterable[PathLike]] = None) -> Watch:
    """Observe the PyTorch code run inside the ``with`` block.

    ``paths``: source files whose lines findings are attributed to; default: any file outside
    torch, torchgradlint, the standard library and site-packages.
    """
    return Watch(paths)


# ---------------------------------------------------------------------------- allow-list

_CODE = re.compile(r"TGL\d{0,3}", re.IGNORECASE)


def _known_code(code: str) -> str:
    """``code`` upper-cased, when it is a rule's code or a prefix of one (else ValueError)."""
    from ..rules import RULES

    code = code.upper()
    if not any(rule.code.startswith(code) for rule in RULES):
        raise ValueError(f"unknown rule code or prefix '{code}' "
                         "(run `torchgradlint rules` for the list)")
    return code


class IgnoreList:
    """An allow-list of findings, shared by :func:`watched` and the pytest plugin.

    Each pattern is one of (patterns given as strings may be separated by commas/whitespace):

    - a code or code prefix: ``TGL101``, ``TGL3`` (every TGL3xx);
    - a path glob: ``tests/legacy/*``, ``*_slow.py`` — matched against the path relative to
      ``root`` (default: the current directory) and the absolute path, with ``/`` separators; a
      pattern without ``/`` also matches the file name alone; a directory matches its contents;
    - ``glob:LINE`` (``tests/test_eval.py:42``), ``glob:CODE`` (``tests/legacy/*:TGL201``) and
      ``glob:LINE:CODE``.
    """

    def __init__(self, patterns: Iterable[str] = (), root: Optional[PathLike] = None):
        """Raises ValueError for a code or prefix no rule has (``TGL109``), as the linter's
        ``--select`` / ``--ignore`` do: a typo must not silently allow nothing."""
        self.root = os.path.realpath(os.fspath(root) if root is not None else os.getcwd())
        self.patterns: List[str] = []
        self._rules: List[tuple] = []
        for item in patterns:
            for pattern in re.split(r"[,\s]+", str(item)):
                if pattern:
                    self.patterns.append(pattern)
                    self._rules.append(self._parse(pattern))

    @staticmethod
    def _parse(pattern: str) -> tuple:
        """``(path glob or None, line or None, code prefix or None)``."""
        if _CODE.fullmatch(pattern):
            return (None, None, _known_code(pattern))
        parts = pattern.split(":")
        code = line = None
        if len(parts) > 1 and _CODE.fullmatch(parts[-1]):
            code = _known_code(parts.pop())
        if len(parts) > 1 and parts[-1].isdigit():
            line = int(parts.pop())
        glob = ":".join(parts).replace(os.sep, "/").rstrip("/")
        return (glob or "*", line, code)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __repr__(self) -> str:
        return f"IgnoreList({self.patterns!r}, root={self.root!r})"

    def matches(self, finding: RuntimeFinding) -> bool:
        """Whether ``finding`` is allowed (to be ignored)."""
        names = None
        for glob, line, code in self._rules:
            if code is not None and not finding.code.upper().startswith(code):
                continue
            if line is not None and finding.line != line:
                continue
            if glob is None:
                return True
            if names is None:
                names = self._names(finding.filename)
            candidates = names if "/" in glob else names + [names[0].rsplit("/", 1)[-1]]
            if any(fnmatch.fnmatch(name, glob) or fnmatch.fnmatch(name, glob + "/*")
                   for name in candidates):
                return True
        return False

    def _names(self, filename: str) -> List[str]:
        real = os.path.realpath(filename)
        names = [real.replace(os.sep, "/")]
        try:
            rel = os.path.relpath(real, self.root)
        except ValueError:  # another drive (Windows)
            rel = None
        if rel is not None and not rel.startswith(os.pardir):
            names.insert(0, rel.replace(os.sep, "/"))
        return names

    def split(self, findings: Iterable[RuntimeFinding]):
        """``(kept, ignored)`` lists of ``findings``."""
        kept, ignored = [], []
        for finding in findings:
            (ignored if self.matches(finding) else kept).append(finding)
        return kept, ignored


# ---------------------------------------------------------------------------- decorator form

class FindingsError(Exception):
    """Raised by a ``@watched`` function (``on_finding="raise"``) whose call showed findings.

    ``report`` is the call's :class:`RuntimeReport`; ``findings`` its (non-ignored) findings.
    """

    def __init__(self, report: RuntimeReport, where: str = ""):
        self.report = report
        self.findings = list(report.findings)
        count = len(self.findings)
        lines = [f"torchgradlint runtime monitor: {count} finding{'s' if count != 1 else ''}"
                 + (f" in {where}" if where else "")]
        lines.extend(f"  {finding.format()}" for finding in self.findings)
        super().__init__("\n".join(lines))


class RuntimeFindingWarning(UserWarning):
    """Issued by a ``@watched(on_finding="warn")`` function, one per finding, at its line."""


_ON_FINDING = ("raise", "warn", "record")


def watched(func: Optional[Callable] = None, *, on_finding: str = "raise",
            ignore: Iterable[str] = (), paths: Optional[Iterable[PathLike]] = None):
    """Decorator: run every call of the decorated function under its own :func:`watch`.

    ``@watched`` or ``@watched(on_finding=..., ignore=..., paths=...)``. After each call the
    call's report (findings not matched by ``ignore``, see :class:`IgnoreList`; paths relative to
    the current directory) is stored in ``wrapper.last_report``, and if it has findings:

    - ``on_finding="raise"`` (default): raise :class:`FindingsError` (its ``report`` attribute
      holds the report; the function's return value is lost);
    - ``"warn"``: issue one :class:`RuntimeFindingWarning` per finding, attributed to the
      finding's file and line, and return the result;
    - ``"record"``: only store the report.

    When the function raises, its exception propagates unchanged (findings are only stored).
    Called while another watch is active (an enclosing ``watch()``, another ``@watched``
    function, or a test run with ``pytest --tgl-runtime``), it runs unwatched and its events
    belong to the enclosing watch; ``last_report`` is then ``None``. Generator and coroutine
    functions are rejected (their body runs after the call returns).
    """
    if on_finding not in _ON_FINDING:
        raise ValueError(f"on_finding must be one of {_ON_FINDING}, not {on_finding!r}")
    ignore_patterns = [ignore] if isinstance(ignore, str) else list(ignore)
    IgnoreList(ignore_patterns)  # an unknown code is an error now, not at the first call

    def decorate(fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn) or \
                inspect.isasyncgenfunction(fn):
            raise TypeError("@watched supports plain functions only, not generator or "
                            f"coroutine functions ({fn.__qualname__})")

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from . import monitor as _monitor

            if _monitor._active_monitor is not None:  # inside another watch: it observes
                wrapper.last_report = None
                return fn(*args, **kwargs)
            context = Watch(paths)
            try:
                with context:
                    result = fn(*args, **kwargs)  # an exception skips the checks below
            finally:
                report = context.report
                report.findings, _ = IgnoreList(ignore_patterns).split(report.findings)
                wrapper.last_report = report
            kept = report.findings
            if kept and on_finding == "raise":
                raise FindingsError(report, f"{fn.__qualname__}()")
            if kept and on_finding == "warn":
                for finding in kept:
                    warnings.warn_explicit(f"{finding.code} {finding.message}",
                                           RuntimeFindingWarning, finding.filename, finding.line)
            return result

        wrapper.last_report = None
        return wrapper

    return decorate if func is None else decorate(func)


_CM_PROTOCOL = ("context manager protocol", "__enter__", "is not a context manager")


def run_path(path: PathLike, argv: Optional[list] = None, *,
             user_code: bool = False) -> RuntimeReport:
    """Run the script at ``path`` as ``__main__`` under ``watch(paths=[path])`` -- with
    ``user_code``, under ``watch()``: findings in the project modules it imports are reported
    where they happen too. ``argv``: the script's arguments (``sys.argv[1:]``).

    Never raises for the script's own exceptions: an uncaught exception ends the run and is
    stored in ``report.error``/``report.error_type``; a context-manager-protocol TypeError at a
    ``with`` statement becomes TGL103, and a "does not require grad" RuntimeError TGL102 (at the
    script's innermost line). The grad mode, ``sys.argv``, ``sys.path`` and ``sys.modules
    ['__main__']`` are restored afterwards, and the script's globals are cleared.
    """
    import torch

    path = os.path.realpath(os.fspath(path))
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    code = compile(source, path, "exec")
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = builtins
    saved = (sys.modules.get("__main__"), sys.argv, list(sys.path), torch.is_grad_enabled())
    sys.modules["__main__"] = module
    sys.argv = [path] + list(argv or [])
    sys.path.insert(0, os.path.dirname(path))
    context = watch(paths=None if user_code else [path])
    try:
        with context as report:
            try:
                exec(code, module.__dict__)
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    report.error_type = "SystemExit"
                    report.error = f"SystemExit: {exc.code}"
            except Exception as exc:  # the fixture's own exception: record it
                _record_error(report, exc, path, source)
                traceback.clear_frames(exc.__traceback__)
                del exc
    finally:
        if saved[0] is not None:
            sys.modules["__main__"] = saved[0]
        sys.argv, sys.path[:] = saved[1], saved[2]
        torch.set_grad_enabled(saved[3])
        module.__dict__.clear()
    return context.report


def _record_error(report: RuntimeReport, exc: BaseException, path: str, source: str) -> None:
    report.error_type = type(exc).__name__
    report.error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if os.path.realpath(frame.f_code.co_filename) == path:
            line = lineno
    if line is None:
        return
    text = str(exc)
    if isinstance(exc, (TypeError, AttributeError)) and any(s in text for s in _CM_PROTOCOL):
        if _is_with_line(source, line):
            report.findings.append(RuntimeFinding(
                "TGL103", path, line, f"'with' on an object that is not a context manager "
                f"({text}); call it: torch.no_grad()"))
    elif isinstance(exc, RuntimeError) and "does not require grad" in text:
        report.findings.append(RuntimeFinding(
            "TGL102", path, line, "backward of a tensor with no autograd graph (computed with "
            "autograd disabled?)"))


def _is_with_line(source: str, line: int) -> bool:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            if node.lineno == line:
                return True
            for item in node.items:
                expr = item.context_expr
                if expr.lineno <= line <= (expr.end_lineno or expr.lineno):
                    return True
    return False
