"""Executes fixtures under the runtime monitor in one process (one torch import) and prints,
as JSON, what the monitor observed in each: ``{path: [[line, code], ...]}``."""

import json
import sys

import torch

from torchgradlint.runtime import run_path


def main(paths):
    observed = {}
    for path in paths:
        torch.set_grad_enabled(True)
        report = run_path(path)
        observed[path] = sorted([finding.line, finding.code] for finding in report.findings
                                if finding.filename.endswith(path.rsplit("/", 1)[-1]))
    json.dump(observed, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
