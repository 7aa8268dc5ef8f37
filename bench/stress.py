"""Long-run stress: lint thousands of files in one process and watch memory stay flat.

A linter that runs inside an editor's language server or a long flake8 job must not keep what it
built for earlier files. This script lints many different files, one after another, in a single
process -- through the engine (``lint_file``, which also uses the project index), the flake8
plugin (``ast`` tree handed over, as flake8 does) or the CLI's per-file function -- and prints,
every ``--every`` files, the resident set size, optionally tracemalloc's view of live Python
memory, the number of objects the garbage collector tracks, and the CPU time per file.

    python bench/stress.py                         # 3,000 generated files, engine
    python bench/stress.py --files 20000 --every 1000 --entry plugin
    python bench/stress.py --corpus ../corpus --repeat 2      # real files, twice over
    python bench/stress.py --tracemalloc           # slower; live Python memory by allocation site
    python bench/stress.py --shapes                # cost per line of pathological file shapes

Generated files are PyTorch-shaped programs (``tests/pytorch_programs.py``), spread over
``--projects`` folders (each a project root for the project index), with a broken file, a
non-torch file and a file with odd bytes every so often. Nothing is asserted: the last lines
summarise the growth after warm-up (``--warmup`` files). ``--max-growth-mib N`` makes the exit
status 1 when resident memory grew by more than N MiB after warm-up (for a scheduled CI job).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))


def rss_mib() -> Optional[float]:
    """Resident set size of this process, in MiB (Linux /proc; else ru_maxrss, a peak)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, AttributeError):
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10
        except ImportError:  # pragma: no cover - Windows
            return None


ODD_FILES = [
    b"import torch\n\ndef broken(:\n    pass\n",  # syntax error
    b"x = 1\ny = [i * 2 for i in range(10)]\n",  # screened out: no torch
    b"\xef\xbb\xbfimport torch\r\nwith torch.no_grad:\r\n    pass\r\n",  # BOM, CRLF, a finding
    b"import torch\ns = 'caf\xe9'\n",  # not UTF-8
    b"",  # empty
]


