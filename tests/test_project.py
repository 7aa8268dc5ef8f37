"""Whole-project analysis: summaries of imported modules and of callers in other modules, cached
on disk and invalidated when a module they were computed from changes."""

import os
import textwrap

import pytest

from conftest import FIXTURES
from torchgradlint.engine import lint_file
from torchgradlint.discovery import find_root
from torchgradlint.project import ProjectIndex, module_name


def codes(path):
    return sorted((f.line, f.code) for f in lint_file(str(path)))


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHGRADLINT_CACHE_DIR", str(tmp_path / "cache"))
    ProjectIndex._instances.clear()
    yield tmp_path / "cache"
    ProjectIndex._instances.clear()


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


HELPERS = '''
import torch


def quiet(fn):
    def wrapper(*args, **kwargs):
        with torch.no_grad():
            return fn(*args, **kwargs)
    return wrapper


def finish_validation(model):
    model.eval()
'''

LOOPS = '''
import torch.nn as nn
import torch.nn.functional as F

from helpers import finish_validation, quiet


@quiet
def score(model, batches):
    model.eval()
    return [model(x).argmax(1) for x, _ in batches]


def fit(model, batches, optimizer, epochs):
    model.train()
    for epoch in range(epochs):
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        finish_validation(model)
'''


def test_root_and_module_names(tmp_path):
    package = tmp_path / "pkg"
    write(package, "__init__.py", "")
    path = write(package, "sub/__init__.py", "")
    inner = write(package, "sub/mod.py", "")
    assert find_root(str(inner)) == str(tmp_path)
    assert module_name(str(tmp_path), str(inner)) == "pkg.sub.mod"
    assert module_name(str(tmp_path), str(path)) == "pkg.sub"


def test_imported_helpers_decide_findings_and_edits_invalidate(tmp_path, fresh_cache):
    write(tmp_path, "helpers.py", HELPERS)
    loops = write(tmp_path, "loops.py", LOOPS)
    # `quiet` disables autograd; `finish_validation` leaves the model in eval mode, so the
    # next epoch's training forward runs in eval mode.
    assert codes(loops) == [(18, "TGL202")]
    assert any(fresh_cache.rglob("*.json")), "summaries are cached on disk"

    # Edit the helper: `quiet` no longer disables autograd, `finish_validation` restores
    # training mode. The caller's findings follow on the next run.
    write(tmp_path, "helpers.py", HELPERS.replace("with torch.no_grad():", "if True:")
          .replace("model.eval()", "model.eval()\n    model.train()"))
    assert codes(loops) == [(11, "TGL101")]

    # A deleted module drops out: nothing is known about `quiet` or `finish_validation`.
    os.remove(tmp_path / "helpers.py")
    assert codes(loops) == [(11, "TGL101")]


def test_callers_in_other_modules_give_the_grad_mode(tmp_path, fresh_cache):
    engine = write(tmp_path, "engine.py", '''
        import torch

        def evaluate(model, batches):
            model.eval()
            return sum((model(x).argmax(1) == y).sum().item() for x, y in batches)
        ''')
    write(tmp_path, "train.py", '''
        import torch
        from engine import evaluate

        def main(model, batches):
            with torch.no_grad():
                return evaluate(model, batches)
        ''')
    assert codes(engine) == []
    write(tmp_path, "train.py", '''
        import torch
        from engine import evaluate

        def main(model, batches):
            return evaluate(model, batches)
        ''')
    assert codes(engine) == [(6, "TGL101")]


def test_cache_can_be_disabled(tmp_path, fresh_cache, monkeypatch):
    monkeypatch.setenv("TORCHGRADLINT_NO_CACHE", "1")
    write(tmp_path, "helpers.py", HELPERS)
    loops = write(tmp_path, "loops.py", LOOPS)
    assert codes(loops) == [(18, "TGL202")]
    assert not fresh_cache.exists()


