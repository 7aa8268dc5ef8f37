"""How many files the linter opens to lint one file (the file itself, what it imports, the
project files read to find its callers), with the on-disk cache off.

    python bench/files_opened.py CORPUS_DIR [--limit 200] [--seed 0]
    python bench/files_opened.py --big-folder 5000     # a script beside 5,000 unrelated files

Counts distinct paths of ``open`` audit events (``open()`` and ``os.open``) during
``engine.lint_file`` of each sampled file, in one process, the project index reset between
files. Prints the mean, median, 90th percentile and maximum, and the CPU time per file.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ["TORCHGRADLINT_NO_CACHE"] = "1"

OPENED = set()
COUNTING = [False]


def _hook(event, args):
    if COUNTING[0] and event == "open" and args and isinstance(args[0], (str, bytes)):
        OPENED.add(args[0])


def measure(paths):
    from torchgradlint.engine import lint_file
    from torchgradlint.project import ProjectIndex

    counts, times = [], []
    for path in paths:
        ProjectIndex._instances.clear()
        OPENED.clear()
        COUNTING[0] = True
        start = time.process_time()
        lint_file(path)
        times.append(time.process_time() - start)
        COUNTING[0] = False
        counts.append(len([p for p in OPENED if str(p).endswith(".py")]))
    return counts, times


def big_folder(count: int) -> str:
    """A training script in a folder that also holds ``count`` unrelated modules, in ten
    cloned repositories and loose folders."""
    folder = tempfile.mkdtemp(prefix="tgl-big-")
    with open(os.path.join(folder, "train.py"), "w") as out:
        out.write("import torch\n\ndef evaluate(model, x):\n    model.eval()\n    return model(x)\n")
    for number in range(count):
        repo = os.path.join(folder, f"repo{number % 10}" if number % 2 else f"loose{number % 10}")
        os.makedirs(os.path.join(repo, ".git") if number % 2 else repo, exist_ok=True)
        with open(os.path.join(repo, f"m{number}.py"), "w") as out:
            out.write(f"import os\nimport torch\n\nVALUE = {number}\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big-folder", type=int, default=0, metavar="N")
    args = parser.parse_args()
    sys.addaudithook(_hook)
    if args.big_folder:
        paths = [os.path.join(big_folder(args.big_folder), "train.py")]
    else:
        every = []
        for folder, dirs, names in os.walk(args.corpus):
            dirs.sort()
            every.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".py"))
        paths = random.Random(args.seed).sample(every, min(args.limit, len(every)))
    counts, times = measure(paths)
    ordered = sorted(counts)
    print(f"files linted: {len(paths)}")
    print(f"files opened per lint: mean {statistics.mean(counts):.1f}, median "
          f"{statistics.median(counts):.0f}, 90th percentile {ordered[int(0.9 * (len(ordered) - 1))]}, "
          f"max {max(counts)}; total {sum(counts)}")
    print(f"CPU per file: mean {1000 * statistics.mean(times):.1f} ms, total {sum(times):.2f} s")


if __name__ == "__main__":
    main()
