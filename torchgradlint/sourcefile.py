"""Read a Python source file the way the interpreter does (PEP 263, PEP 3120), parse it
quietly, and write a fixed one back in its own encoding, atomically.

The bytes are decoded with the encoding Python itself would use: a UTF-8 byte order mark, else a
``# -*- coding: ... -*-`` cookie on one of the first two lines, else UTF-8. The BOM is not part of
the returned text. Line endings are kept as they are in the file.
"""

from __future__ import annotations

import ast
import codecs
import io
import os
import stat
import tempfile
import tokenize
import warnings
from typing import Optional, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]

# Python files bigger than this are not read (a ``*.py`` link to ``/dev/zero``, a generated data
# dump): the command says "cannot analyse: too big", the project view leaves them out.
DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
MAX_FILE_SIZE_VARIABLE = "TORCHGRADLINT_MAX_FILE_SIZE"
_SIZE_UNITS = {"": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
               "mib": 1024 ** 2, "g": 1024 ** 3, "gb": 1024 ** 3, "gib": 1024 ** 3}


class SourceError(Exception):
    """A file that cannot be read or decoded as Python source."""

    def __init__(self, path: PathLike, reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def decode_source(data: bytes, path: PathLike = "<bytes>") -> str:
    """Decode a module's bytes per PEP 263; raise SourceError when Python could not either."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        message = getattr(exc, "msg", None) or str(exc)
        if message.startswith("invalid or missing encoding declaration"):
            # No cookie and the first two lines are not UTF-8: say where, as for later lines.
            encoding = "utf-8"
        elif message.startswith("encoding problem"):
            raise SourceError(
                path, "the UTF-8 byte order mark contradicts the coding declaration"
            ) from None
        else:  # an unknown codec named in the cookie
            raise SourceError(path, message) from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start:exc.end]
        shown = encoding if encoding != "utf-8-sig" else "utf-8"
        raise SourceError(
            path, f"not valid {shown} at line {line}, column {column} (byte {bad!r}: {exc.reason})"
        ) from None
    except UnicodeError as exc:  # codecs such as punycode raise a bare UnicodeError
        raise SourceError(path, f"cannot be decoded as {encoding}: {exc}") from None
    except LookupError as exc:  # pragma: no cover - detect_encoding already checks the codec
        raise SourceError(path, f"unknown encoding {encoding!r}: {exc}") from None
    if text.startswith("\ufeff"):  # only when a cookie says utf-8 and the codec kept the BOM
        text = text[1:]
    return text


def max_file_size() -> int:
    """The size limit in bytes: ``TORCHGRADLINT_MAX_FILE_SIZE`` (``20M``, ``512k``, ``1000000``)
    or 10 MiB."""
    text = os.environ.get(MAX_FILE_SIZE_VARIABLE, "").strip().lower()
    number = text.rstrip("kmgib")
    unit = text[len(number):]
    try:
        value = int(float(number) * _SIZE_UNITS[unit]) if number else DEFAULT_MAX_FILE_SIZE
    except (ValueError, KeyError, OverflowError):
        return DEFAULT_MAX_FILE_SIZE
    return value if value > 0 else DEFAULT_MAX_FILE_SIZE


def _megabytes(size: int) -> str:
    if size < 1024 ** 2:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 ** 2:.1f} MiB"


def read_bytes(path: PathLike, limit: Optional[int] = None) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them (default
    :func:`max_file_size`); SourceError for anything else.

    Never blocks and never reads without bound: the file is opened without waiting (a FIFO
    named ``x.py`` would wait for a writer), then refused unless it is a regular file (FIFOs,
    sockets, ``/dev/zero`` and other devices) and smaller than the limit."""
    limit = max_file_size() if limit is None else limit
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | \
        getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(path, flags)
    except IsADirectoryError:
        raise SourceError(path, "is a directory") from None
    except FileNotFoundError:
        raise SourceError(path, "no such file") from None
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from None
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise SourceError(path, "is a directory")
        if not stat.S_ISREG(status.st_mode):
            raise SourceError(path, "not a regular file (a FIFO, socket or device)")
        if status.st_size > limit:
            raise SourceError(path, f"too big ({_megabytes(status.st_size)}; the limit is "
                              f"{_megabytes(limit)}, {MAX_FILE_SIZE_VARIABLE} changes it)")
        chunks = []
        remaining = limit + 1  # a file that grows while it is read is still bounded
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise SourceError(path, f"too big (more than {_megabytes(limit)}; "
                          f"{MAX_FILE_SIZE_VARIABLE} changes the limit)")
    return data


def read_source(path: PathLike) -> str:
    """The text of the Python file at ``path``; SourceError if it cannot be read or decoded."""
    return decode_source(read_bytes(path), path)


def parse_module(source: str, path: str) -> Tuple[Optional[ast.Module], Optional[str]]:
    """Python's own tree of ``source``, or why Python would refuse to compile it.

    flake8 runs no plugin on such a file (it reports E999 instead); the CLI says why on stderr.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are not ours to print
            return ast.parse(source, filename=path), None
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "unknown line"
        if exc.lineno and exc.offset:
            where += f", column {exc.offset}"
        return None, f"syntax error at {where}: {exc.msg}"
    except ValueError as exc:  # null bytes, before Python 3.12
        return None, f"syntax error: {exc}"
    except (RecursionError, MemoryError):
        return None, "syntax error: too deeply nested for the Python parser"


def syntax_error_position(source: str, path: str) -> Tuple[int, int]:
    """Where Python's parser stops on ``source``: 1-based line, 0-based UTF-8 byte column (the
    ``ast`` convention of every Finding); the start of the file when it cannot tell."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, path, "exec", ast.PyCF_ONLY_AST)
    except SyntaxError as exc:
        lines = source.splitlines()
        line = exc.lineno or 1
        if not 1 <= line <= len(lines):
            return (max(1, min(line, len(lines) or 1)), 0)
        offset = max((exc.offset or 1) - 1, 0)
        return line, len(lines[line - 1][:offset].encode("utf-8"))
    except (ValueError, RecursionError, MemoryError):
        pass
    return 1, 0


