"""Where values flow: a def-use graph over the whole file.

Nodes are call sites (``("call", site)``), definitions of a name at a statement
(``("def", function, index, key)``), parameters, return values, ``self.x`` attributes of a class,
and one ``TRAINING`` sink. An edge ``a -> b`` means the value of ``b`` is computed from ``a``.
``.detach()``, ``.item()``, ``float()`` and friends cut the flow (their results carry no
autograd history). Uses of a name resolve to the definitions that may reach them: the latest
definition in an enclosing block, any definition in a branch or loop passed on the way, and the
definitions later in a loop that encloses the use (loop-carried values).
"""

from __future__ import annotations

import ast
from bisect import bisect_left, bisect_right
from collections import defaultdict
from typing import Dict, List, Optional, Set, Tuple

from . import torch_api as api
from .names import child_nodes, dotted, written_tensor
from .structure import CallSite, FunctionInfo

TRAINING = ("training",)
# The value leaves what the analysis can see: yielded by a generator.
ESCAPE = ("escape",)
# What ``autograd.grad`` differentiates: gradients asked for inputs (penalties, saliency).
INPUT_GRADIENT = ("input gradient",)
MUTATING_METHODS = api.CONTAINER_ADDING_METHODS | api.IN_PLACE_WRITING_METHODS


def may_reach_training(functions: List[FunctionInfo], linker, returns_training) -> bool:
    """Whether the graph would have any edge into TRAINING, decided without building it: a
    backward pass (``api.backward_run_by``), a Lightning training hook's result, a project
    function whose parameters reach training, a function whose result trains in another
    module -- the edges ``Dataflow`` adds."""
    if returns_training:
        return True
    if linker is not None and any(stub.external_facts and stub.external_facts.get(
            "params_reaching_training") for stub in linker.stubs.values()):
        return True
    return any(
        function.name in api.LIGHTNING_TRAIN_HOOKS or any(
            api.backward_run_by(site) for site in function.sites)
        for function in functions)


