"""Mutation study: recall measured on real code, by deleting one protection at a time.

    python bench/mutation_study.py CORPUS [--out DIR] [--audit bench/mutants.csv] [--update]
                                   [--kind K] [--repo owner/name] [--per-repo 3] [-j N]
                                   [--markdown] [--file-only]

The accuracy study (accuracy.py) measures precision: every finding on real code is triaged.
It cannot measure recall, because nobody knows the bugs the linter stays silent about. This
study makes bugs whose place is known: in real files of the corpus it finds the *protections*
the rules are about and deletes one at a time.

Kinds of protection (found with ``ast``; import aliases such as ``import torch as T`` and
``from torch import no_grad`` are resolved):

=====================  =======================================================  ==========
kind                   protection deleted                                        family
=====================  =======================================================  ==========
eval                   a statement ``X.eval()`` / ``X.train(False)`` followed,   TGL2xx
                       in the same function (or module body), by a call of X,
                       a method call on X, or a call passing X: evaluation
train                  a statement ``X.train()`` / ``X.train(True)`` in a loop   TGL2xx
                       that also evaluates X, after an ``X.eval()`` in the same
                       function, or in a function that trains X (forward of X
                       and a ``backward()``: an epoch function)
no_grad                ``with torch.no_grad():`` / ``inference_mode()`` /        TGL1xx
                       ``set_grad_enabled(False)``: the body is dedented (or
                       only that item is removed when the ``with`` has several)
no_grad_decorator      ``@torch.no_grad()`` / ``@torch.inference_mode()`` (or    TGL1xx
                       bare) on a def
detach                 ``.detach()`` of a model call's output (``G(z)``,         TGL3xx
                       ``target(s).max(1)[0]``), or of a name assigned from
                       one, that stays a tensor (no ``.data`` before it, no
                       ``.cpu()``/``.numpy()``/``.item()``/``.tolist()`` after)
item                   ``.item()`` / ``float(...)`` in an accumulation in a      TGL302
                       loop: ``x += loss.item()``, ``x = x + float(l)``,
                       ``xs.append(loss.item())``
=====================  =======================================================  ==========

``detach`` and ``item`` sites already under a syntactic no-grad region (a ``with`` or a
decorator of the same function) are not used: their protection is redundant by construction.
Test files (``test_*.py``, ``*_test.py``, ``tests/`` folders) are not mutated: the linter does
not treat pytest code as evaluation or training.

Each mutant is the original text with one precise edit (line/column based: everything else is
byte-identical); it must parse. It is linted **in its repository**: ``lint_source(mutant,
filename=<the real path>)``, so the project index reads the real neighbours (the modules it
imports and the modules importing it, from disk). Nothing is written into the corpus, and the
linter's disk cache is off. The neighbours' own summaries are computed from the files on disk,
so there a neighbour sees the *original* of the mutated file. A mutant the file's own findings
miss is then looked for in its importers, their importers, and the project modules it imports
(at most 8 of each, ``--file-only`` skips this): they are linted in a temporary copy of the project made of
symbolic links, where the mutated file is a real file holding the mutant, so a finding the
linter reports at a caller, or in a helper the mutated file calls (an ``evaluate_model`` in
utils.py whose ``model.eval()`` the caller deleted), counts too.

A mutant is *caught* when the mutant has a finding of the kind's family that the untouched file
does not have: findings are compared as multisets of (code, line), the mutant's lines mapped
back to the original's through a line diff (a deleted statement shifts the lines after it). A
finding that moved only because of the shift is therefore not new; a second finding of the same
code on the same line is. (Counting findings per family instead would hide a catch that
replaces an old finding of the same code elsewhere.) New findings of another family are shown
next to a miss, not counted.

Which mutants, and how many: for each repository and kind, the sites are ordered by a hash of
their key (repo, path, line, kind) and the first ``--per-repo`` are kept. The choice does not
depend on the linter, and a site keeps its rank when others appear or vanish (only a new site
hashed before it can push it out).

The audit (``bench/mutants.csv``, columns ``repo,revision,path,line,kind,verdict,reason``) says
for each mutant whether the deletion creates the bug at run time: ``valid``; ``harmless``
(the deletion changes nothing that matters, e.g. ``eval()`` removed from a model with neither
Dropout nor BatchNorm: silence is right); ``invalid`` (the protection was redundant; reasons
starting ``loud:`` mark deletions that make the program raise at once, which is not the silent
bug the rules are for). Recall is caught / valid; unaudited mutants are listed and counted
apart, never in recall. ``--update`` appends the unaudited mutants with an empty verdict, to be
filled in by reading the code.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import collections
import csv
import difflib
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
import tokenize
from multiprocessing import Pool
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from accuracy import (bullet, print_table, py_files, read_revisions,  # noqa: E402
                      repos_in, section)

COLUMNS = ["repo", "revision", "path", "line", "kind", "verdict", "reason"]
VERDICTS = ("valid", "harmless", "invalid")
KINDS = ("eval", "train", "no_grad", "no_grad_decorator", "detach", "item")
FAMILY = {"eval": "TGL2", "train": "TGL2", "no_grad": "TGL1", "no_grad_decorator": "TGL1",
          "detach": "TGL3", "item": "TGL302"}
# The rule written for the bug each deletion makes (a catch by another rule of the family counts).
EXPECTED_RULE = {"eval": "TGL201", "train": "TGL202", "no_grad": "TGL101",
                 "no_grad_decorator": "TGL101", "detach": "TGL301", "item": "TGL302"}

NO_GRAD_CONTEXTS = {"torch.no_grad", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
                    "torch.inference_mode", "torch.autograd.inference_mode",
                    "torch.autograd.grad_mode.inference_mode"}
SET_GRAD_ENABLED = {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled",
                    "torch.autograd.grad_mode.set_grad_enabled"}
# Method calls on a model that do not run it.
NOT_A_FORWARD = {"train", "eval", "parameters", "named_parameters", "buffers", "named_buffers",
                 "state_dict", "load_state_dict", "to", "cuda", "cpu", "half", "float", "double",
                 "bfloat16", "zero_grad", "modules", "named_modules", "children",
                 "named_children", "apply", "requires_grad_", "register_buffer",
                 "register_forward_hook", "register_forward_pre_hook", "add_module", "share_memory"}
# Tensor methods: a call of one of them is no model call (``x.clone()``), and a model call
# followed by them is still one (``target(s).max(1)``).
TENSOR_METHODS = {"clone", "contiguous", "to", "cpu", "cuda", "float", "half", "double", "long",
                  "int", "view", "reshape", "flatten", "squeeze", "unsqueeze", "permute",
                  "transpose", "t", "mean", "sum", "max", "min", "argmax", "softmax",
                  "log_softmax", "sigmoid", "tanh", "exp", "log", "abs", "clamp", "gather",
                  "expand", "expand_as", "repeat", "chunk", "split", "type", "type_as", "norm",
                  "pow", "sqrt", "mul", "add", "sub", "div", "detach", "sample", "rsample",
                  "mode", "narrow", "select", "index_select", "masked_fill"}
# Calls that turn a tensor into numbers: a .detach() before them is for logging, not isolation.
TO_NUMBERS = {"cpu", "numpy", "item", "tolist"}
NON_MODEL_ROOTS = {"torch", "np", "numpy", "math", "F", "random", "os", "sys"}
BUILTINS = set(dir(builtins))

# A file without one of these words holds no protection (a text screen, to keep the scan short).
PROTECTION_WORDS = (".eval(", ".train(", "no_grad", "inference_mode", "set_grad_enabled",
                    ".detach(", ".item(", "float(")

Key = Tuple[str, str, int, str]  # repo, path inside the repo, line of the protection, kind


class Mutant(NamedTuple):
    repo: str
    path: str
    line: int
    kind: str
    text: str  # the whole mutated source

    @property
    def key(self) -> Key:
        return (self.repo, self.path, self.line, self.kind)


# -- reading the source -------------------------------------------------------------------------

LINE_END = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> List[str]:
    """Lines with their ends, numbered as ``ast`` numbers them (str.splitlines also breaks at
    form feeds and Unicode separators, which would shift every line after one)."""
    lines, start = [], 0
    for match in LINE_END.finditer(text):
        lines.append(text[start:match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


class Source:
    """The text of one file with the helpers an exact edit needs (ast columns are UTF-8 bytes)."""

    def __init__(self, text: str):
        self.text = text
        self.lines = split_lines(text)
        self._starts = [0]
        for line in self.lines:
            self._starts.append(self._starts[-1] + len(line))
        self._string_lines: Optional[Set[int]] = None

    def offset(self, lineno: int, byte_col: int) -> int:
        head = self.lines[lineno - 1].encode("utf-8")[:byte_col]
        return self._starts[lineno - 1] + len(head.decode("utf-8", "replace"))

    def start(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)

    def end(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)

    def line_start(self, lineno: int) -> int:
        return self._starts[lineno - 1]

    def owns_lines(self, first: int, last: int, start: int, end: int) -> bool:
        """Whether [start, end) is alone on lines first..last (blanks and a comment aside)."""
        before = self.text[self.line_start(first):start]
        after = self.text[end:self._starts[last]]
        return not before.strip() and (not after.strip() or after.strip().startswith("#"))

    def string_continuation_lines(self) -> Set[int]:
        """Lines that begin inside a multi-line string: their text must not be re-indented."""
        if self._string_lines is None:
            found: Set[int] = set()
            try:
                for token in tokenize.generate_tokens(io.StringIO(self.text).readline):
                    if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                        found.update(range(token.start[0] + 1, token.end[0] + 1))
            except (tokenize.TokenError, IndentationError, SyntaxError):
                pass
            self._string_lines = found
        return self._string_lines


def edited(text: str, edits: List[Tuple[int, int, str]]) -> str:
    """``text`` with each (start, end, replacement) applied; the ranges must not overlap."""
    out = []
    position = 0
    for start, end, replacement in sorted(edits):
        out.append(text[position:start])
        out.append(replacement)
        position = end
    out.append(text[position:])
    return "".join(out)


class Aliases:
    """Local names bound by imports, mapped to the dotted names they stand for.

    The linter has its own import table; the study keeps this small one so that which
    protections it finds (and so which mutants it makes) never depends on the analysis under
    measurement."""

    def __init__(self, nodes: Iterable[ast.AST]):
        self.names: Dict[str, str] = {}
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.names[alias.asname] = alias.name
                    else:
                        root = alias.name.split(".")[0]
                        self.names[root] = root
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def resolve(self, node: ast.AST) -> Optional[str]:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        root = self.names.get(node.id)
        if root is None:
            return None
        return ".".join([root] + parts[::-1])


def is_no_grad_item(aliases: Aliases, expression: ast.AST, decorator: bool = False) -> bool:
    """``torch.no_grad()``, ``inference_mode()``/``(True)``, ``set_grad_enabled(False)``; a
    decorator may also be bare (``@torch.no_grad``)."""
    if isinstance(expression, ast.Call):
        name = aliases.resolve(expression.func)
        if name in NO_GRAD_CONTEXTS:
            if name.endswith("inference_mode") and expression.args:
                flag = expression.args[0]
                return isinstance(flag, ast.Constant) and flag.value is True
            return not expression.args
        if name in SET_GRAD_ENABLED and len(expression.args) == 1:
            flag = expression.args[0]
            return isinstance(flag, ast.Constant) and flag.value is False
        return False
    return decorator and aliases.resolve(expression) in NO_GRAD_CONTEXTS


def mode_switch(statement: ast.stmt) -> Optional[Tuple[str, bool]]:
    """(receiver text, training) for a statement ``X.eval()`` / ``X.train()`` / ``X.train(B)``
    with a constant flag."""
    if not isinstance(statement, ast.Expr) or not isinstance(statement.value, ast.Call):
        return None
    call = statement.value
    if not isinstance(call.func, ast.Attribute) or call.keywords:
        return None
    receiver = ast.unparse(call.func.value)
    if call.func.attr == "eval" and not call.args:
        return receiver, False
    if call.func.attr == "train":
        if not call.args:
            return receiver, True
        if len(call.args) == 1 and isinstance(call.args[0], ast.Constant) \
                and isinstance(call.args[0].value, bool):
            return receiver, call.args[0].value
    return None


# -- the structure of a file --------------------------------------------------------------------

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.Module)
LOOPS = (ast.For, ast.AsyncFor, ast.While)


class Structure:
    """Parents, enclosing scopes and syntactic no-grad regions of a module."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.parent: Dict[ast.AST, ast.AST] = {}
        self.nodes: List[ast.AST] = [tree]  # breadth first, as ast.walk; one traversal for all
        for node in self.nodes:
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
                self.nodes.append(child)
        self.aliases = Aliases(n for n in self.nodes if isinstance(n, (ast.Import, ast.ImportFrom)))

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        while node in self.parent:
            node = self.parent[node]
            yield node

    def scope(self, node: ast.AST) -> ast.AST:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, SCOPES):
                return ancestor
        return self.tree

    def loops(self, node: ast.AST) -> List[ast.AST]:
        """The loops around ``node`` inside its own scope, innermost first."""
        found = []
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, SCOPES):
                break
            if isinstance(ancestor, LOOPS):
                found.append(ancestor)
        return found

    def under_no_grad(self, node: ast.AST) -> bool:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, (ast.With, ast.AsyncWith)) and any(
                    is_no_grad_item(self.aliases, item.context_expr) for item in ancestor.items):
                return True
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return any(is_no_grad_item(self.aliases, d, decorator=True)
                           for d in ancestor.decorator_list)
        return False