def test_fixture_project_without_the_project_view_misses_cross_module_bugs(fresh_cache):
    from torchgradlint.config import Config

    engine = FIXTURES / "projects" / "classifier" / "engine.py"
    alone = sorted((f.line, f.code) for f in lint_file(str(engine), Config(project=False)))
    assert (17, "TGL202") not in alone
    assert (17, "TGL202") in codes(engine)


def test_cached_summaries_follow_the_configuration(tmp_path, fresh_cache):
    """A summary depends on the settings it was computed with (here a configured model
    constructor): changing them must not serve a summary cached under the old ones."""
    from torchgradlint.config import Config

    write(tmp_path, "factory.py", '''
        import torch
        from zoo import build

        def make():
            return build("resnet18")
        ''')
    main = write(tmp_path, "main.py", '''
        import torch
        from factory import make

        scorer = make()

        def predict(x):
            return scorer(x).argmax(1)
        ''')
    plain = sorted((f.line, f.code) for f in lint_file(str(main), Config()))
    assert plain == []
    assert any(fresh_cache.rglob("*.json")), "the summary of factory.py is cached"
    configured = Config(model_constructors=frozenset({"build"}))
    ProjectIndex._instances.clear()  # a new run: only the disk cache survives
    found = sorted((f.line, f.code) for f in lint_file(str(main), configured))
    assert found == [(8, "TGL101")]


def test_a_model_returned_by_an_imported_factory_is_a_model(fresh_cache):
    """``calibrator = make_calibrator()`` (models.py): only the summary of models.py says the
    call returns a fresh model, so the evaluation forward in main.py is reported only with
    the project view."""
    from torchgradlint.config import Config

    main = FIXTURES / "projects" / "classifier" / "main.py"
    alone = sorted((f.line, f.code) for f in lint_file(str(main), Config(project=False)))
    assert not [finding for finding in alone if finding[0] == 10]
    assert codes(main) == [(10, "TGL101"), (10, "TGL201")]


def test_a_model_in_the_tuple_an_imported_builder_returns_is_a_model(fresh_cache):
    """``model, _ = build()`` (nets.py returns the model with its optimizer): only the summary
    of nets.py says which place of the tuple holds a fresh network with BatchNorm."""
    from torchgradlint.config import Config

    script = FIXTURES / "projects" / "builder_tuple" / "bad_predict.py"
    assert codes(script) == [(12, "TGL101"), (12, "TGL201")]
    assert lint_file(str(script), Config(project=False)) == []
    summary = ProjectIndex.for_file(str(script)).summary(str(script.parent / "nets.py"))
    assert summary["functions"]["build"]["returned_elements"] == [["fresh", True, ["", "Tagger"]], None]


def test_a_builder_forwarded_by_the_package_returns_what_the_builder_returns(fresh_cache):
    """``models/__init__.py``'s ``build_model`` only returns ``build(...)`` of ``.tagger``: its
    summary, computed from its own file, names the function it forwards to, and the reader
    takes the tuple ``build`` returns from there (a fresh ``Tagger`` holding Dropout)."""
    from torchgradlint.config import Config

    folder = FIXTURES / "projects" / "builder_behind_package"
    script = folder / "bad_train.py"
    assert codes(script) == [(10, "TGL201")]
    assert codes(folder / "good_train.py") == []
    assert lint_file(str(script), Config(project=False)) == []
    summary = ProjectIndex.for_file(str(script)).summary(str(folder / "models" / "__init__.py"), shallow=True)
    assert summary["functions"]["build_model"]["forwards_to"] == [".tagger", "build"]
    assert summary["functions"]["build_model"]["returned_elements"] is None
    # ``build`` returns a Tagger, or a Tagger wrapped by ``Refined`` of models/heads.py: both
    # classes are named, and the reader finds both are modules, so the model is fresh
    builder = ProjectIndex.for_file(str(script)).summary(str(folder / "models" / "tagger.py"), shallow=True)
    assert builder["functions"]["build"]["returned_elements"][0][2] == [["", "Tagger"], [".heads", "Refined"]]


