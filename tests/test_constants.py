"""Which names are constants, so that an ``if`` on a flag has one live branch and a loop over
``range(n)`` is known to run."""
from __future__ import annotations

import ast

import pytest

from torchgradlint.config import Config
from torchgradlint.engine import lint_source
from torchgradlint.semantic.structure import constants

NO_PROJECT = Config(project=False)


def flags(source: str):
    tree = ast.parse(source)
    return constants(tree.body, tree)


def test_names_bound_once_to_a_bool_or_an_int_are_constants() -> None:
    assert flags("USE_ATTN = True\nDEBUG: bool = False\nuse_cuda = torch.cuda.is_available()\n"
                 "LAYERS = 2\nNAME = 'x'\nRATE = 0.1\n") == {"USE_ATTN": True, "DEBUG": False, "LAYERS": 2}


@pytest.mark.parametrize("rebinding", [
    "USE_ATTN = False",                       # set again at module level
    "def f():\n    global USE_ATTN\n    USE_ATTN = False",
    "def f(USE_ATTN=False):\n    pass",        # a parameter of that name
    "for USE_ATTN in (True, False):\n    pass",
    "from config import USE_ATTN",
    "import USE_ATTN",
    "def USE_ATTN():\n    pass",
    "del USE_ATTN",
    "try:\n    pass\nexcept Exception as USE_ATTN:\n    pass",
    "x = [USE_ATTN for USE_ATTN in range(2)]",
    "if (USE_ATTN := False):\n    pass",
])
def test_any_other_binding_of_the_name_makes_it_a_variable(rebinding: str) -> None:
    assert flags("USE_ATTN = True\n" + rebinding + "\n") == {}


def test_files_without_bool_flags_have_none() -> None:
    assert flags("import torch\nmodel = torch.nn.Linear(2, 2)\n") == {}


FLAGGED_EVALUATION = '''
import torch
import torch.nn as nn

VERBOSE = False
model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model(torch.randn(2, 4)).sum().backward()
optimizer.step()
{rebinding}
if VERBOSE:
    print(model(torch.randn(2, 4)))
'''


@pytest.mark.parametrize("rebinding, lines", [
    ("", []),                                            # the branch never runs
    ("VERBOSE = len(__import__('sys').argv) > 1", [12]),  # a variable: it may run
])
def test_a_branch_a_constant_flag_rules_out_is_not_linted(rebinding: str, lines) -> None:
    source = FLAGGED_EVALUATION.format(rebinding=rebinding)
    found = lint_source(source, "flagged.py", NO_PROJECT)
    assert sorted({finding.line for finding in found}) == lines
    assert not lines or {finding.code for finding in found} == {"TGL101", "TGL201"}


def _loops(source: str):
    from torchgradlint.semantic.names import ImportTable
    from torchgradlint.semantic.structure import StructureBuilder

    tree = ast.parse(source)
    builder = StructureBuilder(tree, ImportTable.from_tree(tree)).build()
    return {loop.line: loop.runs_at_least_once for function in builder.functions for loop in function.loops}


def test_loops_known_to_run() -> None:
    source = (
        "EPOCHS = 3\n"
        "def fit(data, steps):\n"
        "    n_epochs = 2\n"
        "    for epoch in range(1, n_epochs + 1):\n"   # 4: runs
        "        pass\n"
        "    for step in range(steps):\n"              # 6: steps is a parameter
        "        pass\n"
        "    for batch in data:\n"                     # 8: may be empty
        "        pass\n"
        "    for epoch in range(EPOCHS):\n"            # 10: module constant
        "        pass\n"
        "    for epoch in range(0):\n"                 # 12: never runs
        "        pass\n"
        "    while True:\n"                            # 14
        "        break\n"
        "    while data:\n"                            # 16
        "        break\n"
    )
    assert _loops(source) == {4: True, 6: False, 8: False, 10: True, 12: False, 14: True, 16: False}


def test_a_count_bound_twice_is_not_known() -> None:
    source = ("def fit(resume):\n"
              "    n_epochs = 2\n"
              "    if resume:\n"
              "        n_epochs = 0\n"
              "    for epoch in range(n_epochs):\n"
              "        pass\n")
    assert _loops(source) == {5: False}
