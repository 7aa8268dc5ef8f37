"""Tests of the runtime monitor (torchgradlint.runtime) on real torch, CPU, tiny models.

Each script is written to tmp_path and run with ``run_path``; its ``# expect:`` /
``# expect-runtime:`` marks must equal the monitor's (line, code) findings exactly.
"""

import gc
import sys
import textwrap
import weakref

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from fixture_marks import FixtureMarks  # noqa: E402
from torchgradlint.runtime import RuntimeFinding, run_path, watch  # noqa: E402
from torchgradlint.runtime.__main__ import main as cli_main  # noqa: E402

HEADER = """\
import torch
from torch import nn
torch.manual_seed(0)
"""

GAN = HEADER + """\
netG = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Tanh())
netD = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 1), nn.Sigmoid())
optG = torch.optim.Adam(netG.parameters())
optD = torch.optim.Adam(netD.parameters())
bce = nn.BCELoss()
real = torch.randn(8, 4)
"""

SCRIPTS = {
    "tgl101_bad": HEADER + """\
model = nn.Linear(4, 2)
model.eval()
correct = 0
for x in [torch.randn(3, 4) for _ in range(3)]:
    out = model(x)  # expect: TGL101
    correct += int(out.argmax(1).sum())
""",
    "tgl101_good": HEADER + """\
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = [torch.randn(3, 4) for _ in range(3)]
for x in data:
    opt.zero_grad()
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
model.eval()
with torch.no_grad():
    for x in data:
        out = model(x)
with torch.inference_mode():
    out = model(data[0])
x = torch.randn(3, 4, requires_grad=True)
saliency, = torch.autograd.grad(model(x).sum(), x)
""",
    "tgl101_detached_eval_bad": HEADER + """\
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for _ in range(2):
    opt.zero_grad()
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
preds = [model(torch.randn(3, 4)).detach() for _ in range(3)]  # expect: TGL101
""",
    "tgl101_detached_target_bad": HEADER + """\
policy, target = nn.Linear(4, 2), nn.Linear(4, 2)
opt = torch.optim.SGD(policy.parameters(), lr=0.1)
for _ in range(3):
    next_q = target(torch.randn(5, 4)).detach().max(1).values  # expect: TGL101
    loss = (policy(torch.randn(5, 4)).max(1).values - next_q).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
""",
    # The generator's output detached for the discriminator's step: the generator is trained
    # by its own step, the detach is the GAN idiom.
    "tgl101_detached_trained_model_good": HEADER + """\
gen, disc = nn.Linear(4, 4), nn.Linear(4, 1)
opt_g = torch.optim.SGD(gen.parameters(), lr=0.1)
opt_d = torch.optim.SGD(disc.parameters(), lr=0.1)
for _ in range(3):
    fake = gen(torch.randn(5, 4)).detach()
    opt_d.zero_grad()
    disc(fake).mean().backward()
    opt_d.step()
    opt_g.zero_grad()
    (-disc(gen(torch.randn(5, 4)))).mean().backward()
    opt_g.step()
""",
    "tgl102_training_mode_bad": HEADER + """\
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
@torch.no_grad()
def train_step(x):
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()  # expect: TGL102
    opt.step()
train_step(torch.randn(3, 4))
""",
    "tgl102_bad": HEADER + """\
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
with torch.no_grad():
    loss = model(torch.randn(3, 4)).sum()
try:
    loss.backward()  # expect: TGL102
except RuntimeError:
    pass
opt.step()  # expect: TGL102
with torch.inference_mode():
    loss = model(torch.randn(3, 4)).sum()
torch.autograd.grad(loss, list(model.parameters()))  # expect: TGL102
print("not reached")
""",
    "tgl102_good": HEADER + """\
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
with torch.no_grad():
    target = model(torch.randn(3, 4))
loss = (model(torch.randn(3, 4)) - target).pow(2).mean()
loss.backward()
opt.step()
""",
    "tgl103_bad": HEADER + """\
model = nn.Linear(4, 2)
with torch.no_grad:  # expect: TGL103
    out = model(torch.randn(3, 4))
""",
    "tgl103_good": HEADER + """\
model = nn.Linear(4, 2)
with torch.no_grad():
    out = model(torch.randn(3, 4))
try:
    with torch.no_grad:
        pass
except TypeError:
    pass
""",
    "tgl201_bad": HEADER + """\
model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(3, 4)
for _ in range(2):
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()
    with torch.no_grad():
        val = model(x)  # expect: TGL201
""",
    "tgl201_good": HEADER + """\
model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(3, 4)
for _ in range(2):
    model.train()
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        val = model(x)
plain = nn.Linear(4, 2)
with torch.no_grad():
    plain(x)
""",
    "tgl202_bad": HEADER + """\
model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(3, 4)
def evaluate():
    model.eval()
    with torch.no_grad():
        model(x)
for epoch in range(2):
    opt.zero_grad()
    model(x).sum().backward()  # expect: TGL202
    opt.step()
    evaluate()
""",
    "tgl202_good": HEADER + """\
model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x = torch.randn(3, 4)
def evaluate():
    model.eval()
    with torch.no_grad():
        model(x)
for epoch in range(2):
    model.train()
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()
    evaluate()
# LBFGS: the backward runs in the closure, inside step()
lbfgs = torch.optim.LBFGS(model.parameters(), max_iter=2)
def closure():
    lbfgs.zero_grad()
    loss = model(x).pow(2).mean()
    loss.backward()
    return loss
model.train()
lbfgs.step(closure)
lbfgs.step(closure)
# adversarial example after training: eval-mode backward, but no step trains the model
model.eval()
x_adv = x.clone().requires_grad_(True)
model(x_adv).sum().backward()
""",
    "tgl301_gan_bad": GAN + """\
for _ in range(3):
    fake = netG(torch.randn(8, 2))
    optD.zero_grad()
    errD = bce(netD(real), torch.ones(8, 1)) + bce(netD(fake), torch.zeros(8, 1))  # expect: TGL301
    errD.backward(retain_graph=True)
    optD.step()
    optG.zero_grad()
    errG = bce(netD(fake), torch.ones(8, 1))
    errG.backward()
    optG.step()
""",
    "tgl301_second_time": GAN + """\
for _ in range(3):
    fake = netG(torch.randn(8, 2))
    optD.zero_grad()
    errD = bce(netD(fake), torch.zeros(8, 1))  # expect: TGL301
    errD.backward()
    optD.step()
    optG.zero_grad()
    errG = bce(netD(fake), torch.ones(8, 1))
    errG.backward()
    optG.step()
""",
    "tgl301_target_bad": HEADER + """\
policy, target = nn.Linear(4, 2), nn.Linear(4, 2)
target.load_state_dict(policy.state_dict())
opt = torch.optim.SGD(policy.parameters(), lr=0.1)
for _ in range(3):
    s, s2 = torch.randn(5, 4), torch.randn(5, 4)
    q = policy(s).max(1).values
    t = 1.0 + 0.9 * target(s2).max(1).values  # expect: TGL301
    loss = ((q - t) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
""",
    "tgl301_good": GAN + """\
for _ in range(3):
    fake = netG(torch.randn(8, 2))
    optD.zero_grad()
    errD = bce(netD(real), torch.ones(8, 1)) + bce(netD(fake.detach()), torch.zeros(8, 1))
    errD.backward()
    optD.step()
    optG.zero_grad()
    errG = bce(netD(fake), torch.ones(8, 1))
    errG.backward()
    optG.step()
# two optimizers stepping after one backward (encoder/decoder) are one update
enc, dec = nn.Linear(4, 3), nn.Linear(3, 2)
oe, od = torch.optim.SGD(enc.parameters(), lr=0.1), torch.optim.SGD(dec.parameters(), lr=0.1)
for _ in range(2):
    oe.zero_grad(); od.zero_grad()
    dec(enc(torch.randn(5, 4))).pow(2).mean().backward()
    oe.step(); od.step()
""",
    "tgl302_bad": HEADER + """\
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
total = 0
for _ in range(4):
    opt.zero_grad()
    loss = model(torch.randn(3, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    total += loss  # expect: TGL302
""",
    "tgl302_list_bad": HEADER + """\
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
history = []
for _ in range(4):
    opt.zero_grad()
    loss = model(torch.randn(3, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    history.append(loss)  # expect: TGL302
""",
    "tgl302_helper_bad": HEADER + """\
class Meter:
    def __init__(self):
        self.sum = 0
    def update(self, value):
        self.sum += value
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
meter = Meter()
for _ in range(4):
    loss = model(torch.randn(3, 4)).pow(2).mean()
    meter.update(loss)  # expect: TGL302
    opt.zero_grad()
    loss.backward()
    opt.step()
""",
    "tgl302_hidden_state_bad": HEADER + """\
cell = nn.RNNCell(3, 5)
opt = torch.optim.SGD(cell.parameters(), lr=0.01)
h = torch.zeros(2, 5)
for _ in range(4):
    h = cell(torch.randn(2, 3), h)  # expect: TGL302
    opt.zero_grad()
    h.pow(2).mean().backward(retain_graph=True)
""",
    "tgl302_good": HEADER + """\
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
total, history = 0.0, []
for _ in range(4):
    acc = 0
    for micro in range(3):  # gradient accumulation keeps graphs alive until its backward
        acc = acc + model(torch.randn(3, 4)).pow(2).mean()
    opt.zero_grad()
    acc.backward()
    opt.step()
    total += acc.item()
    history.append(acc.detach())
""",
    "tgl303_bad": GAN + """\
for _ in range(3):
    fake = netG(torch.randn(8, 2))
    optD.zero_grad()
    bce(netD(fake.detach()), torch.zeros(8, 1)).backward()
    optD.step()
    optG.zero_grad()
    bce(netD(fake.detach()), torch.ones(8, 1)).backward()
    optG.step()  # expect-runtime: TGL303
""",
}