def test_a_factory_module_that_never_mentions_torch_is_summarized(tmp_path, fresh_cache):
    """A module the text screen would skip (no torch in it) that builds the project's models
    and returns them: its importers still learn that they hold a model."""
    write(tmp_path, "nets.py", """
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(x)
    """)
    write(tmp_path, "factory.py", """
        from nets import Net


        def create(width=4):
            return Net(), width
    """)
    script = write(tmp_path, "predict.py", """
        import torch
        from factory import create

        model, width = create()
        model.load_state_dict(torch.load("net.pt"))
        print(model(torch.randn(2, width)))
    """)
    assert codes(script) == [(7, "TGL101")]


def test_a_model_handed_to_an_inherited_sampler_is_judged_at_the_call(tmp_path, fresh_cache):
    """improved-diffusion's shape, through relative imports: a torch-free factory returns the
    model and a ``SpacedDiffusion`` whose base (named like a model, in another module) defines
    the sampling loop; the script hands the model to it without ``eval()``. The finding is at
    the call, and the diffusion module, which cannot tell its callers apart, stays silent."""
    write(tmp_path, "diff/__init__.py", "")
    write(tmp_path, "diff/unet.py", """
        import torch.nn as nn


        class UNetModel(nn.Module):
            def __init__(self, dropout=0.1):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(4, 4), nn.Dropout(dropout))

            def forward(self, x, t):
                return self.body(x)
    """)
    gaussian = write(tmp_path, "diff/gaussian_diffusion.py", """
        import torch


        class GaussianDiffusion:
            def p_mean_variance(self, model, x, t):
                return model(x, t)

            def p_sample_loop(self, model, shape):
                x = torch.randn(shape)
                with torch.no_grad():
                    for t in range(3):
                        x = self.p_mean_variance(model, x, t)
                return x

            def training_losses(self, model, x, t):
                return (self.p_mean_variance(model, x, t) - x).pow(2).mean()
    """)
    write(tmp_path, "diff/respace.py", """
        from .gaussian_diffusion import GaussianDiffusion


        class SpacedDiffusion(GaussianDiffusion):
            def __init__(self, steps):
                self.steps = steps
    """)
    write(tmp_path, "diff/script_util.py", """
        from .respace import SpacedDiffusion
        from .unet import UNetModel


        def create_model(dropout):
            return UNetModel(dropout=dropout)


        def create_model_and_diffusion(dropout=0.1, steps=10):
            model = create_model(dropout)
            diffusion = SpacedDiffusion(steps)
            return model, diffusion
    """)
    script = write(tmp_path, "sample.py", """
        import torch
        from diff.script_util import create_model_and_diffusion

        model, diffusion = create_model_and_diffusion()
        model.load_state_dict(torch.load("model.pt"))
        print(diffusion.p_sample_loop(model, (2, 4)).shape)
    """)
    findings = lint_file(str(script))
    assert [(f.line, f.code) for f in findings] == [(7, "TGL201")]
    assert "`model`" in findings[0].message
    assert codes(gaussian) == []
    calls = ProjectIndex.for_file(str(script)).summary(str(script))["calls"]
    [sampling] = [call for call in calls if call["target"].endswith("GaussianDiffusion.p_sample_loop")]
    assert sampling["args"][0] is None  # the model's mode stays with the call that judged it
    # What the script reads: the factory module's own file alone cannot see UNetModel's layers,
    # only which class each returned object is built from.
    factory = str(tmp_path / "diff" / "script_util.py")
    shallow = ProjectIndex.for_file(str(script)).summary(factory, shallow=True)
    assert shallow["functions"]["create_model_and_diffusion"]["returned_elements"] == [
        ["unknown", None, [".unet", "UNetModel"]], [None, None, [".respace", "SpacedDiffusion"]]]


