"""Hand-written trainer classes of the project with callbacks (semantic/trainers.py and
frameworks.build_trainer_loops): what a trainer module's summary says of the class, read from
its code, and the findings in the scripts that hand it a model and a callback."""

import textwrap

import pytest

from conftest import FIXTURES
from torchgradlint.engine import lint_file
from torchgradlint.project import ProjectIndex

PROJECTS = FIXTURES / "projects"


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHGRADLINT_CACHE_DIR", str(tmp_path / "cache"))
    ProjectIndex._instances.clear()
    yield
    ProjectIndex._instances.clear()


def summary_of(path):
    return ProjectIndex.for_file(str(path)).summary(str(path))["functions"]


def codes(path):
    return sorted((f.line, f.code) for f in lint_file(str(path)))


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_the_summary_says_what_each_method_stores(fresh_cache):
    functions = summary_of(PROJECTS / "trainer_callbacks" / "trainer.py")
    assert functions["Trainer.__init__"]["stores"] == [["model", "model", None], ["batches", "batches", None]]
    assert functions["Trainer.add_callback"]["stores"] == [["callback", "callbacks", ["param", "event"]]]
    assert functions["Trainer.trigger"]["stores"] == []


def test_the_summary_describes_the_training_loop_that_calls_the_callbacks(fresh_cache):
    once = summary_of(PROJECTS / "trainer_callbacks" / "trainer.py")["Trainer.run"]["trainer_loop"]
    # model.train() before ``for x, y in self.batches``; trigger("on_batch_end") after the
    # step; trigger("on_train_end") is after the loop, so not part of it
    assert once == {"model": "self.model", "modes": [["train", "before"]],
                    "callbacks": [["callbacks", ["const", "on_batch_end"], "after"]],
                    "at_least_once": False}
    every_step = summary_of(PROJECTS / "trainer_callbacks_train_every_step" / "trainer.py")
    assert every_step["Trainer.run"]["trainer_loop"]["modes"] == [["train", "loop"]]


def test_a_loop_that_trains_nothing_is_no_trainer_loop(fresh_cache):
    functions = summary_of(PROJECTS / "trainer_callbacks_loop_without_training" / "predictor.py")
    assert functions["Predictor.run"]["trainer_loop"] is None
    assert functions["Predictor.add_callback"]["stores"] == [["callback", "callbacks", ["param", "event"]]]


TRAINER = '''
import torch
import torch.nn.functional as F


class Fitter:
    def __init__(self):
        self.hooks = []

    def register(self, hook):
        self.hooks.append(hook)

    def fit(self, net, batches):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        net.train()
        for epoch in range(3):
            for x, y in batches:
                opt.zero_grad()
                F.cross_entropy(net(x), y).backward()
                opt.step()
            for hook in self.hooks:
                hook()
'''

SCRIPT = '''
import torch
import torch.nn as nn

from pkg.fitter import Fitter

net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]


def validate():
    net.eval()
    with torch.no_grad():
        print(net(batches[0][0]).argmax(1))


fitter = Fitter()
fitter.register(validate)
fitter.fit(net, batches)
'''


def test_a_script_below_the_repository_sees_its_installed_package(tmp_path, fresh_cache):
    """The model is the run method's parameter, the callback stored in a list without a key;
    the package is found from the repository's packaging file above the script's folder."""
    write(tmp_path, "setup.py", "from setuptools import setup\nsetup(name='pkg')\n")
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/fitter.py", TRAINER)
    script = write(tmp_path, "projects/demo/train.py", SCRIPT)
    assert codes(script) == [(19, "TGL202")]
    message = next(f.message for f in lint_file(str(script)))
    assert "`fitter.fit()`" in message and "`validate` (eval mode set at line 12)" in message
    # the cached summary of the package's module follows an edit of it: switched to training
    # mode before every batch, the callback's eval() no longer reaches a training step
    write(tmp_path, "pkg/fitter.py", TRAINER.replace(
        "            for x, y in batches:\n", "            for x, y in batches:\n                net.train()\n"))
    ProjectIndex._instances.clear()
    assert codes(script) == []


def test_without_a_packaging_file_the_package_is_not_seen(tmp_path, fresh_cache):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/fitter.py", TRAINER)
    script = write(tmp_path, "projects/demo/train.py", SCRIPT)
    assert codes(script) == []


def test_a_callback_registered_for_an_event_outside_the_loop_is_not_in_it(tmp_path, fresh_cache):
    """The same trainer fixture, with the callback that ends in eval mode registered for the
    event the trainer fires after its loop."""
    source = (PROJECTS / "trainer_callbacks_leave_eval" / "main.py").read_text()
    write(tmp_path, "trainer.py", (PROJECTS / "trainer_callbacks" / "trainer.py").read_text())
    script = write(tmp_path, "main.py", source.replace('"on_batch_end", on_batch_end', '"on_train_end", on_batch_end'))
    assert codes(script) == []
    script.write_text(source)
    ProjectIndex._instances.clear()
    assert codes(script) == [(24, "TGL202")]


def test_a_switch_before_the_loop_on_some_paths_only_is_marked_as_such(tmp_path, fresh_cache):
    conditional = TRAINER.replace("        net.train()\n", "        if self.hooks:\n            net.train()\n")
    path = write(tmp_path, "fitter.py", conditional)
    loop = summary_of(path)["Fitter.fit"]["trainer_loop"]
    assert loop["model"] == "net" and loop["callbacks"] == [["hooks", None, "after"]]
    assert sorted(loop["modes"]) == [["?", "before"], ["train", "before"]]
