"""The project index: summaries of the other modules of the project a file belongs to.

Real training code is spread over files: ``train.py`` imports ``evaluate`` from ``engine.py``;
the no-grad decorator lives in ``utils/torch_utils.py``. The index finds the project root of a
file (the folder above its outermost package), maps imports to files under it, and gives the
analysis of one file the summaries (``semantic/summary.py``) of the modules it imports and of
the modules that import it (for the grad mode and model modes its functions are called with).

Everything beside the linted file is read with bounds: regular files only (never a FIFO or a
device), at most the size limit (``sourcefile.read_bytes``). Callers are looked for under the
root, without entering excluded folders, nested repositories or projects, virtual
environments, or files above the size limit.

Summaries are cached on disk (``cache.py``: under the user's cache folder, one folder per
project, every entry signed and checked), keyed by the module's path under the root, its
content, the settings and torchgradlint's version, with the digests of the modules it was
computed from, taken from the very bytes that were read. Imports that do not resolve inside the
project are left alone: the analysis stays silent about what it cannot see.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
from typing import Dict, List, Optional, Set, Tuple

from . import __version__
from .discovery import VENV_MARKER, ExcludePattern, find_root, is_skipped_dir_name

SKIPPED_DIRS = {".torchgradlint_cache"}  # besides discovery's (VCS, caches, venvs, builds)
# A folder below the root holding one of these is another project (a cloned repository, a
# vendored package with its own packaging): its files do not import the linted one.
NESTED_PROJECT_MARKERS = (".git", ".hg", "pyproject.toml", "setup.py", "setup.cfg")
# the names (case folded) of the entries that make a folder another project or a virtual
# environment, a folder that is not walked
FOLDER_MARKERS = frozenset(name.casefold() for name in NESTED_PROJECT_MARKERS + (VENV_MARKER,))
PACKAGING_FILES = ("setup.py", "pyproject.toml", "setup.cfg")
MAX_PROJECT_FILES = 5000
# A module imported by more files than this is a library's utility: its callers are too many and
# too varied to say anything about how it is called, and reading them all would make a lint slow.
MAX_IMPORTERS = 40
# ``from x import a, b`` (groups 1, 2) or ``import x, y as z`` (group 3), matched at the start
# of a line that holds the word ``import`` (``import_lines``).
IMPORT_LINE = re.compile(rb"[ \t]*(?:from[ \t]+([.\w]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)"
                         rb"|import[ \t]+([^\n]+))")
NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
# The name a line's ``def``, ``async def`` or ``class`` defines (ASCII names: ``\w`` of bytes).
DEFINITION = re.compile(rb"^(?:async[ \t]+def|def|class)[ \t]+(\w+)", re.MULTILINE)
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
UNREADABLE = ""  # the digest recorded for a module that could not be read


def import_lines(data: bytes):
    """The import statements of a module's text, as ``IMPORT_LINE`` matches. Found from the
    word ``import`` (a plain search, five times faster than a regular expression tried at every
    line), then matched from the start of its line; a statement spanning lines is one match."""
    end = line_start = -1
    position = data.find(b"import")
    while position != -1:
        start = data.rfind(b"\n", 0, position) + 1
        if position >= end and start != line_start:
            line_start = start
            match = IMPORT_LINE.match(data, start)
            if match is not None:
                end = match.end()
                yield match
        position = data.find(b"import", position + 6)


def module_name(root: str, path: str) -> str:
    prefix = root if root.endswith(os.sep) else root + os.sep
    rest = path[len(prefix):]
    if os.path.isabs(path) and path.startswith(prefix) and os.sep + "." not in rest and \
            os.sep * 2 not in rest and not rest.startswith("."):
        relative = rest  # (relpath, for the files under the root, is slow)
    else:
        relative = os.path.relpath(os.path.abspath(path), root)
    parts = relative[:-3].split(os.sep) if relative.endswith(".py") else relative.split(os.sep)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def packaging_root(root: str) -> Optional[str]:
    """The folder above ``root``, within its repository, that holds a packaging file
    (``setup.py``, ``pyproject.toml``, ``setup.cfg``): the package there is installed, and a
    script below it imports it. None when there is none (or it is ``root`` itself)."""
    folder = os.path.abspath(root)
    while True:
        if any(os.path.isfile(os.path.join(folder, marker)) for marker in PACKAGING_FILES):
            return folder if folder != os.path.abspath(root) else None
        if any(os.path.lexists(os.path.join(folder, marker)) for marker in (".git", ".hg")):
            return None
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _read(path: str, limit: Optional[int] = None) -> Optional[bytes]:
    """The file's bytes (``sourcefile.read_bytes``: ``limit`` defaults to the configured size
    limit), None when it cannot be read."""
    from .sourcefile import SourceError, read_bytes

    try:
        return read_bytes(path, limit)
    except SourceError:
        return None


def _digest(data: Optional[bytes]) -> str:
    return UNREADABLE if data is None else hashlib.sha256(data).hexdigest()


class ProjectIndex:
    """Summaries of a project's modules, computed lazily and cached (in memory and on disk)."""

    _instances: Dict[Tuple[str, object], "ProjectIndex"] = {}
    # The import statements of a file, by path, with the (size, modification time, inode) they
    # were read at: shared by the indexes of one process, since the roots of a repository's
    # sub-folders (``src``, ``examples/community``) scan files that its own root scans too; read
    # again once the file has changed (one entry a file, however long the process lives).
    _import_texts_by_path: Dict[str, Tuple[Tuple[int, int, int], bytes]] = {}

    def __init__(self, root: str, config=None):
        from .cache import SummaryCache

        self.root = root
        self.real_root = os.path.realpath(root)
        self.packaging_root = packaging_root(root)
        self.config = config
        self.cache = SummaryCache.for_root(root)
        # (path, kind) -> (digest of the module, summary, digests of the modules it read)
        self._summaries: Dict[Tuple[str, str], Tuple[str, Optional[dict], Dict[str, str]]] = {}
        self._files: Optional[List[str]] = None
        self._stamps: Dict[str, Tuple[int, int, int]] = {}  # file -> size, modified, inode
        self._in_progress: set = set()
        self._reading: List[Dict[str, str]] = []  # per summary being computed: what it read
        self._import_text: Optional[Dict[str, bytes]] = None
        # every file's import statements in one text, where each file's start, which file
        self._statements_together: Optional[Tuple[bytes, List[int], List[str]]] = None
        self._scan_order: Dict[str, int] = {}  # file -> its place among the import statements
        self._importers_found: Dict[str, List[str]] = {}
        self._imports_resolved: Dict[str, Set[str]] = {}
        self._module_layout: Optional[tuple] = None  # module name -> file, packages, name parts
        self._star_importers: Set[str] = set()  # files with an ``import *`` line
        self._is_file: Dict[str, bool] = {}  # one stat per candidate path and run
        self._digests: Dict[str, Tuple[Tuple[int, int, int], str]] = {}  # path -> stamp, digest
        self._paths_of: Dict[Tuple[str, Optional[str]], Optional[str]] = {}  # path_of per question
        self._defined_names: Dict[str, Set[str]] = {}  # per module: the ASCII names it defines
        self._excludes = [pattern if isinstance(pattern, ExcludePattern)
                          else ExcludePattern.make(pattern, os.getcwd())
                          for pattern in getattr(config, "exclude", ()) or ()]
        self._module_imports: Dict[str, Tuple[Dict[str, Tuple[str, str]], List[str]]] = {}
        # A plain name (``.git``) excludes an entry of that name: one set look-up for them all
        # (every file of the project is tested).
        self._excluded_names = {os.path.normcase(pattern.pattern) for pattern in self._excludes
                                if pattern.is_plain_name}
        self._exclude_globs = [pattern for pattern in self._excludes if not pattern.is_plain_name]

    @classmethod
    def for_file(cls, path: str, config=None) -> "ProjectIndex":
        root = find_root(path)
        key = (root, config)
        index = cls._instances.get(key)
        if index is None:
            index = cls._instances[key] = cls(root, config)
        return index

    # -- files ------------------------------------------------------------------------------
    def files(self) -> List[str]:
        """The project's modules that may import others: regular ``*.py`` files under the root
        within the size limit, outside skipped and excluded folders and nested projects."""
        if self._files is None:
            from .sourcefile import max_file_size

            limit = max_file_size()
            found: List[str] = []
            pending = [self.root]
            while pending and len(found) <= MAX_PROJECT_FILES:
                folder = pending.pop()
                try:
                    with os.scandir(folder) as listing:
                        entries = sorted(listing, key=lambda entry: entry.name)
                except OSError:
                    continue
                if folder != self.root and self._holds_another_project(folder, entries):
                    continue
                folders = []
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if self._may_walk_into(entry):
                                folders.append(entry.path)
                        elif entry.name.endswith(".py") and entry.is_file():
                            status = entry.stat()
                            if status.st_size <= limit and not self._excluded(entry.path):
                                found.append(entry.path)
                                self._stamps[entry.path] = (status.st_size, status.st_mtime_ns,
                                                            status.st_ino)
                    except OSError:
                        continue
                pending.extend(reversed(folders))
            self._files = found[:MAX_PROJECT_FILES]
        return self._files

    def _may_walk_into(self, entry) -> bool:
        """A folder the walk enters, as far as its name and the exclude patterns tell (what it
        holds is looked at when it is listed: ``_holds_another_project``)."""
        return entry.name not in SKIPPED_DIRS and not is_skipped_dir_name(entry.name) and \
            not self._excluded(entry.path)

    @staticmethod
    def _holds_another_project(folder: str, entries) -> bool:
        """The folder (below the root) is a nested project or a virtual environment: read off
        its listing, which the walk makes anyway, instead of a look-up per marker and folder.
        A name equal to a marker but for case is looked up, for case-insensitive file
        systems."""
        names = {entry.name.casefold() for entry in entries}
        if not names & FOLDER_MARKERS:
            return False
        return any(os.path.lexists(os.path.join(folder, marker)) for marker in NESTED_PROJECT_MARKERS) or \
            os.path.isfile(os.path.join(folder, VENV_MARKER))

    def _excluded(self, path: str) -> bool:
        return os.path.normcase(os.path.basename(path)) in self._excluded_names or \
            any(pattern.matches(path) for pattern in self._exclude_globs)

    def path_of(self, module: str, near: Optional[str] = None) -> Optional[str]:
        """The file of a module: under the root, or next to the importing file ``near`` (first,
        as Python does for a script outside a package)."""
        key = (module, near)
        if key not in self._paths_of:  # (asked again for every file that imports the module)
            self._paths_of[key] = self._find_path_of(module, near)
        return self._paths_of[key]

    def _find_path_of(self, module: str, near: Optional[str]) -> Optional[str]:
        folders = [self.root]
        if near is not None:
            beside = os.path.dirname(os.path.abspath(near))
            if self._exists(os.path.join(beside, "__init__.py")):
                folders.append(beside)
            else:
                # a script's own folder comes first on sys.path: ``from utils import *`` in
                # ``tools/train.py`` is ``tools/utils.py`` when there is one
                folders.insert(0, beside)
        if self.packaging_root is not None:
            # a script below the repository imports the repository's own package, installed
            # from its packaging file (minGPT's ``projects/chargpt/chargpt.py``: ``from mingpt
            # import ...``, after ``pip install -e .``)
            folders.append(self.packaging_root)
        for folder in folders:
            base = os.path.join(folder, *module.split("."))
            for candidate in (base + ".py", os.path.join(base, "__init__.py")):
                if self._exists(candidate):
                    return candidate
        return None

    def _exists(self, candidate: str) -> bool:
        found = self._is_file.get(candidate)
        if found is None:
            found = self._is_file[candidate] = os.path.isfile(candidate)
        return found

    def module_of(self, path: str) -> str:
        """The dotted name of the module at ``path`` (``pkg.utils``), also of a module of the
        repository's installed package outside the root."""
        if self.packaging_root is not None and not self._inside(path, self.root):
            return module_name(self.packaging_root, path)
        return module_name(self.root, path)

    @staticmethod
    def _inside(path: str, folder: str) -> bool:
        return os.path.abspath(path).startswith(os.path.join(os.path.abspath(folder), ""))

    def relative(self, path: str) -> str:
        return os.path.relpath(os.path.abspath(path), self.root).replace(os.sep, "/")

    def absolute_module(self, current: str, name: str, is_package: bool) -> str:
        """``..utils.x`` seen from module ``current`` -> ``pkg.utils.x``."""
        if not name.startswith("."):
            return name
        level = len(name) - len(name.lstrip("."))
        package = current.split(".") if is_package else current.split(".")[:-1]
        if level > 1:
            package = package[:len(package) - (level - 1)]
        rest = name[level:]
        return ".".join([p for p in package if p] + ([rest] if rest else []))

    # -- summaries --------------------------------------------------------------------------
    def summary(self, path: str, shallow: bool = False) -> Optional[dict]:
        """The summary of the module at ``path``; None when it cannot be read or is being
        summarized already (an import cycle). ``shallow``: computed from its own file alone."""
        path = os.path.abspath(path)
        digest = self._current_digest(path)
        # A summary reads the summaries of what its module imports, and those are "shallow":
        # computed from their own file alone. Two levels, never the whole project.
        kind = "shallow" if shallow or self._in_progress else "full"
        cached = self._summaries.get((path, kind))
        known = digest != UNREADABLE and cached is not None and cached[0] == digest and \
            self._unchanged(cached[2])
        data = None
        if not known and digest != UNREADABLE:
            data = _read(path)  # the very bytes the summary is computed from, and their digest
            digest = _digest(data)
        if self._reading:  # a summary being computed reads this module: it depends on it
            self._reading[-1][self.relative(path)] = digest
        if digest == UNREADABLE:
            return None
        if known:
            return cached[1]
        if path in self._in_progress:
            return None
        key = self._cache_key(path, digest, kind)
        loaded = self._load_cached(key)
        if loaded is not None:
            summary, depends_on = loaded
        else:
            self._in_progress.add(path)
            self._reading.append({})
            try:
                summary = self._compute(path, data, linked=kind == "full")
            finally:
                depends_on = self._reading.pop()
                self._in_progress.discard(path)
            self._store_cached(key, summary, depends_on)
        self._summaries[(path, kind)] = (digest, summary, depends_on)
        return summary

    def _cache_key(self, path: str, digest: str, kind: str) -> Optional[str]:
        """Everything an entry depends on besides the modules it read: the module's place in
        the project and its content, the settings, the version."""
        if self.cache is None:
            return None
        from .semantic.summary import SUMMARY_FORMAT

        root = os.path.relpath(self.real_root, self.cache.project).replace(os.sep, "/")
        return json.dumps([__version__, SUMMARY_FORMAT, kind, self._settings(), root,
                           self.relative(path), digest])

    def _confined(self, relative: str) -> Optional[str]:
        """The file a dependency names, if it is a plain path inside the root."""
        if not relative or "\0" in relative or "\\" in relative or relative.startswith("/") or \
                os.path.isabs(relative) or ".." in relative.split("/") and self.packaging_root is None:
            return None
        if ".." in relative.split("/") and self.packaging_root is not None:
            # a module of the repository's package, read by a script below the repository
            path = os.path.normpath(os.path.join(self.root, *relative.split("/")))
            confining = os.path.realpath(self.packaging_root)
        else:
            path = os.path.join(self.root, *relative.split("/"))
            confining = self.real_root
        folder = os.path.realpath(os.path.dirname(path))
        if os.path.commonpath([folder, confining]) != confining:
            return None  # through a linked folder that leads out of the project
        return path

    def _unchanged(self, depends_on: Dict[str, str]) -> bool:
        for relative, digest in depends_on.items():
            path = self._confined(relative)
            if path is None or self._current_digest(path) != digest:
                return False
        return True

    def _current_digest(self, path: str) -> str:
        """The digest of the file's content, read and hashed again only when its size,
        modification time or inode changed since (a summary asked again is checked against its
        module and every module it read, at every question)."""
        try:
            status = os.stat(path)
        except OSError:
            return _digest(_read(path))
        stamp = (status.st_size, status.st_mtime_ns, status.st_ino)
        known = self._digests.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        digest = _digest(_read(path))
        self._digests[path] = (stamp, digest)
        return digest

    def _load_cached(self, key: Optional[str]) -> Optional[Tuple[dict, Dict[str, str]]]:
        """A cached summary and what it depends on, if the entry is well formed and every
        module it was computed from is unchanged."""
        from .semantic.summary import is_valid_summary

        if key is None:
            return None
        entry = self.cache.load(key)
        if entry is None:
            return None
        depends_on, summary = entry.get("depends_on"), entry.get("summary")
        if type(depends_on) is not dict or not all(
                type(name) is str and type(digest) is str and
                (digest == UNREADABLE or HEX_DIGEST.fullmatch(digest))
                for name, digest in depends_on.items()):
            return None
        if not is_valid_summary(summary) or not self._unchanged(depends_on):
            return None
        return summary, depends_on

    def _store_cached(self, key: Optional[str], summary: Optional[dict],
                      depends_on: Dict[str, str]) -> None:
        if key is None or summary is None:
            return
        self.cache.store(key, {"depends_on": depends_on, "summary": summary})

    def _compute(self, path: str, data: bytes, linked: bool = True) -> Optional[dict]:
        import ast

        from .screen import may_contain_findings
        from .semantic import SemanticModel
        from .semantic.summary import summarize
        from .sourcefile import SourceError, decode_source

        try:
            source = decode_source(data, path)
        except SourceError:
            return None
        if not may_contain_findings(source) and not self._imports_project_modules(path):
            return {"format": 1, "module": self.module_of(path), "functions": {},
                    "classes": {}, "calls": []}
        try:
            tree = ast.parse(source, path)
            model = SemanticModel(tree, path, self._config(), project=self if linked else None,
                                  for_summary=True, source=source)
            try:
                return summarize(model, self.module_of(path))
            finally:
                model.release()
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        except Exception:  # noqa: BLE001 -- a helper we cannot read is a helper we cannot see
            return None

    def _imports_project_modules(self, path: str) -> bool:
        """A module that never mentions torch but imports project modules may still build
        their models and hand them on (a ``create_model_and_diffusion`` factory module)."""
        named, stars = self.module_imports(path)
        modules = {module for module, _ in named.values()} | set(stars)
        modules |= {f"{module}.{member}" for module, member in named.values() if member}
        return any(module and self.path_of(module, path) for module in modules)

    def _settings(self) -> list:
        """The settings a summary depends on, as part of its cache key."""
        config = self._config()
        return [sorted(config.no_grad_decorators), sorted(config.model_constructors),
                config.shortcuts]

    def _config(self):
        from .config import DEFAULT_CONFIG

        return self.config or DEFAULT_CONFIG

    # -- what a module's imports bring in ----------------------------------------------------
    def module_imports(self, path: str) -> Tuple[Dict[str, Tuple[str, str]], List[str]]:
        """A module's ``from X import a as b`` statements -- ``{"b": (X, "a")}`` with X made
        absolute -- and the modules it star-imports, read from its import lines (no parse)."""
        path = os.path.abspath(path)
        cached = self._module_imports.get(path)
        if cached is not None:
            return cached
        named: Dict[str, Tuple[str, str]] = {}
        stars: List[str] = []
        data = _read(path) or b""
        current = self.module_of(path)
        is_package = os.path.basename(path) == "__init__.py"
        for match in import_lines(data):
            origin, members, plain = match.groups()
            if plain is not None:
                for part in plain.decode("utf-8", "replace").split(","):
                    words = part.split()
                    if len(words) == 3 and words[1] == "as":
                        named[words[2]] = (words[0], "")
                    elif len(words) == 1:
                        head = words[0].split(".")[0]
                        named.setdefault(head, (head, ""))
                continue
            base = self.absolute_module(current, origin.decode("utf-8", "replace"), is_package)
            text = members.decode("utf-8", "replace").strip().strip("()").split("#")[0]
            for part in text.replace("\\", " ").split(","):
                words = part.split()
                if words == ["*"]:
                    stars.append(base)
                elif len(words) == 1 or (len(words) == 3 and words[1] == "as"):
                    named[words[-1]] = (base, words[0])
        self._module_imports[path] = (named, stars)
        return named, stars

    def star_aliases(self, path: str, modules: List[str], depth: int = 0) -> Dict[str, str]:
        """What ``from M import *`` of project modules brings into ``path`` beside M's own
        definitions: the imports of M (``torch``, ``nn`` -> ``torch.nn``), through M's own star
        imports, as qualified names."""
        found: Dict[str, str] = {}
        current = self.module_of(path)
        is_package = os.path.basename(path) == "__init__.py"
        for module in modules:
            source = self.path_of(self.absolute_module(current, module, is_package), path)
            if source is None or depth > 3:
                continue
            named, stars = self.module_imports(source)
            for local, (origin, member) in named.items():
                if not local.startswith("_") and not origin.startswith("."):
                    found.setdefault(local, f"{origin}.{member}" if member else origin)
            for local, target in self.star_aliases(source, stars, depth + 1).items():
                found.setdefault(local, target)
        return found

    def star_import_may_define(self, path: str, modules: List[str], name: str, depth: int = 0) -> bool:
        """Whether ``from M import *`` of ``modules`` in ``path`` may bind ``name``: False only
        when every M is a project file whose text never spells the name, binds no names at
        run time, and whose own star imports bring nothing of that name either."""
        current = self.module_of(path)
        is_package = os.path.basename(path) == "__init__.py"
        word = re.compile(rb"\b" + re.escape(name.encode()) + rb"\b")
        for module in modules:
            source = self.path_of(self.absolute_module(current, module, is_package), path)
            data = _read(source) if source is not None else None
            if data is None or depth > 4 or word.search(data) or b"globals()" in data:
                return True
            stars = self.module_imports(source)[1]
            if stars and self.star_import_may_define(source, stars, name, depth + 1):
                return True
        return False

    def resolve_member(self, module: str, name: str, near: Optional[str] = None,
                       depth: int = 0) -> Optional[Tuple[str, str]]:
        """The file and name that ``from module import name`` reaches, following re-exports
        (``pkg/__init__.py``: ``from .train_utils import validation``) and star imports."""
        path = self.path_of(module, near)
        if path is None or depth > 4:
            return None
        if self._defines(path, name):
            return path, name
        named, stars = self.module_imports(path)
        if name in named:
            origin, member = named[name]
            if member:
                return self.resolve_member(origin, member, path, depth + 1)
            return None
        for star in stars:
            found = self.resolve_member(star, name, path, depth + 1)
            if found is not None:
                return found
        return None

    def _defines(self, path: str, name: str) -> bool:
        """A line of the module starts a definition of ``name`` (at any depth)."""
        if not name.isascii() or not name.isidentifier():
            data = _read(path)
            pattern = rb"^(?:async[ \t]+def|def|class)[ \t]+" + re.escape(name.encode()) + rb"\b"
            return data is not None and re.search(pattern, data, re.MULTILINE) is not None
        defined = self._defined_names.get(path)
        if defined is None:
            # One search of the module for every name asked of it (each name asked with a
            # pattern of its own cost a compilation and a search of the whole file).
            data = _read(path) or b""
            defined = self._defined_names[path] = {match.decode() for match in DEFINITION.findall(data)}
        return name in defined

    # -- queries ----------------------------------------------------------------------------
    def _import_statements(self) -> Dict[str, bytes]:
        """For every project file, the text of its import statements (a few percent of the
        file). Read once per index, with a plain search and a regular expression, not a parse;
        files with an ``import *`` line are noted on the way."""
        if self._import_text is None:
            from .sourcefile import max_file_size

            texts: Dict[str, bytes] = {}
            shared = ProjectIndex._import_texts_by_path
            limit = max_file_size()  # (read from the environment once, not once per file)
            for path in self.files():
                stamp = self._stamps[path]
                known = shared.get(path)
                if known is not None and known[0] == stamp:
                    text = known[1]
                else:
                    data = _read(path, limit)
                    if data is None:
                        continue
                    text = b"\n".join(match.group(0) for match in import_lines(data))
                    shared[path] = (stamp, text)
                texts[path] = text
                # (searched in the statements, not the whole file: a search costs as much as
                # the read)
                if b"import *" in text or b"import*" in text:
                    self._star_importers.add(path)
            self._import_text = texts
        return self._import_text

    def importers_of(self, path: str) -> List[str]:
        """The project files that import the module at ``path``."""
        return list(self._importers_of(os.path.abspath(path)))

    def imported_files(self, path: str) -> Set[str]:
        """The project files that the module at ``path`` imports."""
        path = os.path.abspath(path)
        return set(self._imported_by(path, self._import_statements().get(path, b"")))

    def _importers_of(self, target: str) -> List[str]:
        """The files whose import statements name ``target`` (``from .engine import
        evaluate``, ``import pkg.engine``, ``from pkg import engine``, script-style ``import
        engine``). Every such statement spells the module's last name, except the relative
        ``from . import x`` of a package's own files: only those files are resolved."""
        found = self._importers_found.get(target)
        if found is None:
            leaf = module_name(self.root, target).rpartition(".")[2].encode()
            word = re.compile(rb"\b%s\b" % re.escape(leaf))
            package = os.path.dirname(target) + os.sep if os.path.basename(target) == "__init__.py" else None
            texts = self._import_statements()
            spelling = self._files_spelling(leaf, word)
            candidates = [path for path in texts if path in spelling or path.startswith(package)] \
                if package else sorted(spelling, key=self._scan_order.__getitem__)
            found = [path for path in candidates
                     if path != target and target in self._imported_by(path, texts[path])]
            self._importers_found[target] = found
        return found

    def _files_spelling(self, leaf: bytes, word) -> Set[str]:
        """The files whose import statements hold a match of ``word``, a word search of
        ``leaf``: ``leaf`` looked for in the statements of all the files at once (a search per
        file that holds it, not one per file of the project), each file's set apart by a NUL
        byte, which no name holds."""
        if self._statements_together is None:
            texts = self._import_statements()
            starts, offset = [], 0
            for text in texts.values():
                starts.append(offset)
                offset += len(text) + 1
            self._statements_together = (b"\0".join(texts.values()), starts, list(texts))
            self._scan_order = {path: number for number, path in enumerate(texts)}
        together, starts, paths = self._statements_together
        texts = self._import_text
        found = set()
        position = together.find(leaf)
        while position != -1:
            number = bisect.bisect_right(starts, position) - 1
            if word.search(texts[paths[number]]):
                found.add(paths[number])
            if number + 1 == len(starts):
                break
            position = together.find(leaf, starts[number + 1])
        return found

    def _imported_by(self, path: str, text: bytes) -> Set[str]:
        imported = self._imports_resolved.get(path)
        if imported is None:
            if self._module_layout is None:
                modules = self._module_files()
                packages = {name.rsplit(".", depth)[0] for name in modules
                            for depth in range(1, name.count(".") + 1)}
                # An absolute import resolves (from the root or, script-style, beside the
                # importer) only if its first name is a part of some module name of the project.
                parts = {part.encode() for name in modules for part in name.split(".")}
                self._module_layout = (modules, packages, parts)
            current = module_name(self.root, path)
            is_package = os.path.basename(path) == "__init__.py"
            imported = self._imports_resolved[path] = self._imported_files(
                text, current, is_package, *self._module_layout)
        return imported

    def _module_files(self) -> Dict[str, str]:
        """Module name -> file, for the project's files (``a.py`` wins over ``a/__init__.py``,
        as for the interpreter)."""
        modules: Dict[str, str] = {}
        for path in self.files():
            name = module_name(self.root, path)
            if name and (name not in modules or modules[name].endswith("__init__.py")):
                modules[name] = path
        return modules

    def _imported_files(self, data: bytes, current: str, is_package: bool,
                        modules: Dict[str, str], packages: Set[str], parts: Set[bytes]):
        """The project files whose modules ``data``'s import lines name. ``packages``: the
        dotted prefixes of the project's modules (only ``from`` one of them can a member be a
        module: the members of ``from torch.nn import ...`` are not looked up); ``parts``:
        every part of a module name (``import numpy`` is not looked up at all)."""
        # A script imports the modules beside it by their short names: ``import engine``.
        folder = current.rpartition(".")[0] if not is_package else current
        found = set()

        def look_up(name: str) -> None:
            if name.split(".")[0] in ("torch", "numpy", "os", "sys", "typing"):
                return
            target = modules.get(name) or (folder and modules.get(f"{folder}.{name}"))
            if target:
                found.add(target)

        for match in import_lines(data):
            origin, members, plain = match.groups()
            if plain is not None:
                for name in NAME.findall(plain):
                    if name != b"as" and name.split(b".", 1)[0] in parts:
                        look_up(name.decode())
                continue
            if origin[:1] != b"." and origin.split(b".", 1)[0] not in parts:
                continue
            base = self.absolute_module(current, origin.decode(), is_package)
            look_up(base)
            if base and base not in packages and not (folder and f"{folder}.{base}" in packages):
                continue
            for member in NAME.findall(members):
                member = member.decode()
                if member not in ("as", "import"):
                    look_up(f"{base}.{member}" if base else member)
        return found

    def incoming_calls(self, path: str, functions=None) -> List[dict]:
        """Calls into the functions of ``path`` made by other modules of the project. With
        ``functions`` (tuples of words), only the importers whose text holds every word of one
        tuple are read: a call names its function (``evaluate``), a method call an object of
        the class the importer names (``GAN`` and ``visualize_results``), whatever the aliases."""
        target_module = module_name(self.root, path)
        if not target_module:
            return []
        calls: List[dict] = []
        absolute = os.path.abspath(path)
        target_file = self.relative(path)
        importers = self._importers_through_reexports(absolute, MAX_IMPORTERS)
        if len(importers) > MAX_IMPORTERS:
            return []
        mentions = None
        if functions is not None:
            if not functions:
                return []
            words = sorted({word for required in functions for word in required})
            mentions = re.compile(rb"\b(?:" + b"|".join(re.escape(word.encode()) for word in words) + rb")\b")
        for other in importers:
            if os.path.abspath(other) == absolute:
                continue
            if mentions is not None and not self._mentions(other, mentions, functions):
                continue
            summary = self.summary(other)
            if not summary:
                continue
            for call in summary.get("calls", ()):
                where, _, function = call["target"].rpartition(":")
                if where == target_file:
                    calls.append(dict(call, function=function, caller=summary.get("module"),
                                      caller_file=self.relative(other)))
        return calls

    def _importers_through_reexports(self, path: str, limit: Optional[int] = None) -> List[str]:
        """The files that import ``path``, and those that import it through a package's
        ``__init__.py`` or a module that star-imports it (re-exports). With ``limit``, the walk
        stops once it has found more than that many (the caller gives up on so many)."""
        found: List[str] = []
        stack, seen = [path], {path}
        while stack:
            current = stack.pop()
            for other in self._importers_of(current):
                if other in seen:
                    continue
                seen.add(other)
                found.append(other)
                if limit is not None and len(found) > limit:
                    return found
                if os.path.basename(other) == "__init__.py" or self._star_imports(other, current):
                    stack.append(other)
        return found

    def _star_imports(self, importer: str, path: str) -> bool:
        if importer not in self._star_importers:
            return False  # (read off the import scan: no ``import *`` in its text)
        _, stars = self.module_imports(importer)
        current = module_name(self.root, importer)
        is_package = os.path.basename(importer) == "__init__.py"
        return any(self.path_of(self.absolute_module(current, star, is_package), importer) == path
                   for star in stars)

    @staticmethod
    def _mentions(path: str, pattern, required) -> bool:
        data = _read(path)
        if data is None:
            return False
        found = {word.decode() for word in pattern.findall(data)}
        return any(all(word in found for word in words) for words in required)