def generated_files(folder: Path, count: int, projects: int, seed: int) -> Iterator[Path]:
    """Write and yield ``count`` files; each is written just before it is linted, so the
    project index sees folders filling up as a long editor session would."""
    from pytorch_programs import generate, importing

    rng = random.Random(seed)
    for index in range(count):
        project = folder / f"project_{index % projects:03d}"
        if index < projects:
            project.mkdir(parents=True, exist_ok=True)
        path = project / f"module_{index:06d}.py"
        if index % 50 == 49:
            path.write_bytes(ODD_FILES[(index // 50) % len(ODD_FILES)])
            yield path
            continue
        source = generate(rng, max_pieces=rng.randint(2, 8)).source()
        if index >= projects and rng.random() < 0.6:
            # Import and call functions of earlier modules of the same project, so the project
            # index resolves imports, summarises modules and finds callers across files.
            earlier = rng.randrange(index % projects, index, projects)
            source = importing(source, f"module_{earlier:06d}", rng, str(index))
        path.write_text(source, encoding="utf-8")
        yield path


def corpus_files(root: Path, repeat: int) -> Iterator[Path]:
    files = sorted(p for p in root.rglob("*.py") if p.is_file())
    for _ in range(repeat):
        yield from files


def make_linter(entry: str) -> Callable[[Path], int]:
    if entry == "engine":
        from torchgradlint.engine import lint_file

        return lambda path: len(lint_file(str(path), on_error=_count_error))
    if entry == "plugin":
        import ast

        from torchgradlint.plugin import TorchGradLintPlugin
        from torchgradlint.sourcefile import SourceError, read_source

        def plugin(path: Path) -> int:
            try:
                source = read_source(path)
                tree = ast.parse(source)
            except (SourceError, SyntaxError, ValueError, RecursionError, MemoryError):
                return 0  # flake8 reports E902/E999 and runs no plugin
            return len(list(TorchGradLintPlugin(tree, source.splitlines(True), str(path)).run()))

        return plugin
    if entry == "cli":
        from torchgradlint.cli import analyse_path
        from torchgradlint.config import DEFAULT_CONFIG

        def cli(path: Path) -> int:
            result = analyse_path(str(path), DEFAULT_CONFIG)
            if result.problem is not None and result.problem.internal:
                _ERRORS.append(result.problem.reason)
            return len(result.findings)

        return cli
    raise SystemExit(f"unknown entry point {entry!r}")


_ERRORS: List[str] = []


def _count_error(filename: str, where: str, error: BaseException) -> None:
    _ERRORS.append(f"{filename}: {where}: {type(error).__name__}: {error}")


# --------------------------------------------------------------------------- shapes
# Pathological but legal file shapes, each at three sizes: the CPU milliseconds per 1,000 lines
# should stay flat as the size doubles. Each maker returns the source for size ``n``.

def _one_function(n: int) -> str:
    body = []
    for i in range(n):
        if i % 3 == 0:
            body.append("    model.eval()")
        elif i % 3 == 1:
            body.append(f"    x{i} = model(x{i - 1})")
        else:
            body.append(f"    loss{i} = x{i - 1}.sum()")
    return ("import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2)\n"
            "opt = torch.optim.SGD(model.parameters())\ndef train(x0):\n" + "\n".join(body)
            + "\n    loss2.backward()\n    opt.step()\n")


def _one_loop(n: int) -> str:
    body = "".join(f"        y{i} = model(x)\n        total += y{i}\n" for i in range(n // 2))
    return ("import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2)\n"
            "def evaluate(loader):\n    total = 0\n    for x in loader:\n" + body)


def _notebook_script(n: int) -> str:
    cell = ("for x in loader:\n    out = model(x)\n    loss = out.sum()\n    loss.backward()\n"
            "    opt.step()\nmodel.eval()\n")
    return ("import torch\nimport torch.nn as nn\nmodel = nn.Linear(2, 2)\n"
            "opt = torch.optim.SGD(model.parameters())\n" + cell * (n // 6))


def _reassigned_name(n: int) -> str:
    return "import torch\nx = torch.zeros(3)\n" + "x = torch.relu(x)\n" * n


def _models_in_one_function(n: int) -> str:
    k = n // 3
    return ("import torch.nn as nn\ndef run(loader):\n"
            + "".join(f"    m{i} = nn.Linear(2, 2)\n    m{i}.eval()\n" for i in range(k))
            + "    for x in loader:\n" + "".join(f"        y = m{i}(x)\n" for i in range(k)))


def _helpers_defined_callee_first(n: int) -> str:
    k = n // 2
    parts = ["import torch.nn as nn\nmodel = nn.Linear(2, 2)\n"]
    for i in reversed(range(k)):
        call = f"h{i + 1}(m, x)" if i < k - 1 else "m(x)"
        parts.append(f"def h{i}(m, x):\n    return {call}\n")
    parts.append("def validate(loader):\n    model.eval()\n    for x in loader:\n"
                 "        h0(model, x)\n")
    return "".join(parts)


def _class_chain(n: int) -> str:
    k = n // 2
    return ("import torch.nn as nn\nclass C0(nn.Module):\n    pass\n"
            + "".join(f"class C{i}(C{i - 1}):\n    pass\n" for i in range(1, k))
            + f"m = C{k - 1}()\nm.eval()\nfor x in val_loader:\n    m(x)\n")


def _nested_loops(depth: int) -> str:
    lines = ["import torch", "model = torch.nn.Linear(2, 2)", "def evaluate(loader):"]
    lines += ["    " * (i + 1) + f"for x{i} in loader:" for i in range(depth)]
    lines.append("    " * (depth + 1) + "y = model(x0)")
    return "\n".join(lines) + "\n"


SHAPES = [
    ("one function of N statements", _one_function, (1250, 2500, 5000)),
    ("one loop with N/2 model calls", _one_loop, (1000, 2000, 4000)),
    ("notebook-style script, N lines", _notebook_script, (3000, 6000, 12000)),
    ("one name reassigned N times", _reassigned_name, (10000, 20000, 40000)),
    ("N/3 models in one function", _models_in_one_function, (750, 1500, 3000)),
    ("N/2 helpers, callee first", _helpers_defined_callee_first, (500, 1000, 2000)),
    ("class inheritance chain of N/2", _class_chain, (200, 400, 800)),
    ("loops nested 8/12/16 deep", _nested_loops, (8, 12, 16)),
]


def run_shapes(budget: float) -> int:
    from torchgradlint.engine import lint_source

    print(f"{'shape':<34} {'lines':>7} {'CPU s':>8} {'ms/1k lines':>12}")
    for name, make, sizes in SHAPES:
        per_line = []
        for size in sizes:
            source = make(size)
            lines = source.count("\n")
            samples = []
            while len(samples) < 3 and (not samples or samples[0] < 1.0):
                gc.collect()
                start = time.process_time()
                lint_source(source, "shape.py", on_error=_count_error)
                samples.append(time.process_time() - start)
            spent = min(samples)  # quick sizes: best of 3, so a stray collection does not count
            per_line.append(spent * 1e6 / lines)
            print(f"{name:<34} {lines:>7} {spent:>8.3f} {per_line[-1]:>12.1f}", flush=True)
            if spent > budget:
                print(f"{'':<34} (over {budget:.0f} s: larger sizes skipped)")
                break
        growth = per_line[-1] / per_line[0] if per_line[0] else 0.0
        verdict = "flat" if growth < 1.5 else "GROWS"
        print(f"{'':<34} cost per line x{growth:.1f} from the smallest to the largest: {verdict}")
    if _ERRORS:
        print(f"internal errors: {len(_ERRORS)}")
        for error in _ERRORS[:10]:
            print(f"  {error}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=3000, help="generated files (default 3000)")
    parser.add_argument("--every", type=int, default=250, help="report every N files")
    parser.add_argument("--warmup", type=int, default=250,
                        help="files before the baseline measurement (default 250)")
    parser.add_argument("--projects", type=int, default=40,
                        help="project folders the generated files are spread over")
    parser.add_argument("--entry", choices=("engine", "plugin", "cli"), default="engine")
    parser.add_argument("--corpus", metavar="DIR", help="lint the .py files under DIR instead")
    parser.add_argument("--repeat", type=int, default=1, help="with --corpus: passes over it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report live Python memory (slower) and the top sites at the end")
    parser.add_argument("--keep", metavar="DIR", help="write generated files here and keep them")
    parser.add_argument("--max-growth-mib", type=float, default=None,
                        help="exit 1 if RSS grew more than this after warm-up")
    parser.add_argument("--shapes", action="store_true",
                        help="instead: time pathological file shapes at three sizes each")
    parser.add_argument("--shape-budget", type=float, default=60.0,
                        help="with --shapes: skip larger sizes once one takes this many CPU s")
    args = parser.parse_args(argv)

    import torchgradlint

    print(f"torchgradlint {torchgradlint.__version__}, Python {platform.python_version()}, "
          f"{platform.platform()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}")
    if args.shapes:
        return run_shapes(args.shape_budget)
    os.environ.setdefault("TORCHGRADLINT_CACHE_DIR", tempfile.mkdtemp(prefix="tgl-stress-cache-"))
    folder = Path(args.keep or tempfile.mkdtemp(prefix="tgl-stress-"))
    if args.corpus:
        files: Iterator[Path] = corpus_files(Path(args.corpus), args.repeat)
        print(f"linting the .py files under {args.corpus} x{args.repeat} via {args.entry}")
    else:
        files = generated_files(folder, args.files, args.projects, args.seed)
        print(f"linting {args.files} generated files in {args.projects} project folders under "
              f"{folder} via {args.entry}")
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start(5)
    lint = make_linter(args.entry)
    header = (f"{'files':>7}  {'RSS MiB':>8}  {'growth':>7}  {'py MiB':>7}  {'gc objects':>10}  "
              f"{'findings':>8}  {'ms/file':>7}")
    print(header)
    print("-" * len(header))
    baseline: Optional[float] = None
    first: Optional[float] = None
    last: Optional[float] = None
    findings = 0
    done = 0
    cpu_start = time.process_time()
    window_start = cpu_start
    try:
        for path in files:
            findings += lint(path)
            done += 1
            if done == args.warmup:
                gc.collect()
                baseline = rss_mib()
            if done % args.every == 0:
                gc.collect()
                rss = rss_mib()
                first = rss if first is None else first
                last = rss
                now = time.process_time()
                live = "-"
                if args.tracemalloc:
                    import tracemalloc

                    live = f"{tracemalloc.get_traced_memory()[0] / 2 ** 20:.1f}"
                growth = f"{rss - baseline:+.1f}" if baseline is not None and rss is not None else "-"
                print(f"{done:>7}  {rss if rss is not None else float('nan'):>8.1f}  {growth:>7}  "
                      f"{live:>7}  {len(gc.get_objects()):>10}  {findings:>8}  "
                      f"{(now - window_start) * 1000 / args.every:>7.1f}", flush=True)
                window_start = now
    finally:
        if not args.keep and not args.corpus:
            shutil.rmtree(folder, ignore_errors=True)
    total_cpu = time.process_time() - cpu_start
    print("-" * len(header))
    print(f"{done} files, {findings} findings, {total_cpu:.1f} s CPU "
          f"({total_cpu * 1000 / max(1, done):.1f} ms/file), internal errors: {len(_ERRORS)}")
    for error in _ERRORS[:10]:
        print(f"  {error}")
    status = 0
    if baseline is not None and last is not None:
        growth = last - baseline
        per_thousand = growth * 1000 / max(1, done - args.warmup)
        print(f"RSS after warm-up ({args.warmup} files): {baseline:.1f} MiB; at the end: "
              f"{last:.1f} MiB; growth {growth:+.1f} MiB ({per_thousand:+.2f} MiB per 1,000 files)")
        if args.max_growth_mib is not None and growth > args.max_growth_mib:
            print(f"growth exceeds --max-growth-mib {args.max_growth_mib}")
            status = 1
    if args.tracemalloc:
        import tracemalloc

        print("largest live allocation sites:")
        for stat in tracemalloc.take_snapshot().statistics("lineno")[:10]:
            print(f"  {stat}")
    if _ERRORS:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