def walk_scope(root: ast.AST) -> Iterator[ast.AST]:
    """Nodes under ``root`` without entering nested functions, classes or lambdas."""
    stack = list(ast.iter_child_nodes(root))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, SCOPES):
            stack.extend(ast.iter_child_nodes(node))


def runs_model(call: ast.Call, receiver: str) -> bool:
    """A call of X, a method call on X that runs it, or a call passing X."""
    func = call.func
    text = ast.unparse(func)
    if text == receiver:
        return True
    if isinstance(func, ast.Attribute) and ast.unparse(func.value) == receiver:
        return func.attr not in NOT_A_FORWARD
    arguments = list(call.args) + [k.value for k in call.keywords]
    return any(ast.unparse(a) == receiver for a in arguments)


def after(node: ast.AST, statement: ast.stmt) -> bool:
    return (node.lineno, node.col_offset) > (statement.end_lineno, statement.end_col_offset)


# -- the mutations ------------------------------------------------------------------------------

def delete_statement(source: Source, structure: Structure, statement: ast.stmt) -> Optional[str]:
    """The source without ``statement`` (its lines removed, or ``pass`` when it was the only
    statement of its block); None when it shares a line with other code."""
    start, end = source.start(statement), source.end(statement)
    if not source.owns_lines(statement.lineno, statement.end_lineno, start, end):
        return None
    parent = structure.parent.get(statement)
    siblings = None
    for field in ("body", "orelse", "finalbody"):
        block = getattr(parent, field, None)
        if isinstance(block, list) and statement in block:
            siblings = block
    if siblings is None and isinstance(parent, ast.ExceptHandler):
        siblings = parent.body
    first = source.line_start(statement.lineno)
    last = source.line_start(statement.end_lineno + 1) if statement.end_lineno < len(source.lines) \
        else len(source.text)
    if siblings is not None and len(siblings) == 1:
        indent = source.text[first:start]
        last_line = source.lines[statement.end_lineno - 1]
        newline = last_line[len(last_line.rstrip("\r\n")):] or "\n"
        return edited(source.text, [(first, last, f"{indent}pass{newline}")])
    return edited(source.text, [(first, last, "")])


