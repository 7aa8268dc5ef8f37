"""Read a Python source file the way the interpreter does (PEP 263, PEP 3120).

The bytes are decoded with the encoding Python itself would use: a UTF-8 byte order mark, else a
``# -*- coding: ... -*-`` cookie on one of the first two lines, else UTF-8. The BOM is not part of
the returned text. Line endings are kept as they are in the file.
"""

from __future__ import annotations

import io
import os
import tokenize
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


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


def read_source(path: PathLike) -> str:
    """The text of the Python file at ``path``; SourceError if it cannot be read or decoded."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        raise SourceError(path, "is a directory") from None
    except FileNotFoundError:
        raise SourceError(path, "no such file") from None
    except OSError as exc:
        raise SourceError(path, exc.strerror or str(exc)) from None
    return decode_source(data, path)