# -- writing a source back ----------------------------------------------------------------
def _encoding_of(data: bytes) -> str:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return "utf-8"
    return encoding


def encode_source(text: str, data: bytes) -> bytes:
    """``text`` encoded as the original ``data`` was: same codec, same byte order mark."""
    encoding = _encoding_of(data)
    bom = data.startswith(codecs.BOM_UTF8)
    if encoding == "utf-8-sig":
        encoding = "utf-8"
    encoded = text.encode(encoding)
    return codecs.BOM_UTF8 + encoded if bom else encoded


def is_read_only(path: str, mode: int) -> bool:
    return not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or \
        not os.access(path, os.W_OK)


def _rewrite_in_place(path: str, data: bytes) -> None:
    """Overwrite a file that has several hard links, keeping it one file: the fixed bytes are
    already safe in the temporary file; the two system calls run with SIGINT and SIGTERM held
    back so that an interruption cannot fall between them."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    blocking = hasattr(signal, "pthread_sigmask")
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held) if blocking else None
    try:
        descriptor = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.ftruncate(descriptor, len(data))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    finally:
        if blocking:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def write_atomically(path: str, data: bytes, expected: bytes, expected_stat: os.stat_result
                     ) -> Optional[str]:
    """Replace the file at ``path`` by ``data``; None on success, else why not.

    The data goes to a temporary file in the same folder, with the original's permissions, and
    replaces the original with ``os.replace`` (a file with several hard links is overwritten in
    place instead, so that the links stay one file). Refused when the file changed on disk since it
    was read (other bytes, size or modification time). A symbolic link is followed: its target
    is replaced and the link stays.
    """
    real = os.path.realpath(path)
    folder = os.path.dirname(real) or "."
    try:
        handle, temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(real)}.", suffix=".tgl-fix", dir=folder)
    except OSError as exc:
        return f"cannot write in {folder}: {exc.strerror or exc}"
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, stat.S_IMODE(expected_stat.st_mode))
        try:
            os.chown(temporary, expected_stat.st_uid, expected_stat.st_gid)
        except (OSError, AttributeError):
            pass  # not ours to change: the new file keeps our ownership
        try:
            now = os.stat(real)
            with open(real, "rb") as current:
                on_disk = current.read()
        except OSError as exc:
            return f"cannot read the file again: {exc.strerror or exc}"
        if on_disk != expected or now.st_mtime_ns != expected_stat.st_mtime_ns or \
                now.st_size != expected_stat.st_size:
            return "the file changed on disk while it was being fixed: left unchanged"
        if now.st_nlink > 1:
            _rewrite_in_place(real, data)  # replacing it would split its hard links
        else:
            os.replace(temporary, real)
            temporary = ""
    except OSError as exc:
        return f"cannot write the fixed file: {exc.strerror or exc}"
    finally:
        if temporary:
            try:
                os.unlink(temporary)
            except OSError:
                pass
    return None