def delete_decorator(source: Source, decorator: ast.expr) -> Optional[str]:
    at = source.start(decorator)
    at = source.text.rfind("@", source.line_start(decorator.lineno), at)
    if at < 0:
        return None
    end = source.end(decorator)
    if not source.owns_lines(decorator.lineno, decorator.end_lineno, at, end):
        return None
    last = source.line_start(decorator.end_lineno + 1)
    return edited(source.text, [(source.line_start(decorator.lineno), last, "")])


def remove_no_grad(source: Source, statement: ast.With, item: ast.withitem) -> Optional[str]:
    """Drop one no-grad item of a ``with``; a ``with`` of that item alone gives way to its body,
    dedented to the ``with``'s own indentation."""
    if len(statement.items) > 1:
        index = statement.items.index(item)
        if index + 1 < len(statement.items):
            start = source.start(item.context_expr)
            end = source.start(statement.items[index + 1].context_expr)
        else:
            previous = statement.items[index - 1]
            start = source.end(previous.optional_vars or previous.context_expr)
            end = source.end(item.optional_vars or item.context_expr)
        return edited(source.text, [(start, end, "")])
    body = statement.body
    header_start = source.start(statement)
    if body[0].lineno == statement.lineno:  # ``with torch.no_grad(): x = f()``
        return edited(source.text, [(header_start, source.start(body[0]), "")])
    if source.text[source.line_start(statement.lineno):header_start].strip():
        return None  # ``x = 1; with ...``
    header_end_line = body[0].lineno - 1
    # The header may span lines; it ends at the colon before the first body line.
    amount = body[0].col_offset - statement.col_offset
    edits = [(source.line_start(statement.lineno), source.line_start(header_end_line + 1), "")]
    # Comment lines between the header and the body belong to the header's lines only if above.
    skip = source.string_continuation_lines()
    for lineno in range(header_end_line + 1, statement.end_lineno + 1):
        if lineno in skip:
            continue
        line = source.lines[lineno - 1]
        if not line.strip():
            continue
        spaces = len(line) - len(line.lstrip(" \t"))
        cut = min(amount, spaces)
        if cut:
            begin = source.line_start(lineno)
            edits.append((begin, begin + cut, ""))
    return edited(source.text, edits)


