"""``python -m torchgradlint.runtime SCRIPT [ARG ...]``: run a script under the runtime monitor.

The script runs as ``__main__`` with ``sys.argv = [SCRIPT, ARG, ...]``, as ``python SCRIPT ARG
...`` would run it. Findings are printed as ``path:line: CODE message`` wherever they happen in
your code -- the script or the project modules it imports (not torch, the standard library or
site-packages) -- with paths relative to the current directory when they are under it.
``--ignore PATTERNS`` allows findings (codes, paths, ``path:line``; see ``IgnoreList``). An
uncaught exception of the script is reported on stderr as ``path: uncaught ExcType: ...``.

Exit status: 1 if anything was found, 2 for a usage error (a script that does not exist, an
unknown code in ``--ignore``), else 0.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import IgnoreList, run_path


def _shown(filename: str) -> str:
    real = os.path.realpath(filename)
    try:
        relative = os.path.relpath(real, os.getcwd())
    except ValueError:  # another drive
        return real
    return real if relative.startswith(os.pardir) else relative


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torchgradlint.runtime",
        description="Run a PyTorch script under the runtime monitor; its arguments follow it.")
    parser.add_argument("--ignore", action="append", default=[], metavar="PATTERNS",
                        help="findings to allow: codes or prefixes (TGL101, TGL3), path globs, "
                             "path:line, path:CODE (comma-separated; repeatable)")
    parser.add_argument("script", help="the Python script to run as __main__")
    parser.add_argument("args", nargs=argparse.REMAINDER,
                        help="arguments passed to the script")
    args = parser.parse_args(argv)
    try:
        ignore = IgnoreList(args.ignore)
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: --ignore: {exc}\n")
    if not os.path.isfile(args.script):
        why = "is a directory" if os.path.isdir(args.script) else "no such file"
        parser.exit(2, f"{parser.prog}: error: cannot run '{args.script}': {why}\n")
    try:
        report = run_path(args.script, args.args, user_code=True)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        parser.exit(2, f"{parser.prog}: error: cannot run '{args.script}': "
                       f"{type(exc).__name__}: {exc}\n")
    findings, _ = ignore.split(report.findings)
    for finding in findings:
        print(f"{_shown(finding.filename)}:{finding.line}: {finding.code} {finding.message}")
    for error in report.monitor_errors:
        print(f"{args.script}: monitor error: {error.strip().splitlines()[-1]}", file=sys.stderr)
    if report.error is not None:
        last = report.error.strip().splitlines()[-1]
        print(f"{args.script}: uncaught {last}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
