#!/usr/bin/env bash
# Re-create the benchmark corpus from a pinned list of public repositories.
#
#   bench/get_corpus.sh [LIST] [TARGET]
#
# LIST defaults to bench/corpus.txt ("owner/name <revision>" a line, '#' comments);
# TARGET defaults to ../corpus (outside this repository: the corpus is never committed).
# Each repository lands in TARGET/owner+name/ at exactly the listed revision, without .git,
# then goes through bench/prepare_corpus.py (notebooks -> .py, data and binaries deleted).
# A folder that already exists is left alone, so the script can be re-run after a failure.
#
# Environment:
#   MIRROR_ROOT=/dir   clone from /dir/owner+name/repo (a local git directory) when it exists,
#                      instead of https://github.com/owner/name
#   GIT_URL_PREFIX     default https://github.com/
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
list="${1:-$here/corpus.txt}"
target="${2:-$here/../../corpus}"
prefix="${GIT_URL_PREFIX:-https://github.com/}"
python="${PYTHON:-python3}"

mkdir -p "$target"
target="$(cd "$target" && pwd)"
failed=0

while read -r repo rev _; do
    case "$repo" in ''|'#'*) continue ;; esac
    dest="$target/${repo/\//+}"
    if [ -d "$dest" ]; then
        echo "have  $repo"
        continue
    fi
    src="$prefix$repo"
    if [ -n "${MIRROR_ROOT:-}" ] && [ -d "$MIRROR_ROOT/${repo/\//+}/repo" ]; then
        src="$MIRROR_ROOT/${repo/\//+}/repo"
    fi
    tmp="$(mktemp -d "$target/.tmp.XXXXXX")"
    echo "clone $repo @ $rev from $src"
    if git clone --quiet --no-checkout "$src" "$tmp/w" \
        && git -C "$tmp/w" -c advice.detachedHead=false checkout --quiet "$rev"; then
        got="$(git -C "$tmp/w" rev-parse HEAD)"
        if [ "$got" != "$rev" ]; then
            echo "  revision mismatch: got $got" >&2
            failed=$((failed + 1))
            rm -rf "$tmp"
            continue
        fi
        rm -rf "$tmp/w/.git"
        "$python" "$here/prepare_corpus.py" "$tmp/w"
        mv "$tmp/w" "$dest"
    else
        echo "  FAILED: $repo" >&2
        failed=$((failed + 1))
    fi
    rm -rf "$tmp"
done < "$list"

echo "corpus in $target ($failed failed)"
[ "$failed" -eq 0 ]
