"""torchgradlint's runtime monitor: watch real PyTorch code and report the symptoms of its bugs.

This subpackage imports torch; the linter proper never imports it.

>>> from torchgradlint.runtime import watch, run_path
>>> with watch() as report:                     # doctest: +SKIP
...     train_one_epoch(model, loader, optimizer)
>>> report.findings                             # doctest: +SKIP
[RuntimeFinding(code='TGL201', filename='.../train.py', line=42, message='forward of Net ...')]
>>> run_path("fixtures/TGL101/bad_eval_loop.py").codes()   # doctest: +SKIP
[(12, 'TGL101')]

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
import os
import sys
import traceback
import types
from typing import Iterable, Optional, Union

import torch

from .findings import RuntimeFinding, RuntimeReport
from .monitor import Monitor

__all__ = ["RuntimeFinding", "RuntimeReport", "Watch", "watch", "run_path"]

PathLike = Union[str, "os.PathLike[str]"]


class Watch:
    """Context manager returned by :func:`watch`; ``__enter__`` returns the (empty) report,
    which is filled when the block ends. Watches cannot be nested."""

    def __init__(self, paths: Optional[Iterable[PathLike]] = None):
        self._paths = None if paths is None else [os.fspath(p) for p in paths]
        self.report = RuntimeReport()
        self._monitor: Optional[Monitor] = None

    def __enter__(self) -> RuntimeReport:
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


_CM_PROTOCOL = ("context manager protocol", "__enter__", "is not a context manager")


def run_path(path: PathLike, argv: Optional[list] = None) -> RuntimeReport:
    """Run the script at ``path`` as ``__main__`` under ``watch(paths=[path])``.

    Never raises for the script's own exceptions: an uncaught exception ends the run and is
    stored in ``report.error``/``report.error_type``; a context-manager-protocol TypeError at a
    ``with`` statement becomes TGL103, and a "does not require grad" RuntimeError TGL102 (at the
    script's innermost line). The grad mode, ``sys.argv``, ``sys.path`` and ``sys.modules
    ['__main__']`` are restored afterwards, and the script's globals are cleared.
    """
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
    context = watch(paths=[path])
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