def remove_call_suffix(source: Source, call: ast.Call) -> str:
    """``x.detach()`` -> ``x`` (the text after the receiver, up to the call's end, removed)."""
    receiver = call.func.value
    return edited(source.text, [(source.end(receiver), source.end(call), "")])


def unwrap_float(source: Source, call: ast.Call) -> str:
    argument = call.args[0]
    atomic = isinstance(argument, (ast.Name, ast.Attribute, ast.Call, ast.Subscript))
    return edited(source.text, [(source.start(call), source.start(argument), "" if atomic else "("),
                                (source.end(argument), source.end(call), "" if atomic else ")")])


# -- finding the protections --------------------------------------------------------------------

def find_mutants(text: str, repo: str = "", path: str = "") -> List[Mutant]:
    """Every mutant of every kind for one source text, in the order of the file."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    source = Source(text)
    structure = Structure(tree)
    aliases = structure.aliases
    found: List[Tuple[int, str, Optional[str]]] = []
    for node in structure.nodes:
        if isinstance(node, ast.Expr):
            switch = mode_switch(node)
            if switch is not None:
                receiver, training = switch
                if not training and evaluates_after(structure, node, receiver):
                    found.append((node.lineno, "eval", delete_statement(source, structure, node)))
                if training and resumes_training(structure, node, receiver):
                    found.append((node.lineno, "train", delete_statement(source, structure, node)))
        if isinstance(node, ast.With):
            for item in node.items:
                if is_no_grad_item(aliases, item.context_expr):
                    found.append((node.lineno, "no_grad", remove_no_grad(source, node, item)))
                    break
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                if is_no_grad_item(aliases, decorator, decorator=True):
                    found.append((decorator.lineno, "no_grad_decorator",
                                  delete_decorator(source, decorator)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "detach" and not node.args and not node.keywords:
            if isolates_model_output(structure, node) and not structure.under_no_grad(node):
                found.append((node.lineno, "detach", remove_call_suffix(source, node)))
        for call in accumulated_numbers(structure, node):
            if structure.under_no_grad(call):
                continue
            if isinstance(call.func, ast.Attribute):
                found.append((call.lineno, "item", remove_call_suffix(source, call)))
            else:
                found.append((call.lineno, "item", unwrap_float(source, call)))
    mutants = []
    seen: Set[Tuple[int, str]] = set()
    for line, kind, mutated in sorted(found, key=lambda f: (f[0], KINDS.index(f[1]))):
        if mutated is None or mutated == text or (line, kind) in seen:
            continue
        seen.add((line, kind))  # one mutant per (line, kind): the key must be unique
        mutants.append(Mutant(repo, path, line, kind, mutated))
    return mutants


def parses(mutant: Mutant) -> bool:
    """Checked on the chosen mutants only (a parse per candidate would double the scan)."""
    try:
        ast.parse(mutant.text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def evaluates_after(structure: Structure, statement: ast.stmt, receiver: str) -> bool:
    scope = structure.scope(statement)
    return any(isinstance(node, ast.Call) and after(node, statement) and runs_model(node, receiver)
               for node in walk_scope(scope))


def resumes_training(structure: Structure, statement: ast.stmt, receiver: str) -> bool:
    """``X.train()`` after an evaluation: in a loop that also evaluates X (the next iteration
    comes after it), after an ``X.eval()`` in the same function, or at the top of an epoch
    function (a forward of X and a backward)."""
    scope = structure.scope(statement)

    def switches_off(node: ast.AST) -> bool:
        switch = mode_switch(node) if isinstance(node, ast.Expr) else None
        return switch is not None and switch == (receiver, False)

    def evaluates(node: ast.AST) -> bool:
        if switches_off(node):
            return True
        if isinstance(node, ast.Call) and node.func is not statement.value.func:
            arguments = list(node.args) + [k.value for k in node.keywords]
            return any(ast.unparse(a) == receiver for a in arguments)
        return False

    for loop in structure.loops(statement):
        if any(evaluates(node) for node in walk_scope(loop) if node is not statement):
            return True
    nodes = list(walk_scope(scope))
    if any(switches_off(node) and after(statement, node) for node in nodes):
        return True
    forwards = any(isinstance(node, ast.Call) and ast.unparse(node.func) == receiver
                   for node in nodes)
    backward = any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                   and node.func.attr == "backward" for node in nodes)
    return forwards and backward and not isinstance(scope, ast.Module)


def model_call(aliases: Aliases, node: ast.AST) -> bool:
    """A call that may run a model: ``G(z)``, ``self.netG(z)``, ``model.v(s)``, with tensor
    methods, attributes and subscripts after it (``target(s).max(1)[0]``,
    ``vae.encode(x).latent_dist.sample()``). Not a torch/numpy function, a builtin, or a
    tensor method on a plain name (``x.clone()``)."""
    while True:
        if isinstance(node, ast.Subscript) or \
                (isinstance(node, ast.Attribute) and node.attr != "data"):
            node = node.value
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in TENSOR_METHODS:
            node = node.func.value
            continue
        break
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if not isinstance(func, ast.Name):
        return model_call(aliases, func) if isinstance(func, ast.Call) else False
    if not parts and func.id in BUILTINS:
        return False
    if func.id in NON_MODEL_ROOTS:
        return False
    resolved = aliases.resolve(node.func)
    return not (resolved and resolved.split(".")[0] in ("torch", "numpy", "math"))


def isolates_model_output(structure: Structure, call: ast.Call) -> bool:
    """A ``.detach()`` of a model's output whose result stays a tensor."""
    node: ast.AST = call
    while True:  # what the detached tensor becomes: logging numbers are not an isolation
        parent = structure.parent.get(node)
        if isinstance(parent, ast.Attribute):
            if parent.attr in TO_NUMBERS:
                return False
            node = parent
        elif isinstance(parent, ast.Call) and parent.func is node:
            node = parent
        else:
            break
    if isinstance(structure.parent.get(node), ast.Expr) and node is call:
        return False  # ``x.detach()`` alone detaches nothing
    receiver = call.func.value
    if any(isinstance(n, ast.Attribute) and n.attr == "data" for n in ast.walk(receiver)):
        return False  # ``.data`` has no history already
    if model_call(structure.aliases, receiver):
        return True
    if isinstance(receiver, ast.Name):
        scope = structure.scope(call)
        for node in walk_scope(scope):
            if isinstance(node, ast.Assign) and node.lineno < call.lineno and any(
                    isinstance(t, ast.Name) and t.id == receiver.id for t in node.targets) \
                    and model_call(structure.aliases, node.value):
                return True
    return False


