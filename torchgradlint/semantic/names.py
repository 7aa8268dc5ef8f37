"""Name resolution: what a dotted expression means through the file's imports and aliases.

``import torch as T`` makes ``T.no_grad`` mean ``torch.no_grad``; ``from torch import no_grad as
ng`` makes ``ng`` mean it too. Names that no import binds stay as written (they are local
variables, parameters or functions of the file).
"""

from __future__ import annotations

import ast
from typing import Dict, Iterator, List, Optional, Set, Tuple

# Different spellings of the same torch object, mapped to one canonical name.
CANONICAL = {
    "torch.autograd.no_grad": "torch.no_grad",
    "torch.autograd.grad_mode.no_grad": "torch.no_grad",
    "torch.autograd.enable_grad": "torch.enable_grad",
    "torch.autograd.grad_mode.enable_grad": "torch.enable_grad",
    "torch.autograd.set_grad_enabled": "torch.set_grad_enabled",
    "torch.autograd.grad_mode.set_grad_enabled": "torch.set_grad_enabled",
    "torch.autograd.inference_mode": "torch.inference_mode",
    "torch.autograd.grad_mode.inference_mode": "torch.inference_mode",
    "torch.nn.parallel.DistributedDataParallel": "torch.nn.DistributedDataParallel",
    "torch.nn.parallel.DataParallel": "torch.nn.DataParallel",
    "torch.optim.optimizer.Optimizer": "torch.optim.Optimizer",
}


def dotted(node: ast.AST) -> Optional[str]:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    kind = type(node)  # the hottest function of the analysis: exact types, no isinstance
    if kind is _Name:
        return node.id
    if kind is not _Attribute:
        return None
    parts = [node.attr]
    node = node.value
    while type(node) is _Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is _Name:
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def written_tensor(node: ast.AST, view_methods) -> Optional[str]:
    """The dotted name an in-place write through ``node`` writes: ``m`` for ``m``,
    ``m.view(-1)`` or ``m[0]`` (views share the tensor's storage), else None."""
    while True:
        kind = type(node)
        if kind is ast.Subscript:
            node = node.value
        elif kind is ast.Call and type(node.func) is _Attribute and node.func.attr in view_methods:
            node = node.func.value
        else:
            return dotted(node)


_Name, _Attribute = ast.Name, ast.Attribute
_Assign, _AnnAssign, _SEQUENCES = ast.Assign, ast.AnnAssign, (ast.Tuple, ast.List)


class NameReferences:
    """Every ``Name`` and ``Attribute`` node of a module, and which of them are called: one walk
    of the tree for the questions that look for references (grad switches named anywhere,
    functions handed on as values). Built on first use by the semantic model."""

    def __init__(self, tree: ast.AST):
        self.names: List[ast.Name] = []
        self.attributes: List[ast.Attribute] = []
        self.called: Set[int] = set()  # id of the ``func`` of every call
        for node in walk(tree):
            kind = type(node)
            if kind is _Name:
                self.names.append(node)
            elif kind is _Attribute:
                self.attributes.append(node)
            elif kind is _Call:
                self.called.add(id(node.func))


_FIELDS: Dict[type, Tuple[str, ...]] = {}
_Call, _AST = ast.Call, ast.AST
# Fields that hold names, numbers or strings in every node type that has them (Python's ast
# grammar: ``Attribute.attr``, ``keyword.arg``, ``comprehension.is_async``...): never a node.
# (Not ``name``: the name of a ``type X = ...`` alias is a node since Python 3.12.)
_SCALAR_FIELDS = frozenset({"id", "attr", "arg", "asname", "module", "level", "kind",
                            "type_comment", "conversion", "is_async", "simple", "rest",
                            "kwd_attrs", "tag"})


def child_fields(kind: type) -> Tuple[str, ...]:
    """The fields of a node type that may hold child nodes (not ``ctx``, not the scalars),
    looked up once per type: the walks of the analysis go through them instead of
    ``ast.iter_child_nodes``."""
    fields = _FIELDS.get(kind)
    if fields is None:
        fields = _FIELDS[kind] = tuple(name for name in kind._fields
                                       if name != "ctx" and name not in _SCALAR_FIELDS)
    return fields


def child_nodes(node: ast.AST) -> List[ast.AST]:
    """The child nodes of ``node``, in ``ast.iter_child_nodes``' order, without its ``ctx``."""
    found: List[ast.AST] = []
    for name in child_fields(type(node)):
        value = getattr(node, name, None)
        if type(value) is list:
            found.extend([item for item in value if isinstance(item, _AST)])
        elif isinstance(value, _AST):
            found.append(value)
    return found


