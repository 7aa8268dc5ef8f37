"""The notebook converter of the benchmark corpus keeps code and turns IPython syntax into
comments, so that a study measures what the notebook runs."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

from prepare_corpus import convert_cell  # noqa: E402


def test_magics_and_shell_lines_become_comments():
    cell = "%matplotlib inline\n!pip install torch\nimport torch\nx = torch.ones(2)\n"
    assert convert_cell(cell) == ["# %matplotlib inline", "# !pip install torch", "import torch",
                                  "x = torch.ones(2)"]


def test_a_continuation_line_with_the_formatting_operator_is_code():
    # rasbt's and pytorch-book's training cells: ``print('...'\n      % (epoch, loss))``; read as
    # a magic, the line broke the cell and the whole cell was commented out
    cell = "for epoch in range(2):\n    print('epoch %d loss %.3f'\n          % (epoch, 0.5))\n"
    assert convert_cell(cell) == cell.splitlines()
    cell = "ok = (1\n      != 2)\n"
    assert convert_cell(cell) == cell.splitlines()


def test_an_indented_magic_becomes_pass():
    assert convert_cell("if True:\n    %time f()\n") == ["if True:", "    pass  # %time f()"]
