"""The on-disk cache of module summaries: one folder per project, under the user's cache.

Where: ``$TORCHGRADLINT_CACHE_DIR``, else ``$XDG_CACHE_HOME/torchgradlint``, else
``~/.cache/torchgradlint`` -- never inside the linted tree, so a repository cannot ship entries
(a ``.torchgradlint_cache/`` folder in a repository is ignored). Each project gets its own
folder, named after the real path of the project (the nearest folder above the linted file
holding ``.git``, ``pyproject.toml``, ``setup.py`` or ``setup.cfg``), with a ``CACHEDIR.TAG``
and a ``project.txt`` naming the project.

Trust: every entry carries an HMAC-SHA256 made with a random key that only this user can read
(``key`` in the cache folder, mode 0600). An entry this user's linter did not write, a damaged
one or one of another shape is a cache miss, never an error. The cache folder must belong to
the user; otherwise nothing is read or written.

Housekeeping: entries not used for ``MAX_AGE_DAYS`` are removed, and the oldest go when a
project's folder grows beyond ``MAX_PROJECT_BYTES``; at most once a day per project.
``torchgradlint clean`` removes a project's folder.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import stat
import tempfile
import time
from typing import Dict, Optional

CACHE_DIR_VARIABLE = "TORCHGRADLINT_CACHE_DIR"
NO_CACHE_VARIABLE = "TORCHGRADLINT_NO_CACHE"
PROJECT_MARKERS = (".git", ".hg", "pyproject.toml", "setup.py", "setup.cfg")
MAX_AGE_DAYS = 30
MAX_PROJECT_BYTES = 64 * 1024 * 1024
MAX_ENTRY_BYTES = 8 * 1024 * 1024
PRUNE_EVERY_SECONDS = 24 * 3600
CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                "# This file is a cache directory tag created by torchgradlint.\n"
                "# For information about cache directory tags see https://bford.info/cachedir/\n")


def cache_base() -> str:
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return os.path.abspath(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "torchgradlint")
    return os.path.join(os.path.expanduser("~"), ".cache", "torchgradlint")


def project_folder(root: str) -> str:
    """The project a file's root belongs to, for the cache: the nearest folder at or above
    ``root`` that holds a repository or a packaging file (else ``root`` itself)."""
    folder = os.path.realpath(root)
    while True:
        if any(os.path.exists(os.path.join(folder, marker)) for marker in PROJECT_MARKERS):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return os.path.realpath(root)
        folder = parent


def project_cache_dir(project: str, base: Optional[str] = None) -> str:
    real = os.path.realpath(project)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in os.path.basename(real))[:40]
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:20]
    return os.path.join(base or cache_base(), "projects", f"{name or 'root'}-{digest}")


def _owned_private_folder(path: str) -> bool:
    """``path`` is a real folder of this user that nobody else may write to."""
    try:
        status = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(status.st_mode):
        return False
    if hasattr(os, "getuid") and status.st_uid != os.getuid():
        return False
    return not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _make_private_folder(path: str) -> bool:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return False
    return _owned_private_folder(path)


def _read_key(base: str) -> Optional[bytes]:
    """This user's cache key (created on first use). A key file anyone else could have written
    or read is replaced, which turns every entry made with it into a miss."""
    path = os.path.join(base, "key")
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        try:
            status = os.fstat(descriptor)
            trusted = stat.S_ISREG(status.st_mode) and status.st_size == 64 and \
                not status.st_mode & 0o077 and \
                (not hasattr(os, "getuid") or status.st_uid == os.getuid())
            key = os.read(descriptor, 64) if trusted else b""
        finally:
            os.close(descriptor)
        if len(key) == 64:
            return key
    except OSError:
        pass
    key = os.urandom(32).hex().encode()
    try:
        handle, temporary = tempfile.mkstemp(dir=base, prefix=".key.")  # mode 0600
        with os.fdopen(handle, "wb") as out:
            out.write(key)
        os.replace(temporary, path)
    except OSError:
        return None
    return key


class SummaryCache:
    """Entries of one project: ``load(key)`` and ``store(key, body)``, where ``key`` is a
    string naming everything an entry depends on besides the files it lists itself."""

    _opened: Dict[str, Optional["SummaryCache"]] = {}

    def __init__(self, folder: str, project: str, secret: bytes) -> None:
        self.folder = folder
        self.project = project
        self.secret = secret
        self._prepared = False

    @classmethod
    def for_root(cls, root: str) -> Optional["SummaryCache"]:
        """The cache of the project holding ``root``; None when caching is off or the cache
        folder cannot be trusted (not this user's, writable by others, not a folder)."""
        if os.environ.get(NO_CACHE_VARIABLE):
            return None
        base = cache_base()
        project = project_folder(root)
        folder = project_cache_dir(project, base)
        memo = (base, folder)
        key = "\0".join(memo)
        if key in cls._opened:
            return cls._opened[key]
        cache = None
        if _make_private_folder(base):
            secret = _read_key(base)
            if secret is not None:
                cache = cls(folder, project, secret)
        cls._opened[key] = cache
        return cache

    # -- entries ----------------------------------------------------------------------------
    def _path(self, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self.folder, digest[:2], digest + ".json")

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self.secret, body, hashlib.sha256).hexdigest().encode()

    def load(self, key: str) -> Optional[dict]:
        """The body stored under ``key`` if this user's linter wrote it, else None."""
        from .sourcefile import SourceError, read_bytes

        path = self._path(key)
        try:
            data = read_bytes(path, MAX_ENTRY_BYTES)
        except SourceError:
            return None
        mac, _, body = data.partition(b"\n")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            entry = json.loads(body)
        except (ValueError, RecursionError, MemoryError):
            return None
        if type(entry) is not dict or entry.get("key") != key:
            return None
        self._touch(path)
        return entry

    @staticmethod
    def _touch(path: str) -> None:
        """Mark an entry used (for pruning), at most once a day."""
        try:
            if time.time() - os.stat(path).st_mtime > 24 * 3600:
                os.utime(path)
        except OSError:
            pass

    def store(self, key: str, entry: dict) -> None:
        if not self._prepare():
            return
        path = self._path(key)
        body = json.dumps(dict(entry, key=key), separators=(",", ":")).encode()
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(self._mac(body) + b"\n" + body)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            pass  # a full or read-only disk: work without the cache

    # -- the project's folder -----------------------------------------------------------------
    def _prepare(self) -> bool:
        """Create the project's folder (with its tag and name) and prune it once a day."""
        if self._prepared:
            return True
        if not _make_private_folder(self.folder):
            return False
        try:
            tag = os.path.join(self.folder, "CACHEDIR.TAG")
            if not os.path.exists(tag):
                with open(tag, "w", encoding="utf-8") as out:
                    out.write(CACHEDIR_TAG)
                with open(os.path.join(self.folder, "project.txt"), "w", encoding="utf-8",
                          errors="surrogateescape") as out:
                    out.write(self.project + "\n")
            marker = os.path.join(self.folder, "pruned")
            try:
                due = time.time() - os.stat(marker).st_mtime > PRUNE_EVERY_SECONDS
            except OSError:
                due = True
            if due:
                with open(marker, "w", encoding="utf-8") as out:
                    out.write("")
                prune(self.folder)
        except OSError:
            return False
        self._prepared = True
        return True


