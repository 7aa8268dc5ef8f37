"""The flake8 adapter: hands flake8's own ``ast`` tree to the engine and yields its findings.

flake8 runs every installed plugin on every file, whatever ``--select`` says, so this adapter
must cost almost nothing on files where no rule can fire: the engine screens the source text
before building anything.
"""

from __future__ import annotations

import ast
from typing import Iterator, List, Sequence, Tuple, Type

from . import __version__
from .config import Config
from .engine import lint_tree
from .screen import may_contain_findings


class TorchGradLintPlugin:
    name = "torchgradlint"
    version = __version__
    config = Config()

    def __init__(self, tree: ast.AST, lines: Sequence[str] = (), filename: str = "<string>"):
        self.tree = tree
        self.lines = lines
        self.filename = filename

    @classmethod
    def add_options(cls, parser) -> None:
        parser.add_option(
            "--tgl-no-grad-decorators", default="", parse_from_config=True,
            comma_separated_list=True,
            help="torchgradlint: project helpers that disable autograd when used as decorators "
                 "or with items (e.g. smart_inference_mode)")
        parser.add_option(
            "--tgl-model-constructors", default="", parse_from_config=True,
            comma_separated_list=True,
            help="torchgradlint: project functions that return an nn.Module (e.g. build_model)")

    @classmethod
    def parse_options(cls, options) -> None:
        # flake8's excludes: the project view does not look for callers in excluded folders.
        excludes = _names(getattr(options, "exclude", ())) + _names(getattr(options, "extend_exclude", ()))
        cls.config = Config(
            no_grad_decorators=frozenset(_names(getattr(options, "tgl_no_grad_decorators", ()))),
            model_constructors=frozenset(_names(getattr(options, "tgl_model_constructors", ()))),
            exclude=tuple(excludes),
        )

    def run(self) -> Iterator[Tuple[int, int, str, Type["TorchGradLintPlugin"]]]:
        if not isinstance(self.tree, ast.Module):
            return
        skipped: List[str] = []
        try:
            source = "".join(self.lines)
            if not source.isascii() and may_contain_findings(source) and \
                    not _decodes_as_python_would(self.filename):
                return  # flake8 fell back to latin-1; `check` says "cannot analyse": one answer
            findings = lint_tree(self.tree, source, self.filename, self.config,
                                 on_skip=lambda filename, why: skipped.append(why))
        except Exception:  # noqa: BLE001 -- never break someone's flake8 run
            return
        if skipped:  # flake8 parsed it, the analysis cannot: say so (E999 covers syntax errors)
            from .rules.tgl001_file_not_analysed import finding as unanalysable

            findings = [unanalysable(skipped[0])]
        for finding in findings:
            yield finding.line, finding.col, finding.text(), type(self)


def _decodes_as_python_would(filename: str) -> bool:
    """The file's bytes decode as the interpreter decodes them (PEP 263). flake8 reads a file
    that does not (invalid UTF-8, a wrong coding cookie) as latin-1 and runs the plugins."""
    import os

    from .sourcefile import SourceError, decode_source, read_bytes

    if not filename or filename in ("-", "stdin") or not os.path.isfile(filename):
        return True  # standard input: flake8 decoded it, nothing else to go by
    try:
        decode_source(read_bytes(filename), filename)
    except SourceError:
        return False
    return True


def _names(values) -> List[str]:
    if isinstance(values, str):
        values = values.split(",")
    return [value.strip() for value in values or () if value and value.strip()]
