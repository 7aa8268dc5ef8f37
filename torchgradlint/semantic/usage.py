"""Where a forward pass's output goes: forwards along the def-use graph.

A forward pass with autograd on records a graph; the graph is worth its memory only when a
backward pass (``.backward()``, ``autograd.grad``) can start from something computed from the
output. This module answers, for one call site, by walking the def-use graph *forwards* (from
a value to what is computed from it):

- ``TRAINS``: some path carries the output's autograd history into a backward pass;
- ``ESCAPES``: some path leaves what the analysis can see -- returned from a function nobody
  visible calls (or that is handed around as a callback), stored in an attribute nobody here
  reads, written into a caller's object, yielded, passed to code we cannot read that may keep
  or train on it, or the call's result is dropped (hooks and module attributes may have kept
  what it computed);
- ``UNUSED``: neither -- every path ends in ``.item()``, ``print``, a metric, a detached copy or
  a variable nobody reads: the graph is built for nothing.

The walk matches calls with returns: entering a helper through a parameter at one call site,
its return value flows back to that call site only (a loss helper shared by training and
evaluation does not make the evaluation's forward a training forward).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from typing import Callable, Dict, List, Set, Tuple, Union

from .dataflow import ESCAPE, INPUT_GRADIENT, TRAINING, Dataflow
from .structure import CallSite, FunctionInfo

TRAINS = "trains"
ESCAPES = "escapes"
UNUSED = "unused"
# ``with_values=DETACHED``: follow values through ``.detach()`` / ``.data`` only, not through
# the numbers and indices made from them.
DETACHED = "detached"

# Past this many (node, context) states a walk gives up and says "escapes": the answer stays
# conservative on pathological graphs.
_WALK_LIMIT = 20000
_CONTEXT_DEPTH = 3


class UsageAnalysis:
    def __init__(self, dataflow: Dataflow, functions: List[FunctionInfo],
                 hides_a_use: Callable[[CallSite], bool], external_callers: Dict[int, bool],
                 references):
        """``hides_a_use(site)``: a call of code we cannot read that may keep or train on the
        values it is handed. ``external_callers``: ids of functions that other modules call,
        each with whether one of those calls uses the result for training. ``references``:
        the module's ``NameReferences``."""
        self.dataflow = dataflow
        self.functions = functions
        self._function_by_id = {id(function): function for function in functions}
        self._site_by_id = {id(site): site for function in functions for site in function.sites}
        self._hides_a_use = hides_a_use
        self._external_callers = external_callers
        self._references = references
        self._successors: Dict[tuple, Dict[bool, Set[tuple]]] = {}
        self._param_entries: Dict[tuple, List[Tuple[tuple, int]]] = defaultdict(list)
        self._argument_of: Dict[tuple, List[CallSite]] = defaultdict(list)
        self._referenced: Set[str] = set()
        self._outside_declared: Dict[int, Set[str]] = {}
        self._memo: Dict[Tuple[int, bool], str] = {}
        self._prepared = False

    # -- the graph, turned around ---------------------------------------------------------
    def _prepare(self) -> None:
        self._prepared = True
        forward: Dict[tuple, Dict[bool, Set[tuple]]] = defaultdict(lambda: {False: set(), True: set()})
        for node, preds in self.dataflow.preds.items():
            if node[0] == "param":
                continue  # entered through a call site, with its context (below)
            for pred in preds:
                if pred[0] == "return" and node[0] == "call":
                    continue  # back to the call site it came from (below)
                forward[pred][False].add(node)
        for node, preds in self.dataflow.value_preds.items():
            for pred in preds:
                forward[pred][True].add(node)
        self._successors = forward
        for (function_id, param), by_site in self.dataflow.param_sources.items():
            for site_id, sources in by_site.items():
                for source in sources:
                    self._param_entries[source].append((("param", function_id, param), site_id))
        for call, arguments in self.dataflow.unknown_call_arguments.items():
            site = self._site_by_id.get(call[1])
            if site is not None and self._hides_a_use(site):
                for source in arguments:
                    self._argument_of[source].append(site)
        self._referenced = _functions_referenced_as_values(self._references)

    # -- the question ---------------------------------------------------------------------
    def fate(self, site: CallSite, with_values: Union[bool, str] = False) -> str:
        """TRAINS, ESCAPES or UNUSED for the value of ``site`` (see the module docstring).
        ``with_values``: follow values through ``.detach()`` / ``.item()`` too (is the value
        used by training at all, as a DQN target or a teacher's soft labels are); DETACHED:
        through ``.detach()`` / ``.data`` only (is the tensor itself used)."""
        key = (id(site), with_values)
        known = self._memo.get(key)
        if known is None:
            if not self._prepared:
                self._prepare()
            inside = _forwards_inside_a_method(site)
            if inside and not self._graph_returned(inside, site.target):
                # ``q.sample_action(obs)``: the graphs are those of the method's own forwards;
                # what it returns (``out.argmax().item()``) may carry none of them
                fates = {self._walk(("call", id(forward)), with_values, (id(site),)) for forward in inside}
                known = TRAINS if TRAINS in fates else ESCAPES if ESCAPES in fates else UNUSED
            elif _result_dropped(site):
                known = ESCAPES  # whatever it did, it did by side effects (hooks, module state)
            else:
                known = self._walk(("call", id(site)), with_values)
            self._memo[key] = known
        return known

    def _graph_returned(self, forwards: List[CallSite], method: FunctionInfo) -> bool:
        """Whether the history of one of the method's own forwards reaches what it returns
        (``return self.fc_pi(x).softmax(-1)``; not ``return out.argmax().item()``)."""
        goal = ("return", id(method))
        seen: Set[tuple] = set()
        stack = [("call", id(forward)) for forward in forwards]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node in seen or len(seen) > _WALK_LIMIT:
                continue
            seen.add(node)
            edges = self._successors.get(node)
            if edges is not None:
                stack.extend(edges[False])
        return False

    def reaches_input_gradient(self, site: CallSite) -> bool:
        """The output's history reaches what an ``autograd.grad`` call differentiates."""
        key = (id(site), "input gradient")
        known = self._memo.get(key)
        if known is None:
            if not self._prepared:
                self._prepare()
            known = self._walk(("call", id(site)), False, goal=INPUT_GRADIENT)
            self._memo[key] = known
        return known == TRAINS

    def _walk(self, start: tuple, with_values: Union[bool, str], context: tuple = (),
              goal: tuple = TRAINING) -> str:
        escapes = False
        seen: Set[Tuple[tuple, tuple]] = set()
        stack: List[Tuple[tuple, tuple]] = [(start, context)]
        while stack:
            node, context = stack.pop()
            if (node, context) in seen:
                continue
            seen.add((node, context))
            if len(seen) > _WALK_LIMIT:
                return ESCAPES
            if node == goal:
                return TRAINS
            if node == ESCAPE:
                escapes = True
                continue
            kind = node[0]
            if kind == "return":
                if context:
                    stack.append((("call", context[-1]), context[:-1]))
                else:
                    function = self._function_by_id.get(node[1])
                    if function is None or self._returns_out_of_sight(function):
                        escapes = True
                    if function is not None:
                        stack.extend((("call", id(caller)), ()) for caller in function.callers)
            elif self._leaves_sight(node):
                escapes = True
            if self._argument_of.get(node):
                escapes = True
            edges = self._successors.get(node)
            if edges is not None:
                stack.extend((successor, context) for successor in edges[False])
                if with_values == DETACHED:
                    stack.extend((successor, context) for successor in edges[True]
                                 if successor in self.dataflow.detached)
                elif with_values:
                    stack.extend((successor, context) for successor in edges[True])
            for param, site_id in self._param_entries.get(node, ()):
                stack.append((param, (context + (site_id,))[-_CONTEXT_DEPTH:]))
        return ESCAPES if escapes else UNUSED

    def _returns_out_of_sight(self, function: FunctionInfo) -> bool:
        """Its return value goes to callers we cannot see."""
        if function.is_module_scope:
            return False
        if id(function) in self._external_callers:
            # The project's callers are known; those whose use of the result trains are edges
            # into TRAINING already, those that use it detached are not followed here.
            return self._external_callers[id(function)]
        return not function.callers or function.name in self._referenced

    def _leaves_sight(self, node: tuple) -> bool:
        kind = node[0]
        if kind == "attr":
            edges = self._successors.get(node)
            return edges is None or not (edges[False] or edges[True])  # nobody here reads it
        if kind == "def":
            function = self._function_by_id.get(node[1])
            key = node[3]
            if function is None:
                return True
            root = key.split(".", 1)[0]
            if "." in key or root in function.params and not function.is_module_scope:
                return True  # an attribute of some object, or an object the caller handed in
            return root in self._declared_outside(function)
        return False

    def _declared_outside(self, function: FunctionInfo) -> Set[str]:
        """Names a function declares ``global`` or ``nonlocal``."""
        known = self._outside_declared.get(id(function))
        if known is None:
            known = set()
            if not function.is_module_scope:
                for statement in function.statements:
                    if isinstance(statement, (ast.Global, ast.Nonlocal)):
                        known.update(statement.names)
            self._outside_declared[id(function)] = known
        return known