def test_what_a_method_returns_to_its_own_modules_training_does_not_train_other_callers(tmp_path, fresh_cache):
    """``Agent.act(obs)`` returns what agent.py's training loop makes its loss of: its parameter
    reaches a backward pass only through the return, in agent.py's own context. A playback
    script that feeds the actions back as observations trains nothing: its forward is
    reported (the summary no longer says that ``obs`` trains)."""
    agent = write(tmp_path, "agent.py", """
        import torch
        import torch.nn as nn


        class Agent(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Linear(4, 2)

            def act(self, obs):
                return self.body(obs).softmax(-1)


        def train():
            agent = Agent()
            opt = torch.optim.SGD(agent.parameters(), lr=0.1)
            for _ in range(3):
                loss = -agent.act(torch.randn(8, 4)).log().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            return agent
    """)
    play = write(tmp_path, "play.py", """
        import torch
        from agent import Agent

        agent = Agent()
        agent.load_state_dict(torch.load("agent.pt"))
        agent.eval()
        obs = torch.randn(1, 4)
        for step in range(10):
            probs = agent.act(obs)
            obs = torch.cat([obs[:, 2:], probs], dim=1)
        print(obs.tolist())
    """)
    summary = ProjectIndex.for_file(str(play)).summary(str(agent))
    assert summary["functions"]["Agent.act"]["params_reaching_training"] == []
    assert codes(play) == [(10, "TGL101")]


def test_summaries_that_record_calls_are_valid_cache_entries(fresh_cache):
    """A summary is read back from the disk cache only when it has exactly the shape
    ``summarize`` gives: calls on an object (a receiver) and calls from a method included."""
    from torchgradlint.semantic.summary import is_valid_summary

    folder = FIXTURES / "projects" / "helper_called_from_a_method"
    for name in ("main.py", "model.py"):
        path = folder / name
        summary = ProjectIndex.for_file(str(path)).summary(str(path))
        assert summary["calls"], name
        assert is_valid_summary(summary), name
    main_calls = ProjectIndex.for_file(str(folder / "main.py")).summary(str(folder / "main.py"))["calls"]
    run_epoch = [call for call in main_calls if call["target"] == "model.py:Classifier.run_epoch"]
    # first epoch: ``model.train()`` at line 11; later ones: run_epoch's own ``self.train()``,
    # which the caller sees at its call (line 13)
    assert [call["receiver"][""] for call in run_epoch] == [[["train", 11], ["train", 13]]]


def test_a_helper_of_another_module_switches_an_element_of_a_dict(tmp_path, fresh_cache):
    """``finish_validation(nets)`` (helpers.py) switches ``nets['snet']`` to eval mode: its
    summary's effect is keyed by the element of its parameter, which the caller maps to the
    model it put in the dict."""
    write(tmp_path, "helpers.py", '''
        def finish_validation(nets):
            snet = nets['snet']
            snet.eval()
        ''')
    loops = write(tmp_path, "loops.py", '''
        import torch.nn as nn
        import torch.nn.functional as F

        from helpers import finish_validation


        def fit(batches, optimizer, epochs):
            snet = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))
            nets = {'snet': snet}
            for epoch in range(epochs):
                for x, y in batches:
                    loss = F.cross_entropy(snet(x), y)
                    loss.backward()
                    optimizer.step()
                finish_validation(nets)
        ''')
    assert codes(loops) == [(13, "TGL202")]


