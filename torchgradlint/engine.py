"""Lint one file: screen, build the semantic model once, run every rule.

The analysis works on Python's ``ast`` -- the tree flake8 has already parsed and hands to
plugins -- so the plugin adds no parse of its own. libcst is used where formatting must
survive: the fixes.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import sys
from typing import Callable, Iterator, List, Optional

from .config import DEFAULT_CONFIG, Config
from .findings import Finding
from .screen import may_contain_findings
from .sourcefile import parse_module

# What to do with an internal error in one rule: by default report it on stderr once per file.
ErrorHook = Callable[[str, str, BaseException], None]
# Told (filename, why) when a file is too deep or too big to analyse: it gets no findings.
SkipHook = Callable[[str, str], None]
TOO_DEEP = "nested deeper than the analysis goes (Python's recursion limit)"


def _report_internal_error(filename: str, where: str, error: BaseException) -> None:
    print(f"torchgradlint: internal error in {where} on {filename}: {type(error).__name__}: {error}"
          " (please report it)", file=sys.stderr)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for one file's analysis.

    The analysis allocates many small, long-lived objects (the model of a file lives until its
    rules have run), and every few hundred allocations the collector would traverse them again,
    for nothing (7 % of the analysis time on the corpus sample, more on large files). The model
    is taken apart once its rules have run (``SemanticModel.release``): reference counting frees
    it, and what little is left is collected after the file, when the collector runs again; the
    peak memory of a run grows by about 10 MiB."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def lint_tree(tree: ast.Module, source: str, filename: str = "<string>",
              config: Optional[Config] = None, on_error: ErrorHook = _report_internal_error,
              screen: bool = True, on_skip: Optional[SkipHook] = None,
              notes: Optional[list] = None) -> List[Finding]:
    """Findings for an already parsed module. Never raises.

    ``screen``: skip, on a text search, sources that mention none of the words every finding
    needs (a speed path only: the tests check it never changes the findings). ``on_skip``: told
    when the file is too deep or too big to analyse (the flake8 plugin stays silent; the CLI
    says "cannot analyse"). ``notes``: a list to extend with (line, text) notes on what the
    analysis could not follow (models whose mode stays unknown; ``check -v``)."""
    config = config or DEFAULT_CONFIG
    if screen and config.shortcuts and not may_contain_findings(source):
        return []
    on_skip = on_skip or _ignore_skip
    skipped: List[str] = []
    with collector_paused():
        findings = _lint_tree(tree, source, filename, config, on_error,
                              lambda name, why: skipped.append(why), notes)
        if skipped == [TOO_DEEP]:
            # Deep but valid code (a 2,000-branch ``elif`` chain): once more, on a deep stack.
            skipped.clear()
            if notes is not None:
                notes.clear()
            findings = _on_deep_stack(lambda: _lint_tree(
                tree, source, filename, config, on_error, lambda name, why: skipped.append(why),
                notes), fallback=[])
            if findings is None:
                skipped[:] = [TOO_DEEP]
                findings = []
    for why in skipped[:1]:
        on_skip(filename, why)
    return findings


def _ignore_skip(filename: str, reason: str) -> None:
    pass


# The analysis recurses along the nesting of the code (an ``elif`` is an ``if`` nested in the
# ``else`` of the previous one). Python's default limit of 1,000 frames stops it at about 490
# ``elif`` branches, where the parser itself goes to thousands: files that reach the limit are
# analysed again in a thread with a big stack (address space, not memory, until it is used).
DEEP_RECURSION_LIMIT = 25_000
DEEP_STACK_BYTES = 512 * 1024 * 1024


def _on_deep_stack(function: Callable[[], List[Finding]], fallback):
    """``function()`` in a thread with a ``DEEP_STACK_BYTES`` stack and the recursion limit
    raised to ``DEEP_RECURSION_LIMIT``; None when that cannot be done here."""
    import threading

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["findings"] = function()
        except BaseException as error:  # noqa: BLE001 -- handed back to the caller's thread
            outcome["error"] = error

    previous_limit = sys.getrecursionlimit()
    try:
        previous_stack = threading.stack_size(DEEP_STACK_BYTES)
        try:
            thread = threading.Thread(target=run, name="torchgradlint-deep-analysis", daemon=True)
        finally:
            threading.stack_size(previous_stack)
        sys.setrecursionlimit(max(previous_limit, DEEP_RECURSION_LIMIT))
        try:
            thread.start()
            thread.join()
        finally:
            sys.setrecursionlimit(previous_limit)
    except (ValueError, RuntimeError, MemoryError):  # no thread or no such stack here
        return None
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("findings")


def _lint_tree(tree: ast.Module, source: str, filename: str, config: Optional[Config],
               on_error: ErrorHook, on_skip: SkipHook, notes: Optional[list] = None) -> List[Finding]:
    from .semantic import SemanticModel
    from .semantic.model import TooDeepToAnalyse
    from .semantic.names import ImportTable
    from .semantic.torch_api import TORCH_ROOTS

    config = config or DEFAULT_CONFIG
    imports = ImportTable.from_tree(tree)
    project = None
    if not imports.imports_absolute(*TORCH_ROOTS):
        project = _project_for(filename, config) if imports.star_modules else None
        if project is None:
            return []  # only code that uses torch (or a library on it) can hold these bugs
        # ``from utils import *``, where utils imports torch, gives this file torch too.
        imports.add_star_aliases(project.star_aliases(filename, imports.star_modules))
        if not imports.imports_absolute(*TORCH_ROOTS):
            return []
    else:
        project = _project_for(filename, config)
    try:
        analysis = SemanticModel(tree, filename, config, project=project, imports=imports, source=source)
    except (RecursionError, TooDeepToAnalyse):
        on_skip(filename, TOO_DEEP)
        return []
    except MemoryError:
        on_skip(filename, "too big to analyse (out of memory)")
        return []
    except Exception as error:  # noqa: BLE001 -- a linter must never break the run
        on_error(filename, "the semantic model", error)
        return []
    try:
        findings = _findings_of(analysis, filename, config, on_error, on_skip, notes)
    finally:
        analysis.release()
    return sorted(set(findings), key=lambda f: (f.line, f.col, f.code))


def _findings_of(analysis, filename: str, config: Config, on_error: ErrorHook, on_skip: SkipHook,
                 notes: Optional[list]) -> List[Finding]:
    from .rules import checkers
    from .semantic.model import TooDeepToAnalyse

    findings: List[Finding] = []
    for info, check in checkers():
        if not config.wants(info.code):
            continue
        try:
            findings.extend(check(analysis))
        except TooDeepToAnalyse:  # a part of the model built on demand hit the same limit
            on_skip(filename, TOO_DEEP)
            return []
        except Exception as error:  # noqa: BLE001
            on_error(filename, f"rule {info.code}", error)
    if notes is not None:
        from .semantic.unknown import unknown_mode_notes

        try:
            notes.extend(unknown_mode_notes(analysis))
        except (TooDeepToAnalyse, RecursionError):
            pass
        except Exception as error:  # noqa: BLE001
            on_error(filename, "the notes on unknown modes", error)
    return findings


def _project_for(filename: str, config: Config):
    """The project index of a file on disk (None for text that is not a file, or when the
    project view is switched off)."""
    import os

    if not config.project or not filename or filename.startswith("<") or not os.path.isfile(filename):
        return None
    from .project import ProjectIndex

    return ProjectIndex.for_file(filename, config)


def lint_source(source: str, filename: str = "<string>", config: Optional[Config] = None,
                on_error: ErrorHook = _report_internal_error) -> List[Finding]:
    """Findings for one module's source text, sorted by line and column. Never raises; a
    source that does not parse has no findings."""
    config = config or DEFAULT_CONFIG
    if config.shortcuts and not may_contain_findings(source):
        return []
    tree, _ = parse_module(source, filename)
    if tree is None:
        return []
    return lint_tree(tree, source, filename, config, on_error, screen=False)  # screened above


def lint_file(path: str, config: Optional[Config] = None,
              on_error: ErrorHook = _report_internal_error) -> List[Finding]:
    from .sourcefile import SourceError, read_source

    try:
        source = read_source(path)
    except SourceError:
        return []
    return lint_source(source, path, config, on_error)
