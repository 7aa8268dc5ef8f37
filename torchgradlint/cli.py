"""The standalone command line: ``torchgradlint check | fix | rules | explain``.

``check`` reports exactly what the flake8 plugin reports: both run ``engine.lint_source`` on the
file's text, and the CLI then applies the selection and ``# noqa`` comments the way flake8 does.
Exit status: 0 no findings, 1 findings, 2 usage error, configuration error, missing path or
internal error (and, with ``--strict``, a file that could not be read, decoded or parsed).

``fix`` finds the same findings (same discovery, configuration, selection and ``# noqa``) and
applies their fixes with ``torchgradlint.fix``; exit status 0 when no finding remains, 1 when
some remain, 2 on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from . import __version__
from .config import Config
from .discovery import discover, is_excluded, path_sort_key, sorted_paths
from .findings import Finding, RuleInfo
from .noqa import NoqaIndex, reported
from .output import (FORMATS, FORMATTERS, Problem, Report, format_sarif, non_ascii_lines,
                     printable, rule_url)
from .pyproject_config import ConfigError, Options, settings_for, split_list
from .rules import RULES, RULES_BY_CODE
from .sourcefile import SourceError, decode_source, parse_module, read_source, syntax_error_position
from .workers import EXIT_TERMINATED, Terminated

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

STDIN = "-"


# --------------------------------------------------------------------------- analysis


@dataclass
class FileResult:
    path: str
    findings: List[Finding] = field(default_factory=list)
    problem: Optional[Problem] = None
    traceback: Optional[str] = None
    notes: List[Tuple[int, str]] = field(default_factory=list)  # ``-v``: what was not followed
    lines: Dict[int, str] = field(default_factory=dict)  # non-ASCII lines with a finding

    def reports(self) -> List[Report]:
        return [Report(self.path, f, self.lines.get(f.line, "")) for f in self.findings]


def unanalysable_reports(results: Sequence[FileResult], config: Config) -> List[Report]:
    """A TGL001 finding for every file that could not be analysed (not an internal error)."""
    from .rules.tgl001_file_not_analysed import finding

    if not config.wants("TGL001"):
        return []
    return [Report(r.path, finding(r.problem.reason, r.problem.line, r.problem.col),
                   r.lines.get(r.problem.line, ""))
            for r in results if r.problem is not None and not r.problem.internal]


def analyse_source(source: str, path: str, config: Config, notes: bool = False) -> FileResult:
    """Findings for one file's text, after selection and ``# noqa``; never raises.

    The findings come from ``engine.lint_tree`` on Python's ``ast`` of the file, the very call
    the flake8 plugin makes on the tree flake8 hands it.
    """
    result = FileResult(path)
    errors: List[str] = []

    def on_error(filename: str, where: str, error: BaseException) -> None:
        errors.append(f"in {where}: {type(error).__name__}: {error}")
        if result.traceback is None:
            result.traceback = "".join(traceback.format_exception(
                type(error), error, error.__traceback__))

    try:
        noqa = NoqaIndex(source)
        if noqa.file_skipped():
            return result
        from .engine import lint_tree  # heavy: `rules` needs none of it
        from .screen import may_contain_findings

        if config.shortcuts and not may_contain_findings(source):
            return result  # the engine's own screen: nothing it could report
        tree, reason = parse_module(source, path)
        if tree is None:
            line, col = syntax_error_position(source, path)
            result.problem = Problem(path, reason or "cannot parse", line=line, col=col)
            result.lines = non_ascii_lines(source, [Finding("TGL001", line, col, "")])
            return result

        def on_skip(filename: str, why: str) -> None:
            result.problem = Problem(path, why)

        findings = lint_tree(tree, source, path, config, on_error, on_skip=on_skip,
                             notes=result.notes if notes else None)
        result.findings = reported(findings, noqa, config)
        result.lines = non_ascii_lines(source, result.findings)
    except Exception as exc:  # the engine promises not to raise; say so loudly if it does
        errors.append(f"{type(exc).__name__}: {exc}".rstrip(": "))
        result.traceback = traceback.format_exc()
    if errors:
        result.problem = Problem(path, "; ".join(errors) + " (please report it)", internal=True)
    return result


def analyse_path(path: str, config: Config, notes: bool = False) -> FileResult:
    try:
        source = read_source(path)
    except SourceError as exc:
        return FileResult(path, problem=Problem(path, exc.reason))
    return analyse_source(source, path, config, notes)


def _analyse_task(path: str, config: Config, notes: bool = False) -> FileResult:
    return analyse_path(path, config, notes)


def analyse_all(paths: Sequence[str], config: Config, jobs: int, notes: bool = False) -> List[FileResult]:
    """Analyse files, in worker processes when there are several files and jobs."""
    from .workers import run_parallel

    return run_parallel(_analyse_task, paths, jobs, config, notes)


# --------------------------------------------------------------------------- rule docs


def _repository_docs() -> Path:
    return Path(__file__).resolve().parent.parent / "docs" / "rules"


def rule_doc(code: str) -> Optional[str]:
    """The markdown page of a rule: shipped in the package (``torchgradlint/docs/rules``) or,
    in a source checkout, the repository's ``docs/rules``."""
    name = f"{code}.md"
    try:
        from importlib import resources

        page = resources.files("torchgradlint") / "docs" / "rules" / name
        if page.is_file():
            return page.read_text(encoding="utf-8")
    except (ImportError, AttributeError, OSError, TypeError):  # pragma: no cover
        pass
    page_path = _repository_docs() / name
    try:
        return page_path.read_text(encoding="utf-8")
    except OSError:
        return None