def accumulated_numbers(structure: Structure, node: ast.AST) -> List[ast.Call]:
    """The ``.item()`` / ``float(...)`` calls whose number is accumulated in a loop."""
    if not isinstance(node, (ast.AugAssign, ast.Assign, ast.Expr)) or not structure.loops(node):
        return []
    value = None
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
        value = node.value
    elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
            and isinstance(node.value, ast.BinOp) and isinstance(node.value.op, ast.Add):
        target = ast.unparse(node.targets[0])
        if ast.unparse(node.value.left) == target:
            value = node.value.right
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
            and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "append" \
            and len(node.value.args) == 1:
        value = node.value.args[0]
    if value is None:
        return []
    calls = []
    for inner in ast.walk(value):
        if not isinstance(inner, ast.Call):
            continue
        if isinstance(inner.func, ast.Attribute) and inner.func.attr == "item" and not inner.args:
            calls.append(inner)
        elif isinstance(inner.func, ast.Name) and inner.func.id == "float" \
                and len(inner.args) == 1 and not isinstance(inner.args[0], ast.Constant):
            calls.append(inner)
    # ``float(loss.item())``: one protection, not two.
    inside = {id(inner) for call in calls for inner in ast.walk(call) if inner is not call}
    return [call for call in calls if id(call) not in inside]


# -- selection ----------------------------------------------------------------------------------

def is_test_file(path: str) -> bool:
    parts = path.replace(os.sep, "/").split("/")
    name = parts[-1]
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py" \
        or any(p in ("test", "tests", "testing") for p in parts[:-1])


def stable_rank(key: Key) -> str:
    return hashlib.sha1("|".join(map(str, key)).encode()).hexdigest()


def select(mutants: Iterable[Mutant], per_repo: int) -> List[Mutant]:
    groups: Dict[Tuple[str, str], List[Mutant]] = collections.defaultdict(list)
    for mutant in mutants:
        groups[(mutant.repo, mutant.kind)].append(mutant)
    chosen = []
    for group in groups.values():
        ranked = (m for m in sorted(group, key=lambda m: stable_rank(m.key)) if parses(m))
        chosen.extend(m for _, m in zip(range(per_repo), ranked))
    return sorted(chosen, key=lambda m: (m.repo, m.path, m.line, KINDS.index(m.kind)))


def scan_repository(job: Tuple[str, str, Sequence[str], int]
                    ) -> Tuple[List[Mutant], collections.Counter]:
    """The chosen mutants of one repository, and how many sites of each kind it has."""
    repo, root, kinds, per_repo = job
    candidates: List[Mutant] = []
    for rel in py_files(root):
        path = rel.replace(os.sep, "/")
        if is_test_file(path):
            continue
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError):
            continue
        if "torch" not in text or not any(word in text for word in PROTECTION_WORDS):
            continue
        candidates.extend(m for m in find_mutants(text, repo, path) if m.kind in kinds)
    return select(candidates, per_repo), collections.Counter(m.kind for m in candidates)


# -- linting -----------------------------------------------------------------------------------

class Outcome(NamedTuple):
    key: Key
    caught: Tuple[str, ...]  # codes of the new findings of the family
    new_other: Tuple[str, ...]  # new findings of other families (reported, not counted)
    failure: Optional[str]
    cpu: float
    caught_in: str = ""  # the other module (path in the repository) that has the catch, if any


