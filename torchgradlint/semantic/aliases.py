"""Names that stand for a constant-key element of a container of models.

Training scripts hand their models around in dicts and lists (``nets = {'snet': snet, 'tnet':
tnet}``; ``train(loader, nets)``; ``snet = nets['snet']``). An element with a constant key has a
key of its own in the mode state and the model facts: ``nets.['snet']``, ``models.[0]`` (the
container's key, a dot, the constant in brackets; a constant holding a dot has no key). Two
kinds of names are *aliases* of such keys, in the scope that binds them:

- in the function handed the container, a local bound once to a constant subscript of it:
  ``snet = nets['snet']`` makes ``snet`` an alias of ``nets.['snet']``, so what the function
  does to ``snet`` is an effect on its parameter's element, which summaries carry like any
  parameter path;
- in the function that builds the container, a local bound once to a literal dict, list or
  tuple: ``nets = {'snet': snet}`` makes ``nets.['snet']`` an alias of ``snet`` (the caller's
  own name for the element, which its other statements use).

``canonical(function, key)`` rewrites a key through the aliases of the scope its root belongs
to. An alias holds only while what it stands for cannot change: the alias, the container and
the element's variable are each bound once in the function, and the container is never
mutated there (item assignment or deletion, ``append``, ``update``, ...). Anything else
(``nets[name]``, a container rebuilt or filled by ``append``) has no alias: unknown, silent.
"""

from __future__ import annotations

import ast
from typing import Callable, Dict, List, Optional

from .names import dotted, stored_targets
from .structure import FunctionInfo, binding_counts, binding_scope
from .torch_api import CONTAINER_CHANGING_METHODS

