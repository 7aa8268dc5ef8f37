"""``[tool.torchgradlint]`` in ``pyproject.toml``, merged with command-line options into a Config.

One schema, documented in docs/configuration.md: every key holds a list of strings.

    [tool.torchgradlint]
    select = ["TGL1", "TGL201"]         # codes or prefixes; default: every rule
    extend-select = []                  # added to select
    ignore = ["TGL302"]                 # codes or prefixes
    extend-ignore = []                  # added to ignore
    exclude = ["tests/data", "*_pb2.py"]  # globs, relative to this file's directory
    no-grad-decorators = ["smart_inference_mode"]
    model-constructors = ["build_model"]
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .config import Config
from .discovery import ExcludePattern
from .rules import RULES

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on Python 3.9 and 3.10 only
    try:
        import tomli as _toml
    except ImportError:
        _toml = None

TABLE = "tool.torchgradlint"
LIST_KEYS = (
    "select",
    "extend-select",
    "ignore",
    "extend-ignore",
    "exclude",
    "no-grad-decorators",
    "model-constructors",
)
CODE_KEYS = ("select", "extend-select", "ignore", "extend-ignore")
_CODE_SHAPE = re.compile(r"^[A-Z]+[0-9]*$")


class ConfigError(Exception):
    """A configuration the linter refuses: the message says where and why."""


@dataclass
class FileSettings:
    """The raw lists of one ``[tool.torchgradlint]`` table (None: key absent)."""

    path: Optional[str] = None
    values: Dict[str, List[str]] = field(default_factory=dict)

    def get(self, key: str) -> Optional[List[str]]:
        return self.values.get(key)

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.path)) if self.path else os.getcwd()


def _parse_toml(path: str) -> Dict[str, Any]:
    if _toml is None:
        raise ConfigError(
            f"{path}: reading TOML needs Python 3.11 or the 'tomli' package (pip install tomli)"
        )
    try:
        with open(path, "rb") as handle:
            return _toml.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except _toml.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _table(document: Dict[str, Any]) -> Any:
    tool = document.get("tool")
    if not isinstance(tool, dict):
        return None
    return tool.get("torchgradlint")


def _mentions_us(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return b"torchgradlint" in handle.read()
    except OSError:
        return False


def find_pyproject(start: str) -> Optional[str]:
    """The nearest ``pyproject.toml`` with a ``[tool.torchgradlint]`` table, from ``start`` up."""
    directory = os.path.abspath(start)
    if not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate) and _mentions_us(candidate):
            # Cheap screen first: a file that never names us cannot hold our table.
            if _table(_parse_toml(candidate)) is not None:
                return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def validate(table: Any, where: str) -> Dict[str, List[str]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{TABLE}] must be a table, got {_type_name(table)}")
    values: Dict[str, List[str]] = {}
    for key, value in table.items():
        if key not in LIST_KEYS:
            hint = difflib.get_close_matches(key.replace("_", "-"), LIST_KEYS, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(
                f"{where}: unknown key '{key}' in [{TABLE}]{suggestion}; "
                f"known keys: {', '.join(LIST_KEYS)}"
            )
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            example = f'{key} = ["{value}"]' if isinstance(value, str) else f'{key} = ["..."]'
            raise ConfigError(
                f"{where}: [{TABLE}] '{key}' must be a list of strings, got "
                f"{_type_name(value)} (write {example})"
            )
        if key in CODE_KEYS:
            value = normalise_codes(value, f"{where}: [{TABLE}] '{key}'")
        values[key] = list(value)
    return values


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list with non-string items"
    return type(value).__name__


def load_settings(path: str, required: bool = True) -> FileSettings:
    """The ``[tool.torchgradlint]`` table of ``path``; ConfigError if absent and ``required``."""
    table = _table(_parse_toml(path))
    if table is None:
        if required:
            raise ConfigError(f"{path}: no [{TABLE}] table")
        return FileSettings(path=path)
    return FileSettings(path=path, values=validate(table, path))


def normalise_codes(entries: Iterable[str], where: str) -> List[str]:
    """Upper-case codes and prefixes, each checked against the rule catalogue."""
    known = [rule.code for rule in RULES]
    codes = []
    for entry in entries:
        code = entry.strip().upper()
        if not code:
            continue
        if not _CODE_SHAPE.match(code) or not any(name.startswith(code) for name in known):
            raise ConfigError(
                f"{where}: unknown rule code or prefix '{entry}' "
                "(run `torchgradlint rules` for the list)"
            )
        codes.append(code)
    return codes


def split_list(value: Optional[str]) -> Optional[List[str]]:
    """A comma-separated command-line value as a list (None stays None)."""
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def _specificity(code: str, prefixes: Sequence[str]) -> int:
    return max((len(prefix) for prefix in prefixes if code.startswith(prefix)), default=-1)


def resolve_codes(
    select: Optional[Sequence[str]],
    extend_select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    extend_ignore: Sequence[str] = (),
) -> Tuple[str, ...]:
    """The codes to report. ``select`` None means the default set (every rule that is on by
    default). A code matched by both a selecting and an ignoring entry follows the longer, more
    specific entry; on a tie it is ignored."""
    selectors = list(select or []) + list(extend_select)
    ignorers = list(ignore) + list(extend_ignore)
    chosen = []
    for rule in RULES:
        selected = _specificity(rule.code, selectors)
        if select is None and getattr(rule, "enabled_by_default", True):
            selected = max(selected, 0)  # the default set is the least specific selection
        if selected >= 0 and selected > _specificity(rule.code, ignorers):
            chosen.append(rule.code)
    return tuple(chosen)


@dataclass
class Options:
    """Command-line values that take part in the configuration (None: not given)."""

    select: Optional[List[str]] = None
    extend_select: List[str] = field(default_factory=list)
    ignore: Optional[List[str]] = None
    extend_ignore: List[str] = field(default_factory=list)
    exclude: Optional[List[str]] = None
    extend_exclude: List[str] = field(default_factory=list)
    no_grad_decorators: List[str] = field(default_factory=list)
    model_constructors: List[str] = field(default_factory=list)


@dataclass
class Settings:
    config: Config
    exclude: List[ExcludePattern]
    source: Optional[str]  # the configuration file used, if any


def merge(file: FileSettings, options: Options, cwd: Optional[str] = None) -> Settings:
    """Command-line ``--select``/``--ignore``/``--exclude`` replace the file's lists; the
    ``--extend-*`` options and the name lists add to them."""
    cwd = cwd or os.getcwd()

    def cli_codes(values: Optional[List[str]], option: str) -> Optional[List[str]]:
        return None if values is None else normalise_codes(values, f"command line: {option}")

    cli_select = cli_codes(options.select, "--select")
    cli_ignore = cli_codes(options.ignore, "--ignore")
    select = cli_select if cli_select is not None else file.get("select")
    ignore = cli_ignore if cli_ignore is not None else (file.get("ignore") or [])
    extend_select = (file.get("extend-select") or []) + (
        cli_codes(options.extend_select, "--extend-select") or [])
    extend_ignore = (file.get("extend-ignore") or []) + (
        cli_codes(options.extend_ignore, "--extend-ignore") or [])
    codes = resolve_codes(select, extend_select, ignore, extend_ignore)

    if options.exclude is not None:
        patterns = [ExcludePattern.make(p, cwd) for p in options.exclude]
    else:
        patterns = [ExcludePattern.make(p, file.directory) for p in file.get("exclude") or []]
    patterns += [ExcludePattern.make(p, cwd) for p in options.extend_exclude]

    no_grad = (file.get("no-grad-decorators") or []) + list(options.no_grad_decorators)
    constructors = (file.get("model-constructors") or []) + list(options.model_constructors)
    config = Config(
        no_grad_decorators=frozenset(no_grad),
        model_constructors=frozenset(constructors),
        select=codes,
        # Config treats an empty select as "everything": an empty selection ignores every rule.
        ignore=() if codes else tuple(rule.code for rule in RULES),
        exclude=tuple(patterns),
    )
    return Settings(config=config, exclude=patterns, source=file.path)


def settings_for(
    paths: Sequence[str],
    options: Options,
    config_file: Optional[str] = None,
    isolated: bool = False,
) -> Settings:
    """Find and read the configuration (unless ``isolated``) and merge the options into it.

    ``config_file`` overrides the search, which starts at the first path (or the current
    directory) and walks up to the nearest pyproject.toml holding ``[tool.torchgradlint]``.
    """
    if isolated:
        file = FileSettings()
    elif config_file is not None:
        if not os.path.isfile(config_file):
            raise ConfigError(f"{config_file}: configuration file not found")
        file = load_settings(config_file, required=True)
    else:
        start = paths[0] if paths and paths[0] != "-" else os.getcwd()
        found = find_pyproject(start)
        file = load_settings(found) if found else FileSettings()
    return merge(file, options)
