"""Speed benchmark: what torchgradlint costs inside flake8, on a corpus of real code.

    python bench/speed.py CORPUS_DIR [--runs 3] [--limit N]

Every measurement is a separate child process; its CPU time (user + sys, from ``os.wait4``)
is the median of ``--runs`` runs. Nothing is asserted: the script only prints a table.

* baseline   flake8 --select=E,F,W with the TGL plugin hidden from flake8's plugin discovery
* plugin     flake8 --select=E,F,W,TGL (the E/F/W lines of both runs are compared)
* libcst     a python process running libcst.parse_module on every file (the linter parses
             with libcst, so this is the floor it can reach)
* ast        the same with ast.parse (what pyflakes pays for its tree)
* cli        ``torchgradlint check --isolated -j1 FILES`` if that command works
* the baseline/plugin pair again on two subsets of the whole corpus (not only the sample) of
  files that never mention "torch": those that import no library built on torch either (the
  plugin should add almost nothing: its text screen rejects them), and those that import one
  (timm, transformers, lightning, ...: they are analysed, since a Hugging Face script can hold a
  forward pass without no_grad without ever writing "torch").

flake8 runs with ``--isolated -j1``. Both flake8 runs start through the same small launcher,
so they pay the same start-up; the baseline's launcher drops the torchgradlint distribution's
plugins from flake8's discovery (a registered but broken plugin would otherwise stop flake8).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

# Runs flake8's command line, optionally without torchgradlint's plugins (TGL_BENCH_HIDE=1).
FLAKE8_LAUNCHER = r"""
import os, sys
if os.environ.get("TGL_BENCH_HIDE") == "1":
    from flake8.plugins import finder
    _orig = finder._find_importlib_plugins
    def _without_tgl():
        for plugin in _orig():
            if plugin.package.replace("_", "-").lower() != "torchgradlint":
                yield plugin
    finder._find_importlib_plugins = _without_tgl
from flake8.main.cli import main
sys.exit(main())
"""

PARSE_SCRIPT = r"""
import sys
kind, listing = sys.argv[1], sys.argv[2]
if kind == "libcst":
    import libcst
    parse = libcst.parse_module
else:
    import ast
    parse = ast.parse
errors = 0
with open(listing, encoding="utf-8") as handle:
    paths = handle.read().splitlines()
for path in paths:
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        if kind == "libcst":
            parse(data.decode("utf-8"))
        else:
            parse(data, path)
    except Exception:
        errors += 1