def test_a_loss_written_as_a_module_of_another_module_records_no_graph(tmp_path, fresh_cache):
    """``FT`` (losses.py) is an ``nn.Module`` that builds no parameters: computing it with
    autograd on, on outputs computed under no_grad, records nothing (its summary says so).
    ``Projector`` builds a layer: its forward outside no_grad records a graph for nothing."""
    write(tmp_path, "losses.py", '''
        import torch.nn as nn
        import torch.nn.functional as F


        class FT(nn.Module):
            def __init__(self):
                super().__init__()

            def forward(self, factor_s, factor_t):
                return F.l1_loss(F.normalize(factor_s), F.normalize(factor_t))


        class Projector(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, factor_s, factor_t):
                return F.l1_loss(self.fc(factor_s), factor_t)
        ''')
    loop = write(tmp_path, "evaluation.py", '''
        import torch
        import torch.nn as nn

        from losses import FT, Projector


        def evaluate(batches, nets, criterions):
            snet = nets['snet']
            criterion = criterions['kd']
            snet.eval()
            total = 0.0
            for x, target in batches:
                with torch.no_grad():
                    out = snet(x)
                total += criterion(out, target).item()
            return total


        def main(batches, kind):
            snet = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))
            kd = FT() if kind == "ft" else Projector()
            nets = {'snet': snet}
            criterions = {'kd': kd}
            return evaluate(batches, nets, criterions)
        ''')
    assert codes(loop) == [(16, "TGL101")]
    write(tmp_path, "evaluation.py", loop.read_text().replace("FT() if kind == \"ft\" else Projector()", "FT()"))
    assert codes(loop) == []


def test_an_object_a_factory_of_another_module_builds_runs_the_model_it_is_handed(tmp_path, fresh_cache):
    """``process = create_process()`` (one object, no tuple: DiT's ``create_diffusion``
    returns a ``SpacedDiffusion``) of a class defined in a third module: the summary names the
    class, so ``process.sample(model, noise)`` is a forward of ``model`` in the caller."""
    write(tmp_path, "sampling/process.py", """
        import torch


        class Process:
            def __init__(self, steps):
                self.steps = steps

            def sample(self, model, x):
                for _ in range(self.steps):
                    x = torch.tanh(model(x))
                return x
    """)
    write(tmp_path, "sampling/__init__.py", """
        from .process import Process


        def create_process(steps=4):
            return Process(steps)
    """)
    script = write(tmp_path, "generate.py", """
        import torch
        from sampling import create_process

        model = torch.nn.Linear(4, 4)
        model.load_state_dict(torch.load("model.pt"))
        process = create_process()
        print(process.sample(model, torch.randn(2, 4)).tolist())
    """)
    summary = ProjectIndex.for_file(str(script)).summary(str(tmp_path / "sampling" / "__init__.py"), shallow=True)
    assert summary["functions"]["create_process"]["returned_class"] == [".process", "Process"]
    assert codes(script) == [(8, "TGL101")]


def test_a_wrapper_whose_forward_an_imported_helper_decorates(tmp_path, fresh_cache):
    # YOLOv5's AutoShape: ``@smart_inference_mode()`` (a helper of another module that returns
    # torch.inference_mode) decorates the wrapper's forward, so calling the wrapper records no
    # graph; a wrapper without it does.
    write(tmp_path, "torch_utils.py", """
        import torch


        def smart_inference_mode():
            def decorate(fn):
                return torch.inference_mode()(fn)
            return decorate
    """)
    write(tmp_path, "common.py", """
        import torch.nn as nn
        from torch_utils import smart_inference_mode


        class AutoShape(nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            @smart_inference_mode()
            def forward(self, ims):
                return self.model(ims)


        class Plain(nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, ims):
                return self.model(ims)
    """)
    check = write(tmp_path, "check.py", """
        import torch
        import torch.nn as nn
        from common import AutoShape, Plain


        def main():
            net = nn.Linear(4, 2)
            net.load_state_dict(torch.load("weights.pt"))
            wrapped = AutoShape(net)
            print(wrapped(torch.randn(2, 4)).sum().item())
            plain = Plain(net)
            print(plain(torch.randn(2, 4)).sum().item())
    """)
    assert codes(check) == [(13, "TGL101")]