def _forwards_inside_a_method(site: CallSite) -> List[CallSite]:
    """For ``model.method(x)`` of an in-file model class, the forwards of the model's layers the
    method runs itself (``self.forward(obs)``, ``self.fc(x)``); empty for any other call."""
    target = site.target
    if site.network is None or site.network != site.receiver or target is None or target.external or \
            target.cls is None or target.name in ("forward", "__call__"):
        return []
    return [inner for inner in target.sites if inner.runs_own_layers]


def _result_dropped(site: CallSite) -> bool:
    """The call's result is thrown away: a statement of its own (``model(x)``,
    ``unet(x).sample``) or bound to ``_``."""
    if site.is_statement:
        return True
    statement = site.function.statements[site.index]
    if isinstance(statement, ast.Expr):
        spine = statement.value
    elif isinstance(statement, ast.Assign) and all(
            isinstance(target, ast.Name) and target.id == "_" for target in statement.targets):
        spine = statement.value
    else:
        return False
    while isinstance(spine, (ast.Attribute, ast.Subscript)):
        spine = spine.value
    return spine is site.node


def _functions_referenced_as_values(references) -> Set[str]:
    """Names read other than as the callee of a call: functions handed to other code
    (``Engine(train_step)``, ``map(fn, xs)``, ``checkpoint(self.block, x)``) are called from
    places the analysis cannot see."""
    called = references.called
    names = {node.id for node in references.names
             if type(node.ctx) is ast.Load and id(node) not in called}
    names.update(node.attr for node in references.attributes
                 if type(node.ctx) is ast.Load and id(node) not in called)
    return names