def line_map(original: str, mutated: str) -> Dict[int, int]:
    """Mutant line -> original line, from a line diff. Inside a replaced block (a dedented
    body) a line maps to the next original line with the same text but its indentation; a
    line with no such twin maps to the start of its block."""
    a = [line.rstrip("\r\n") for line in split_lines(original)]
    b = [line.rstrip("\r\n") for line in split_lines(mutated)]
    mapping: Dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            mapping.update((j + 1, i1 + (j - j1) + 1) for j in range(j1, j2))
            continue
        i = i1
        for j in range(j1, j2):
            twin = next((k for k in range(i, i2) if a[k].strip() == b[j].strip()), None)
            if twin is None:
                mapping[j + 1] = i1 + 1
            else:
                mapping[j + 1] = twin + 1
                i = twin + 1
    return mapping


def lint_file_mutants(job: Tuple[str, str, List[Mutant], bool]) -> List[Outcome]:
    """Lint the original once, then each mutant, under the real path of the file; a mutant
    the file's own findings miss is looked for in the file's importers (``callers``)."""
    full, original, mutants, callers = job
    from torchgradlint.engine import lint_source

    errors: List[str] = []

    def on_error(filename: str, where: str, error: BaseException) -> None:
        errors.append(f"{where}: {type(error).__name__}: {error}")

    try:
        before = collections.Counter((f.code, f.line)
                                     for f in lint_source(original, full, on_error=on_error))
    except Exception as error:  # noqa: BLE001 -- reported, never raised
        return [Outcome(m.key, (), (), f"original: {type(error).__name__}: {error}", 0.0)
                for m in mutants]
    outcomes = []
    shadow: Optional[Shadow] = None
    try:
        for mutant in mutants:
            errors.clear()
            start = time.process_time()
            try:
                findings = lint_source(mutant.text, full, on_error=on_error)
            except Exception as error:  # noqa: BLE001
                outcomes.append(Outcome(mutant.key, (), (), f"{type(error).__name__}: {error}",
                                        time.process_time() - start))
                continue
            mapping = line_map(original, mutant.text)
            after_ = collections.Counter((f.code, mapping.get(f.line, f.line)) for f in findings)
            new = after_ - before
            family = FAMILY[mutant.kind]
            caught = tuple(sorted({code for code, _ in new if code.startswith(family)}))
            other = tuple(sorted({code for code, _ in new if not code.startswith(family)}))
            where = ""
            if not caught and callers:
                if shadow is None:
                    shadow = Shadow(full, original)
                caught, where = shadow.caught_in_neighbours(mutant.text, family)
            outcomes.append(Outcome(mutant.key, caught, other, "; ".join(errors) or None,
                                    time.process_time() - start, where))
    finally:
        if shadow is not None:
            shadow.close()
    return outcomes


class Shadow:
    """The project of a file rebuilt from symbolic links in a temporary folder, with the file
    itself a real copy that can be rewritten: its importers and the modules it imports are
    linted against a mutant, their project view reading the mutant's summary (the corpus stays
    untouched)."""

    MAX_IMPORTERS = 8  # the first ones by path, of each side: a widely imported utility would be slow

    def __init__(self, full: str, original: str):
        from torchgradlint.discovery import find_root
        from torchgradlint.project import ProjectIndex

        root = find_root(full)
        self.folder = tempfile.mkdtemp(prefix="tgl-mutation-")
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            target = os.path.join(self.folder, os.path.relpath(folder, root))
            os.makedirs(target, exist_ok=True)
            for name in names:
                if name.endswith(".py"):
                    os.symlink(os.path.join(folder, name), os.path.join(target, name))
        self.path = os.path.join(self.folder, os.path.relpath(full, root))
        self.write(original)
        index = ProjectIndex.for_file(self.path)
        itself = os.path.abspath(self.path)
        importers = sorted(index.importers_of(itself))[:self.MAX_IMPORTERS]
        imported = index.imported_files(itself)
        # The importers' importers too: a script reads what its imports return, and the classes
        # those are built from (``image_nll.py`` -> ``script_util.py`` -> ``gaussian_diffusion.py``)
        further = sorted({user for path in importers for user in index.importers_of(path)} -
                         set(importers) - {itself})[:self.MAX_IMPORTERS]
        self.importers = importers + further + \
            sorted(set(imported) - set(importers) - set(further))[:self.MAX_IMPORTERS]
        self.relative = {path: os.path.relpath(path, self.folder).replace(os.sep, "/")
                         for path in self.importers}
        self.baseline = {path: self._findings(path) for path in self.importers}

    def write(self, text: str) -> None:
        if os.path.lexists(self.path):
            os.unlink(self.path)
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(text)

    @staticmethod
    def _findings(path: str) -> collections.Counter:
        from torchgradlint.engine import lint_file

        findings = lint_file(path, on_error=lambda *_: None)
        return collections.Counter((f.code, f.line) for f in findings)

    def caught_in_neighbours(self, text: str, family: str) -> Tuple[Tuple[str, ...], str]:
        if not self.importers:
            return (), ""
        self.write(text)
        for path in self.importers:
            new = self._findings(path) - self.baseline[path]
            codes = tuple(sorted({code for code, _ in new if code.startswith(family)}))
            if codes:
                return codes, self.relative[path]
        return (), ""

    def close(self) -> None:
        from torchgradlint.project import ProjectIndex

        instances = getattr(ProjectIndex, "_instances", {})
        for key in [k for k in instances if str(k[0]).startswith(self.folder)]:
            del instances[key]  # the index of a deleted folder must not outlive it
        shutil.rmtree(self.folder, ignore_errors=True)


# -- the audit ---------------------------------------------------------------------------------

