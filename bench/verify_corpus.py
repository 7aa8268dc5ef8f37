"""Check that the benchmark corpus still holds what its repositories hold at the pinned revisions.

    python bench/verify_corpus.py CORPUS_DIR [--list bench/corpus.txt] [--mirrors DIR]

Every file of ``CORPUS_DIR/owner+name/`` that the repository tracks at the revision listed in
``corpus.txt`` is hashed as git hashes a blob and compared with the blob of the revision, read
from the local git directory ``MIRRORS/owner+name/repo`` (the one ``get_corpus.sh`` clones from
with ``MIRROR_ROOT``). Files the preparation made (notebooks converted to ``.py``) are not in
git and are skipped. A study measured on a changed file measures something else: one changed
file (a ``model.eval()`` lost to an in-place write through a hard link) went unnoticed for a
day. Exit status 1 when a file differs or a repository cannot be checked.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))


def pinned(list_path: str) -> List[Tuple[str, str]]:
    """(owner/name, revision) of every line of the corpus list."""
    found = []
    with open(list_path, encoding="utf-8") as handle:
        for line in handle:
            words = line.split("#", 1)[0].split()
            if len(words) >= 2:
                found.append((words[0], words[1]))
    return found


def git_directory(mirror: str) -> Optional[str]:
    for candidate in (os.path.join(mirror, ".git"), mirror):
        if os.path.exists(os.path.join(candidate, "HEAD")):
            return candidate
    return None


def tracked_blobs(git_dir: str, revision: str) -> Dict[str, str]:
    """path -> blob id of every file of the revision."""
    listing = subprocess.run(["git", "--git-dir", git_dir, "ls-tree", "-r", revision],
                             capture_output=True, text=True, check=True).stdout
    blobs = {}
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        blobs[path] = meta.split()[2]
    return blobs


def changed_files(folder: str, blobs: Dict[str, str]) -> List[str]:
    """The files of ``folder`` whose content is not the revision's blob of the same path."""
    present = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if relative in blobs and not os.path.islink(path):
                present.append((relative, path))
    if not present:
        return []
    hashes = subprocess.run(["git", "hash-object", "--no-filters", "--stdin-paths"],
                            input="\n".join(path for _, path in present),
                            capture_output=True, text=True, check=True).stdout.split()
    return [relative for (relative, _), digest in zip(present, hashes) if digest != blobs[relative]]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("--list", default=os.path.join(HERE, "corpus.txt"))
    parser.add_argument("--mirrors", default=os.environ.get("MIRROR_ROOT", "/work/.mirror"))
    args = parser.parse_args(argv)
    problems = 0
    checked = 0
    for repo, revision in pinned(args.list):
        folder = os.path.join(args.corpus, repo.replace("/", "+"))
        if not os.path.isdir(folder):
            continue
        git_dir = git_directory(os.path.join(args.mirrors, repo.replace("/", "+"), "repo"))
        if git_dir is None:
            print(f"cannot check {repo}: no local git directory under {args.mirrors}")
            problems += 1
            continue
        try:
            blobs = tracked_blobs(git_dir, revision)
        except subprocess.CalledProcessError:
            print(f"cannot check {repo}: revision {revision} not in {git_dir}")
            problems += 1
            continue
        for relative in changed_files(folder, blobs):
            print(f"changed: {repo} {relative}")
            problems += 1
        checked += 1
    print(f"{checked} repositories checked, {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