def prune(folder: str, max_age_days: float = MAX_AGE_DAYS, max_bytes: int = MAX_PROJECT_BYTES,
          now: Optional[float] = None) -> int:
    """Remove entries unused for ``max_age_days``, leftovers of interrupted writes, and the
    least recently used entries beyond ``max_bytes``. Returns how many files went."""
    now = time.time() if now is None else now
    entries = []
    removed = 0
    try:
        shards = [os.path.join(folder, name) for name in os.listdir(folder) if len(name) == 2]
    except OSError:
        return 0
    for shard in shards:
        try:
            names = os.listdir(shard)
        except OSError:
            continue
        for name in names:
            path = os.path.join(shard, name)
            try:
                status = os.lstat(path)
            except OSError:
                continue
            stale_write = name.endswith(".tmp") and now - status.st_mtime > 3600
            if stale_write or now - status.st_mtime > max_age_days * 86400:
                try:
                    os.unlink(path)
                    removed += 1
                except OSError:
                    pass
            elif name.endswith(".json"):
                entries.append((status.st_mtime, status.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        try:
            os.unlink(path)
            removed += 1
            total -= size
        except OSError:
            pass
    return removed


def clean(path: str) -> Optional[str]:
    """Remove the cache of the project holding ``path``; the folder removed, or None."""
    from .discovery import find_root

    absolute = os.path.abspath(path)
    root = find_root(os.path.join(absolute, "x.py") if os.path.isdir(absolute) else absolute)
    folder = project_cache_dir(project_folder(root))
    if not os.path.isdir(folder) or os.path.islink(folder):
        return None
    shutil.rmtree(folder, ignore_errors=True)
    SummaryCache._opened.clear()
    return folder