def walk(root: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``root``, ``root`` first, in no promised order: ``ast.walk`` without
    its queue and ``iter_child_nodes`` (about twice as fast), for the walks that count or
    collect and do not care in which order they meet the nodes. (``child_nodes`` written out:
    a third faster on these, the longest walks.)"""
    stack = [root]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        yield node
        for name in child_fields(type(node)):
            value = getattr(node, name, None)
            if type(value) is list:
                for item in value:
                    if isinstance(item, _AST):
                        push(item)
            elif isinstance(value, _AST):
                push(value)


def arguments_by_parameter(call: ast.Call, params, keyword_params=None) -> Iterator[Tuple[str, ast.AST]]:
    """(parameter, argument) for what a call passes: by position to ``params`` (up to a
    ``*args``), by keyword to any of ``keyword_params`` (default: ``params``)."""
    for param, argument in zip(params, call.args):
        if isinstance(argument, ast.Starred):
            break
        yield param, argument
    accepted = params if keyword_params is None else keyword_params
    for keyword in call.keywords:
        if keyword.arg and keyword.arg in accepted:
            yield keyword.arg, keyword.value


def call_argument(call: ast.Call, name: str, position: int) -> Optional[ast.AST]:
    """What a call passes as parameter ``name`` at ``position`` (None when it passes nothing
    there, or a ``*args`` hides it)."""
    if len(call.args) > position and not any(isinstance(a, ast.Starred) for a in call.args[:position + 1]):
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == name), None)


def owners_of_calls(expr: ast.AST, methods) -> Set[str]:
    """The receivers of the calls of ``methods`` in ``expr``: ``{model, head}`` for
    ``chain(model.parameters(), head.parameters())``."""
    owners: Set[str] = set()
    for node in ast.walk(expr):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in methods:
            owner = dotted(node.func.value)
            if owner:
                owners.add(owner)
    return owners


def mode_argument(call: ast.Call) -> Optional[ast.AST]:
    """The flag of ``model.train(flag)``, ``set_grad_enabled(flag)``, ``inference_mode(flag)``:
    the first positional argument or ``mode=``; None when not given."""
    if call.args:
        return call.args[0]
    return next((keyword.value for keyword in call.keywords if keyword.arg == "mode"), None)


def assigned_names(statement: ast.stmt) -> Set[str]:
    """The plain names an assignment statement binds (``a, b = ...``, ``x += ...``)."""
    targets = statement.targets if isinstance(statement, ast.Assign) else \
        [statement.target] if isinstance(statement, (ast.AnnAssign, ast.AugAssign)) else []
    return {node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)}


def stored_targets(statement: ast.stmt) -> List[ast.AST]:
    """The names, attributes and subscripts a statement stores into or deletes (assignments,
    ``for`` and ``with`` targets, ``del``), tuples and starred targets unpacked."""
    kind = type(statement)
    if kind is _Assign or kind is ast.Delete:
        targets = list(statement.targets)
    elif kind in (_AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor):
        targets = [statement.target]
    elif kind in (ast.With, ast.AsyncWith):
        targets = [item.optional_vars for item in statement.items if item.optional_vars is not None]
    else:
        return []
    found = []
    while targets:
        target = targets.pop()
        if isinstance(target, _SEQUENCES):
            targets.extend(target.elts)
        elif isinstance(target, ast.Starred):
            targets.append(target.value)
        else:
            found.append(target)
    return found


def assignment_pairs(statement: ast.stmt) -> List[Tuple[ast.AST, ast.AST]]:
    """(target, value) of an assignment, a tuple unpacked element by element when both sides
    are written out: ``netG, netD = Generator(), Discriminator()`` gives two pairs."""
    kind = type(statement)  # called for every statement, many times: exact types first
    if kind is _Assign:
        targets = statement.targets
        if len(targets) == 1 and type(targets[0]) not in _SEQUENCES:
            return [(targets[0], statement.value)]
        pending = [(target, statement.value) for target in targets]
    elif kind is _AnnAssign and statement.value is not None:
        pending = [(statement.target, statement.value)]
    else:
        return []
    pairs = []
    while pending:
        target, value = pending.pop(0)
        if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) and \
                len(target.elts) == len(value.elts) and \
                not any(isinstance(e, ast.Starred) for e in target.elts + value.elts):
            pending[:0] = list(zip(target.elts, value.elts))
        else:
            pairs.append((target, value))
    return pairs


_COMPOUND_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


class _BodyFields(dict):
    """Type of a statement -> the fields of ``_COMPOUND_BODIES`` it has (none for most)."""

    def __missing__(self, kind: type) -> Tuple[str, ...]:
        fields = self[kind] = tuple(field for field in _COMPOUND_BODIES if field in kind._fields)
        return fields


_BODY_FIELDS = _BodyFields()


def import_statements(tree: ast.AST):
    """Every import statement, at any depth of statements (expressions are never visited)."""
    stack = list(getattr(tree, "body", ()))
    body_fields = _BODY_FIELDS
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Import or kind is ast.ImportFrom:
            yield node
            continue
        for field in body_fields[kind]:
            children = getattr(node, field, None)
            if children:
                stack.extend(children)


class ImportTable:
    """Local names bound by imports anywhere in the file, and what they refer to."""

    def __init__(self) -> None:
        self.aliases: Dict[str, str] = {}
        self.star_modules: List[str] = []  # ``from utils import *``: "utils" (relative: "..x")
        self.star_aliases_added = False

    @classmethod
    def from_tree(cls, tree: ast.AST) -> "ImportTable":
        table = cls()
        for node in import_statements(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        table.aliases[alias.asname] = alias.name
                    else:
                        head = alias.name.split(".")[0]
                        table.aliases.setdefault(head, head)
            elif isinstance(node, ast.ImportFrom):
                base = "." * (node.level or 0) + (node.module or "")
                for alias in node.names:
                    if alias.name == "*":
                        table.star_modules.append(base)
                        continue
                    local = alias.asname or alias.name
                    table.aliases[local] = f"{base}.{alias.name}" if base else alias.name
        return table

    def qualify(self, name: Optional[str]) -> Optional[str]:
        """The canonical qualified name of a dotted name, or the name itself if unimported."""
        if name is None:
            return None
        head, _, rest = name.partition(".")
        target = self.aliases.get(head)
        if target is None:
            return name
        full = f"{target}.{rest}" if rest else target
        return CANONICAL.get(full, full)

    def resolve(self, node: ast.AST) -> Optional[str]:
        return self.qualify(dotted(node))

    def is_imported(self, name: str) -> bool:
        return name.split(".")[0] in self.aliases

    def add_star_aliases(self, aliases: Dict[str, str]) -> None:
        """Names a star import brings in (the imported module's own imports: ``torch``, ``nn``);
        the file's own imports win."""
        self.star_aliases_added = True
        for local, target in aliases.items():
            self.aliases.setdefault(local, target)

    def imports_absolute(self, *roots: str) -> bool:
        """An absolute import of one of ``roots`` (``from .torch import x`` is a project module)."""
        return any(not target.startswith(".") and target.split(".")[0] in roots
                   for target in self.aliases.values())


# ``globals()[name] = ...``, ``exec(code)``: a file that binds names only known at run time.
RUN_TIME_BINDINGS: frozenset = frozenset({"*"})
_RUN_TIME_BINDERS = frozenset({"globals", "locals", "vars", "exec", "eval", "__import__", "setattr"})


def name_bound_by(node: ast.AST) -> Optional[str]:
    """The name a node binds in its scope: an assignment, loop, ``with`` or ``del`` target, a
    parameter, a definition, an import (``import a.b`` binds ``a``), ``except ... as``, a match
    capture; None for any other node."""
    kind = type(node)
    if kind is _Name:
        return node.id if type(node.ctx) is not ast.Load else None
    if kind is ast.arg:
        return node.arg
    if kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
        return node.name
    if kind is ast.alias:
        return (node.asname or node.name).split(".")[0]
    if kind is ast.ExceptHandler:
        return node.name
    if kind.__name__ in ("MatchAs", "MatchStar"):
        return node.name
    if kind.__name__ == "MatchMapping":
        return node.rest
    return None


def names_bound_anywhere(tree: ast.AST) -> frozenset:
    """Every name the file binds in any scope (``name_bound_by``, and the names of ``global``
    and ``nonlocal`` declarations), or RUN_TIME_BINDINGS when it may bind names at run time."""
    bound = set()
    for node in walk(tree):
        if type(node) is _Name and type(node.ctx) is ast.Load:
            if node.id in _RUN_TIME_BINDERS:
                return RUN_TIME_BINDINGS
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        else:
            name = name_bound_by(node)
            if name:
                bound.add(name)
    return frozenset(bound)
