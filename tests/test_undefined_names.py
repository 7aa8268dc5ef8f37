"""A call of a name nothing defines raises NameError: in a script whose star imports are project
modules that never bring the name (dead scripts in ``old_code/`` that never import their model
class), the statements after it on that path never run, so the mode rules do not report the
evaluations that follow it. A file without star imports is more likely a fragment whose names
are bound elsewhere (an example, an exercise): its paths go on."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from torchgradlint.config import Config
from torchgradlint.engine import lint_file, lint_source
from torchgradlint.semantic.names import RUN_TIME_BINDINGS, names_bound_anywhere

SCRIPT = '''
import torch
import torch.nn as nn
from utils import *
{binding}

def accuracy(model, x):
    return model(x).argmax(1)

model = Net()
{statement}
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()
for step in range(2):
    optimizer.zero_grad()
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
print(accuracy(model, torch.randn(2, 4)))
'''

UTILS = '''
import torch
import torch.nn as nn


class Net(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Linear(4, 4), nn.Dropout(0.5))
'''


def evaluation_line(source: str) -> int:
    return source.splitlines().index("    return model(x).argmax(1)") + 1


def mode_findings(tmp_path: Path, statement: str = "", binding: str = "", utils: str = UTILS):
    (tmp_path / "utils.py").write_text(utils)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(binding=binding, statement=statement))
    return [(finding.line, finding.code) for finding in lint_file(str(script)) if finding.code == "TGL201"]


def expected(tmp_path: Path):
    return [(evaluation_line((tmp_path / "train.py").read_text()), "TGL201")]


def test_an_evaluation_after_training_is_reported(tmp_path: Path) -> None:
    assert mode_findings(tmp_path) == expected(tmp_path)


def test_nothing_after_a_call_that_no_star_import_brings_runs(tmp_path: Path) -> None:
    assert mode_findings(tmp_path, statement="helper = Missing()") == []


def test_the_model_class_itself_missing_from_the_star_import(tmp_path: Path) -> None:
    # ``Net`` is defined nowhere: the script dies at its construction, nothing is evaluated.
    assert mode_findings(tmp_path, utils="import torch\n\ndef helper():\n    return 1\n") == []


@pytest.mark.parametrize("binding", [
    "from helpers import Missing",                             # imported
    "Missing = None",                                          # bound at module level
    "def build():\n    global Missing\n    Missing = object",  # bound through ``global``
    "globals()['Missing'] = object",                           # bound at run time
    "from torch import *",                                     # a star import of another package
])
def test_a_name_that_may_be_bound_does_not_end_the_path(tmp_path: Path, binding: str) -> None:
    assert mode_findings(tmp_path, statement="Missing()", binding=binding) == expected(tmp_path)


def test_a_star_import_whose_module_spells_the_name_may_bring_it(tmp_path: Path) -> None:
    assert mode_findings(tmp_path, statement="Missing()", utils=UTILS + "\nMissing = dict\n") == \
        expected(tmp_path)


def test_builtins_are_defined(tmp_path: Path) -> None:
    assert mode_findings(tmp_path, statement="print('training')") == expected(tmp_path)


def test_a_try_may_catch_the_name_error(tmp_path: Path) -> None:
    statement = "try:\n    Missing()\nexcept NameError:\n    pass"
    assert mode_findings(tmp_path, statement=statement) == expected(tmp_path)


def test_a_fragment_without_star_imports_goes_on() -> None:
    # An example whose model is bound elsewhere: its undefined names end nothing.
    source = SCRIPT.replace("from utils import *", UTILS).format(binding="", statement="Missing()")
    found = [(f.line, f.code) for f in lint_source(source, config=Config(project=False)) if f.code == "TGL201"]
    assert found == [(evaluation_line(source), "TGL201")]


def test_names_bound_anywhere_sees_every_kind_of_binding() -> None:
    tree = ast.parse("import a.b\nfrom c import d as e\nf = 1\nfor g in h: pass\n"
                     "def i(j, *k, **l):\n    global m\n"
                     "class n: pass\ntry: pass\nexcept Exception as o: pass\n"
                     "with p as q: pass\n[r for r in s]\n")
    assert names_bound_anywhere(tree) >= set("aefgijklmnoqr")
    assert not names_bound_anywhere(tree) & set("hps")
    assert names_bound_anywhere(ast.parse("exec('x = 1')\n")) is RUN_TIME_BINDINGS


def grad_findings(tmp_path: Path, statement: str = ""):
    (tmp_path / "utils.py").write_text(UTILS)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(binding="", statement=statement))
    return [(finding.line, finding.code) for finding in lint_file(str(script)) if finding.code == "TGL101"]


def test_a_helper_called_only_where_no_path_reaches_never_runs(tmp_path: Path) -> None:
    # ``accuracy()`` evaluates with autograd on when the script gets there ...
    assert grad_findings(tmp_path) == [(evaluation_line((tmp_path / "train.py").read_text()), "TGL101")]
    # ... and never runs when a NameError ends the script first.
    assert grad_findings(tmp_path, statement="helper = Missing()") == []


def test_a_helper_called_only_after_sys_exit_never_runs() -> None:
    source = ("import sys\nimport torch\nimport torch.nn as nn\n\n\ndef predict(model, x):\n"
              "    return model(x).argmax(1)\n\n\nmodel = nn.Linear(4, 2)\n{exit}"
              "print(predict(model, torch.randn(2, 4)))\n")
    found = [(f.line, f.code) for f in lint_source(source.format(exit=""), config=Config(project=False))
             if f.code == "TGL101"]
    assert found == [(7, "TGL101")]
    assert [f for f in lint_source(source.format(exit="sys.exit(0)\n"), config=Config(project=False))
            if f.code == "TGL101"] == []