def read_audit(path: str) -> Dict[Key, Dict[str, str]]:
    rows: Dict[Key, Dict[str, str]] = {}
    if not os.path.exists(path):
        return rows
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: missing columns {', '.join(missing)}")
        for number, row in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in row.items() if k}
            try:
                key = (row["repo"], row["path"], int(row["line"]), row["kind"])
            except ValueError:
                raise SystemExit(f"{path}:{number}: line is not a number: {row['line']!r}")
            if row["verdict"] and row["verdict"] not in VERDICTS:
                raise SystemExit(f"{path}:{number}: verdict {row['verdict']!r} is not one of "
                                 f"{', '.join(VERDICTS)}")
            row["_row"] = str(number)
            rows[key] = row
    return rows


def append_audit(path: str, keys: List[Key], revisions: Dict[str, str]) -> None:
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if not exists:
            writer.writerow(COLUMNS)
        for repo, rel, line, kind in keys:
            writer.writerow([repo, revisions.get(repo, ""), rel, line, kind, "", ""])


def write_mutants(out: str, mutants: List[Mutant], originals: Dict[Tuple[str, str], str]) -> None:
    """Each mutant as a unified diff against its original, for reading (never into the corpus)."""
    os.makedirs(out, exist_ok=True)
    for mutant in mutants:
        original = originals[(mutant.repo, mutant.path)]
        name = f"{mutant.repo}/{mutant.path}"
        diff = difflib.unified_diff(split_lines(original), split_lines(mutant.text),
                                    name, name + " (mutant)", n=4)
        stem = "__".join([mutant.repo.replace("/", "+"), mutant.path.replace("/", "__"),
                          str(mutant.line), mutant.kind]) + ".diff"
        with open(os.path.join(out, stem), "w", encoding="utf-8") as handle:
            handle.writelines(diff)


# -- the report ---------------------------------------------------------------------------------

def recall(caught: int, valid: int) -> str:
    return f"{caught / valid:.0%}" if valid else "-"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", help="folder of owner+name repository folders")
    parser.add_argument("--out", help="write each mutant as a .diff into this folder")
    parser.add_argument("--audit", default=os.path.join(HERE, "mutants.csv"))
    parser.add_argument("--corpus-list", default=os.path.join(HERE, "corpus.txt"),
                        help="owner/name <revision> list, for the revision column")
    parser.add_argument("--update", action="store_true",
                        help="append unaudited mutants to the audit file (empty verdict)")
    parser.add_argument("--kind", action="append", default=[], choices=KINDS,
                        help="only this kind; may be repeated")
    parser.add_argument("--repo", action="append", default=[],
                        help="only this repository (owner/name); may be repeated")
    parser.add_argument("--per-repo", type=int, default=3, metavar="N",
                        help="at most N mutants per kind and repository (default 3)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--file-only", action="store_true",
                        help="count only findings in the mutated file, not in the modules it "
                             "imports or that import it")
    args = parser.parse_args(argv)
    os.environ["TORCHGRADLINT_NO_CACHE"] = "1"  # nothing written into the corpus; workers inherit

    corpus = os.path.abspath(args.corpus)
    revisions = read_revisions(args.corpus_list)
    # The repositories of the list only (other folders may sit in the same corpus directory).
    repos = [(repo, root) for repo, root in repos_in(corpus, args.repo)
             if not revisions or repo in revisions]
    if not repos:
        print(f"no owner+name folders of {args.corpus_list} in {corpus}")
        return 2
    kinds = tuple(args.kind) or KINDS
    audit = read_audit(args.audit)

    started = time.perf_counter()
    with Pool(max(1, args.jobs)) as pool:
        scans = pool.map(scan_repository,
                         [(repo, root, kinds, args.per_repo) for repo, root in repos])
    mutants = [m for chosen, _ in scans for m in chosen]
    sites = sum((counts for _, counts in scans), collections.Counter())
    originals: Dict[Tuple[str, str], str] = {}
    for mutant in mutants:
        if (mutant.repo, mutant.path) not in originals:
            with open(os.path.join(dict(repos)[mutant.repo], *mutant.path.split("/")),
                      encoding="utf-8") as handle:
                originals[(mutant.repo, mutant.path)] = handle.read()
    found_in = time.perf_counter() - started
    if args.out:
        write_mutants(args.out, mutants, originals)

    by_file: Dict[Tuple[str, str], List[Mutant]] = collections.defaultdict(list)
    for mutant in mutants:
        by_file[(mutant.repo, mutant.path)].append(mutant)
    root_of = dict(repos)
    jobs = [(os.path.join(root_of[repo], *path.split("/")), originals[(repo, path)], group,
             not args.file_only)
            for (repo, path), group in sorted(by_file.items())]
    outcomes: Dict[Key, Outcome] = {}
    lint_start = time.perf_counter()
    if args.jobs <= 1:
        results = map(lint_file_mutants, jobs)
        for batch in results:
            outcomes.update((o.key, o) for o in batch)
    else:
        with Pool(args.jobs) as pool:
            for batch in pool.imap(lint_file_mutants, jobs):
                outcomes.update((o.key, o) for o in batch)
    linted_in = time.perf_counter() - lint_start

    report(args, mutants, outcomes, audit, sites, revisions, len(repos), found_in, linted_in)
    if args.update:
        new = [m.key for m in mutants if m.key not in audit]
        append_audit(args.audit, new, revisions)
        print()
        print(f"appended {len(new)} rows with an empty verdict to {args.audit}")
    return 1 if any(o.failure for o in outcomes.values()) else 0


