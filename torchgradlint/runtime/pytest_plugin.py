"""pytest plugin: ``pytest --tgl-runtime`` runs every test under torchgradlint's runtime monitor.

Registered through the ``pytest11`` entry point ``torchgradlint`` (disable it with
``-p no:torchgradlint``); without the entry point, load it with
``-p torchgradlint.runtime.pytest_plugin``. Without ``--tgl-runtime`` it only adds its options
and the ``tgl_runtime`` marker: torch is imported when the flag is given, never otherwise, so
installing torchgradlint changes nothing for test runs that do not ask for the monitor.

With the flag, each test's setup (its fixtures) and call run inside one
:func:`torchgradlint.runtime.watch`; a finding not allowed by the ignore list fails the test with
a report of ``path:line: CODE message`` lines. A test that fails on its own keeps its failure,
and the findings are attached as a report section. Allow-lists (see
:class:`torchgradlint.runtime.IgnoreList` for the patterns; paths are relative to pytest's
rootdir):

- ``--tgl-runtime-ignore=TGL101,tests/legacy/*`` (repeatable);
- ini option ``tgl_runtime_ignore`` (one or more lines of patterns);
- ``@pytest.mark.tgl_runtime(ignore=["TGL201"])`` on a test, class or module (``pytestmark``);
  ``@pytest.mark.tgl_runtime(off=True)`` runs the test unwatched (needed by tests that call
  ``watch()`` themselves: watches do not nest).

User guide: docs/runtime.md.
"""

from __future__ import annotations

import linecache
import os
from typing import List, Optional, Tuple

import pytest

from . import IgnoreList, RuntimeFinding, Watch

_MARKER = "tgl_runtime"
_MARKER_HELP = (f"{_MARKER}(ignore=[...], off=False): torchgradlint runtime monitor settings for "
                "this test under --tgl-runtime: findings to allow (codes, path globs, path:line), "
                "or off=True to run it unwatched")
_PATTERN_HELP = ("codes or prefixes (TGL101, TGL3), path globs (tests/legacy/*), path:line, "
                 "path:CODE or path:line:CODE; paths relative to the rootdir")


def pytest_addoption(parser):
    group = parser.getgroup("torchgradlint", "torchgradlint runtime monitor")
    group.addoption(
        "--tgl-runtime", action="store_true", default=False, dest="tgl_runtime",
        help="run each test under torchgradlint's runtime monitor (imports torch) and fail the "
             "tests whose run shows autograd/train-mode bugs (TGL codes)")
    group.addoption(
        "--tgl-runtime-ignore", action="append", default=[], dest="tgl_runtime_ignore",
        metavar="PATTERNS",
        help=f"comma-separated findings to allow under --tgl-runtime: {_PATTERN_HELP}")
    parser.addini(
        "tgl_runtime_ignore", type="linelist", default=[],
        help=f"findings to allow under --tgl-runtime (comma/space/line separated): {_PATTERN_HELP}")


def pytest_configure(config):
    config.addinivalue_line("markers", _MARKER_HELP)
    if not config.getoption("tgl_runtime", False):
        return
    try:
        import torch  # noqa: F401  (the monitor needs it; fail early with a clear message)

        from . import monitor  # noqa: F401
    except ImportError as exc:
        raise pytest.UsageError(f"--tgl-runtime needs PyTorch, which cannot be imported: {exc}")
    patterns = list(config.getini("tgl_runtime_ignore"))
    patterns += list(config.getoption("tgl_runtime_ignore") or [])
    try:
        ignore = IgnoreList(patterns, root=str(config.rootpath))
    except ValueError as exc:
        raise pytest.UsageError(f"--tgl-runtime-ignore / tgl_runtime_ignore: {exc}") from None
    config.stash[_STATE] = _State(ignore, str(config.rootpath))


def pytest_unconfigure(config):
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.stop()


