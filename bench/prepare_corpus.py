"""Prepare one checked-out repository for the benchmark corpus (run by get_corpus.sh).

    python bench/prepare_corpus.py REPO_DIR [REPO_DIR ...]

* Every Jupyter notebook ``x.ipynb`` becomes ``x.ipynb.py``: its code cells in order, each
  after a ``# %% [cell N]`` line. IPython magics (``%matplotlib``), shell escapes (``!pip``)
  and help queries (``obj?``) are commented out; a cell that still does not parse as Python 3
  (a ``%%bash`` cell, Python 2 code) is commented out whole, so every converted file parses.
  Checkpoint copies (``.ipynb_checkpoints/``) and notebooks of 4 MiB or more (mostly embedded
  images; the local mirrors the corpus was first built from lack files that big) are dropped.
* Everything else that is not Python source or small text is deleted (images, weights, data,
  symbolic links), and so are empty folders: the corpus stays small and only .py is linted.

The conversion is deterministic, so the same revision always gives the same corpus.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from typing import List

KEEP_TEXT = {".md", ".rst", ".txt", ".cfg", ".toml", ".ini", ".yaml", ".yml", ".sh", ".json"}
MAX_TEXT_BYTES = 256 * 1024
MAX_NOTEBOOK_BYTES = 4 * 1024 * 1024
# ``%matplotlib inline``, ``%%time``, ``!pip install x``; not a continuation line that starts
# with the formatting operator (``% (epoch, loss))``) or with ``!=``
LINE_MAGIC = re.compile(r"^\s*(%%?[A-Za-z_]|!(?!=))")
HELP_QUERY = re.compile(r"^\s*[\w.]+\?{1,2}\s*$")
PASSIVE_CELL_MAGICS = ("%%time", "%%timeit", "%%capture")


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def _comment(lines: List[str]) -> List[str]:
    return ["# " + line if line.strip() else "#" for line in lines]


def convert_cell(source: str) -> List[str]:
    lines = source.splitlines()
    if not lines:
        return []
    first = lines[0].strip()
    if first.startswith("%%"):
        if first.split()[0] in PASSIVE_CELL_MAGICS:
            lines = ["# " + lines[0]] + lines[1:]
        else:
            return _comment(lines)
    out = []
    for line in lines:
        if LINE_MAGIC.match(line) or HELP_QUERY.match(line):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}pass  # {line.strip()}" if indent else f"# {line.strip()}")
        else:
            out.append(line)
    if not _parses("\n".join(out) + "\n"):
        return _comment(lines)
    return out


def convert_notebook(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        notebook = json.load(handle)
    cells = notebook.get("cells")
    if cells is None:  # nbformat 3
        cells = [c for ws in notebook.get("worksheets", []) for c in ws.get("cells", [])]
    parts = [f"# Code cells of {os.path.basename(path)}, converted by bench/prepare_corpus.py\n"]
    for number, cell in enumerate(cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", cell.get("input", ""))
        if isinstance(source, list):
            source = "".join(source)
        body = convert_cell(source)
        parts.append(f"\n# %% [cell {number}]\n" + "".join(line + "\n" for line in body))
    return "".join(parts)


def prepare(root: str) -> None:
    converted = removed = 0
    for folder, dirs, files in os.walk(root, topdown=True):
        for name in list(dirs):
            full = os.path.join(folder, name)
            if name == ".ipynb_checkpoints" or name == ".git" or os.path.islink(full):
                _remove_tree(full)
                dirs.remove(name)
        for name in files:
            full = os.path.join(folder, name)
            ext = os.path.splitext(name)[1].lower()
            if os.path.islink(full):
                os.unlink(full)
                removed += 1
            elif ext == ".ipynb" and os.path.getsize(full) >= MAX_NOTEBOOK_BYTES:
                os.unlink(full)
                removed += 1
            elif ext == ".ipynb":
                try:
                    text = convert_notebook(full)
                except (ValueError, OSError, UnicodeDecodeError) as error:
                    print(f"  cannot convert {full}: {error}", file=sys.stderr)
                else:
                    with open(full + ".py", "w", encoding="utf-8") as handle:
                        handle.write(text)
                    converted += 1
                os.unlink(full)
            elif ext == ".py":
                continue
            elif ext not in KEEP_TEXT or os.path.getsize(full) > MAX_TEXT_BYTES:
                os.unlink(full)
                removed += 1
    for folder, dirs, files in os.walk(root, topdown=False):
        if folder != root and not os.listdir(folder):
            os.rmdir(folder)
    print(f"  {root}: {converted} notebooks converted, {removed} other files deleted")


def _remove_tree(path: str) -> None:
    if os.path.islink(path):
        os.unlink(path)
        return
    for folder, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(folder, name))
        for name in dirs:
            full = os.path.join(folder, name)
            if os.path.islink(full):
                os.unlink(full)
            else:
                os.rmdir(full)
    os.rmdir(path)


def main(argv: List[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for root in argv:
        prepare(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
