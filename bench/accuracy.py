"""Accuracy study: lint a corpus of real repositories and score the findings against triage.

    python bench/accuracy.py CORPUS_DIR [--triage bench/triage.csv] [--update] [--markdown]

CORPUS_DIR holds one folder a repository, named ``owner+name`` (see bench/get_corpus.sh).
Every .py file in it goes through ``torchgradlint.engine.lint_file``. A finding is keyed by
(repo, path inside the repo, line, code) and looked up in the triage file, a CSV with the
columns ``repo,revision,path,line,code,verdict,reason``: verdict ``TP`` (a real problem) or
``FP`` (a false alarm), reason a few words a reviewer can check.

The report gives, per rule: findings, triaged TP, triaged FP, untriaged, and precision
TP / (TP + FP); then every untriaged finding (for a human to triage), every triage row that no
longer matches a finding (stale), and every file the linter failed on (must be none).

``--update`` appends the untriaged findings to the triage file with an empty verdict, ready to
be filled in. Exit status: 1 if any file failed to analyse (or, with ``--strict``, if anything
is untriaged or stale), else 0.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = ["repo", "revision", "path", "line", "code", "verdict", "reason"]
VERDICTS = ("TP", "FP")

Key = Tuple[str, str, int, str]  # repo "owner/name", path inside the repo, line, code


class Hit(NamedTuple):
    repo: str
    path: str
    line: int
    col: int
    code: str
    message: str

    @property
    def key(self) -> Key:
        return (self.repo, self.path, self.line, self.code)


class Outcome(NamedTuple):
    hits: List[Hit]
    failure: Optional[str]
    lines: int
    cpu: float


def lint_one(job: Tuple[str, str, str]) -> Outcome:
    """Lint one file; never raises (a failure is returned as text)."""
    repo, root, relpath = job
    from torchgradlint.engine import lint_file

    full = os.path.join(root, relpath)
    try:
        with open(full, "rb") as handle:
            lines = handle.read().count(b"\n")
    except OSError:
        lines = 0
    start = time.process_time()
    try:
        findings = lint_file(full)
    except Exception:  # any exception is a failure to analyse, reported with its traceback
        return Outcome([], traceback.format_exc(limit=-6), lines, time.process_time() - start)
    cpu = time.process_time() - start
    path = relpath.replace(os.sep, "/")
    hits = [Hit(repo, path, f.line, f.col, f.code, f.message) for f in findings]
    return Outcome(hits, None, lines, cpu)


def repos_in(corpus: str, only: Sequence[str]) -> List[Tuple[str, str]]:
    """(owner/name, folder) for every owner+name folder of the corpus."""
    found = []
    for entry in sorted(os.listdir(corpus)):
        full = os.path.join(corpus, entry)
        if "+" not in entry or entry.startswith(".") or not os.path.isdir(full):
            continue
        repo = entry.replace("+", "/", 1)
        if only and repo not in only and entry not in only:
            continue
        found.append((repo, full))
    return found


def py_files(root: str) -> List[str]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.endswith(".py"):
                out.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(out)


def read_revisions(path: str) -> Dict[str, str]:
    revisions: Dict[str, str] = {}
    if not os.path.exists(path):
        return revisions
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                revisions[fields[0]] = fields[1]
    return revisions


def read_triage(path: str) -> List[Dict[str, str]]:
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: missing columns {', '.join(missing)}")
        rows = []
        for number, row in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in row.items() if k}
            try:
                int(row["line"])
            except ValueError:
                raise SystemExit(f"{path}:{number}: line is not a number: {row['line']!r}")
            row["_row"] = str(number)
            rows.append(row)
        return rows


def row_key(row: Dict[str, str]) -> Key:
    return (row["repo"], row["path"], int(row["line"]), row["code"])


Job = Tuple[str, str, str]  # repo, repo folder, path inside it


def run_linter(jobs: List[Job], workers: int) -> Iterable[Tuple[Job, Outcome]]:
    if workers <= 1:
        for job in jobs:
            yield job, lint_one(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from zip(jobs, pool.map(lint_one, jobs, chunksize=16))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="folder of owner+name repository folders")
    parser.add_argument("--triage", default=os.path.join(HERE, "triage.csv"))
    parser.add_argument("--corpus-list", default=os.path.join(HERE, "corpus.txt"),
                        help="owner/name <revision> list, for the revision column")
    parser.add_argument("--update", action="store_true",
                        help="append untriaged findings to the triage file (empty verdict)")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--repo", action="append", default=[],
                        help="only this repository (owner/name); may be repeated")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--slowest", type=int, default=10, metavar="N",
                        help="list the N files that took the most CPU time")
    parser.add_argument("--use-cache", action="store_true",
                        help="let torchgradlint keep its on-disk cache (default: off, so nothing "
                             "is written into the corpus and every finding is fresh)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when anything is untriaged or stale too")
    args = parser.parse_args(argv)
    if not args.use_cache:
        os.environ["TORCHGRADLINT_NO_CACHE"] = "1"  # read by the linter; workers inherit it

    try:
        from torchgradlint.engine import lint_source
    except ImportError as error:
        print(f"cannot import torchgradlint.engine: {error}")
        return 1
    try:
        lint_source("import torch\n", "probe.py")
    except NotImplementedError:
        print("torchgradlint.engine is not implemented yet: nothing to measure.")
        return 0

    corpus = os.path.abspath(args.corpus)
    repos = repos_in(corpus, args.repo)
    if not repos:
        print(f"no owner+name folders in {corpus}")
        return 2
    revisions = read_revisions(args.corpus_list)
    triage = read_triage(args.triage)

    jobs = [(repo, root, rel) for repo, root in repos for rel in py_files(root)]
    start = time.perf_counter()
    hits: List[Hit] = []
    failures: List[Tuple[str, str, str]] = []
    lines = 0
    costs: List[Tuple[float, int, str, str]] = []
    for (repo, _root, rel), outcome in run_linter(jobs, args.jobs):
        hits.extend(outcome.hits)
        lines += outcome.lines
        costs.append((outcome.cpu, outcome.lines, repo, rel))
        if outcome.failure:
            failures.append((repo, rel, outcome.failure))
    elapsed = time.perf_counter() - start

    by_key: Dict[Key, List[Hit]] = collections.defaultdict(list)
    for hit in hits:
        by_key[hit.key].append(hit)

    verdicts: Dict[Key, Dict[str, str]] = {}
    problems: List[str] = []
    for row in triage:
        key = row_key(row)
        if key in verdicts and verdicts[key]["verdict"] and row["verdict"] \
                and verdicts[key]["verdict"] != row["verdict"]:
            problems.append(f"{args.triage}:{row['_row']}: contradicts row "
                            f"{verdicts[key]['_row']} for {key}")
        if row["verdict"] and row["verdict"] not in VERDICTS:
            problems.append(f"{args.triage}:{row['_row']}: verdict {row['verdict']!r} "
                            f"is neither TP nor FP (counted as untriaged)")
        if key not in verdicts or row["verdict"] in VERDICTS:
            verdicts[key] = row

    linted = {repo for repo, _ in repos}
    stale = [row for key, row in verdicts.items() if key[0] in linted and key not in by_key]
    elsewhere = [row for key, row in verdicts.items() if key[0] not in linted]
    moved = sorted({(row["repo"], row["revision"]) for key, row in verdicts.items()
                    if key in by_key and row["revision"] and revisions.get(row["repo"])
                    and row["revision"] != revisions[row["repo"]]})

    per_rule: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    untriaged: List[Key] = []
    for key in sorted(by_key):
        code = key[3]
        per_rule[code]["findings"] += len(by_key[key])
        verdict = verdicts.get(key, {}).get("verdict", "")
        if verdict in VERDICTS:
            per_rule[code][verdict] += 1
        else:
            per_rule[code]["untriaged"] += 1
            untriaged.append(key)

    per_repo = collections.Counter(hit.repo for hit in hits)
    md = args.markdown
    print(("## " if md else "") + "torchgradlint accuracy study")
    print()
    total_cpu = sum(cost[0] for cost in costs)
    print(f"{len(repos)} repositories, {len(jobs)} files, {lines} lines linted in "
          f"{elapsed:.1f} s wall, {total_cpu:.1f} s CPU in lint_file "
          f"({max(1, args.jobs)} worker(s)); {len(hits)} findings "
          f"at {len(by_key)} distinct (repo, path, line, code); triage file {args.triage} "
          f"({len(triage)} rows); {len(failures)} files failed to analyse.")
    print()
    table = [["rule", "findings", "TP", "FP", "untriaged", "precision"]]
    totals = collections.Counter()
    for code in sorted(per_rule):
        counts = per_rule[code]
        totals.update(counts)
        table.append([code, counts["findings"], counts["TP"], counts["FP"], counts["untriaged"],
                      precision(counts)])
    table.append(["all", totals["findings"], totals["TP"], totals["FP"], totals["untriaged"],
                  precision(totals)])
    print_table(table, md)
    print()
    if per_repo:
        print(("### " if md else "") + "findings per repository")
        print()
        print_table([["repository", "revision", "findings"]]
                    + [[repo, revisions.get(repo, "?")[:12], per_repo.get(repo, 0)]
                       for repo, _ in repos], md)

    section(md, f"untriaged findings ({len(untriaged)})")
    for key in untriaged:
        for hit in by_key[key][:1]:
            extra = f" (x{len(by_key[key])})" if len(by_key[key]) > 1 else ""
            print(f"{bullet(md)}{hit.repo} {hit.path}:{hit.line}:{hit.col + 1} {hit.code} "
                  f"{hit.message}{extra}")
    section(md, f"stale triage rows: no longer found ({len(stale)})")
    for row in stale:
        print(f"{bullet(md)}{row['repo']} {row['path']}:{row['line']} {row['code']} "
              f"{row['verdict'] or '(no verdict)'} {row['reason']}".rstrip())
    if elsewhere:
        section(md, f"triage rows for repositories not linted this time ({len(elsewhere)})")
        for repo, count in sorted(collections.Counter(r["repo"] for r in elsewhere).items()):
            print(f"{bullet(md)}{repo}: {count} rows")
    if moved:
        section(md, "triaged at another revision than bench/corpus.txt lists")
        for repo, revision in moved:
            print(f"{bullet(md)}{repo} triaged at {revision}, corpus has {revisions[repo]}")
    if problems:
        section(md, f"problems in the triage file ({len(problems)})")
        for problem in problems:
            print(f"{bullet(md)}{problem}")
    section(md, f"slowest files ({args.slowest} of {len(costs)})")
    for cpu, count, repo, rel in sorted(costs, reverse=True)[:args.slowest]:
        rate = f"{cpu * 1e6 / count:.0f} ms/1k lines" if count else "empty"
        print(f"{bullet(md)}{cpu:.2f} s CPU  {count} lines ({rate})  {repo} {rel}")
    section(md, f"files that failed to analyse ({len(failures)})")
    for repo, rel, text in failures:
        last = text.strip().splitlines()[-1] if text.strip() else "?"
        print(f"{bullet(md)}{repo} {rel}: {last}")
        if not md:
            print("    " + text.rstrip().replace("\n", "\n    "))

    if args.update:
        known = set(verdicts)
        new_rows = [k for k in untriaged if k not in known]
        append_rows(args.triage, new_rows, revisions)
        print()
        print(f"appended {len(new_rows)} rows with an empty verdict to {args.triage}")

    if failures:
        return 1
    if args.strict and (untriaged or stale or problems):
        return 1
    return 0


def precision(counts: collections.Counter) -> str:
    judged = counts["TP"] + counts["FP"]
    return f"{counts['TP'] / judged:.2f}" if judged else "-"


def bullet(md: bool) -> str:
    return "- " if md else "  "


def section(md: bool, title: str) -> None:
    print()
    print(("### " if md else "") + title)
    if md:
        print()


def print_table(rows: List[List[object]], md: bool) -> None:
    text = [[str(cell) for cell in row] for row in rows]
    if md:
        print("| " + " | ".join(text[0]) + " |")
        print("|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(text[0]))) + "|")
        for row in text[1:]:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(row[i]) for row in text) for i in range(len(text[0]))]
    for number, row in enumerate(text):
        print("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                        for i, cell in enumerate(row)))
        if number == 0:
            print("  ".join("-" * w for w in widths))


def append_rows(path: str, keys: List[Key], revisions: Dict[str, str]) -> None:
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    if exists:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            needs_newline = handle.read(1) not in (b"\n", b"\r")
    with open(path, "a", newline="", encoding="utf-8") as handle:
        if exists and needs_newline:
            handle.write("\n")
        writer = csv.writer(handle, lineterminator="\n")
        if not exists:
            writer.writerow(COLUMNS)
        for repo, rel, line, code in keys:
            writer.writerow([repo, revisions.get(repo, ""), rel, line, code, "", ""])


if __name__ == "__main__":
    sys.exit(main())