def _run(tmp_path, name):
    source = SCRIPTS[name]
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    report = run_path(path)
    return source, report


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_findings_match_marks(tmp_path, name):
    source, report = _run(tmp_path, name)
    expected = FixtureMarks.parse(source).runtime
    assert report.codes() == expected, (report.findings, report.error)
    assert report.monitor_errors == []
    for finding in report.findings:
        assert finding.filename == str((tmp_path / f"{name}.py").resolve())
        assert "\n" not in finding.message and finding.message


def test_uncaught_errors_are_recorded_not_raised(tmp_path):
    _, report = _run(tmp_path, "tgl102_bad")
    assert report.error_type == "RuntimeError"
    assert "does not require grad" in report.error
    _, report = _run(tmp_path, "tgl103_bad")
    assert report.error_type == "TypeError"
    _, report = _run(tmp_path, "tgl101_good")
    assert report.error is None


def test_exception_still_reaches_user_code():
    model = nn.Linear(4, 2)
    with torch.no_grad():
        loss = model(torch.randn(3, 4)).sum()
    with watch() as report:
        with pytest.raises(RuntimeError, match="does not require grad"):
            loss.backward()  # noqa: TGL102
    assert [f.code for f in report.findings] == ["TGL102"]


def test_watch_reports_call_site_in_user_code_and_only_top_level_forwards():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))
    with watch() as report:
        with torch.no_grad():
            model(torch.randn(3, 4)); line = _lineno()  # noqa: E702, TGL201
    assert report.findings == [RuntimeFinding(
        "TGL201", __file__, line, report.findings[0].message)]
    assert "Sequential" in report.findings[0].message
    assert "Dropout" in report.findings[0].message


def _lineno():
    import sys
    return sys._getframe(1).f_lineno


def test_nothing_kept_alive_and_hooks_removed():
    from torch.nn.modules import module as module_mod
    from torch.optim import optimizer as optim_mod

    before = (len(module_mod._global_forward_pre_hooks), len(module_mod._global_forward_hooks),
              len(optim_mod._global_optimizer_post_hooks))
    backward, grad = torch.autograd.backward, torch.autograd.grad

    class Holder:
        pass

    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch() as report:
        out = model(torch.randn(3, 4))
        holder = Holder()
        out.grad_fn.metadata["test.holder"] = holder
        alive = weakref.ref(holder)
        del holder
        out.sum().backward()
        opt.step()
    del out
    gc.collect()
    assert alive() is None, "the monitor kept a graph alive"
    assert report.findings == []
    after = (len(module_mod._global_forward_pre_hooks), len(module_mod._global_forward_hooks),
             len(optim_mod._global_optimizer_post_hooks))
    assert after == before
    assert torch.autograd.backward is backward and torch.autograd.grad is grad
    assert not model.weight._post_accumulate_grad_hooks
    # a second watch starts clean: nothing of the first is reported again
    with watch() as second:
        with torch.no_grad():
            model(torch.randn(3, 4))
    assert second.findings == []


def test_watch_cannot_nest():
    with watch():
        with pytest.raises(RuntimeError):
            with watch():
                pass


def test_cli_prints_findings(tmp_path, capsys):
    path = tmp_path / "bad.py"
    path.write_text(SCRIPTS["tgl101_bad"])
    assert cli_main([str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:8: TGL101 " in out
    good = tmp_path / "good.py"
    good.write_text(SCRIPTS["tgl101_good"])
    assert cli_main([str(good)]) == 0


def test_cli_passes_arguments_to_the_script(tmp_path, capsys):
    path = tmp_path / "args.py"
    path.write_text(SCRIPTS["tgl101_bad"].replace(
        "for x in [torch.randn(3, 4) for _ in range(3)]:",
        "import sys\nfor x in [torch.randn(3, 4) for _ in range(int(sys.argv[2]))]:") +
        "assert sys.argv[1:] == ['--steps', '3'], sys.argv\n")
    assert cli_main([str(path), "--steps", "3"]) == 1
    captured = capsys.readouterr()
    assert "uncaught" not in captured.err, captured.err
    assert ": TGL101 " in captured.out


def test_cli_missing_script_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main([str(tmp_path / "missing.py")])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("cannot run '" + str(tmp_path / "missing.py") + "': no such file")


def test_cli_rejects_unknown_codes_in_ignore(tmp_path, capsys):
    path = tmp_path / "bad.py"
    path.write_text(SCRIPTS["tgl101_bad"])
    with pytest.raises(SystemExit) as exited:
        cli_main(["--ignore", "TGL109", str(path)])
    assert exited.value.code == 2
    assert "unknown rule code or prefix 'TGL109'" in capsys.readouterr().err
    assert cli_main(["--ignore", "TGL101", str(path)]) == 0


def test_cli_reports_findings_in_imported_project_modules(tmp_path, capsys, monkeypatch):
    """The evaluation loop lives in a module the script imports: the finding is reported at
    its line there, as the pytest plugin reports it."""
    body = SCRIPTS["tgl101_bad"].split("model = nn.Linear(4, 2)\n")[1]
    helper = tmp_path / "evaluation.py"
    helper.write_text("import torch\n\n\ndef evaluate(model):\n" +
                      "".join(f"    {line}\n" for line in body.splitlines()))
    script = tmp_path / "main.py"
    script.write_text(HEADER + "from evaluation import evaluate\n"
                      "evaluate(nn.Linear(4, 2))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "evaluation", raising=False)
    assert cli_main(["main.py"]) == 1
    forward = next(n for n, line in enumerate(helper.read_text().splitlines(), 1)
                   if "out = model(x)" in line)
    assert f"evaluation.py:{forward}: TGL101 " in capsys.readouterr().out


def test_runtime_not_imported_by_linter():
    import subprocess
    import sys

    code = "import torchgradlint, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scripts_are_dedented():
    for source in SCRIPTS.values():
        assert source == textwrap.dedent(source)
