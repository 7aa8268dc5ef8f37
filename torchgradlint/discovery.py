"""Find the Python files to lint under the paths given on the command line.

- A file named on the command line is always linted, whatever its name, unless ``force_exclude``
  is set and an exclude pattern matches it (pre-commit passes every changed file by name).
- Directories are walked recursively for ``*.py`` files. Symbolic links to directories are not
  followed. Sub-directories that are version-control metadata, caches, virtual environments,
  build output or installed packages are skipped (``SKIPPED_DIRS``, ``*.egg-info`` and any folder
  holding a ``pyvenv.cfg``), and so is every file or folder an exclude pattern matches.
- Exclude patterns are shell globs (``fnmatch``) matched, as flake8 does, against the entry's
  base name and against its path relative to the pattern's base directory (the directory of the
  configuration file that declared it, or the current directory for command-line patterns);
  an absolute pattern is matched against the absolute path.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".svn", ".bzr", "_darcs",
    "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
    ".tox", ".nox", ".venv", ".eggs",
    "build", "dist", "node_modules", "site-packages", "__pypackages__",
})
SKIPPED_DIR_GLOBS = ("*.egg-info",)
VENV_MARKER = "pyvenv.cfg"


@dataclass(frozen=True)
class ExcludePattern:
    pattern: str
    base: str  # absolute directory that relative patterns are relative to

    @classmethod
    def make(cls, pattern: str, base: str) -> "ExcludePattern":
        pattern = pattern.strip()
        if len(pattern) > 1:
            pattern = pattern.rstrip("/\\") or pattern
        return cls(pattern.replace("\\", "/"), os.path.abspath(base))

    def matches(self, path: str) -> bool:
        """``path`` is absolute."""
        name = os.path.basename(path)
        if self.is_plain_name:  # ``.git``: equal to the base name (or to a relative path of one part)
            return os.path.normcase(name) == self._normcased_pattern
        if self._name_suffix is not None:
            # ``*.egg``: a path whose base name does not end so does not either
            return os.path.normcase(name).endswith(self._name_suffix)
        if fnmatch.fnmatch(name, self.pattern):
            return True
        posix_path = path.replace(os.sep, "/")
        if os.path.isabs(self.pattern) or self.pattern.startswith("/"):
            return fnmatch.fnmatch(posix_path, self.pattern)
        relative = self._relative(path)
        if relative is None:
            return False
        relative = relative.replace(os.sep, "/")
        if relative.startswith("../") or relative == "..":
            return False
        if self.pattern.startswith("./"):
            return fnmatch.fnmatch("./" + relative, self.pattern)
        return fnmatch.fnmatch(relative, self.pattern)

    def _relative(self, path: str) -> Optional[str]:
        """``os.path.relpath(path, self.base)``; None for a path outside the base. A project's
        walk asks for every file: a plain absolute path (no ``.`` or empty part) is read
        without ``relpath``, which normalizes both paths each time."""
        base = self._normalized_base
        plain = os.path.isabs(path) and os.sep + "." not in path and os.sep * 2 not in path and \
            (os.altsep is None or os.altsep not in path)
        if not plain or base is None:
            return os.path.relpath(path, self.base)
        if path == base:
            return "."
        prefix = base if base.endswith(os.sep) else base + os.sep
        return path[len(prefix):] if path.startswith(prefix) else None

    @functools.cached_property
    def _normalized_base(self) -> Optional[str]:
        """The base when it is written as ``abspath`` writes it (None otherwise)."""
        return self.base if os.path.isabs(self.base) and os.path.abspath(self.base) == self.base else None

    @functools.cached_property
    def _normcased_pattern(self) -> str:
        return os.path.normcase(self.pattern)

    @functools.cached_property
    def _name_suffix(self) -> Optional[str]:
        """What the names that ``*`` and a plain ending (``*.egg``) matches end with; None for
        other patterns. (Each file of a project walk is tested: a string test, not two
        ``fnmatch`` calls and a relative path.)"""
        rest = self.pattern[1:]
        if self.pattern[:1] != "*" or not rest or any(character in rest for character in "*?[/\\"):
            return None
        return os.path.normcase(rest)

    @functools.cached_property
    def is_plain_name(self) -> bool:
        return not any(character in self.pattern for character in "*?[/")

    def matches_within(self, path: str) -> bool:
        """``path`` or one of its folders matches. For a relative pattern only the folders
        inside the base directory count, as if the walk had started there."""
        if self.matches(path):
            return True
        absolute_pattern = os.path.isabs(self.pattern) or self.pattern.startswith("/")
        folder = os.path.dirname(path)
        while True:
            if not absolute_pattern and not _is_within(folder, self.base):
                return False
            if absolute_pattern or folder != self.base:
                if self.matches(folder):
                    return True
            parent = os.path.dirname(folder)
            if parent == folder:
                return False
            folder = parent


def _is_within(path: str, base: str) -> bool:
    try:
        return os.path.commonpath([path, base]) == base
    except ValueError:  # different drives
        return False


def is_excluded(path: str, patterns: Sequence[ExcludePattern], folders: bool = False) -> bool:
    """``path`` matches a pattern; with ``folders``, a path inside a matching folder too (for
    paths named on the command line under ``--force-exclude``)."""
    absolute = os.path.abspath(path)
    if folders:
        return any(pattern.matches_within(absolute) for pattern in patterns)
    return any(pattern.matches(absolute) for pattern in patterns)


def is_skipped_dir(path: str, name: str) -> bool:
    """A directory met while walking that holds no project source."""
    return is_skipped_dir_name(name) or os.path.isfile(os.path.join(path, VENV_MARKER))


def is_skipped_dir_name(name: str) -> bool:
    """A directory whose name says it holds no project source (a virtual environment, which
    ``is_skipped_dir`` recognizes too, may have any name)."""
    return name in SKIPPED_DIRS or any(fnmatch.fnmatch(name, glob) for glob in SKIPPED_DIR_GLOBS)


@dataclass
class Discovery:
    files: List[str]
    missing: List[str]  # command-line paths that do not exist


def _walk(root: str, patterns: Sequence[ExcludePattern]) -> Iterator[str]:
    for directory, subdirs, files in os.walk(root):
        kept = []
        for name in subdirs:
            path = os.path.join(directory, name)
            if is_skipped_dir(path, name) or is_excluded(path, patterns):
                continue
            kept.append(name)
        subdirs[:] = sorted(kept)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            if is_excluded(path, patterns):
                continue
            yield path


def display_path(path: str) -> str:
    """How a discovered path is shown: normalised, without a leading ``./``."""
    return os.path.normpath(path)


def discover(
    paths: Iterable[str],
    exclude: Sequence[ExcludePattern] = (),
    force_exclude: bool = False,
) -> Discovery:
    """The files to lint (display paths, deduplicated, in a stable order) and missing paths."""
    seen = set()
    files: List[str] = []
    missing: List[str] = []

    def add(path: str) -> None:
        key = os.path.normcase(os.path.realpath(path))
        if key not in seen:
            seen.add(key)
            files.append(display_path(path))

    for path in paths:
        if os.path.isdir(path):
            if force_exclude and is_excluded(path, exclude, folders=True):
                continue
            for found in _walk(path, exclude):
                add(found)
        elif os.path.exists(path):
            if force_exclude and is_excluded(path, exclude, folders=True):
                continue
            add(path)
        else:
            missing.append(path)
    return Discovery(files, missing)


def path_sort_key(path: str) -> Tuple[str, ...]:
    """Paths sort folder by folder, so ``a/b.py`` and ``a/c/d.py`` keep their folder order."""
    return tuple(path.replace(os.sep, "/").split("/"))


def sorted_paths(files: Iterable[str]) -> List[str]:
    return sorted(files, key=path_sort_key)


def find_root(path: str) -> str:
    """The folder above the outermost package holding ``path`` (or its own folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder
