"""Random PyTorch-shaped programs for the property tests (``test_properties.py``).

A program is built from templates with random choices: imports under different aliases
(``import torch as T``, ``from torch import no_grad as ng``), model classes with or without
Dropout/BatchNorm, training loops, evaluation loops (guarded or not, in eval mode or not),
helpers called from evaluation code, GAN steps with and without ``.detach()``, distillation,
a DQN-style agent keeping ``self.policy`` / ``self.target``, a trainer class keeping
``self.model``, decorators, nested functions, comprehensions, and the script that wires them.

Every local variable (parameters, loop variables, assignments, module-level names) is a
placeholder with a *role*; a role's names all look the same to the linter's name heuristics (a
model's names all contain a model word, an evaluation loader's names all contain an
evaluation-data word, a tensor's names none of the words the linter reads). So renaming every
variable to another name of its role must give the same findings, at the same lines.

Every statement is one physical line, so a blank or comment line may be inserted between any two
lines (the reformatting property), and indentation is written at render time (4 spaces, 2
spaces or tabs).

Use it from hypothesis as ``programs()``, or directly: ``generate(random.Random(seed))``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from string import Template
from typing import Dict, List, Optional, Sequence, Tuple

# Names per role. Within a role, the linter's name heuristics (torch_api.words, MODEL_NAME_WORDS,
# EVAL_DATA_WORDS, LOSS_WORDS, looks_like_optimizer_name, roles.role) classify every name alike.
POOLS: Dict[str, Sequence[str]] = {
    "model": ("model", "net", "network", "classifier", "backbone", "my_net", "base_model"),
    "gen": ("netG", "generator", "G", "g_net", "gen_model"),
    "disc": ("netD", "discriminator", "D", "d_net", "critic", "disc_model"),
    "teacher": ("teacher", "teacher_model", "teacher_net"),
    "student": ("student", "student_model", "student_net"),
    "opt": ("optimizer", "opt", "optim", "opt_main", "optimizer_main"),
    "opt_g": ("optimizerG", "opt_g", "optim_G", "g_optimizer"),
    "opt_d": ("optimizerD", "opt_d", "optim_D", "d_optimizer"),
    "train_data": ("loader", "train_loader", "dl", "batches", "data_iter", "train_batches"),
    "eval_data": ("val_loader", "test_loader", "valid_dl", "dev_data", "eval_batches",
                  "heldout_iter"),
    "tensor": ("x", "inputs", "xb", "images", "batch_x", "feats", "h", "z_in", "sample"),
    "target": ("y", "targets", "labels", "yb", "gt", "truth"),
    "output": ("out", "outputs", "logits", "pred", "y_hat", "scores", "result"),
    "loss": ("loss", "batch_loss", "train_loss", "cur_loss", "loss_step"),
    "total": ("total", "running", "epoch_sum", "agg", "tally", "acc_sum"),
    "criterion": ("criterion", "loss_fn", "crit", "criterion_ce"),
    "counter": ("epoch", "ep", "it", "round_idx", "k"),
    "number": ("n", "count", "seen", "num", "m_count"),
    "collection": ("history", "records", "log_items", "kept"),
}

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


@dataclass
class Program:
    """Lines of ``(depth, text)``; ``text`` holds ``${placeholder}`` for every local name."""

    lines: List[Tuple[int, str]]
    roles: Dict[str, str]  # placeholder -> role
    names: Dict[str, str]  # placeholder -> name in this rendering
    description: List[str] = field(default_factory=list)
    # Top-level definitions (classes, functions) that may appear in any order: [start, end)
    # indexes into ``lines``, consecutive, all before the script.
    chunks: List[Tuple[int, int]] = field(default_factory=list)

    def source(self, names: Optional[Dict[str, str]] = None, indent: str = "    ",
               newline: str = "\n") -> str:
        mapping = names or self.names
        out = []
        for depth, text in self.lines:
            out.append(indent * depth + Template(text).substitute(mapping) + newline)
        return "".join(out)

    def renaming(self, rng: random.Random) -> Dict[str, str]:
        """Another name of the same role for every placeholder, all distinct."""
        return _assign_names(self.roles, rng, avoid=set())

    def reordered(self, rng: random.Random) -> Tuple["Program", List[int]]:
        """The same program with its top-level definitions shuffled, and ``new_line[old_line]``
        (1-based; index 0 unused)."""
        if not self.chunks:
            return self, list(range(len(self.lines) + 1))
        first, last = self.chunks[0][0], self.chunks[-1][1]
        order = list(self.chunks)
        rng.shuffle(order)
        sequence = list(range(first)) + [i for a, b in order for i in range(a, b)] + \
            list(range(last, len(self.lines)))
        mapping = [0] * (len(self.lines) + 1)
        for new, old in enumerate(sequence):
            mapping[old + 1] = new + 1
        lines = [self.lines[i] for i in sequence]
        return Program(lines, self.roles, self.names, self.description + ["reordered"]), mapping

    def __repr__(self) -> str:  # hypothesis prints this on failure
        return f"Program({'; '.join(self.description)})\n{self.source()}"


def _assign_names(roles: Dict[str, str], rng: random.Random, avoid: set) -> Dict[str, str]:
    used = set(avoid)
    names: Dict[str, str] = {}
    for placeholder in sorted(roles):
        pool = list(POOLS[roles[placeholder]])
        rng.shuffle(pool)
        for base in pool:
            if base not in used:
                name = base
                break
        else:  # more variables than names: a longer name of the pool, with a number
            base = max(pool, key=len)  # "netG2" keeps its words; "G2" would not be "G"
            suffix = 2
            while f"{base}{suffix}" in used:
                suffix += 1
            name = f"{base}{suffix}"
        used.add(name)
        names[placeholder] = name
    return names


class _Builder:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.lines: List[Tuple[int, str]] = []
        self.roles: Dict[str, str] = {}
        self.description: List[str] = []
        self._count = 0
        self.torch = "torch"
        self.nn = "nn"
        self.F = "F"
        self.no_grad = "torch.no_grad"
        self.inference_mode = "torch.inference_mode"
        self.logged = False

    def var(self, role: str) -> str:
        self._count += 1
        placeholder = f"v{self._count}_{role}"
        self.roles[placeholder] = role
        return "${" + placeholder + "}"

    def add(self, depth: int, text: str) -> None:
        self.lines.append((depth, text))

    def blank(self) -> None:
        self.lines.append((0, ""))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def choice(self, options):
        return self.rng.choice(list(options))


# --------------------------------------------------------------------------- pieces


def _imports(b: _Builder) -> None:
    style = b.choice(["plain", "alias_T", "alias_th", "from_imports"])
    b.description.append(f"imports={style}")
    if style == "plain":
        b.add(0, "import torch")
        b.add(0, "import torch.nn as nn")
        b.add(0, "import torch.nn.functional as F")
    elif style in ("alias_T", "alias_th"):
        alias = "T" if style == "alias_T" else "th"
        b.add(0, f"import torch as {alias}")
        b.add(0, "from torch import nn")
        b.add(0, "from torch.nn import functional as F")
        b.torch = alias
        b.no_grad = f"{alias}.no_grad"
        b.inference_mode = f"{alias}.inference_mode"
    else:
        b.add(0, "import torch")
        b.add(0, "from torch import nn, optim")
        b.add(0, "from torch import no_grad as ng, inference_mode")
        b.add(0, "import torch.nn.functional as F")
        b.no_grad = "ng"
        b.inference_mode = "inference_mode"
    b.add(0, "import copy")
    if b.chance(0.3):
        b.add(0, "import functools")
        b.add(0, "")
        b.add(0, "")
        b.add(0, "def logged(function):")
        b.add(1, "@functools.wraps(function)")
        b.add(1, "def wrapper(*args, **kwargs):")
        b.add(2, "return function(*args, **kwargs)")
        b.add(1, "return wrapper")
        b.logged = True
    b.blank()


def _model_class(b: _Builder, name: str) -> None:
    dropout = b.chance(0.6)
    b.description.append(f"class {name} dropout={dropout}")
    b.add(0, f"class {name}(nn.Module):")
    b.add(1, "def __init__(self, width=32):")
    b.add(2, "super().__init__()")
    b.add(2, "self.fc1 = nn.Linear(16, width)")
    if dropout:
        b.add(2, b.choice(["self.drop = nn.Dropout(0.2)", "self.drop = nn.BatchNorm1d(width)"]))
    else:
        b.add(2, "self.drop = nn.ReLU()")
    b.add(2, "self.fc2 = nn.Linear(width, 4)")
    b.blank()
    b.add(1, "def forward(self, x):")
    b.add(2, "return self.fc2(self.drop(self.fc1(x)))")
    b.blank()
    b.blank()


def _decorators(b: _Builder, depth: int = 0) -> None:
    """Maybe a project decorator that changes nothing (``@logged``) on a function."""
    if b.logged and b.chance(0.4):
        b.add(depth, "@logged")


def _train_epoch(b: _Builder, fname: str) -> None:
    model, loader, opt, crit = b.var("model"), b.var("train_data"), b.var("opt"), b.var("criterion")
    x, y, out, loss = b.var("tensor"), b.var("target"), b.var("output"), b.var("loss")
    total = b.var("total")
    leak = b.chance(0.3)
    b.description.append(f"{fname} leak={leak}")
    _decorators(b)
    b.add(0, f"def {fname}({model}, {loader}, {opt}, {crit}):")
    b.add(1, f"{model}.train()")
    b.add(1, f"{total} = 0.0")
    b.add(1, f"for {x}, {y} in {loader}:")
    b.add(2, f"{opt}.zero_grad()")
    b.add(2, f"{out} = {model}({x})")
    b.add(2, f"{loss} = {crit}({out}, {y})")
    b.add(2, f"{loss}.backward()")
    b.add(2, f"{opt}.step()")
    b.add(2, f"{total} += {loss}" if leak else f"{total} += {loss}.item()")
    b.add(1, f"return {total}")
    b.blank()
    b.blank()


def _evaluate(b: _Builder, fname: str, helper: Optional[str]) -> None:
    model, loader = b.var("model"), b.var("eval_data" if b.chance(0.6) else "train_data")
    x, y, out = b.var("tensor"), b.var("target"), b.var("output")
    total, n = b.var("total"), b.var("number")
    switch = b.choice(["eval", "none", "train_after", "eval_not_called"])
    guard = b.choice(["with", "decorator", "none", "inference", "with_uncalled", "set_grad",
                      "inference_decorator"])
    b.description.append(f"{fname} switch={switch} guard={guard} helper={helper}")
    _decorators(b)
    if guard == "decorator":
        b.add(0, f"@{b.no_grad}()")
    elif guard == "inference_decorator":
        b.add(0, f"@{b.inference_mode}()")
    b.add(0, f"def {fname}({model}, {loader}):")
    if switch in ("eval", "train_after"):
        b.add(1, f"{model}.eval()")
    elif switch == "eval_not_called":
        b.add(1, f"{model}.eval")
    b.add(1, f"{total} = 0.0")
    b.add(1, f"{n} = 0")
    depth = 1
    if guard == "with":
        b.add(depth, f"with {b.no_grad}():")
        depth += 1
    elif guard == "inference":
        b.add(depth, f"with {b.inference_mode}():")
        depth += 1
    elif guard == "with_uncalled":
        b.add(depth, f"with {b.no_grad}:")
        depth += 1
    elif guard == "set_grad":
        b.add(depth, f"with {b.torch}.set_grad_enabled(False):")
        depth += 1
    wrap = b.choice(["none", "if", "try"])
    if wrap == "if":
        b.add(depth, f"if {n} >= 0:")
        depth += 1
    elif wrap == "try":
        b.add(depth, "try:")
        depth += 1
    b.add(depth, f"for {x}, {y} in {loader}:")
    if helper:
        b.add(depth + 1, f"{out} = {helper}({model}, {x})")
    else:
        b.add(depth + 1, f"{out} = {model}({x})")
    b.add(depth + 1, f"{total} += ({out}.argmax(1) == {y}).sum().item()")
    b.add(depth + 1, f"{n} += {y}.numel()")
    if wrap == "try":
        b.add(depth - 1, "except RuntimeError:")
        b.add(depth, "pass")
    if switch == "train_after":
        b.add(1, f"{model}.train()")
    b.add(1, f"return {total} / max(1, {n})")
    b.blank()
    b.blank()


def _helper(b: _Builder, fname: str) -> None:
    model, x = b.var("model"), b.var("tensor")
    b.description.append(f"helper {fname}")
    _decorators(b)
    b.add(0, f"def {fname}({model}, {x}):")
    if b.chance(0.5):
        out = b.var("output")
        b.add(1, f"{out} = {model}({x})")
        b.add(1, f"return {out}.softmax(-1)")
    else:
        b.add(1, f"return {model}({x})")
    b.blank()
    b.blank()


def _gan_step(b: _Builder, fname: str) -> None:
    g, d, og, od = b.var("gen"), b.var("disc"), b.var("opt_g"), b.var("opt_d")
    real, z, fake = b.var("tensor"), b.var("tensor"), b.var("output")
    d_real, d_fake, loss_d, loss_g = b.var("output"), b.var("output"), b.var("loss"), b.var("loss")
    detach = b.chance(0.6)
    b.description.append(f"{fname} detach={detach}")
    b.add(0, f"def {fname}({g}, {d}, {og}, {od}, {real}):")
    b.add(1, f"{z} = {b.torch}.randn({real}.size(0), 8)")
    b.add(1, f"{fake} = {g}({z})")
    b.add(1, f"{od}.zero_grad()")
    b.add(1, f"{d_real} = {d}({real})")
    b.add(1, f"{d_fake} = {d}({fake}.detach())" if detach else f"{d_fake} = {d}({fake})")
    b.add(1, f"{loss_d} = F.softplus(-{d_real}).mean() + F.softplus({d_fake}).mean()")
    b.add(1, f"{loss_d}.backward()")
    b.add(1, f"{od}.step()")
    b.add(1, f"{og}.zero_grad()")
    b.add(1, f"{loss_g} = F.softplus(-{d}({fake})).mean()")
    b.add(1, f"{loss_g}.backward()")
    b.add(1, f"{og}.step()")
    b.add(1, f"return {loss_d}.item(), {loss_g}.item()")
    b.blank()
    b.blank()


def _distill(b: _Builder, fname: str) -> None:
    teacher, student = b.var("teacher"), b.var("student")
    loader, opt = b.var("train_data"), b.var("opt")
    x, y, soft, logits, loss = (b.var("tensor"), b.var("target"), b.var("output"),
                                b.var("output"), b.var("loss"))
    guarded = b.chance(0.5)
    b.description.append(f"{fname} teacher_guarded={guarded}")
    b.add(0, f"def {fname}({teacher}, {student}, {loader}, {opt}):")
    b.add(1, f"{teacher}.eval()")
    b.add(1, f"for {x}, {y} in {loader}:")
    if guarded:
        b.add(2, f"with {b.no_grad}():")
        b.add(3, f"{soft} = {teacher}({x}).softmax(-1)")
    else:
        b.add(2, f"{soft} = {teacher}({x}).softmax(-1)")
    b.add(2, f"{logits} = {student}({x})")
    b.add(2, f"{loss} = F.kl_div({logits}.log_softmax(-1), {soft}, reduction='batchmean')")
    b.add(2, f"{opt}.zero_grad()")
    b.add(2, f"{loss}.backward()")
    b.add(2, f"{opt}.step()")
    b.blank()
    b.blank()


def _agent_class(b: _Builder, name: str) -> None:
    policy, gamma = b.var("model"), b.var("number")
    s, a, r, s2, q, best, expected, loss = (b.var("tensor"), b.var("tensor"), b.var("target"),
                                            b.var("tensor"), b.var("output"), b.var("output"),
                                            b.var("output"), b.var("loss"))
    guarded = b.chance(0.5)
    b.description.append(f"class {name} target_guarded={guarded}")
    b.add(0, f"class {name}:")
    b.add(1, f"def __init__(self, {policy}, {gamma}=0.99):")
    b.add(2, f"self.policy = {policy}")
    b.add(2, f"self.target = copy.deepcopy({policy})")
    b.add(2, f"self.gamma = {gamma}")
    b.add(2, f"self.optimizer = {b.torch}.optim.Adam({policy}.parameters(), lr=1e-3)")
    b.blank()
    b.add(1, f"def learn(self, {s}, {a}, {r}, {s2}):")
    b.add(2, f"{q} = self.policy({s}).gather(1, {a})")
    if guarded:
        b.add(2, f"with {b.no_grad}():")
        b.add(3, f"{best} = self.target({s2}).max(1)[0]")
    else:
        b.add(2, f"{best} = self.target({s2}).max(1)[0]")
    b.add(2, f"{expected} = {r} + self.gamma * {best}")
    b.add(2, f"{loss} = F.smooth_l1_loss({q}, {expected})")
    b.add(2, "self.optimizer.zero_grad()")
    b.add(2, f"{loss}.backward()")
    b.add(2, "self.optimizer.step()")
    b.add(2, f"return {loss}.item()")
    b.blank()
    b.blank()


def _trainer_class(b: _Builder, name: str) -> None:
    model, opt = b.var("model"), b.var("opt")
    loader, vloader = b.var("train_data"), b.var("eval_data")
    x, y, out, loss, preds = (b.var("tensor"), b.var("target"), b.var("output"), b.var("loss"),
                              b.var("collection"))
    guarded = b.chance(0.5)
    switch = b.chance(0.5)
    b.description.append(f"class {name} validate_guarded={guarded} eval={switch}")
    b.add(0, f"class {name}:")
    b.add(1, f"def __init__(self, {model}, {opt}):")
    b.add(2, f"self.model = {model}")
    b.add(2, f"self.optimizer = {opt}")
    b.blank()
    b.add(1, f"def fit(self, {loader}):")
    b.add(2, "self.model.train()")
    b.add(2, f"for {x}, {y} in {loader}:")
    b.add(3, f"{loss} = F.cross_entropy(self.model({x}), {y})")
    b.add(3, "self.optimizer.zero_grad()")
    b.add(3, f"{loss}.backward()")
    b.add(3, "self.optimizer.step()")
    b.blank()
    if guarded:
        b.add(1, f"@{b.no_grad}()")
    b.add(1, f"def validate(self, {vloader}):")
    if switch:
        b.add(2, "self.model.eval()")
    b.add(2, f"{preds} = []")
    b.add(2, f"for {x}, {y} in {vloader}:")
    b.add(3, f"{out} = self.model({x})")
    b.add(3, f"{preds}.append({out}.argmax(1))")
    b.add(2, f"return {preds}")
    b.blank()
    b.blank()


def _nested_eval(b: _Builder, fname: str) -> None:
    model, loader, x, out = b.var("model"), b.var("eval_data"), b.var("tensor"), b.var("output")
    inner_x = b.var("tensor")
    b.description.append(f"{fname} nested helper")
    b.add(0, f"def {fname}({model}, {loader}):")
    b.add(1, f"{model}.eval()")
    b.blank()
    b.add(1, f"def step({inner_x}):")
    b.add(2, f"return {model}({inner_x})")
    b.blank()
    b.add(1, f"for {x} in {loader}:")
    b.add(2, f"{out} = step({x})")
    b.add(2, f"print({out}.shape)")
    b.blank()
    b.blank()


def _comprehension_eval(b: _Builder, fname: str) -> None:
    model, loader, x = b.var("model"), b.var("eval_data"), b.var("tensor")
    guarded = b.chance(0.5)
    b.description.append(f"{fname} comprehension guarded={guarded}")
    b.add(0, f"def {fname}({model}, {loader}):")
    b.add(1, f"{model}.eval()")
    if guarded:
        b.add(1, f"with {b.no_grad}():")
        b.add(2, f"return [{model}({x}).argmax(1) for {x} in {loader}]")
    else:
        b.add(1, f"return [{model}({x}).argmax(1) for {x} in {loader}]")
    b.blank()
    b.blank()


EVAL_NAMES = ("evaluate", "validate", "run_validation", "test_model", "predict_all", "eval_epoch")
TRAIN_NAMES = ("train_epoch", "train_one_epoch", "fit_epoch", "run_training")
HELPER_NAMES = ("forward_batch", "apply_model", "run_batch", "compute")
CLASS_NAMES = ("Net", "Classifier", "MLP", "SmallNet", "Encoder")


def generate(rng: random.Random, max_pieces: int = 5) -> Program:
    """A random PyTorch-shaped program (one module)."""
    b = _Builder(rng)
    _imports(b)
    cls = b.choice(CLASS_NAMES)
    train_name = b.choice(TRAIN_NAMES)
    eval_name = b.choice(EVAL_NAMES)
    helper = b.choice(HELPER_NAMES) if b.chance(0.4) else None
    pieces = [lambda: _train_epoch(b, train_name)]
    if helper:
        pieces.append(lambda: _helper(b, helper))
    pieces.append(lambda: _evaluate(b, eval_name, helper))
    extras = [
        lambda: _gan_step(b, "gan_step"),
        lambda: _distill(b, "distill_epoch"),
        lambda: _agent_class(b, "Agent"),
        lambda: _trainer_class(b, "Trainer"),
        lambda: _nested_eval(b, "evaluate_nested"),
        lambda: _comprehension_eval(b, "predict_batches"),
    ]
    rng.shuffle(extras)
    pieces.extend(extras[:rng.randint(0, max(0, max_pieces - len(pieces)))])
    if rng.random() < 0.5:
        rng.shuffle(pieces)  # helpers may come after their callers
    chunks = []
    start = len(b.lines)
    _model_class(b, cls)
    chunks.append((start, len(b.lines)))
    for piece in pieces:
        start = len(b.lines)
        piece()
        chunks.append((start, len(b.lines)))
    _script(b, cls, train_name, eval_name)
    program = Program(b.lines, b.roles, {}, b.description, chunks)
    program.names = _assign_names(program.roles, rng, avoid=set())
    return program


def _script(b: _Builder, cls: str, train_name: str, eval_name: str) -> None:
    model, opt, loader, vloader, epoch = (b.var("model"), b.var("opt"), b.var("train_data"),
                                          b.var("eval_data"), b.var("counter"))
    crit = b.var("criterion")
    main = b.chance(0.5)
    depth = 0
    if main:
        b.add(0, 'if __name__ == "__main__":')
        depth = 1
    b.add(depth, f"{model} = {cls}()")
    b.add(depth, f"{opt} = {b.torch}.optim.SGD({model}.parameters(), lr=0.1)")
    b.add(depth, f"{crit} = nn.CrossEntropyLoss()")
    b.add(depth, f"{loader} = [({b.torch}.randn(8, 16), {b.torch}.randint(0, 4, (8,)))]")
    b.add(depth, f"{vloader} = list({loader})")
    b.add(depth, f"for {epoch} in range(3):")
    b.add(depth + 1, f"{train_name}({model}, {loader}, {opt}, {crit})")
    b.add(depth + 1, f"print({epoch}, {eval_name}({model}, {vloader}))")


def importing(source: str, module: str, rng: random.Random, tag: str) -> str:
    """``source`` plus an import of an evaluation or training function from the project module
    ``module`` and a function calling it (the name may not exist there: real code is like that
    too). For the project index: imports to resolve, modules to summarise, callers across files."""
    name = rng.choice(EVAL_NAMES + TRAIN_NAMES)
    return (source + f"\nfrom {module} import {name} as imported_{tag}\nimport {module}\n\n\n"
            f"def use_imported_{tag}(model, val_loader):\n    model.eval()\n"
            f"    return imported_{tag}(model, val_loader)\n")


def programs():
    """A hypothesis strategy of Programs (shrinks through the recorded random choices)."""
    from hypothesis import strategies as st

    return st.randoms(use_true_random=False).map(generate)


# --------------------------------------------------------------------------- reformatting


SAFE_COMMENT_WORDS = ("step", "see above", "TODO tidy", "batch loop", "shapes: (N, C)", "ok",
                      "evaluate later", "model output", "# nested", "a: b", "x = f(y)")


def insert_blank_and_comment_lines(source: str, rng: random.Random, count: int) -> Tuple[str, List[int]]:
    """Insert ``count`` blank or comment lines between random lines of a source whose statements
    are one line each. Returns the new source and ``new_line[old_line]`` (1-based; index 0
    unused). Comments never say ``noqa``, ``flake8`` or ``coding``."""
    lines = source.splitlines(keepends=True)
    inserts: Dict[int, List[str]] = {}
    for _ in range(count):
        position = rng.randint(0, len(lines))  # insert before lines[position]
        if rng.random() < 0.5:
            text = "\n"
        else:
            indent = " " * rng.choice((0, 2, 4, 8, 13))
            text = f"{indent}# {rng.choice(SAFE_COMMENT_WORDS)}\n"
        inserts.setdefault(position, []).append(text)
    out: List[str] = []
    mapping = [0]
    for index, line in enumerate(lines):
        out.extend(inserts.get(index, ()))
        out.append(line)
        mapping.append(len(out))
    out.extend(inserts.get(len(lines), ()))
    return "".join(out), mapping
