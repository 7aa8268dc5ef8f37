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
        cls.config = Config(
            no_grad_decorators=frozenset(_names(getattr(options, "tgl_no_grad_decorators", ()))),
            model_constructors=frozenset(_names(getattr(options, "tgl_model_constructors", ()))),
        )

    def run(self) -> Iterator[Tuple[int, int, str, Type["TorchGradLintPlugin"]]]:
        if not isinstance(self.tree, ast.Module):
            return
        try:
            source = "".join(self.lines)
            findings = lint_tree(self.tree, source, self.filename, self.config)
        except Exception:  # noqa: BLE001 -- never break someone's flake8 run
            return
        for finding in findings:
            yield finding.line, finding.col, finding.text(), type(self)


def _names(values) -> List[str]:
    if isinstance(values, str):
        values = values.split(",")
    return [value.strip() for value in values or () if value and value.strip()]