class _State:
    """The plugin's state for one pytest run with ``--tgl-runtime``."""

    def __init__(self, ignore: IgnoreList, root: str):
        self.ignore = ignore
        self.root = os.path.realpath(root)
        self.watch: Optional[Watch] = None
        self.item_ignore: Optional[IgnoreList] = None
        self.watched = 0
        self.failed = 0
        self.found = 0
        self.allowed = 0

    def start(self, off: bool, patterns: List[str]) -> None:
        self.stop()
        if off:
            return
        try:
            self.item_ignore = IgnoreList(patterns, root=self.root)
        except ValueError as exc:
            pytest.fail(f"@pytest.mark.{_MARKER}(ignore=...): {exc}", pytrace=False)
        watch = Watch()
        watch.__enter__()  # raises if another watch is active (it is left alone)
        self.watch = watch

    def stop(self) -> Optional[Tuple[List[RuntimeFinding], list, List[str]]]:
        """End the current watch: ``(findings, allowed, monitor errors)``, or None."""
        watch, self.watch = self.watch, None
        if watch is None:
            return None
        watch.__exit__(None, None, None)
        report = watch.report
        kept, allowed = self.ignore.split(report.findings)
        if self.item_ignore:
            kept, more = self.item_ignore.split(kept)
            allowed += more
        return kept, allowed, list(report.monitor_errors)

    def format(self, findings: List[RuntimeFinding]) -> str:
        codes = sorted({f.code for f in findings})
        lines = [f"torchgradlint runtime monitor: {_n(len(findings), 'finding')} "
                 f"({', '.join(codes)})"]
        for finding in findings:
            lines.append(f"{self.relative(finding.filename)}:{finding.line}: {finding.code} "
                         f"{finding.message}")
            source = linecache.getline(finding.filename, finding.line).strip()
            if source:
                lines.append(f"    {source}")
        example = ", ".join(f'"{c}"' for c in codes)
        lines.append("")
        lines.append(f"(to allow: --tgl-runtime-ignore={','.join(codes)} or path:line, the ini "
                     f"option tgl_runtime_ignore, or @pytest.mark.{_MARKER}(ignore=[{example}]))")
        return "\n".join(lines)

    def relative(self, filename: str) -> str:
        real = os.path.realpath(filename)
        try:
            rel = os.path.relpath(real, self.root)
        except ValueError:
            return real
        return real if rel.startswith(os.pardir) else rel


_STATE = pytest.StashKey[_State]()


def _marker_settings(item) -> Tuple[bool, List[str]]:
    """``(off, ignore patterns)`` from the ``tgl_runtime`` markers of ``item``, closest first:
    the closest marker that says ``off=`` decides; ``ignore=`` patterns add up."""
    off = None
    patterns: List[str] = []
    for mark in item.iter_markers(_MARKER):
        unknown = sorted(set(mark.kwargs) - {"ignore", "off"})
        if mark.args or unknown:
            pytest.fail(f"@pytest.mark.{_MARKER} takes the keyword arguments ignore=[...] and "
                        f"off=True/False only (got {mark.args!r} {unknown!r})", pytrace=False)
        if off is None and "off" in mark.kwargs:
            off = bool(mark.kwargs["off"])
        ignore = mark.kwargs.get("ignore", ())
        patterns.extend([ignore] if isinstance(ignore, str) else list(ignore))
    return bool(off), patterns


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    state = item.config.stash.get(_STATE, None)
    if state is None:
        return (yield)
    error = None
    try:
        state.start(*_marker_settings(item))
    except (Exception, pytest.fail.Exception) as exc:
        # a bad marker, a watch left open by the suite: raised after the other setup hooks ran
        # (teardown expects them to have run)
        error = exc
    try:
        result = yield
    except BaseException:
        state.stop()  # setup failed or skipped: the test does not run; drop what was seen
        raise
    if error is not None:
        raise error
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    state = item.config.stash.get(_STATE, None)
    if state is None or state.watch is None:
        return (yield)
    try:
        result = yield
    except BaseException as exc:
        outcome = state.stop()
        if outcome is not None:
            _attach(item, state, outcome)
        if isinstance(exc, RuntimeError) and "cannot be nested" in str(exc):
            item.add_report_section("call", "torchgradlint", (
                "this test starts its own torchgradlint.runtime.watch() while --tgl-runtime "
                f"watches it; mark it @pytest.mark.{_MARKER}(off=True)"))
        raise
    outcome = state.stop()
    if outcome is not None:
        findings = _attach(item, state, outcome, report_findings=False)
        if findings:
            state.failed += 1
            pytest.fail(state.format(findings), pytrace=False)
    return result


def _attach(item, state: _State, outcome, report_findings: bool = True):
    findings, allowed, errors = outcome
    state.watched += 1
    state.found += len(findings)
    state.allowed += len(allowed)
    if findings and report_findings:
        item.add_report_section("call", "torchgradlint", state.format(findings))
    if errors:
        item.add_report_section("call", "torchgradlint monitor errors", "\n".join(errors))
    return findings


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    state = item.config.stash.get(_STATE, None)
    if state is not None:
        state.stop()  # the call did not run (e.g. --setup-only): end the watch unreported


def pytest_report_header(config):
    state = config.stash.get(_STATE, None)
    if state is not None:
        allowed = ", ".join(state.ignore.patterns) or "nothing"
        return f"torchgradlint runtime monitor: on (allowed: {allowed})"
    return None


def pytest_terminal_summary(terminalreporter, config):
    state = config.stash.get(_STATE, None)
    if state is None or not state.watched:
        return
    terminalreporter.write_sep("-", "torchgradlint runtime monitor")
    terminalreporter.write_line(
        f"{_n(state.watched, 'test')} watched, {state.failed} failed because of findings; "
        f"{_n(state.found, 'finding')} reported, {state.allowed} allowed by the ignore lists")


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
