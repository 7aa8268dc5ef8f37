"""Recall on real code: lint the sites of a labels file and count the labelled bugs found.

    python bench/recall.py CORPUS_DIR [--labels bench/recall-labels.csv] [--markdown] [-j N]

The labels file has one row per site read by a human, chosen by reading code (every evaluation
function, validation loop, sampling function, GAN discriminator step ... of the files read),
not by where the linter fires. Columns: ``repo,revision,path,line,kind,label,expected,reason``:

- ``kind``: ``no_grad`` (an evaluation / inference / sampling forward: is autograd off?),
  ``eval`` (an evaluation forward of a model with Dropout or BatchNorm: is it in eval mode?),
  ``train`` (training resumed after an evaluation: is ``model.train()`` called?), ``detach``
  (a GAN discriminator update, a target network or teacher: is the input cut?),
  ``accumulate`` (a loss kept across iterations: is it cut?);
- ``label``: ``bug`` or ``correct``; ``expected``: the code a finding should carry for a bug;
- ``line``: where the linter should report (the forward call; for ``train`` the training
  forward that runs in eval mode; for ``accumulate`` the accumulation).

A labelled bug is *found* when the linter reports the expected code on a line of the labelled
line's statement: the innermost simple statement that contains the line (all its lines, so a
call split over several lines matches), or, when the line is the header of a compound statement
(``for``/``if``/``with``/``while``/``def``), the header's lines up to its body. For a ``correct``
site, any finding of the kind's family (TGL1xx for ``no_grad``, TGL201/TGL203 for ``eval``,
TGL202 for ``train``, TGL301 for ``detach``, TGL302 for ``accumulate``) matched the same way is
a false alarm. Every file is linted once, inside its repository folder (so the whole-project
view sees the neighbouring modules), with the cache off. Exit status 0 unless the labels file is
malformed; the numbers are for a human.

``--classes bench/recall-miss-classes.csv`` (``repo,path,line,kind,class``) says why each known
miss is missed; the report counts the misses per class, lists misses no class covers yet
("unclassified": new misses to look at) and classified sites that are found now (fixed).
"""

from __future__ import annotations

import argparse
import ast
import collections
import csv
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from accuracy import bullet, print_table, read_revisions, section  # noqa: E402

COLUMNS = ["repo", "revision", "path", "line", "kind", "label", "expected", "reason"]
KINDS = ("no_grad", "eval", "train", "detach", "accumulate")
FAMILY = {
    "no_grad": ("TGL101", "TGL102", "TGL103"),
    "eval": ("TGL201", "TGL203"),
    "train": ("TGL202",),
    "detach": ("TGL301",),
    "accumulate": ("TGL302",),
}
EXPECTED = {"no_grad": "TGL101", "eval": "TGL201", "train": "TGL202", "detach": "TGL301",
            "accumulate": "TGL302"}


class Site(NamedTuple):
    row: int
    repo: str
    revision: str
    path: str
    line: int
    kind: str
    label: str
    expected: str
    reason: str


class FileResult(NamedTuple):
    findings: List[Tuple[int, str]]  # (line, code)
    spans: Dict[int, Tuple[int, int]]  # labelled line -> (first, last) line of its statement
    failure: Optional[str]


