"""Executes fixtures under the runtime monitor in one process (one torch import) and prints,
as JSON, what the monitor observed in each: ``{path: [[line, code], ...]}``.

A fixture project (``fixtures/projects/<name>/``) runs once, from its ``main.py``, with every
module of the project watched; each module gets the observations at its own lines.
"""

import contextlib
import io
import json
import os
import runpy
import sys

import torch

from torchgradlint.runtime import run_path, watch


def run_project(folder, files):
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    sys.path.insert(0, folder)
    try:
        with watch(paths=files) as report:
            runpy.run_path(os.path.join(folder, "main.py"), run_name="__main__")
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            module = sys.modules[name]
            if getattr(module, "__file__", "") and os.path.abspath(module.__file__).startswith(folder):
                del sys.modules[name]
    return report


def main(paths):
    with contextlib.redirect_stdout(io.StringIO()):  # the fixtures print progress
        observed = observe(paths)
    json.dump(observed, sys.stdout)


def observe(paths):
    observed = {}
    projects = {}
    for path in paths:
        parts = path.split(os.sep)
        if "projects" in parts:
            root = os.sep.join(parts[:parts.index("projects") + 2])
            projects.setdefault(root, []).append(path)
            continue
        torch.set_grad_enabled(True)
        report = run_path(path)
        observed[path] = sorted([finding.line, finding.code] for finding in report.findings
                                if os.path.realpath(finding.filename) == os.path.realpath(path))
    for root, files in projects.items():
        torch.set_grad_enabled(True)
        report = run_project(root, files)
        for path in files:
            observed[path] = sorted([finding.line, finding.code] for finding in report.findings
                                    if os.path.realpath(finding.filename) == os.path.realpath(path))
    return observed


if __name__ == "__main__":
    main(sys.argv[1:])
