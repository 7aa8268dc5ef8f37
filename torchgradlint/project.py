"""The project index: summaries of the other modules of the project a file belongs to.

Real training code is spread over files: ``train.py`` imports ``evaluate`` from ``engine.py``;
the no-grad decorator lives in ``utils/torch_utils.py``. The index finds the project root of a
file (the folder above its outermost package), maps imports to files under it, and gives the
analysis of one file the summaries (``semantic/summary.py``) of the modules it imports and of
the modules that import it (for the grad mode and model modes its functions are called with).

Summaries are computed once per file content and cached on disk, keyed by the content's hash and
torchgradlint's version, in ``.torchgradlint_cache/`` at the project root (relocate it with
``TORCHGRADLINT_CACHE_DIR``, disable it with ``TORCHGRADLINT_NO_CACHE=1``). Imports that do not
resolve inside the project are left alone: the analysis stays silent about what it cannot see.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from typing import Dict, List, Optional, Tuple

from . import __version__

SKIPPED_DIRS = {".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".venv", "venv", "env",
                "build", "dist", "node_modules", "site-packages", ".eggs", ".torchgradlint_cache",
                ".mypy_cache", ".pytest_cache"}
MAX_PROJECT_FILES = 5000
# A module imported by more files than this is a library's utility: its callers are too many and
# too varied to say anything about how it is called, and reading them all would make a lint slow.
MAX_IMPORTERS = 40
# ``from x import a, b`` (groups 1, 2) or ``import x, y as z`` (group 3), at the start of a line.
# Anchored on a newline rather than ``^`` with re.MULTILINE: three times faster to scan.
IMPORT_LINE = re.compile(rb"\n[ \t]*(?:from[ \t]+([.\w]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)"
                         rb"|import[ \t]+([^\n]+))")
NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def find_root(path: str) -> str:
    """The folder above the outermost package holding ``path`` (or its own folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def module_name(root: str, path: str) -> str:
    relative = os.path.relpath(os.path.abspath(path), root)
    parts = relative[:-3].split(os.sep) if relative.endswith(".py") else relative.split(os.sep)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _well_formed(summary) -> bool:
    return isinstance(summary, dict) and isinstance(summary.get("functions"), dict) and \
        isinstance(summary.get("classes"), dict) and isinstance(summary.get("calls"), list) and \
        all(isinstance(value, dict) for value in summary["functions"].values()) and \
        all(isinstance(value, dict) for value in summary["classes"].values()) and \
        all(isinstance(value, dict) and isinstance(value.get("target"), str) for value in summary["calls"])


class ProjectIndex:
    """Summaries of a project's modules, computed lazily and cached (in memory and on disk)."""

    _instances: Dict[Tuple[str, object], "ProjectIndex"] = {}

    def __init__(self, root: str, config=None, cache_dir: Optional[str] = None):
        self.root = root
        self.config = config
        if os.environ.get("TORCHGRADLINT_NO_CACHE"):
            self.cache_dir = None
        else:
            self.cache_dir = cache_dir or os.environ.get("TORCHGRADLINT_CACHE_DIR") or \
                os.path.join(root, ".torchgradlint_cache")
        self._summaries: Dict[str, Tuple[bytes, Optional[dict]]] = {}
        self._files: Optional[List[str]] = None
        self._in_progress: set = set()
        self._importer_map: Optional[Dict[str, List[str]]] = None
        self._is_file: Dict[str, bool] = {}  # one stat per candidate path and run

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
        if self._files is None:
            found: List[str] = []
            for folder, dirs, names in os.walk(self.root):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")
                                 and not os.path.isfile(os.path.join(folder, d, "pyvenv.cfg")))
                found.extend(os.path.join(folder, n) for n in sorted(names) if n.endswith(".py"))
                if len(found) > MAX_PROJECT_FILES:
                    break
            self._files = found[:MAX_PROJECT_FILES]
        return self._files

    def path_of(self, module: str, near: Optional[str] = None) -> Optional[str]:
        """The file of a module: under the root, or (as Python does for a script) next to the
        importing file ``near``."""
        folders = [self.root]
        if near is not None:
            folders.append(os.path.dirname(os.path.abspath(near)))
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
    def summary(self, path: str) -> Optional[dict]:
        """The summary of the module at ``path``; None when it cannot be read or is being
        summarized already (an import cycle)."""
        path = os.path.abspath(path)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        # A summary reads the summaries of what its module imports, and those are "shallow":
        # computed from their own file alone. Two levels, never the whole project.
        kind = "shallow" if self._in_progress else "full"
        digest = hashlib.sha1(data).digest()  # keep a digest, not the file, in memory
        cached = self._summaries.get((path, kind))
        if cached is not None and cached[0] == digest:
            return cached[1]
        if path in self._in_progress:
            return None
        summary = self._load_cached(data, kind)
        if summary is None:
            self._in_progress.add(path)
            try:
                summary = self._compute(path, data, linked=kind == "full")
            finally:
                self._in_progress.discard(path)
            self._store_cached(data, summary, kind)
        self._summaries[(path, kind)] = (digest, summary)
        return summary

    def _cache_file(self, data: bytes, kind: str) -> Optional[str]:
        if self.cache_dir is None:
            return None
        from .semantic.summary import SUMMARY_FORMAT

        key = f"{__version__}/{SUMMARY_FORMAT}/{kind}/{self._settings()}"
        digest = hashlib.sha256(data + key.encode()).hexdigest()
        return os.path.join(self.cache_dir, digest[:2], digest + ".json")

    @staticmethod
    def _digest(path: str) -> Optional[str]:
        try:
            with open(path, "rb") as handle:
                return hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            return None

    def _load_cached(self, data: bytes, kind: str) -> Optional[dict]:
        """A cached summary, if every module it was computed from is unchanged."""
        path = self._cache_file(data, kind)
        if path is None or not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("depends_on", {}), dict):
            return None  # not written by this version: compute it again
        for dependency, digest in entry.get("depends_on", {}).items():
            if not isinstance(dependency, str) or self._digest(os.path.join(self.root, dependency)) != digest:
                return None
        summary = entry.get("summary")
        if not _well_formed(summary):
            return None
        return summary

    def _store_cached(self, data: bytes, summary: Optional[dict], kind: str) -> None:
        path = self._cache_file(data, kind)
        if path is None or summary is None:
            return
        depends_on = {}
        for relative in summary.get("imports", ()):
            source = os.path.join(self.root, relative)
            if os.path.isfile(source):
                depends_on[relative] = self._digest(source)
        try:
            if not os.path.isdir(self.cache_dir):
                os.makedirs(self.cache_dir, exist_ok=True)
                with open(os.path.join(self.cache_dir, ".gitignore"), "w") as ignore:
                    ignore.write("# created by torchgradlint\n*\n")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"depends_on": depends_on, "summary": summary}, out)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only tree: work without the disk cache

    def _compute(self, path: str, data: bytes, linked: bool = True) -> Optional[dict]:
        import ast

        from .engine import may_contain_findings
        from .semantic import SemanticModel
        from .semantic.summary import summarize
        from .sourcefile import SourceError, decode_source

        try:
            source = decode_source(data, path)
        except SourceError:
            return None
        if not may_contain_findings(source):
            return {"format": 1, "module": module_name(self.root, path), "functions": {},
                    "classes": {}, "calls": []}
        try:
            tree = ast.parse(source, path)
            model = SemanticModel(tree, path, self._config(), project=self if linked else None,
                                  for_summary=True)
            return summarize(model, module_name(self.root, path))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        except Exception:  # noqa: BLE001 -- a helper we cannot read is a helper we cannot see
            return None

    def _settings(self) -> str:
        """The settings a summary depends on, as part of its cache key."""
        config = self._config()
        return json.dumps([sorted(config.no_grad_decorators), sorted(config.model_constructors),
                           config.shortcuts])

    def _config(self):
        from .config import DEFAULT_CONFIG

        return self.config or DEFAULT_CONFIG

    # -- queries ----------------------------------------------------------------------------
    def _importers(self) -> Dict[str, List[str]]:
        """For every project file, the files whose import statements name it (``from .engine
        import evaluate``, ``import pkg.engine``, ``from pkg import engine``, script-style
        ``import engine``). Read once per index, with a regular expression, not a parse."""
        if self._importer_map is None:
            modules = self._module_files()
            mapping: Dict[str, List[str]] = {}
            for path in self.files():
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                current = module_name(self.root, path)
                is_package = os.path.basename(path) == "__init__.py"
                for target in self._imported_files(data, current, is_package, modules):
                    if target != path:
                        mapping.setdefault(target, []).append(path)
            self._importer_map = mapping
        return self._importer_map

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
                        modules: Dict[str, str]):
        names = set()
        for match in IMPORT_LINE.finditer(b"\n" + data):
            origin, members, plain = match.groups()
            if plain is not None:
                names.update(name.decode() for name in NAME.findall(plain) if name != b"as")
                continue
            base = self.absolute_module(current, origin.decode(), is_package)
            names.add(base)
            for member in NAME.findall(members):
                member = member.decode()
                if member not in ("as", "import"):
                    names.add(f"{base}.{member}" if base else member)
        # A script imports the modules beside it by their short names: ``import engine``.
        folder = current.rpartition(".")[0] if not is_package else current
        found = set()
        for name in names:
            if name.split(".")[0] in ("torch", "numpy", "os", "sys", "typing"):
                continue
            target = modules.get(name) or (folder and modules.get(f"{folder}.{name}"))
            if target:
                found.add(target)
        return found

    def incoming_calls(self, path: str, functions=None) -> List[dict]:
        """Calls into the functions of ``path`` made by other modules of the project; with
        ``functions``, only calls to those names (importers that never write one of them are
        not read: a call names its function, whatever the import alias)."""
        target_module = module_name(self.root, path)
        if not target_module:
            return []
        calls: List[dict] = []
        absolute = os.path.abspath(path)
        target_file = self.relative(path)
        importers = self._importers().get(absolute, ())
        if len(importers) > MAX_IMPORTERS:
            return []
        mentions = None
        if functions is not None:
            if not functions:
                return []
            mentions = re.compile(rb"\b(?:" + b"|".join(
                re.escape(name.encode()) for name in sorted(functions)) + rb")\b")
        for other in importers:
            if os.path.abspath(other) == absolute:
                continue
            if mentions is not None and not self._mentions(other, mentions):
                continue
            summary = self.summary(other)
            if not summary:
                continue
            for call in summary.get("calls", ()):
                where, _, function = call["target"].rpartition(":")
                if where == target_file:
                    calls.append(dict(call, function=function, caller=summary.get("module")))
        return calls

    @staticmethod
    def _mentions(path: str, pattern) -> bool:
        try:
            with open(path, "rb") as handle:
                return pattern.search(handle.read()) is not None
        except OSError:
            return False