def read_labels(path: str) -> List[Site]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: missing columns {', '.join(missing)}")
        sites = []
        problems = []
        for number, row in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in row.items() if k}
            where = f"{path}:{number}"
            if not row["line"].isdigit():
                problems.append(f"{where}: line is not a number: {row['line']!r}")
                continue
            if row["kind"] not in KINDS:
                problems.append(f"{where}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
                continue
            if row["label"] not in ("bug", "correct"):
                problems.append(f"{where}: label {row['label']!r} is neither bug nor correct")
                continue
            if row["label"] == "bug" and not row["expected"]:
                problems.append(f"{where}: a bug needs the expected code")
                continue
            sites.append(Site(number, row["repo"], row["revision"], row["path"],
                              int(row["line"]), row["kind"], row["label"], row["expected"],
                              row["reason"]))
        if problems:
            raise SystemExit("\n".join(problems))
        return sites


SiteKey = Tuple[str, str, int, str]  # repo, path, line, kind


def read_classes(path: str) -> Dict[SiteKey, str]:
    if not path or not os.path.exists(path):
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {(row["repo"], row["path"], int(row["line"]), row["kind"]): row["class"].strip()
                for row in csv.DictReader(handle) if (row.get("line") or "").strip().isdigit()}


def print_miss_classes(md: bool, misses: List[Site], classes: Dict[SiteKey, str],
                       bugs: List[Site]) -> None:
    """Misses per class, the misses no class explains yet, and classified bugs now found."""
    def key(site: Site) -> SiteKey:
        return (site.repo, site.path, site.line, site.kind)

    per_class = collections.Counter((site.kind, classes.get(key(site), "unclassified"))
                                    for site in misses)
    section(md, f"missed bugs per class ({len(misses)})")
    print_table([["kind", "class", "misses"]]
                + [[kind, name, count] for (kind, name), count in
                   sorted(per_class.items(), key=lambda item: (KINDS.index(item[0][0]), -item[1]))],
                md)
    missed = {key(site) for site in misses}
    found_now = [site for site in bugs if key(site) in classes and key(site) not in missed]
    if found_now:
        section(md, f"classified misses that are found now ({len(found_now)})")
        for site in found_now:
            print(f"{bullet(md)}{site.kind} {site.repo}:{site.path}:{site.line}  "
                  f"(was: {classes[key(site)]})")


def statement_spans(source: str, lines: Iterable[int]) -> Dict[int, Tuple[int, int]]:
    """For each line, the line range of the statement a finding there may be reported on."""
    wanted = set(lines)
    spans = {line: (line, line) for line in wanted}
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return spans
    best: Dict[int, Tuple[int, int]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        first = node.lineno
        last = getattr(node, "end_lineno", None) or first
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            # a compound statement: only its header belongs to it
            last = max(first, body[0].lineno - 1)
            decorators = getattr(node, "decorator_list", [])
            if decorators:
                first = min(d.lineno for d in decorators)
        for line in wanted:
            if first <= line <= last:
                old = best.get(line)
                if old is None or last - first < old[1] - old[0]:
                    best[line] = (first, last)
    spans.update(best)
    return spans


def lint_one(job: Tuple[str, Tuple[int, ...]]) -> FileResult:
    """Lint one file and find the statements of its labelled lines; never raises."""
    full, lines = job
    from torchgradlint.engine import lint_file

    try:
        with open(full, encoding="utf-8", errors="replace") as handle:
            source = handle.read()
    except OSError as error:
        return FileResult([], {}, f"cannot read: {error}")
    spans = statement_spans(source, lines)
    try:
        findings = lint_file(full)
    except Exception as error:  # a failure to analyse is reported, not raised
        return FileResult([], spans, f"{type(error).__name__}: {error}")
    return FileResult([(f.line, f.code) for f in findings], spans, None)


def run(jobs: List[Tuple[str, Tuple[int, ...]]], workers: int) -> Iterable[FileResult]:
    if workers <= 1:
        return [lint_one(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lint_one, jobs, chunksize=4))


def percent(found: int, total: int) -> str:
    return f"{100 * found / total:.0f} %" if total else "-"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="folder of owner+name repository folders")
    parser.add_argument("--labels", default=os.path.join(HERE, "recall-labels.csv"))
    parser.add_argument("--classes", default=os.path.join(HERE, "recall-miss-classes.csv"),
                        help="repo,path,line,kind,class: why each known miss is missed")
    parser.add_argument("--corpus-list", default=os.path.join(HERE, "corpus.txt"),
                        help="owner/name <revision> list, to flag labels made at another revision")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--repo", action="append", default=[],
                        help="only sites of this repository (owner/name); may be repeated")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    os.environ["TORCHGRADLINT_NO_CACHE"] = "1"  # fresh findings, nothing written into the corpus

    sites = read_labels(args.labels)
    if args.repo:
        sites = [s for s in sites if s.repo in args.repo]
    revisions = read_revisions(args.corpus_list)
    corpus = os.path.abspath(args.corpus)

    lines_of: Dict[Tuple[str, str], Set[int]] = collections.defaultdict(set)
    for site in sites:
        lines_of[(site.repo, site.path)].add(site.line)
    keys = sorted(lines_of)
    missing_files = [k for k in keys
                     if not os.path.isfile(os.path.join(corpus, k[0].replace("/", "+", 1), k[1]))]
    keys = [k for k in keys if k not in missing_files]
    jobs = [(os.path.join(corpus, repo.replace("/", "+", 1), path),
             tuple(sorted(lines_of[(repo, path)]))) for repo, path in keys]
    start = time.perf_counter()
    results = dict(zip(keys, run(jobs, args.jobs)))
    elapsed = time.perf_counter() - start

    md = args.markdown
    counts: Dict[Tuple[str, str], collections.Counter] = collections.defaultdict(
        collections.Counter)
    misses: List[Site] = []
    alarms: List[Tuple[Site, List[str]]] = []
    skipped: List[Site] = []
    for site in sites:
        result = results.get((site.repo, site.path))
        if result is None or result.failure:
            skipped.append(site)
            continue
        first, last = result.spans.get(site.line, (site.line, site.line))
        near = [code for line, code in result.findings if first <= line <= last]
        row = counts[(site.kind, site.expected or EXPECTED[site.kind])]
        if site.label == "bug":
            row["bugs"] += 1
            if site.expected in near:
                row["found"] += 1
            else:
                misses.append(site)
        else:
            row["correct"] += 1
            family = sorted({code for code in near if code in FAMILY[site.kind]})
            if family:
                row["alarms"] += 1
                alarms.append((site, family))

    print(("## " if md else "") + "torchgradlint recall on labelled real code")
    print()
    repos = sorted({s.repo for s in sites})
    print(f"{len(sites)} labelled sites ({sum(s.label == 'bug' for s in sites)} bugs) in "
          f"{len(keys)} files of {len(repos)} repositories, linted in {elapsed:.1f} s "
          f"({max(1, args.jobs)} worker(s)); labels {args.labels}. A bug is found when a finding "
          f"with the expected code is on a line of the labelled statement.")
    print()
    table = [["kind", "expected", "bugs", "found", "recall", "correct sites", "false alarms"]]
    total = collections.Counter()
    for kind in KINDS:
        for (row_kind, code), row in sorted(counts.items()):
            if row_kind != kind:
                continue
            total.update(row)
            table.append([kind, code, row["bugs"], row["found"],
                          percent(row["found"], row["bugs"]), row["correct"], row["alarms"]])
    table.append(["all", "", total["bugs"], total["found"], percent(total["found"], total["bugs"]),
                  total["correct"], total["alarms"]])
    print_table(table, md)

    section(md, f"missed bugs ({len(misses)})")
    for site in sorted(misses, key=lambda s: (s.kind, s.repo, s.path, s.line)):
        print(f"{bullet(md)}{site.kind} {site.expected} {site.repo}:{site.path}:{site.line}  "
              f"{site.reason}")
    classes = read_classes(args.classes)
    print_miss_classes(md, misses, classes, [s for s in sites if s.label == "bug"])
    section(md, f"false alarms on correct sites ({len(alarms)})")
    for site, family in alarms:
        print(f"{bullet(md)}{site.kind} {','.join(family)} {site.repo}:{site.path}:{site.line}  "
              f"{site.reason}")
    moved = sorted({(s.repo, s.revision) for s in sites
                    if s.revision and revisions.get(s.repo) and s.revision != revisions[s.repo]})
    if moved:
        section(md, "labelled at another revision than bench/corpus.txt lists")
        for repo, revision in moved:
            print(f"{bullet(md)}{repo} labelled at {revision}, corpus has {revisions[repo]}")
    if missing_files or skipped:
        section(md, "sites not scored (file missing from the corpus, or the linter failed)")
        for repo, path in missing_files:
            print(f"{bullet(md)}{repo}:{path}: not in {corpus}")
        for site in skipped:
            result = results.get((site.repo, site.path))
            if result is not None:
                print(f"{bullet(md)}{site.repo}:{site.path}:{site.line}: {result.failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
