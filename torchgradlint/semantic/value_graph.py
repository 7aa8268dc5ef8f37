"""The def-use graph as rules query it (``analysis.values``).

A node is a value of the program: the result of a call, a name a statement defines, a parameter of
a function, a ``.data`` read that cuts the autograd history. Rules hold nodes as opaque handles,
got from ``call(site)``, ``definition(...)`` or ``sources(...)``, and ask the questions below;
only ``dataflow.py`` knows how nodes are made.
"""

from __future__ import annotations

import ast
from typing import List, Optional, Set, Tuple

from .dataflow import Dataflow
from .structure import CallSite, FunctionInfo

Node = tuple


class ValueGraph:
    def __init__(self, dataflow: Dataflow):
        self._dataflow = dataflow

    @staticmethod
    def call(site: CallSite) -> Node:
        """The value ``site`` returns."""
        return ("call", id(site))

    def definition(self, function: FunctionInfo, index: int, name: str) -> Node:
        """The value statement ``index`` of ``function`` binds to ``name``."""
        return self._dataflow.def_node(function, index, name)

    def definitions(self, function: FunctionInfo, name: str) -> List[int]:
        """The indexes of the statements of ``function`` that bind ``name``."""
        return self._dataflow.definitions(function, name)

    def sources(self, function: FunctionInfo, index: int, expr: ast.AST) -> Set[Node]:
        """The values ``expr`` (in statement ``index`` of ``function``) is computed from."""
        return self._dataflow.sources(function, index, expr)

    def upstream(self, node: Node) -> Set[Node]:
        """Every value whose autograd history flows into ``node``."""
        return self._dataflow.upstream(node)

    def upstream_within(self, start, function: FunctionInfo) -> Set[Node]:
        """Like ``upstream`` from each of ``start``, without leaving ``function`` through its
        parameters."""
        return self._dataflow.upstream_within(start, function)

    def reaches_training(self, node: Node) -> bool:
        """The value's history reaches a backward pass (``backward_run_by``)."""
        return node in self._dataflow.reaches_training

    def cut_inputs(self, node: Node) -> Set[Node]:
        """For a cut of the history -- a ``.detach()`` / ``.item()`` call, a ``.data`` read --
        the values whose history it removes; empty for any other value."""
        return set(self._dataflow.value_preds.get(node, ()))

    def data_read_position(self, node: Node) -> Optional[Tuple[int, int]]:
        """(line, column) of a ``.data`` read; None for any other value."""
        return self._dataflow.cut_lines.get(node)

    @staticmethod
    def parameters_among(nodes, function: FunctionInfo) -> Set[str]:
        """The names of ``function``'s parameters whose values are among ``nodes``."""
        return {node[2] for node in nodes if node[0] == "param" and node[1] == id(function)}
