"""``python -m torchgradlint.runtime FILE...``: run scripts under the runtime monitor.

Prints ``path:line: CODE message`` per finding, and ``path: uncaught ExcType: ...`` on stderr for
a script that ended with an exception. Exit status: 1 if anything was found, else 0.
"""

from __future__ import annotations

import argparse
import sys

from . import run_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchgradlint.runtime",
                                     description="Run PyTorch scripts under the runtime monitor.")
    parser.add_argument("files", nargs="+", help="Python scripts to run as __main__")
    args = parser.parse_args(argv)
    found = False
    for path in args.files:
        report = run_path(path)
        for finding in report.findings:
            found = True
            print(f"{path}:{finding.line}: {finding.code} {finding.message}")
        for error in report.monitor_errors:
            print(f"{path}: monitor error: {error.strip().splitlines()[-1]}", file=sys.stderr)
        if report.error is not None:
            last = report.error.strip().splitlines()[-1]
            print(f"{path}: uncaught {last}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
