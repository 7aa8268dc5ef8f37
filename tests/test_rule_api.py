"""Rules query the semantic model through its documented API (docs/architecture.md, "The rule
API"): every attribute a rule module reads of ``analysis`` is a public query of
``SemanticModel`` with a docstring, never one of the parts the model is built from, and no rule
builds a node of the def-use graph by hand."""

from __future__ import annotations

import ast
import inspect

import pytest

from conftest import ROOT
from torchgradlint.semantic.model import SemanticModel

RULE_FILES = sorted((ROOT / "torchgradlint" / "rules").glob("*.py"))
# The parts the model is built from: rules ask the model, not them.
PARTS = {"dataflow", "facts", "flow", "structure", "imports", "linker", "usage", "frameworks",
         "tree", "config", "classes", "module_function", "references"}
# Plain data every rule may read besides the queries.
DATA = {"functions": "the file's functions (FunctionInfo), the module scope first"}
NODE_KINDS = {"call", "def", "param", "cut", "return"}


def _reads_of_analysis(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id == "analysis":
            yield node.attr, node.lineno


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_rules_read_only_documented_queries(path):
    wrong = []
    for name, line in _reads_of_analysis(path):
        if name in DATA:
            continue
        query = getattr(SemanticModel, name, None)
        if name in PARTS or name.startswith("_") or query is None or not inspect.getdoc(query):
            wrong.append(f"{path.name}:{line}: analysis.{name}")
    assert wrong == []


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.name for p in RULE_FILES])
def test_rules_build_no_graph_node(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    built = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Tuple) and node.elts
             and isinstance(node.elts[0], ast.Constant) and node.elts[0].value in NODE_KINDS]
    assert built == []


def test_the_api_check_sees_a_violation():
    source = "def check(analysis):\n    return analysis.dataflow.sources\n"
    tree = ast.parse(source)
    names = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
             and isinstance(n.value, ast.Name) and n.value.id == "analysis"]
    assert names == ["dataflow"] and "dataflow" in PARTS