print(f"{errors} files did not parse")
"""

ARGV_BUDGET = 100_000  # characters of file names per flake8 invocation


class Run(NamedTuple):
    cpu: float
    wall: float
    status: int
    stdout: str
    stderr: str


class Row(NamedTuple):
    name: str
    cpu: Optional[float]
    wall: Optional[float]
    base: Optional[float]
    note: str


def run_child(argv: Sequence[str], cwd: str, env: Optional[Dict[str, str]] = None) -> Run:
    """Run one child; CPU time of it and its descendants, from os.wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(usage.ru_utime + usage.ru_stime, wall, proc.returncode,
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def chunks(files: Sequence[str], budget: int = ARGV_BUDGET) -> List[List[str]]:
    out: List[List[str]] = []
    current: List[str] = []
    size = 0
    for name in files:
        if current and size + len(name) + 1 > budget:
            out.append(current)
            current, size = [], 0
        current.append(name)
        size += len(name) + 1
    if current:
        out.append(current)
    return out


def run_chunked(prefix: Sequence[str], files: Sequence[str], cwd: str,
                env: Optional[Dict[str, str]] = None) -> Run:
    """One logical run over all files, split into as few invocations as the argv allows."""
    cpu = wall = 0.0
    status = 0
    stdout: List[str] = []
    stderr: List[str] = []
    for part in chunks(files):
        one = run_child([*prefix, *part], cwd, env)
        cpu += one.cpu
        wall += one.wall
        status = max(status, one.status)
        stdout.append(one.stdout)
        stderr.append(one.stderr)
    return Run(cpu, wall, status, "".join(stdout), "".join(stderr))


# Environment for every linter process. By default torchgradlint's on-disk cache is off: every
# run is cold, and nothing is written into the corpus. --cache points it at a temporary folder
# and adds an untimed warm-up run before each measurement.
LINTER_ENV: Dict[str, str] = {"TORCHGRADLINT_NO_CACHE": "1"}
WARM_UP = False


def linter_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("TORCHGRADLINT_NO_CACHE", None)
    env.pop("TORCHGRADLINT_CACHE_DIR", None)
    env.pop("PYTHONDEVMODE", None)
    env.update(LINTER_ENV)
    return env


def repeat(runs: int, measure) -> List[Run]:
    if WARM_UP:
        measure()
    return [measure() for _ in range(runs)]


def paired_flake8_runs(runs: int, files: Sequence[str], cwd: str,
                       with_plugin: bool) -> Tuple[List[Run], List[Run]]:
    """The baseline and the plugin runs, alternating (baseline, plugin, baseline, ...): a machine
    whose speed drifts during the measurement slows both alike, and each pair gives a ratio."""
    if WARM_UP:
        run_chunked(flake8_cmd("E,F,W"), files, cwd, flake8_env(True))
    base: List[Run] = []
    plugin: List[Run] = []
    for _ in range(runs):
        base.append(run_chunked(flake8_cmd("E,F,W"), files, cwd, flake8_env(True)))
        if with_plugin:
            plugin.append(run_chunked(flake8_cmd("E,F,W,TGL"), files, cwd, flake8_env(False)))
    return base, plugin


def paired_ratio(base: List[Run], plugin: List[Run]) -> float:
    """The median of the run-by-run ratios plugin / baseline."""
    return statistics.median(p.cpu / b.cpu for b, p in zip(base, plugin) if b.cpu)


def med(results: List[Run]):
    return statistics.median(r.cpu for r in results), statistics.median(r.wall for r in results)


def flake8_env(hide_tgl: bool) -> Dict[str, str]:
    env = linter_env()
    env["TGL_BENCH_HIDE"] = "1" if hide_tgl else "0"
    return env


def flake8_cmd(select: str) -> List[str]:
    return [sys.executable, "-c", FLAKE8_LAUNCHER, "--isolated", "-j1", "--no-show-source",
            f"--select={select}", "--format=%(path)s:%(row)d:%(col)d: %(code)s %(text)s"]


def flake8_failed(run: Run) -> bool:
    # 0: clean, 1: findings. Anything else (or a traceback) means flake8 itself failed.
    return run.status not in (0, 1) or "Traceback (most recent call last)" in run.stderr


def efw_lines(output: str) -> List[str]:
    keep = []
    for line in output.splitlines():
        parts = line.split(": ", 1)
        if len(parts) == 2 and parts[1][:1] in ("E", "F", "W"):
            keep.append(line)
    return sorted(keep)


def tgl_status() -> str:
    """'' when flake8 can load the TGL plugin, else why not."""
    from importlib import metadata

    eps = metadata.entry_points()
    group = eps.select(group="flake8.extension") if hasattr(eps, "select") \
        else eps.get("flake8.extension", [])
    found = [ep for ep in group if ep.name == "TGL"]
    if not found:
        return "TGL is not registered as a flake8 extension (pip install -e /work/main?)"
    probe = run_child([sys.executable, "-c", f"import {found[0].module}"], os.getcwd())
    if probe.status != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"TGL is registered but does not load: {last}"
    return ""


def cli_command(cwd: str) -> Tuple[List[str], str]:
    """(argv prefix, '') for ``torchgradlint check``, single process and without configuration
    files when it accepts ``--isolated -j1``; ([], why not) when the command does not work."""
    import shutil

    if not shutil.which("torchgradlint"):
        return [], "no torchgradlint command on PATH"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write("import torch\n")
    try:
        last = ""
        for prefix in (["torchgradlint", "check", "--isolated", "-j1"],
                       ["torchgradlint", "check"]):
            probe = run_child([*prefix, handle.name], cwd, linter_env())
            if probe.status in (0, 1) and "Traceback" not in probe.stderr:
                return prefix, ""
            last = (probe.stderr.strip().splitlines() or [f"exit status {probe.status}"])[-1]
    finally:
        os.unlink(handle.name)
    return [], f"torchgradlint check does not work yet: {last}"


def collect(root: str) -> List[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.endswith(".py"):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def spread(files: List[str], limit: Optional[int]) -> List[str]:
    """An evenly spaced, deterministic sample of ``limit`` files (every repository shows up)."""
    if not limit or limit >= len(files):
        return files
    return [files[i * len(files) // limit] for i in range(limit)]


def read_bytes(root: str, name: str) -> bytes:
    with open(os.path.join(root, name), "rb") as handle:
        return handle.read()


def versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for dist in ("flake8", "pycodestyle", "pyflakes", "libcst", "torchgradlint"):
        try:
            from importlib import metadata

            parts.append(f"{dist} {metadata.version(dist)}")
        except Exception:
            parts.append(f"{dist} (not installed)")
    return ", ".join(parts)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="folder searched for .py files")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use an evenly spaced sample of N files")
    parser.add_argument("--cache", action="store_true",
                        help="let torchgradlint use its on-disk cache (in a temporary folder), "
                             "warmed by an untimed first run; default: no cache, cold runs")
    parser.add_argument("--skip-subset", action="store_true",
                        help="skip the files-without-'torch' pairs of runs")
    parser.add_argument("--subset-limit", type=int, default=1000,
                        help="at most N files in each files-without-'torch' subset")
    args = parser.parse_args(argv)
    global WARM_UP
    cache_dir = None
    if args.cache:
        cache_dir = tempfile.mkdtemp(prefix="tgl-bench-cache-")
        LINTER_ENV.clear()
        LINTER_ENV["TORCHGRADLINT_CACHE_DIR"] = cache_dir
        WARM_UP = True
    try:
        return measure_all(args)
    finally:
        if cache_dir:
            import shutil

            shutil.rmtree(cache_dir, ignore_errors=True)


def measure_all(args: argparse.Namespace) -> int:
    root = os.path.abspath(args.corpus)
    files = spread(collect(root), args.limit)
    if not files:
        print(f"no .py files under {root}")
        return 2
    contents = {name: read_bytes(root, name) for name in files}
    lines = sum(data.count(b"\n") for data in contents.values())
    no_torch = [name for name in files if b"torch" not in contents[name]]
    no_torch_lines = sum(contents[name].count(b"\n") for name in no_torch)
    unrelated, library_only = torch_free_subsets(root, args.subset_limit)
    runs = max(1, args.runs)

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 0
    print(f"date:     {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine:  {platform.platform()}, nproc {cpus}")
    print(f"versions: {versions()}")
    print(f"corpus:   {root}")
    print(f"files:    {len(files)} .py files, {lines} lines"
          + (f" (sample of --limit {args.limit})" if args.limit else ""))
    print(f"          {len(no_torch)} files ({no_torch_lines} lines) never mention 'torch'")
    print(f"subsets:  of the whole corpus, files that never mention 'torch': {len(unrelated)} "
          f"import no library built on it, {len(library_only)} do (at most --subset-limit each)")
    print(f"runs:     median CPU time (user+sys of the child) of {runs} runs; torchgradlint "
          + ("cache in a temporary folder, warmed by an untimed run" if WARM_UP
             else "cache off (TORCHGRADLINT_NO_CACHE=1): cold runs"))
    print(flush=True)

    rows: List[Row] = []
    notes: List[str] = []
    problem = tgl_status()

    def progress(text: str) -> None:
        print(f"  ... {text}", file=sys.stderr, flush=True)

    # Fixed start-up cost, on one empty file.
    with tempfile.TemporaryDirectory() as empty_dir:
        open(os.path.join(empty_dir, "empty.py"), "w").close()
        progress("flake8 start-up")
        startup = repeat(runs, lambda: run_child(
            [*flake8_cmd("E,F,W"), "empty.py"], empty_dir, flake8_env(True)))
        plug_startup = None if problem else repeat(runs, lambda: run_child(
            [*flake8_cmd("E,F,W,TGL"), "empty.py"], empty_dir, flake8_env(False)))

    progress("baseline flake8 and flake8 with the TGL plugin, alternating")
    base_runs, paired_plug_runs = paired_flake8_runs(runs, files, root, not problem)
    if any(flake8_failed(r) for r in base_runs):
        print("baseline flake8 failed:\n" + base_runs[0].stderr[-3000:])
        return 1
    base_cpu, base_wall = med(base_runs)
    rows.append(Row("flake8 E,F,W (baseline)", base_cpu, base_wall, base_cpu,
                    f"{len(efw_lines(base_runs[0].stdout))} E/F/W lines"))
    cpu, wall = med(startup)
    rows.append(Row("  flake8 start-up, 1 empty file", cpu, wall, base_cpu, "fixed cost"))

    tgl_lines = 0
    if problem:
        rows.append(Row("flake8 E,F,W,TGL (plugin)", None, None, base_cpu, "skipped"))
        notes.append(problem)
    else:
        plug_runs = paired_plug_runs
        if any(flake8_failed(r) for r in plug_runs):
            rows.append(Row("flake8 E,F,W,TGL (plugin)", None, None, base_cpu, "FAILED"))
            notes.append("flake8 with the plugin failed:\n" + plug_runs[0].stderr[-3000:])
        else:
            cpu, wall = med(plug_runs)
            tgl_lines = sum(1 for line in plug_runs[0].stdout.splitlines() if ": TGL" in line)
            same = efw_lines(plug_runs[0].stdout) == efw_lines(base_runs[0].stdout)
            rows.append(Row("flake8 E,F,W,TGL (plugin)", cpu, wall, base_cpu,
                            f"{tgl_lines} TGL lines; E/F/W output "
                            + ("identical" if same else "DIFFERS")
                            + f"; run-by-run ratio {paired_ratio(base_runs, plug_runs):.2f}"))
            if plug_startup and not any(flake8_failed(r) for r in plug_startup):
                cpu, wall = med(plug_startup)
                rows.append(Row("  plugin start-up, 1 empty file", cpu, wall, base_cpu,
                                "fixed cost"))
            if not same:
                a = set(efw_lines(base_runs[0].stdout))
                b = set(efw_lines(plug_runs[0].stdout))
                notes.append("E/F/W lines only without the plugin: "
                             + "; ".join(sorted(a - b)[:10]))
                notes.append("E/F/W lines only with the plugin: " + "; ".join(sorted(b - a)[:10]))

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False,
                                     encoding="utf-8") as listing:
        listing.write("\n".join(files) + "\n")
    try:
        for kind in ("libcst", "ast"):
            progress(f"{kind} parse")
            parse_runs = repeat(runs, lambda: run_child(
                [sys.executable, "-c", PARSE_SCRIPT, kind, listing.name], root))
            if parse_runs[0].status != 0:
                rows.append(Row(f"{kind} parse only", None, None, base_cpu, "FAILED"))
                notes.append(f"{kind} parse script failed: {parse_runs[0].stderr[-2000:]}")
                continue
            cpu, wall = med(parse_runs)
            rows.append(Row(f"{kind}.parse{'_module' if kind == 'libcst' else ''} only", cpu,
                            wall, base_cpu, parse_runs[0].stdout.strip()))
    finally:
        os.unlink(listing.name)

    cli_prefix, cli_problem = cli_command(root)
    if cli_problem:
        rows.append(Row("torchgradlint check (CLI)", None, None, base_cpu, "skipped"))
        notes.append(cli_problem)
    else:
        progress("torchgradlint check")
        cli_runs = repeat(runs, lambda: run_chunked(cli_prefix, files, root, linter_env()))
        if any(r.status not in (0, 1) or "Traceback" in r.stderr for r in cli_runs):
            rows.append(Row("torchgradlint check (CLI)", None, None, base_cpu, "FAILED"))
            notes.append("torchgradlint check failed:\n" + cli_runs[0].stderr[-3000:])
        else:
            cpu, wall = med(cli_runs)
            rows.append(Row("torchgradlint check (CLI)", cpu, wall, base_cpu,
                            " ".join(cli_prefix[2:] or ["(default options)"])
                            + f"; exit status {cli_runs[0].status}"))
            if "-j1" in cli_prefix and cpus > 1:
                progress("torchgradlint check on all cores")
                every_core = [part for part in cli_prefix if part != "-j1"]
                parallel = repeat(runs, lambda: run_chunked(every_core, files, root, linter_env()))
                if all(r.status in (0, 1) and "Traceback" not in r.stderr for r in parallel):
                    all_cpu, all_wall = med(parallel)
                    rows.append(Row(f"  the same on all {cpus} cores (default -j)", all_cpu,
                                    all_wall, base_cpu,
                                    f"wall time {all_wall / wall:.2f} of the -j1 run"))

    if not args.skip_subset:
        for label, subset in (("no torch, no torch library", unrelated),
                              ("no 'torch', a torch library", library_only)):
            if subset:
                rows.extend(subset_rows(label, subset, root, runs, problem, progress))

    print_table(rows, lines)
    if notes:
        print()
        for note in notes:
            print(f"note: {note}")
    return 0


def torch_free_subsets(root: str, limit: int) -> Tuple[List[str], List[str]]:
    """Files of the whole corpus that never mention "torch": (those importing no library built
    on torch, those importing one), each an evenly spaced sample of at most ``limit``."""
    import ast

    from torchgradlint.semantic.torch_api import TORCH_ROOTS

    unrelated: List[str] = []
    library_only: List[str] = []
    for name in collect(root):
        data = read_bytes(root, name)
        if b"torch" in data:
            continue
        roots = set()
        try:
            for node in ast.walk(ast.parse(data)):
                if isinstance(node, ast.Import):
                    roots.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    roots.add(node.module.split(".")[0])
        except (SyntaxError, ValueError):
            pass
        (library_only if roots & set(TORCH_ROOTS) else unrelated).append(name)
    return spread(unrelated, limit), spread(library_only, limit)


def subset_rows(label: str, subset: List[str], root: str, runs: int, problem: str,
                progress) -> List[Row]:
    progress(f"{label}: baseline and plugin, alternating")
    base, plugin = paired_flake8_runs(runs, subset, root, not problem)
    base_cpu, base_wall = med(base)
    rows = [Row(f"{label} ({len(subset)} files): baseline", base_cpu, base_wall, base_cpu,
                "ratio to the subset's baseline")]
    if problem:
        return rows + [Row(f"{label}: plugin", None, None, base_cpu, "skipped")]
    if any(flake8_failed(r) for r in plugin):
        return rows + [Row(f"{label}: plugin", None, None, base_cpu, "FAILED")]
    cpu, wall = med(plugin)
    same = efw_lines(plugin[0].stdout) == efw_lines(base[0].stdout)
    tgl = sum(1 for line in plugin[0].stdout.splitlines() if ": TGL" in line)
    return rows + [Row(f"{label}: plugin", cpu, wall, base_cpu,
                       f"{tgl} TGL lines; E/F/W output " + ("identical" if same else "DIFFERS")
                       + f"; run-by-run ratio {paired_ratio(base, plugin):.2f}")]


def print_table(rows: List[Row], lines: int) -> None:
    name_width = max(len(r.name) for r in rows)
    header = f"{'measurement':<{name_width}}  {'CPU s':>8}  {'wall s':>8}  {'ratio':>6}  notes"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.cpu is None:
            cpu = wall = ratio = "-"
        else:
            cpu = f"{row.cpu:.2f}"
            wall = f"{row.wall:.2f}"
            ratio = f"{row.cpu / row.base:.2f}" if row.base else "-"
        print(f"{row.name:<{name_width}}  {cpu:>8}  {wall:>8}  {ratio:>6}  {row.note}")
    base = rows[0]
    if base.cpu:
        print(f"\nbaseline throughput: {lines / base.cpu:,.0f} lines per CPU second")


if __name__ == "__main__":
    sys.exit(main())
