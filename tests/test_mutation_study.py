"""The mutation study's mutator: each kind of protection is deleted by an exact edit.

The expected mutants are written out by hand; everything outside the edit must stay
byte-identical. No corpus, no linting: the study's measurement itself is bench/mutation_study.py.
"""

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from mutation_study import find_mutants, line_map  # noqa: E402

SOURCE = '''\
import torch as T
from torch import no_grad as ng


def evaluate(model, loader):
    model.eval()
    total = 0.0
    with T.no_grad():
        for x, y in loader:
            out = model(x)  # forward
            total += out.sum().item()
    return total


@ng()
def sample(generator, z):
    return generator(z)


def train(generator, critic, data, optimizer, epochs):
    for epoch in range(epochs):
        critic.train()
        running = 0.0
        for real in data:
            fake = generator(real)
            loss = critic(fake.detach()).mean() - critic(real).mean()
            loss.backward()
            running += float(loss)
        evaluate(critic, data)
'''


def mutants_by_kind():
    return {(m.kind, m.line): m.text for m in find_mutants(SOURCE, "owner/name", "x.py")}


def test_every_kind_is_found_once_at_its_line():
    # ``total += out.sum().item()`` (line 11) is under no_grad already: no protection to delete.
    assert sorted(mutants_by_kind()) == [
        ("detach", 26), ("eval", 6), ("item", 28), ("no_grad", 8),
        ("no_grad_decorator", 15), ("train", 22)]


def test_eval_statement_is_deleted():
    assert mutants_by_kind()[("eval", 6)] == SOURCE.replace("    model.eval()\n", "")


def test_train_statement_is_deleted():
    assert mutants_by_kind()[("train", 22)] == SOURCE.replace("        critic.train()\n", "")


def test_no_grad_block_is_dedented():
    expected = SOURCE.replace('''\
    with T.no_grad():
        for x, y in loader:
            out = model(x)  # forward
            total += out.sum().item()
''', '''\
    for x, y in loader:
        out = model(x)  # forward
        total += out.sum().item()
''')
    assert mutants_by_kind()[("no_grad", 8)] == expected


def test_aliased_decorator_is_deleted():
    assert mutants_by_kind()[("no_grad_decorator", 15)] == SOURCE.replace("@ng()\n", "")


def test_detach_is_dropped():
    expected = SOURCE.replace("critic(fake.detach())", "critic(fake)")
    assert mutants_by_kind()[("detach", 26)] == expected


def test_float_and_item_are_dropped():
    expected = SOURCE.replace("running += float(loss)", "running += loss")
    assert mutants_by_kind()[("item", 28)] == expected
    source = ("import torch\n\nfor x in data:\n    loss = model(x).sum()\n"
              "    total += 2 * loss.item()\n")
    [mutant] = find_mutants(source)
    assert mutant.text == source.replace("loss.item()", "loss")


def test_one_item_of_several_is_removed():
    source = "import torch\n\nwith torch.no_grad(), open('f') as f:\n    y = m(x)\n"
    [mutant] = [m for m in find_mutants(source) if m.kind == "no_grad"]
    assert mutant.text == "import torch\n\nwith open('f') as f:\n    y = m(x)\n"


def test_a_sole_statement_becomes_pass():
    source = ("import torch\n\ndef f(model, x):\n    if x:\n        model.eval()\n"
              "    return model(x)\n")
    [mutant] = [m for m in find_mutants(source) if m.kind == "eval"]
    assert mutant.text == source.replace("model.eval()", "pass")


def test_mode_calls_and_logging_detaches_are_no_protection():
    source = ("import torch\n\ndef f(model, x):\n    model.eval()\n    model.to('cpu')\n"
              "    torch.save(model.state_dict(), 'm.pt')\n\n"
              "def g(model, x):\n    return model(x).detach().cpu()\n")
    assert find_mutants(source) == []


def test_mutant_lines_map_back_over_a_deletion_and_a_dedent():
    mapping = line_map(SOURCE, mutants_by_kind()[("no_grad", 8)])
    assert mapping[8] == 9  # the loop, dedented, was line 9
    assert mapping[11] == 12  # ``return total``
    assert mapping[26] == 27


def test_a_form_feed_in_a_string_does_not_shift_the_edit():
    source = ("import torch\n\nPAGE = 'a\x0cb'\n\ndef f(model, x):\n    model.eval()\n"
              "    return model(x)\n")
    [mutant] = find_mutants(source)
    assert mutant.text == source.replace("    model.eval()\n", "")


def test_a_mutant_is_looked_for_in_importers_and_their_importers(tmp_path):
    """The study's shadow project lints, beside the mutated file, the files that import it,
    the files importing those (a script reads the classes its factory module builds), and the
    project modules the mutated file imports: the listing is the project index's own."""
    from mutation_study import Shadow

    files = {
        "pkg/__init__.py": "",
        "pkg/process.py": "import torch\nfrom .nn import scale\n\n\ndef run(model, x):\n    return model(scale(x))\n",
        "pkg/nn.py": "def scale(x):\n    return x * 2\n",
        "pkg/factory.py": "from .process import run\n\n\ndef make():\n    return run\n",
        "script.py": "import torch\nfrom pkg.factory import make\n\nprint(make())\n",
        "other.py": "import torch\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    target = tmp_path / "pkg" / "process.py"
    shadow = Shadow(str(target), target.read_text())
    try:
        assert sorted(shadow.relative.values()) == ["pkg/factory.py", "pkg/nn.py", "script.py"]
    finally:
        shadow.close()