# --------------------------------------------------------------------------- arguments


class _ListAction(argparse.Action):
    """Comma-separated values; repeating the option adds to the list."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None) or []
        setattr(namespace, self.dest, current + (split_list(values) or []))


def _jobs(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 (one per CPU) or more")
    return number


def _add_lint_options(command: argparse.ArgumentParser) -> None:
    """Rule selection, files, analysis and configuration: the same for ``check`` and ``fix``."""
    selection = command.add_argument_group("rule selection (codes or prefixes, comma separated)")
    selection.add_argument("--select", action=_ListAction, metavar="CODES",
                           help="report only these (replaces the configured select)")
    selection.add_argument("--extend-select", action=_ListAction, metavar="CODES", default=[],
                           help="report these too")
    selection.add_argument("--ignore", action=_ListAction, metavar="CODES",
                           help="do not report these (replaces the configured ignore)")
    selection.add_argument("--extend-ignore", action=_ListAction, metavar="CODES", default=[],
                           help="do not report these either")
    files = command.add_argument_group("files")
    files.add_argument("--exclude", action=_ListAction, metavar="GLOBS",
                       help="skip files and folders matching these globs (replaces the "
                       "configured exclude)")
    files.add_argument("--extend-exclude", action=_ListAction, metavar="GLOBS", default=[],
                       help="skip these too")
    files.add_argument("--force-exclude", action="store_true",
                       help="apply exclusions to paths named on the command line as well")
    files.add_argument("--stdin-filename", metavar="NAME",
                       help="the name to report for source read from standard input")
    files.add_argument("--show-files", action="store_true",
                       help="list the files that would be linted and exit")
    analysis = command.add_argument_group("analysis")
    analysis.add_argument("--no-grad-decorators", action=_ListAction, metavar="NAMES",
                          default=[], help="project helpers that disable autograd (added to the "
                          "configured ones)")
    analysis.add_argument("--model-constructors", action=_ListAction, metavar="NAMES",
                          default=[], help="project functions that return an nn.Module (added "
                          "to the configured ones)")
    config = command.add_argument_group("configuration")
    config.add_argument("--config", metavar="FILE",
                        help="read [tool.torchgradlint] from FILE instead of searching for "
                        "pyproject.toml")
    config.add_argument("--isolated", action="store_true",
                        help="ignore every configuration file")


def _add_run_options(command: argparse.ArgumentParser, findings: str) -> None:
    """How ``check`` and ``fix`` run; ``findings`` words what --exit-zero overlooks."""
    run = command.add_argument_group("run")
    run.add_argument("-j", "--jobs", type=_jobs, default=0, metavar="N",
                     help="worker processes (default 0: one per CPU)")
    run.add_argument("--strict", action="store_true",
                     help="exit 2 when a file cannot be read, decoded or parsed")
    run.add_argument("--exit-zero", action="store_true",
                     help=f"exit 0 even when {findings} (errors still exit 2)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="say which configuration file is used; print tracebacks of internal "
                     "errors; note the models whose mode the analysis could not follow")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="torchgradlint",
        description="Static linter for PyTorch: autograd left on in evaluation, models left in "
        "training mode, gradients leaking across model boundaries.",
    )
    parser.add_argument("--version", action="version", version=f"torchgradlint {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    check = commands.add_parser(
        "check", help="lint files and directories",
        description="Lint Python files; directories are searched recursively for *.py files.",
    )
    check.add_argument("paths", nargs="*", metavar="PATH", default=None,
                       help="files or directories (default: the current directory; - reads "
                       "standard input)")
    check.add_argument("--format", choices=FORMATS, default="text",
                       help="report format (default: text)")
    check.add_argument("-o", "--output-file", metavar="FILE",
                       help="write the report to FILE instead of standard output")
    _add_lint_options(check)
    _add_run_options(check, "there are findings")

    fix = commands.add_parser(
        "fix", help="apply the fixes of the findings",
        description="Fix findings in place: the same files, configuration, selection and "
        "# noqa as check. Only safe fixes unless --unsafe-fixes. Exit status: 0 when no "
        "finding remains, 1 when findings remain (or, with --diff, when a file would change), "
        "2 on errors.",
    )
    fix.add_argument("paths", nargs="*", metavar="PATH", default=None,
                     help="files or directories (default: the current directory; - reads "
                     "standard input and writes the fixed code to standard output)")
    fix.add_argument("--diff", action="store_true",
                     help="print a unified diff of the fixes and write nothing")
    fix.add_argument("--unsafe-fixes", action="store_true",
                     help="also apply the fixes marked unsafe (review them)")
    _add_lint_options(fix)
    _add_run_options(fix, "findings remain")

    rules = commands.add_parser("rules", help="list the rules",
                                description="List every rule: code, name, fix safety, summary "
                                            "(markdown: the README's rule table).")
    rules.add_argument("--format", choices=("text", "json", "markdown"), default="text")

    explain = commands.add_parser("explain", help="show a rule's documentation",
                                  description="Print the documentation page of a rule.")
    explain.add_argument("rule", metavar="CODE", help="a rule code (TGL101) or name")

    clean = commands.add_parser("clean", help="remove the project's summary cache",
                                description="Remove the cached module summaries of the project "
                                "holding PATH (default: the current directory).")
    clean.add_argument("paths", nargs="*", metavar="PATH", default=None)
    return parser


# --------------------------------------------------------------------------- commands


def _error(message: str) -> None:
    print(f"torchgradlint: error: {message}", file=sys.stderr)


def _options(args: argparse.Namespace) -> Options:
    return Options(
        select=args.select,
        extend_select=args.extend_select,
        ignore=args.ignore,
        extend_ignore=args.extend_ignore,
        exclude=args.exclude,
        extend_exclude=args.extend_exclude,
        no_grad_decorators=args.no_grad_decorators,
        model_constructors=args.model_constructors,
    )


def _write(text: str, output_file: Optional[str], stream: TextIO) -> None:
    if output_file:
        with open(output_file, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    else:
        stream.write(text)
        stream.flush()


def _lint_settings(args: argparse.Namespace, paths):
    """The settings ``check`` and ``fix`` share (None after reporting a usage error)."""
    if paths.count(STDIN) > 1 or (STDIN in paths and len(paths) > 1):
        _error("'-' (standard input) cannot be combined with other paths")
        return None
    try:
        settings = settings_for(
            [args.stdin_filename or os.getcwd()] if paths == [STDIN] else paths,
            _options(args),
            config_file=args.config,
            isolated=args.isolated,
        )
    except ConfigError as exc:
        _error(str(exc))
        return None
    if not settings.config.select:
        print("torchgradlint: warning: the selection leaves no rule to run", file=sys.stderr)
    if args.verbose:
        print(f"torchgradlint: configuration: {settings.source or 'none (defaults)'}",
              file=sys.stderr)
    return settings


def command_check(args: argparse.Namespace) -> int:
    paths = args.paths or ["."]
    settings = _lint_settings(args, paths)
    if settings is None:
        return EXIT_ERROR
    config = settings.config

    status = EXIT_CLEAN
    if paths == [STDIN]:
        name = args.stdin_filename or STDIN
        if args.show_files:
            print(name)
            return EXIT_CLEAN
        excluded = args.stdin_filename and is_excluded(name, settings.exclude, folders=True)
        if args.force_exclude and excluded:
            return EXIT_CLEAN
        try:
            source = decode_source(sys.stdin.buffer.read(), name)
        except SourceError as exc:
            results = [FileResult(name, problem=Problem(name, exc.reason))]
        else:
            results = [analyse_source(source, name, config, notes=args.verbose)]
    else:
        found = discover(paths, settings.exclude, force_exclude=args.force_exclude)
        for missing in found.missing:
            print(f"{printable(missing)}: cannot analyse: no such file or directory", file=sys.stderr)
            status = EXIT_ERROR
        files = sorted_paths(found.files)
        if args.show_files:
            _write("".join(f"{printable(path)}\n" for path in files), args.output_file, sys.stdout)
            return status
        if not files and not found.missing:
            print("torchgradlint: warning: no Python files found", file=sys.stderr)
        jobs = args.jobs or os.cpu_count() or 1
        results = analyse_all(files, config, jobs, notes=args.verbose)

    reports: List[Report] = unanalysable_reports(results, config)
    problems: List[Problem] = []
    for result in results:
        reports.extend(result.reports())
        if result.problem is not None:
            problems.append(result.problem)
            print(f"{printable(result.path)}: {result.problem.describe()}", file=sys.stderr)
            if result.traceback and args.verbose:
                print(result.traceback, file=sys.stderr, end="")
        for line, note in result.notes:
            print(f"{result.path}:{line}: note: {note}", file=sys.stderr)
    reports.sort(key=lambda r: (path_sort_key(r.path), r.line, r.column, r.finding.code,
                                r.finding.message))

    if args.format == "sarif":
        text = format_sarif(reports, problems, root=os.getcwd(), doc_loader=rule_doc)
    else:
        text = FORMATTERS[args.format](reports, problems)
    _write(text, args.output_file, sys.stdout)

    if reports and not args.exit_zero:
        status = max(status, EXIT_FINDINGS)
    if any(problem.internal for problem in problems):
        status = EXIT_ERROR
    if problems and args.strict:
        status = EXIT_ERROR
    return status


def _fix_task(path: str, config: Config, unsafe: bool, diff_only: bool):
    from .fix import fix_file

    return fix_file(path, config, unsafe=unsafe, diff_only=diff_only)


def fix_all(paths: Sequence[str], config: Config, unsafe: bool, diff_only: bool, jobs: int):
    """Fix files, in worker processes when there are several files and jobs."""
    from .workers import run_parallel

    return run_parallel(_fix_task, paths, jobs, config, unsafe, diff_only)


def _plural(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def _fix_summary(fixed: int, files: int, remaining: List[Finding], unsafe: bool,
                 diff_only: bool) -> str:
    verb = "would fix" if diff_only else "fixed"
    text = f"{verb} {_plural(fixed, 'finding')} in {_plural(files, 'file')}; " \
           f"{len(remaining)} remain"
    from .rules import is_safe_fix

    hidden = sum(1 for f in remaining if f.fix is not None and not is_safe_fix(f))
    if hidden and not unsafe:
        text += f" ({hidden} with an unsafe fix: --unsafe-fixes)"
    return text


def command_fix(args: argparse.Namespace) -> int:
    paths = args.paths or ["."]
    settings = _lint_settings(args, paths)
    if settings is None:
        return EXIT_ERROR
    config = settings.config
    if paths == [STDIN]:
        return _fix_stdin(args, settings, config)

    status = EXIT_CLEAN
    found = discover(paths, settings.exclude, force_exclude=args.force_exclude)
    for missing in found.missing:
        print(f"{printable(missing)}: cannot fix: no such file or directory", file=sys.stderr)
        status = EXIT_ERROR
    files = sorted_paths(found.files)
    if args.show_files:
        sys.stdout.write("".join(f"{printable(path)}\n" for path in files))
        return status
    if not files and not found.missing:
        print("torchgradlint: warning: no Python files found", file=sys.stderr)
    jobs = args.jobs or os.cpu_count() or 1
    results = fix_all(files, config, args.unsafe_fixes, args.diff, jobs)

    reports: List[Report] = []
    fixed = changed = 0
    for result in results:
        if result.problem is not None:
            print(f"{printable(result.path)}: {result.problem}", file=sys.stderr)
            if result.error or args.strict:
                status = EXIT_ERROR
        if result.changed and (result.written or args.diff):
            fixed += result.fixed
            changed += 1
            if args.diff:
                sys.stdout.write(result.diff)
        reports.extend(Report(result.path, finding, result.lines.get(finding.line, ""))
                       for finding in result.remaining)
    reports.sort(key=lambda r: (path_sort_key(r.path), r.line, r.column, r.finding.code))
    if not args.diff:
        sys.stdout.write(FORMATTERS["text"](reports, []))
    sys.stdout.flush()
    remaining = [report.finding for report in reports]
    print(_fix_summary(fixed, changed, remaining, args.unsafe_fixes, args.diff), file=sys.stderr)
    if status == EXIT_CLEAN and not args.exit_zero and (remaining or (args.diff and changed)):
        status = EXIT_FINDINGS
    return status


def _fix_stdin(args: argparse.Namespace, settings, config: Config) -> int:
    """Fix the module on standard input; the fixed code (or the diff) goes to standard
    output, the findings that remain to standard error."""
    from .fix import fix_text, unified_diff
    from .sourcefile import encode_source

    name = args.stdin_filename or STDIN
    if args.show_files:
        print(name)
        return EXIT_CLEAN
    data = sys.stdin.buffer.read()
    excluded = args.stdin_filename and is_excluded(name, settings.exclude, folders=True)
    if args.force_exclude and excluded:
        if not args.diff:
            sys.stdout.buffer.write(data)
        return EXIT_CLEAN
    from .rules.tgl001_file_not_analysed import finding as unanalysable

    try:
        source = decode_source(data, name)
    except SourceError as exc:
        print(f"{name}: cannot fix: {exc.reason}", file=sys.stderr)
        if not args.diff:
            sys.stdout.buffer.write(data)
        if config.wants("TGL001"):
            sys.stderr.write(FORMATTERS["text"]([Report(name, unanalysable(exc.reason))], []))
        return EXIT_ERROR if args.strict else _exit_for_findings(args, config.wants("TGL001"))
    status = EXIT_CLEAN
    tree, reason = parse_module(source, name)
    if tree is None:
        print(f"{name}: cannot fix: {reason}", file=sys.stderr)
        new, fixed = source, 0
        remaining = [unanalysable(reason, *syntax_error_position(source, name))] \
            if config.wants("TGL001") else []
        status = EXIT_ERROR if args.strict else EXIT_CLEAN
    else:
        outcome = fix_text(source, name, config, args.unsafe_fixes)
        if outcome.problem:
            print(f"{name}: internal error: {outcome.problem} (please report it)",
                  file=sys.stderr)
            status = EXIT_ERROR
        new, fixed, remaining = outcome.source, outcome.fixed, outcome.remaining
    if args.diff:
        sys.stdout.write(unified_diff(name, source, new) if new != source else "")
    else:
        sys.stdout.buffer.write(encode_source(new, data) if new != source else data)
    sys.stdout.flush()
    reports = [Report(name, finding, line)
               for finding, line in zip(remaining, _line_texts(new, remaining))]
    sys.stderr.write(FORMATTERS["text"](reports, []))
    print(_fix_summary(fixed, int(new != source), remaining, args.unsafe_fixes, args.diff),
          file=sys.stderr)
    if status == EXIT_CLEAN and not args.exit_zero and (
            remaining or (args.diff and new != source)):
        status = EXIT_FINDINGS
    return status


def _line_texts(source: str, findings: Sequence[Finding]) -> List[str]:
    lines = non_ascii_lines(source, findings)
    return [lines.get(finding.line, "") for finding in findings]


def _exit_for_findings(args: argparse.Namespace, found: bool) -> int:
    return EXIT_FINDINGS if found and not args.exit_zero else EXIT_CLEAN


def rule_table() -> str:
    """The README's rule table, from the rules' own declarations (``RULE`` in each module)."""
    lines = ["| Code | Finds | Fix |", "| --- | --- | --- |"]
    for rule in RULES:
        if rule.fix_safety == "none":
            fix = "—"
        elif rule.unsafe_when:
            fix = f"safe (unsafe for {'; '.join(rule.unsafe_when)}): {rule.fix_summary}"
        else:
            fix = f"{rule.fix_safety}: {rule.fix_summary}"
        lines.append(f"| [{rule.code}]({rule.doc_path}) | {rule.summary} | {fix} |")
    return "\n".join(lines) + "\n"


def _fix_label(rule: RuleInfo) -> str:
    if rule.unsafe_when:
        return "safe fix*"
    return {"safe": "safe fix", "unsafe": "unsafe fix"}.get(rule.fix_safety, "no fix")


def command_rules(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        sys.stdout.write(rule_table())
        return EXIT_CLEAN
    if args.format == "json":
        items = [
            {"code": r.code, "name": r.name, "fix_safety": r.fix_safety,
             "fix_unsafe_when": list(r.unsafe_when), "summary": r.summary, "url": rule_url(r.code)}
            for r in RULES
        ]
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return EXIT_CLEAN
    name_width = max(len(rule.name) for rule in RULES)
    fix_width = max(len(_fix_label(rule)) for rule in RULES)
    for rule in RULES:
        sys.stdout.write(
            f"{rule.code}  {rule.name:<{name_width}}  {_fix_label(rule):<{fix_width}}  "
            f"{rule.summary}\n"
        )
    for rule in RULES:
        if rule.unsafe_when:
            sys.stdout.write(f"* {rule.code}: unsafe for {'; '.join(rule.unsafe_when)}\n")
    return EXIT_CLEAN


def command_explain(args: argparse.Namespace) -> int:
    wanted = args.rule.strip()
    rule = RULES_BY_CODE.get(wanted.upper())
    if rule is None:
        rule = next((r for r in RULES if r.name == wanted.lower()), None)
    if rule is None:
        _error(f"unknown rule '{wanted}' (run `torchgradlint rules` for the list)")
        return EXIT_ERROR
    page = rule_doc(rule.code)
    if page is None:
        page = (
            f"# {rule.code}: {rule.name}\n\n{rule.summary[:1].upper()}{rule.summary[1:]}.\n\n"
            f"Fix: {_fix_label(rule)}.\n\nFull documentation: {rule_url(rule.code)}\n"
        )
    sys.stdout.write(page if page.endswith("\n") else page + "\n")
    return EXIT_CLEAN


def command_clean(args: argparse.Namespace) -> int:
    from .cache import clean

    for path in args.paths or ["."]:
        removed = clean(path)
        print(f"removed {removed}" if removed else f"{path}: no cache")
    return EXIT_CLEAN


COMMANDS = {"check": command_check, "fix": command_fix, "rules": command_rules,
            "explain": command_explain, "clean": command_clean}


class _ReaderMayLeave:
    """Standard output for a reader that may stop reading (``| head``): once the pipe breaks,
    what follows goes to the null device and the run ends with the status it has earned."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            _silence_stdout()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            _silence_stdout()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # pragma: no cover
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stdout = sys.stdout
    if stdout is not None and not isinstance(stdout, _ReaderMayLeave):
        sys.stdout = _ReaderMayLeave(stdout)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # The reader of raw bytes (``fix -``) went away: stop quietly, without a second error
        # at exit.
        _silence_stdout()
        return EXIT_FINDINGS
    except KeyboardInterrupt:
        print("torchgradlint: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("torchgradlint: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        sys.stdout = stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