def constant_index(node: ast.AST):
    """The constant a subscript's index is, when it can be part of a key: an int, or a string
    without a dot (a dot separates a key's parts)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and \
            isinstance(node.operand, ast.Constant) and type(node.operand.value) is int:
        return -node.operand.value
    if isinstance(node, ast.Constant) and (type(node.value) is int or type(node.value) is str
                                           and "." not in node.value):
        return node.value
    return None


def element_key(container: str, index) -> str:
    return f"{container}.[{index!r}]"


def subscript_key(node: ast.AST) -> Optional[str]:
    """``nets['snet']`` -> ``nets.['snet']``; None unless a dotted name indexed by a constant."""
    if type(node) is not ast.Subscript:
        return None
    container = dotted(node.value)
    index = constant_index(node.slice)
    if container is None or index is None:
        return None
    return element_key(container, index)


def _literal_elements(value: ast.AST) -> Optional[List[tuple]]:
    """(index, element) of a literal dict with constant keys, or of a literal list or tuple
    (each element under its index and its negative index)."""
    if isinstance(value, ast.Dict):
        pairs = []
        for key, element in zip(value.keys, value.values):
            index = constant_index(key) if key is not None else None
            if index is None:
                return None  # ``**other`` or a computed key: the literal is not all in sight
            pairs.append((index, element))
        return pairs
    if isinstance(value, (ast.List, ast.Tuple)):
        if any(isinstance(e, ast.Starred) for e in value.elts):
            return None
        count = len(value.elts)
        return [(index, element) for position, element in enumerate(value.elts)
                for index in (position, position - count)]
    return None


class ElementAliases:
    """The aliases of each scope, found from its assignments on first use, and the keys they
    rewrite. ``is_model(function, key)``: an alias is used only where the name it binds (or the
    element it names) holds a model, so that nothing else's keys change."""

    def __init__(self, is_model: Callable[[FunctionInfo, str], bool]):
        self._is_model = is_model
        # id(function) -> {alias key: (key it stands for, name that must hold a model)}
        self._tables: Dict[int, Dict[str, tuple]] = {}
        self._scopes: Dict[int, FunctionInfo] = {}
        self.any = True  # until ``find_all`` has looked
        self._settled = False

    def _table(self, function: FunctionInfo) -> Dict[str, tuple]:
        table = self._tables.get(id(function))
        if table is None:
            if self._settled:
                return {}  # (a function made after the facts: no alias was looked for)
            table = self._tables[id(function)] = self._find(function)
            self._scopes[id(function)] = function
        return table

    def _find(self, function: FunctionInfo) -> Dict[str, tuple]:
        candidates = []
        for target, value in function.assignments():
            if type(target) is not ast.Name:
                continue
            if type(value) is ast.Subscript:
                key = subscript_key(value)
                if key is not None:
                    candidates.append((target.id, key, dotted(value.value)))
            elif type(value) in (ast.Dict, ast.List, ast.Tuple):
                elements = _literal_elements(value)
                for index, element in elements or ():
                    name = dotted(element)
                    if name is not None:
                        candidates.append((element_key(target.id, index), name, target.id))
        if not candidates:
            return {}
        counts = binding_counts(function)
        mutated = self._mutated_containers(function)
        table = {}
        for alias, meaning, container in candidates:
            if container in mutated or counts.get(alias.partition(".")[0], 0) != 1 or \
                    counts.get(meaning.partition(".")[0], 0) > 1 or \
                    counts.get(container.partition(".")[0], 0) > 1:
                continue  # rebound or changed somewhere: it may stand for another object
            # The name that must hold a model: the alias itself, or the element it names.
            table[alias] = (meaning, alias if "." not in alias else meaning)
        return table

    @staticmethod
    def _mutated_containers(function: FunctionInfo) -> set:
        mutated = {site.receiver for site in function.sites
                   if site.receiver and site.method in CONTAINER_CHANGING_METHODS}
        for statement in function.statements:
            for target in stored_targets(statement):
                if type(target) is ast.Subscript:
                    name = dotted(target.value)
                    if name is not None:
                        mutated.add(name)
        return mutated

    def find_all(self, functions: List[FunctionInfo]) -> None:
        """Look for the aliases of every function at once (one pass over the assignments):
        in a file without any, ``canonical`` costs one test."""
        self.any = any([self._table(function) for function in functions])

    def settle(self) -> None:
        """The models are known: keep only the aliases of models (the flow then asks without
        testing each one again, and a file whose containers hold no model costs one test)."""
        for scope_id, table in self._tables.items():
            scope = self._scopes[scope_id]
            self._tables[scope_id] = {alias: entry for alias, entry in table.items()
                                      if self._is_model(scope, entry[1])}
        self.any = any(self._tables.values())
        self._settled = True

    def canonical(self, function: FunctionInfo, key: Optional[str]) -> Optional[str]:
        """``key`` with the aliases of its scope replaced by what they stand for, repeatedly
        (``first = pair[0]`` where ``pair = [snet, tnet]`` and ``snet = nets['snet']``)."""
        if not self.any:
            return key
        for _ in range(4):
            if key is None:
                return None
            scope = binding_scope(function, key.partition(".")[0])
            table = self._table(scope)
            if not table:
                return key
            prefix = key
            while prefix not in table:
                if "." not in prefix:
                    return key
                prefix = prefix.rsplit(".", 1)[0]
            meaning, model = table[prefix]
            if not self._settled and not self._is_model(scope, model):
                return key
            key = meaning + key[len(prefix):]
        return key

    def spellings(self, function: FunctionInfo, key: str) -> List[str]:
        """The alias keys of ``function`` that stand for ``key`` or a part of it (the reverse
        of ``canonical``): ``nets.['snet']`` for ``snet`` where ``nets = {'snet': snet}``."""
        table = self._table(function)
        found = []
        for alias, (meaning, model) in table.items():
            if (key == meaning or key.startswith(meaning + ".")) and (
                    self._settled or self._is_model(function, model)):
                found.append(alias + key[len(meaning):])
        return found

    def elements_used(self, function: FunctionInfo) -> List[str]:
        """The element keys that the function's locals are bound to (``nets.['snet']`` for
        ``snet = nets['snet']``), models or not."""
        return [meaning for alias, (meaning, _) in self._table(function).items() if "." not in alias]

    def is_alias(self, function: FunctionInfo, name: str) -> bool:
        """``name`` is a local that stands for a container's element."""
        if not self.any:
            return False
        entry = self._table(function).get(name)
        return entry is not None and (self._settled or self._is_model(function, entry[1]))