class Dataflow:
    def __init__(self, facts, imports, functions: List[FunctionInfo], linker=None, returns_training=()):
        self.linker = linker
        self.returns_training = returns_training
        self.facts = facts
        self.imports = imports
        self.functions = functions
        self.preds: Dict[tuple, Set[tuple]] = defaultdict(set)
        # Edges through calls that cut autograd history (``.detach()``, ``.item()``): the value
        # still flows, its gradient does not.
        self.value_preds: Dict[tuple, Set[tuple]] = defaultdict(set)
        # The cuts whose value is still the tensor, detached (``.detach()``, ``.data``), not a
        # number or an index made from it (``.item()``, ``argmax``, ``dist.sample()``).
        self.detached: Set[tuple] = set()
        self._defs: Dict[Tuple[int, str], List[int]] = {}  # positions in ascending order
        self._loop_table: Dict[int, Dict[int, List[object]]] = {}
        self._site_by_node: Dict[int, CallSite] = {}
        self.reaches_training: Set[tuple] = set()
        self.feeds_training: Set[tuple] = set()
        self.cut_lines: Dict[tuple, Tuple[int, int]] = {}
        # (id(function), param) -> id(call site) -> sources of the argument passed there
        self.param_sources: Dict[Tuple[int, str], Dict[int, Set[tuple]]] = defaultdict(dict)
        # Calls of code we cannot see into (no in-file or project function, no model): the
        # sources of their arguments (not of their receiver), for questions about what such a
        # call may do with a value it is handed.
        self.unknown_call_arguments: Dict[tuple, Set[tuple]] = {}
        self._comprehension_bound: Dict[int, Dict[str, Set[tuple]]] = {}

    # -- build ----------------------------------------------------------------------------
    def build(self) -> None:
        for function in self.functions:
            for site in function.sites:
                self._site_by_node[id(site.node)] = site
        for function in self.functions:
            self._collect_definitions(function)
        for function in self.functions:
            self._link(function)
        if self.linker is not None:
            self.linker.preset_dataflow(self)
        for function in self.returns_training:  # their results train, in another module
            self.preds[TRAINING].add(("return", id(function)))
        self._solve()

    def _collect_definitions(self, function: FunctionInfo) -> None:
        for index, statement in enumerate(function.statements):
            for key in self._defined_keys(statement):
                self._defs.setdefault((id(function), key), []).append(index)

    def _defined_keys(self, statement: ast.stmt) -> List[str]:
        keys: List[str] = []
        targets: List[ast.AST] = []
        if isinstance(statement, ast.Assign):
            targets = list(statement.targets)
        elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
            targets = [statement.target]
        elif isinstance(statement, (ast.For, ast.AsyncFor)):
            targets = [statement.target]
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in statement.items if item.optional_vars is not None]
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            func = statement.value.func
            if isinstance(func, ast.Attribute) and func.attr in MUTATING_METHODS:
                key = written_tensor(func.value, api.TENSOR_VIEW_METHODS)
                if key:
                    keys.append(key)
        for target in targets:
            keys.extend(self._target_keys(target))
        return keys

    def _target_keys(self, target: ast.AST) -> List[str]:
        if isinstance(target, (ast.Tuple, ast.List)):
            keys = []
            for element in target.elts:
                keys.extend(self._target_keys(element))
            return keys
        if isinstance(target, ast.Starred):
            return self._target_keys(target.value)
        if isinstance(target, ast.Subscript):
            key = dotted(target.value)
            return [key] if key else []
        key = dotted(target)
        return [key] if key else []

    def definitions(self, function: FunctionInfo, key: str) -> List[int]:
        """Statement indexes where ``function`` assigns ``key``."""
        return self._defs.get((id(function), key), [])

    def def_node(self, function: FunctionInfo, index: int, key: str) -> tuple:
        if key.startswith("self.") and key.count(".") >= 1:
            cls = self.facts.enclosing_class(function)
            if cls is not None:
                return ("attr", id(cls), key.split(".")[1])
        return ("def", id(function), index, key)

    def _link(self, function: FunctionInfo) -> None:
        for index, statement in enumerate(function.statements):
            kind = type(statement)
            for target, value in self._assignments(statement) if kind in _BINDING_STATEMENTS else ():
                sources = self.sources(function, index, value) if value is not None else set()
                for key in self._target_keys(target):
                    node = self.def_node(function, index, key)
                    self.preds[node] |= sources
                    if kind is ast.AugAssign or isinstance(target, ast.Subscript):
                        self.preds[node] |= self._uses(function, index, key)
            if kind is ast.Expr and isinstance(statement.value, ast.Call):
                func = statement.value.func
                if isinstance(func, ast.Attribute) and func.attr in MUTATING_METHODS:
                    key = written_tensor(func.value, api.TENSOR_VIEW_METHODS)
                    if key:
                        node = self.def_node(function, index, key)
                        self.preds[node] |= self._uses(function, index, key)
                        for arg in statement.value.args:
                            self.preds[node] |= self.sources(function, index, arg)
            if kind is ast.Return and statement.value is not None:
                self.preds[("return", id(function))] |= self.sources(function, index, statement.value)
            for node in _yields_in(statement) if kind in _YIELDING_STATEMENTS else ():
                if node.value is not None:
                    self.preds[ESCAPE] |= self.sources(function, index, node.value)
            if index in function.comprehensions:
                self._bind_comprehension_names(function, index, statement, statement, {})
        for site in function.sites:
            self._link_site(function, site)
        if function.name in api.LIGHTNING_TRAIN_HOOKS:
            self.preds[TRAINING].add(("return", id(function)))

    def _bind_comprehension_names(self, function: FunctionInfo, index: int, node: ast.AST,
                                  statement: ast.stmt, bound: Dict[str, Set[tuple]]) -> None:
        """Record, for each call inside a comprehension, the names the comprehension binds (a
        ``state`` in ``[state.detach() for state in states]`` is an element of ``states``, not
        a variable of the enclosing scopes)."""
        for child in child_nodes(node):
            if isinstance(child, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or \
                    (isinstance(child, ast.stmt) and child is not statement):
                continue
            if isinstance(child, ast.Call) and bound:
                self._comprehension_bound[id(child)] = bound
            if isinstance(child, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                inner = dict(bound)
                for generator in child.generators:
                    self._bind_comprehension_names(function, index, generator.iter, statement, inner)
                    iterated = self.sources(function, index, generator.iter, inner)
                    for name in ast.walk(generator.target):
                        if isinstance(name, ast.Name):
                            inner[name.id] = iterated
                    for condition in generator.ifs:
                        self._bind_comprehension_names(function, index, condition, statement, inner)
                elements = (child.key, child.value) if isinstance(child, ast.DictComp) else (child.elt,)
                for element in elements:
                    if isinstance(element, ast.Call):
                        self._comprehension_bound[id(element)] = inner
                    self._bind_comprehension_names(function, index, element, statement, inner)
            else:
                self._bind_comprehension_names(function, index, child, statement, bound)

    def _assignments(self, statement: ast.stmt):
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                yield target, statement.value
        elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
            yield statement.target, statement.value
        elif isinstance(statement, (ast.For, ast.AsyncFor)):
            yield statement.target, statement.iter
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            for item in statement.items:
                if item.optional_vars is not None:
                    yield item.optional_vars, item.context_expr

    def _link_site(self, function: FunctionInfo, site: CallSite) -> None:
        node = ("call", id(site))
        call = site.node
        index = site.index
        inputs: Set[tuple] = set()
        bound = self._comprehension_bound.get(id(call))
        stops = api.stops_gradient(site.method, getattr(call.func, "value", None)) or \
            (site.qualified or "") in api.GRADIENT_STOPPING_FUNCTIONS
        target = site.target
        if target is not None and target.external and target.external_facts is None:
            target = None  # a project function we did not read: treat it as unknown code
        if target is None:  # an in-file function's value is what it returns
            for arg in call.args:
                inputs |= self.sources(function, index, arg, bound)
            for keyword in call.keywords:
                inputs |= self.sources(function, index, keyword.value, bound)
            if site.network is None and inputs:
                self.unknown_call_arguments[node] = set(inputs)
        if isinstance(call.func, ast.Attribute) and site.network is None and target is None:
            inputs |= self.sources(function, index, call.func.value, bound)
        if stops:
            self.value_preds[node] |= inputs
            if site.method in api.DETACHING_METHODS:
                self.detached.add(node)
        else:
            self.preds[node] |= inputs
        backward = api.backward_run_by(site)
        if backward == api.RUNS_BACKWARD_ON_LOSS:
            self.preds[TRAINING] |= inputs
            if isinstance(call.func, ast.Attribute):
                self.preds[TRAINING] |= self.sources(function, index, call.func.value, bound)
        elif backward == api.RUNS_BACKWARD_ON_OUTPUTS:
            first = call.args[0] if call.args else next(
                (k.value for k in call.keywords if k.arg in ("outputs", "tensors")), None)
            if first is not None:
                differentiated = self.sources(function, index, first, bound)
                self.preds[TRAINING] |= differentiated
                if site.qualified in api.AUTOGRAD_GRAD:
                    self.preds[INPUT_GRADIENT] |= differentiated
        if target is not None:
            for param, arg in self.facts.bind_arguments(site, target):
                passed = self.sources(function, index, arg, bound)
                self.preds[("param", id(target), param)] |= passed
                self.param_sources[(id(target), param)].setdefault(id(site), set()).update(passed)
            self.preds[node].add(("return", id(target)))

    # -- uses -----------------------------------------------------------------------------
    def sources(self, function: FunctionInfo, index: int, expr: ast.AST,
                bound: Optional[Dict[str, Set[tuple]]] = None) -> Set[tuple]:
        """The nodes whose values ``expr`` is computed from. ``bound``: names a comprehension
        binds, with the sources of what they iterate (they are not the function's variables)."""
        found: Set[tuple] = set()
        stack = [expr]
        while stack:
            node = stack.pop()
            kind = type(node)  # (exact types: every node is looked at, and none is subclassed)
            if kind is ast.Constant:
                continue  # (the commonest leaf: no child, no history)
            if kind is ast.Call:
                site = self._site_by_node.get(id(node))
                if site is not None:
                    found.add(("call", id(site)))
                continue
            if kind is ast.Subscript and _indices_of_a_selection(node):
                continue  # ``torch.sort(x)[1]``, ``x.max(1)[1]``: integer indices, no history
            if kind is ast.Attribute and node.attr == "grad":
                # a gradient tensor: its history (``create_graph=True``) is its own, not the
                # grad mode's where it is read
                found.add(("grad", id(node)))
                continue
            if kind is ast.Name or kind is ast.Attribute:
                if kind is ast.Attribute and node.attr in api.GRADIENT_STOPPING_ATTRIBUTES \
                        and not _is_self(node.value):  # ``self.data`` is the object's own list
                    # ``x.data``: the value flows on, its autograd history does not.
                    cut = ("cut", id(node))
                    self.cut_lines[cut] = (node.lineno, node.col_offset)
                    if node.attr == "data":
                        self.detached.add(cut)
                    self.value_preds[cut] |= self.sources(function, index, node.value, bound)
                    found.add(cut)
                    continue
                key = dotted(node)
                if key is not None:
                    root = key.split(".", 1)[0]
                    if bound and root in bound:
                        found |= bound[root]
                    else:
                        found |= self._uses(function, index, key)
                    continue
            if isinstance(node, (ast.Lambda, ast.FunctionDef, ast.Compare)):
                continue  # comparisons give booleans: no autograd history
            if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
                # The values are the elements, computed from what is iterated.
                inner = dict(bound or {})
                for generator in node.generators:
                    iterated = self.sources(function, index, generator.iter, inner)
                    for name in ast.walk(generator.target):
                        if isinstance(name, ast.Name):
                            inner[name.id] = iterated
                elements = (node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,)
                for element in elements:
                    found |= self.sources(function, index, element, inner)
                continue
            stack.extend(child_nodes(node))
        return found

    def _uses(self, function: FunctionInfo, index: int, key: str) -> Set[tuple]:
        """The definitions of ``key`` (or of its shortest defined prefix) that may reach ``index``."""
        parts = key.split(".")
        for length in range(len(parts), 0, -1):
            candidate = ".".join(parts[:length])
            if candidate.startswith("self.") or candidate == "self":
                cls = self.facts.enclosing_class(function)
                if cls is not None and length >= 2:
                    return {("attr", id(cls), parts[1])}
            found = self._reaching(function, index, candidate)
            if found:
                return found
        root = parts[0]
        if root in function.params:
            return {("param", id(function), root)}
        return set()

    def _reaching(self, function: FunctionInfo, index: int, key: str) -> Set[tuple]:
        for scope in function.enclosing_functions():
            indexes = self._defs.get((id(scope), key))
            if not indexes:
                if key in scope.params:
                    return {("param", id(scope), key)}
                continue
            if scope is not function:
                return {self.def_node(scope, i, key) for i in indexes}
            found: Set[tuple] = set()
            ancestors = set(function.blocks[index]) if index < len(function.blocks) else set()
            dominator = None
            before = bisect_left(indexes, index)  # indexes[:before] are the earlier definitions
            for earlier in range(before - 1, -1, -1):
                position = indexes[earlier]
                found.add(self.def_node(function, position, key))
                if function.blocks[position][-1] in ancestors:
                    dominator = position
                    break
            dominated = dominator is not None
            for loop in self._loops_around(function, index):
                # A value from the previous iteration reaches the use unless this iteration
                # redefined it first.
                if dominator is None or dominator < loop.first_index:
                    for position in indexes[before:bisect_right(indexes, loop.last_index)]:
                        found.add(self.def_node(function, position, key))
            if not dominated and key in function.params:
                found.add(("param", id(function), key))
            return found
        return set()

    def _loops_around(self, function: FunctionInfo, index: int):
        """The loops of ``function`` whose body holds statement ``index``."""
        table = self._loop_table.get(id(function))
        if table is None:
            table = self._loop_table[id(function)] = {}
            for loop in function.loops:
                for position in range(loop.first_index, loop.last_index + 1):
                    table.setdefault(position, []).append(loop)
        return table.get(index, ())

    # -- queries --------------------------------------------------------------------------
    def _solve(self) -> None:
        self.reaches_training = self._reverse_reach(TRAINING, (self.preds,))
        self.feeds_training = self._reverse_reach(TRAINING, (self.preds, self.value_preds))

    @staticmethod
    def _reverse_reach(start, edge_maps) -> Set[tuple]:
        reached = {start}
        stack = [start]
        while stack:
            node = stack.pop()
            for edges in edge_maps:
                for pred in edges.get(node, ()):
                    if pred not in reached:
                        reached.add(pred)
                        stack.append(pred)
        return reached

    def params_training_inside(self, function: FunctionInfo) -> List[str]:
        """The parameters whose history reaches a backward pass while the function runs (a
        step helper's ``loss.backward()``, a tensor stored for a later step), not only through
        what it returns to this module's callers: ``agent.get_action_and_value(obs)`` returns
        the values the training loop's loss is made of, yet calling it trains nothing."""
        candidates = [param for param in function.params if ("param", id(function), param) in self.reaches_training]
        returned = ("return", id(function))
        if not candidates or returned not in self.reaches_training:
            return candidates
        reached = {TRAINING}
        stack = [TRAINING]
        while stack:
            node = stack.pop()
            if node == returned:
                continue  # what the callers do with the result is theirs
            for pred in self.preds.get(node, ()):
                if pred not in reached:
                    reached.add(pred)
                    stack.append(pred)
        return [param for param in candidates if ("param", id(function), param) in reached]

    def site_reaches_training(self, site: CallSite) -> bool:
        """The call's value carries autograd history into a backward pass."""
        return ("call", id(site)) in self.reaches_training

    def site_feeds_training(self, site: CallSite) -> bool:
        """The call's value is used by a backward pass, with or without its history."""
        return ("call", id(site)) in self.feeds_training

    def upstream(self, node: tuple) -> Set[tuple]:
        """Every node whose autograd history flows into ``node``."""
        return self._walk_up([node], (self.preds,)) - {node}

    def upstream_within(self, start, function: FunctionInfo) -> Set[tuple]:
        """Like ``upstream``, without going out through ``function``'s parameters."""
        return self._walk_up(start, (self.preds,), stop_at=id(function))

    def _walk_up(self, start, edge_maps, depth: int = 3, stop_at: Optional[int] = None) -> Set[tuple]:
        """Backwards over the graph, matching calls with returns: entering a helper through
        its return at one call site, only that call's arguments flow into its parameters (a
        loss helper shared by the generator and discriminator updates keeps them apart)."""
        seen: Set[Tuple[tuple, tuple]] = set()
        found: Set[tuple] = set()
        stack = [(node, ()) for node in start]
        while stack:
            current, context = stack.pop()
            if (current, context) in seen:
                continue
            seen.add((current, context))
            found.add(current)
            if current[0] == "param":
                if current[1] == stop_at and not context:
                    continue
                by_site = self.param_sources.get((current[1], current[2]), {})
                if context and context[-1] in by_site:
                    stack.extend((pred, context[:-1]) for pred in by_site[context[-1]])
                    continue
                stack.extend((pred, ()) for preds in by_site.values() for pred in preds)
                continue
            for edges in edge_maps:
                for pred in edges.get(current, ()):
                    if pred[0] == "return" and current[0] == "call":
                        stack.append((pred, (context + (current[1],))[-depth:]))
                    else:
                        stack.append((pred, context))
        return found


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


# The statements ``Dataflow._assignments`` reads, and those whose value may be a ``yield``.
_BINDING_STATEMENTS = frozenset({ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor,
                                 ast.With, ast.AsyncWith})
_YIELDING_STATEMENTS = (ast.Expr, ast.Assign, ast.AnnAssign, ast.AugAssign)


def _yields_in(statement: ast.stmt):
    """The ``yield`` of a statement that is one (``yield x``, ``y = yield x``): where a
    generator hands values to code the analysis does not see."""
    value = getattr(statement, "value", None) if isinstance(statement, _YIELDING_STATEMENTS) else None
    if isinstance(value, (ast.Yield, ast.YieldFrom)):
        yield value


_SELECTIONS = {"sort", "topk", "max", "min", "kthvalue", "median", "mode", "unique"}


def _indices_of_a_selection(node: ast.Subscript) -> bool:
    value = node.value
    if not isinstance(value, ast.Call) or not isinstance(node.slice, ast.Constant) or node.slice.value != 1:
        return False
    func = value.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in _SELECTIONS
