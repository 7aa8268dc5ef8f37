"""Models handed to a function in a dict or a list (``nets = {'snet': snet}``; ``snet =
nets['snet']`` in the function): the element is the caller's model, in the caller's mode, and
what the function switches it to is the caller's model's mode afterwards. Where the element
could be another object (a computed key, a name or a container bound again or changed), the
linter knows nothing of it and stays silent."""

import textwrap

from torchgradlint.engine import lint_source

PROGRAM = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


def train(batches, nets, optimizer):
    snet = nets['snet']
    snet.train()
    for x, y in batches:
        loss = F.cross_entropy(snet(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test(batches, nets):
    snet = nets['snet']
    with torch.no_grad():
        return [snet(x).argmax(1) for x, _ in batches]


def main(batches):
    snet = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))
    nets = {'snet': snet}
    optimizer = torch.optim.SGD(snet.parameters(), lr=0.1)
    for epoch in range(3):
        train(batches, nets, optimizer)
        test(batches, nets)
'''


def findings(source):
    return sorted((f.line, f.code) for f in lint_source(textwrap.dedent(source), "distill.py"))


def test_an_element_of_a_dict_is_evaluated_in_the_mode_the_caller_left_it_in():
    assert findings(PROGRAM) == [(20, "TGL201")]


def test_an_element_switched_by_the_callee_is_switched_in_the_caller():
    evaluates = PROGRAM.replace("    snet = nets['snet']\n    with", "    snet = nets['snet']\n    snet.eval()\n    with")
    assert findings(evaluates) == []
    resumes = evaluates.replace("    snet.train()\n", "")
    assert findings(resumes) == [(10, "TGL202")]


def test_an_element_of_a_list_by_its_index_and_from_the_end():
    for index in ("0", "-1"):
        source = PROGRAM.replace("nets['snet']", f"nets[{index}]").replace("{'snet': snet}", "[snet]")
        assert findings(source) == [(20, "TGL201")], index


def test_elements_that_may_be_other_objects_are_not_followed():
    variants = {
        "a computed key": ("    snet = nets['snet']\n    with", "    snet = nets[sorted(nets)[0]]\n    with"),
        "the alias bound again": ("        return [snet(x)", "        snet = nets['snet']\n        return [snet(x)"),
        "the container changed by the callee": ("    snet = nets['snet']\n    with",
                                                "    snet = nets['snet']\n    nets.pop('snet')\n    with"),
        "the container changed by the caller": ("    nets = {'snet': snet}\n",
                                                "    nets = {'snet': snet}\n    nets['snet'] = torch.jit.load('s.pt')\n"),
        "the element's name bound again": ("    nets = {'snet': snet}\n",
                                           "    nets = {'snet': snet}\n    snet = torch.jit.load('s.pt')\n"),
        "a container filled later": ("    nets = {'snet': snet}\n", "    nets = {}\n    nets.update(snet=snet)\n"),
    }
    for why, (old, new) in variants.items():
        source = PROGRAM.replace(old, new)
        assert source != PROGRAM, why
        assert not [code for _, code in findings(source) if code == "TGL201"], why