def report(args, mutants: List[Mutant], outcomes: Dict[Key, Outcome],
           audit: Dict[Key, Dict[str, str]], sites: collections.Counter,
           revisions: Dict[str, str], repo_count: int, found_in: float, linted_in: float) -> None:
    md = args.markdown
    per_kind: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_rule: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    misses: List[Tuple[Mutant, str]] = []
    unaudited: List[Mutant] = []
    for mutant in mutants:
        outcome = outcomes[mutant.key]
        row = audit.get(mutant.key, {})
        verdict = row.get("verdict", "")
        counts = per_kind[mutant.kind]
        counts["mutants"] += 1
        counts[verdict or "unaudited"] += 1
        counts["caught (all)"] += bool(outcome.caught)
        if not verdict:
            unaudited.append(mutant)
        if verdict == "valid":
            rule = by_rule[EXPECTED_RULE[mutant.kind]]
            rule["valid"] += 1
            if outcome.caught:
                counts["caught"] += 1
                counts["in another module"] += bool(outcome.caught_in)
                rule["caught"] += 1
                rule["by the rule"] += EXPECTED_RULE[mutant.kind] in outcome.caught
            else:
                misses.append((mutant, row.get("reason", "")))
        if verdict in ("harmless", "invalid") and outcome.caught:
            counts["flagged anyway"] += 1

    print(("## " if md else "") + "torchgradlint mutation study")
    print()
    cpu = sum(o.cpu for o in outcomes.values())
    print(f"{repo_count} repositories; protection sites found: "
          + ", ".join(f"{k} {sites[k]}" for k in KINDS if k in sites)
          + f"; {len(mutants)} mutants (at most {args.per_repo} per kind and repository) "
          f"found in {found_in:.1f} s, linted in {linted_in:.1f} s wall, {cpu:.1f} s CPU on "
          f"the mutants ({max(1, args.jobs)} worker(s)); audit file {args.audit} "
          f"({len(audit)} rows).")
    print()
    table = [["kind", "mutants", "valid", "harmless", "invalid", "unaudited", "caught (valid)",
              "of which in another module", "recall", "flagged (not valid)"]]
    totals = collections.Counter()
    for kind in KINDS:
        if kind not in per_kind:
            continue
        counts = per_kind[kind]
        totals.update(counts)
        table.append([kind, counts["mutants"], counts["valid"], counts["harmless"],
                      counts["invalid"], counts["unaudited"], counts["caught"],
                      counts["in another module"], recall(counts["caught"], counts["valid"]),
                      counts["flagged anyway"]])
    table.append(["all", totals["mutants"], totals["valid"], totals["harmless"], totals["invalid"],
                  totals["unaudited"], totals["caught"], totals["in another module"],
                  recall(totals["caught"], totals["valid"]), totals["flagged anyway"]])
    print_table(table, md)
    print()
    print(("### " if md else "") + "per rule (the rule written for the bug each deletion makes)")
    print()
    rules = [["rule", "kinds", "valid", "caught", "caught by this rule", "recall"]]
    for rule in sorted(by_rule):
        counts = by_rule[rule]
        rules.append([rule, " ".join(k for k in KINDS if EXPECTED_RULE[k] == rule), counts["valid"],
                      counts["caught"], counts["by the rule"],
                      recall(counts["caught"], counts["valid"])])
    print_table(rules, md)

    section(md, f"misses: valid mutants not caught ({len(misses)})")
    for mutant, reason in misses:
        other = outcomes[mutant.key].new_other
        print(f"{bullet(md)}{mutant.kind} {mutant.repo}:{mutant.path}:{mutant.line}"
              + (f" (new outside the family: {' '.join(other)})" if other else "")
              + (f" -- {reason}" if reason else ""))
    flagged = [m for m in mutants if audit.get(m.key, {}).get("verdict") in ("harmless", "invalid")
               and outcomes[m.key].caught]
    if flagged:
        section(md, f"harmless or invalid mutants flagged anyway ({len(flagged)})")
        for mutant in flagged:
            print(f"{bullet(md)}{mutant.kind} {mutant.repo}:{mutant.path}:{mutant.line} "
                  f"{audit[mutant.key]['verdict']} {' '.join(outcomes[mutant.key].caught)}")
    elsewhere = [m for m in mutants if outcomes[m.key].caught_in]
    if elsewhere:
        section(md, f"caught in another module than the mutated file ({len(elsewhere)})")
        for mutant in elsewhere:
            outcome = outcomes[mutant.key]
            print(f"{bullet(md)}{mutant.kind} {mutant.repo}:{mutant.path}:{mutant.line} "
                  f"-> {outcome.caught_in} {' '.join(outcome.caught)}")
    section(md, f"unaudited mutants ({len(unaudited)})")
    for mutant in unaudited:
        outcome = outcomes[mutant.key]
        print(f"{bullet(md)}{mutant.kind} {mutant.repo}:{mutant.path}:{mutant.line} "
              f"{'caught ' + ' '.join(outcome.caught) if outcome.caught else 'not caught'}")
    stale = sorted(set(audit) - {m.key for m in mutants})
    if stale and not (args.kind or args.repo):
        section(md, f"audit rows with no mutant this run ({len(stale)})")
        for key in stale:
            print(f"{bullet(md)}{key[3]} {key[0]}:{key[1]}:{key[2]}")
    moved = sorted({(r["repo"], r["revision"]) for r in audit.values()
                    if r["revision"] and r["repo"] in revisions
                    and r["revision"] != revisions[r["repo"]]})
    if moved:
        section(md, "audited at another revision than bench/corpus.txt lists")
        for repo, revision in moved:
            print(f"{bullet(md)}{repo} audited at {revision}, corpus has {revisions[repo]}")
    failed = [o for o in outcomes.values() if o.failure]
    section(md, f"mutants the linter failed on ({len(failed)})")
    for outcome in failed:
        print(f"{bullet(md)}{outcome.key}: {outcome.failure}")


if __name__ == "__main__":
    sys.exit(main())
