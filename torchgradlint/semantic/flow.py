"""Grad mode and module mode at every call site: an abstract interpretation of the IR.

State: the set of grad modes that may be in effect (``ON``, ``OFF``, ``DYNAMIC`` for
``set_grad_enabled(flag)`` with a flag we cannot read), and for each model name the set of modes
it may be in, each with the line that set it (``("eval", 42)``). A name missing from the mode map
is in an unknown mode. Branches join by union; a name known on one path only becomes unknown.
Loops join their entry state with the state at the end of an iteration.

Across functions: a function is entered with the join of the states at its in-file call sites
(or with autograd on and unknown modes when nothing in the file calls it); a call to an in-file
function applies that function's effect on the modes of the models it is passed.
"""

from __future__ import annotations

import ast
from typing import Dict, FrozenSet, List, Optional, Set, Tuple

from . import torch_api as api
from .names import NameReferences, assignment_pairs, dotted, mode_argument
from .structure import (ASSIGNMENT_STATEMENTS, CallSite, FunctionInfo, binding_counts, binding_scope,
                        parameter_default)

ON, OFF, DYNAMIC = "on", "off", "dynamic"
# While a function's effects are summarized, its grad mode is "whatever the caller's was": a
# forward that still sees it depends on the callers (a no_grad or enable_grad on the way does not).
FROM_CALLER = "caller's"
TRAIN, EVAL = "train", "eval"
GRAD_ON = frozenset({ON})
GRAD_OFF = frozenset({OFF})

Modes = Dict[str, FrozenSet[Tuple[str, Optional[int]]]]


class State:
    __slots__ = ("grad", "modes")

    def __init__(self, grad: FrozenSet[str], modes: Modes):
        self.grad = grad
        self.modes = modes

    def with_grad(self, grad) -> "State":
        return State(grad, self.modes)

    def set_mode(self, key: str, value) -> "State":
        """Switch ``key`` and every submodule of it (None: the mode becomes unknown)."""
        value = UNKNOWN_MODE if value is None else value
        submodule = key + "."
        modes = {k: v for k, v in self.modes.items() if not k.startswith(submodule)}
        modes[key] = value
        return State(self.grad, modes)


# A mode value is a set of (mode, detail): (TRAIN | EVAL, line that set it or None),
# (UNKNOWN, None) for a path where nothing is known, and in a function's summary
# (PASSED_IN, root) for "whatever mode the caller's ``root`` was in".
UNKNOWN_TAG, PASSED_IN = "?", "="
UNKNOWN = (UNKNOWN_TAG, None)
UNKNOWN_MODE = frozenset({UNKNOWN})


def passed_in(root: str):
    return frozenset({(PASSED_IN, root)})


# A variable the function binds itself starts "unbound": a path on which it is never bound
# cannot use it (the name would not exist), so that path adds nothing to its mode where it is
# used (``if resume: model = Net() elif pretrained: model = Net.from_pretrained()``).
UNBOUND = ("unbound", None)


def lookup_mode(modes: Modes, key: Optional[str]):
    """A submodule is in its parent's mode unless it was switched on its own. None when
    unknown (or not bound on any path)."""
    value = _stored_mode(modes, key)
    if value is not None and UNBOUND in value:
        value = value - {UNBOUND} or None
    return value


def _stored_mode(modes: Modes, key: Optional[str]):
    if key is None:
        return None
    while True:
        value = modes.get(key)
        if value is not None:
            return value
        if "." not in key:
            return None
        key = key.rsplit(".", 1)[0]


GRAD_SWITCHES = (api.NO_GRAD, api.INFERENCE_MODE, api.ENABLE_GRAD)
# The methods whose calls may change the state (``_effect``) without a target in sight.
_SWITCHING_METHODS = frozenset({"enter_context", "eval", "train"})


class GradSwitchReferences:
    """Where a file names no_grad, inference_mode or enable_grad (through any import alias):
    found once among the module's references, then asked per function by line range."""

    def __init__(self, imports, references, source: Optional[str] = None):
        """``references``: a callable giving the module's ``NameReferences`` (not asked when
        ``source`` shows that no reference can be one)."""
        finals = {name.rsplit(".", 1)[-1] for name in GRAD_SWITCHES}
        finals |= {local for local, target in imports.aliases.items()
                   if target.rsplit(".", 1)[-1] in finals}
        self.lines: List[tuple] = []  # (line, qualified name)
        if source is not None and not any(name in source for name in finals):
            return  # (a reference is a name or an attribute: its text is in the source)
        found = references()
        for node in [n for n in found.names if n.id in finals] + \
                [a for a in found.attributes if a.attr in finals]:
            qualified = imports.resolve(node)
            if qualified in GRAD_SWITCHES:
                self.lines.append((node.lineno, qualified))

    def within(self, function: FunctionInfo) -> Set[str]:
        node = function.node
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
        last = node.end_lineno or node.lineno
        return {qualified for line, qualified in self.lines if first <= line <= last}


def wraps_no_grad(references: GradSwitchReferences, function: FunctionInfo) -> bool:
    """A decorator or context factory built on no_grad / inference_mode (and not enable_grad),
    that runs no model itself."""
    named = references.within(function)
    disables = api.NO_GRAD in named or api.INFERENCE_MODE in named
    return disables and api.ENABLE_GRAD not in named and not any(site.network for site in function.sites)


def shares_variable(caller: FunctionInfo, callee: FunctionInfo, name: str) -> bool:
    """``name`` is the same variable in the caller and in the callee: a global both read, or a
    variable of a function that a nested function closes over."""
    if callee.external or name == "self":
        return False
    scope = binding_scope(callee, name)
    return scope is not callee and scope is binding_scope(caller, name)


def _same(a: Optional[State], b: Optional[State]) -> bool:
    if a is None or b is None:
        return a is b
    return a.grad == b.grad and a.modes == b.modes


def join(a: Optional[State], b: Optional[State]) -> Optional[State]:
    if a is None:
        return b
    if b is None:
        return a
    return State(a.grad | b.grad, join_modes(a.modes, b.modes))


def join_modes(a: Optional[Modes], b: Modes) -> Modes:
    if a is None:
        return dict(b)
    if a is b:  # (branches that switched nothing share their map: every key is its own)
        return {key: value or UNKNOWN_MODE for key, value in a.items()}
    modes = {}
    for key in a.keys() | b.keys():
        left = _stored_mode(a, key) or UNKNOWN_MODE
        right = _stored_mode(b, key) or UNKNOWN_MODE
        modes[key] = left | right
    return modes


class FlowAnalysis:
    MAX_VISITS = 6

    def __init__(self, facts, imports, config, functions: List[FunctionInfo], with_items=(),
                 source: Optional[str] = None, references=None):
        self.facts = facts
        self.imports = imports
        self.config = config
        self.functions = functions
        self.no_grad_helpers: Set[int] = set()
        self.site_grad: Dict[int, FrozenSet[str]] = {}
        self.site_modes: Dict[int, Modes] = {}
        self.statement_grad: Dict[int, FrozenSet[str]] = {}  # by id of the ast statement
        self.entry_grad: Dict[int, FrozenSet[str]] = {}
        self.entry_modes: Dict[int, Modes] = {}
        self.effects: Dict[int, Dict[str, Optional[FrozenSet]]] = {}
        self.return_modes: Dict[int, Optional[FrozenSet]] = {}
        # ``return model, criterion``: the mode of each element, when every return is such a tuple
        self.return_element_modes: Dict[int, Optional[tuple]] = {}
        self._site_of_node = {id(site.node): site for f in functions for site in f.sites}
        self.touched: Dict[int, Set[str]] = {}
        self._contributions: Dict[int, Dict[int, State]] = {}
        self._summarizing = False
        self._returns: List[State] = []
        self._function: Optional[FunctionInfo] = None
        self._changed_entries: Set[int] = set()
        self._fresh_contributions: Set[Tuple[int, int]] = set()
        self._loop_depth = 0
        self._with_items = with_items
        self._grad_switches: Optional[GradSwitchReferences] = None
        self._source = source
        self._references = references
        # Functions with a forward whose grad mode or model mode is the one their caller gives.
        self.caller_dependent: Set[int] = set()
        # At calls into other modules, the modes seen by the summarizing pass, where what the
        # function was passed is still symbolic (``("=", "self")``): another module calling
        # this function can tell its callee what it passed (see summary._calls_out).
        self.symbolic_site_modes: Dict[int, Modes] = {}
        self._unbound: Dict[int, List[str]] = {}

    def _key(self, key: Optional[str], function: Optional[FunctionInfo] = None) -> Optional[str]:
        """A model's key in the mode state: an alias of a container's element (``snet =
        nets['snet']``) is the element (``nets.['snet']``), whose mode it shares."""
        return self.facts.aliases.canonical(function or self._function, key)

    @property
    def grad_switches(self) -> GradSwitchReferences:
        if self._grad_switches is None:
            references = self._references
            if references is None:
                module = next(f for f in self.functions if f.is_module_scope)
                references = lambda: NameReferences(module.node)  # noqa: E731
            self._grad_switches = GradSwitchReferences(self.imports, references, self._source)
        return self._grad_switches

    def wraps_no_grad(self, function: FunctionInfo) -> bool:
        return wraps_no_grad(self.grad_switches, function)

    # -- driver ---------------------------------------------------------------------------
    def run(self) -> None:
        self.summarize()
        self.propagate()

    def summarize(self) -> None:
        """What each function does to the modes of the models it is given (callers' states
        not needed yet: calls from other modules may be added before ``propagate``)."""
        self._find_no_grad_helpers()
        self._summarize_effects()

    def propagate(self) -> None:
        """The grad mode and model modes at every call site, from the entries of the file."""
        self._propagate_states()

    def _summarize_effects(self) -> None:
        """Up to three rounds over the functions, in file order, each seeing what the previous
        ones found; a function is analysed again only when the summary of one of its callees
        changed since it was last analysed (otherwise its own summary would come out the same)."""
        self._summarizing = True
        versions: Dict[int, int] = {}  # id of a function -> number of changes of its summary
        seen: Dict[int, Dict[int, int]] = {}  # id of a function -> callee versions it saw
        for _ in range(3):
            changed = False
            for function in self.functions:
                if function.external:
                    continue
                callees = seen.get(id(function))
                if callees is not None and self.config.shortcuts and all(
                        versions.get(callee, 0) == version for callee, version in callees.items()):
                    continue
                seen[id(function)] = {id(target): versions.get(id(target), 0)
                                      for site in function.sites for target in site.targets()}
                before = (self.effects.get(id(function)), set(self.touched.get(id(function), ())))
                returned = (self.return_modes.get(id(function)), self.return_element_modes.get(id(function)))
                roots = {name: passed_in(name) for name in self._free_roots(function)}
                roots.update({param: passed_in(param) for param in function.params})
                roots["self"] = passed_in("self")
                self._analyze(function, State(frozenset({FROM_CALLER}), roots))
                after = (self.effects.get(id(function)), self.touched.get(id(function)))
                changed |= before != after
                if (before[0] or {}) != (after[0] or {}) or before[1] != set(after[1] or ()) or \
                        returned != (self.return_modes.get(id(function)),
                                     self.return_element_modes.get(id(function))):
                    versions[id(function)] = versions.get(id(function), 0) + 1
            if not changed:
                break
        self._summarizing = False

    def _free_roots(self, function: FunctionInfo) -> Set[str]:
        """Variables of enclosing scopes (globals, closures) whose modes the function may use
        or change: models it names, and the roots of what its callees switch."""
        if function.is_module_scope:
            return set()
        names = set()
        for site in function.sites:
            for key in (site.network, site.receiver if site.method in ("eval", "train") else None):
                if key:
                    names.add(self._key(key, function).split(".")[0])
            for target in site.targets():
                names.update(key.split(".")[0] for key in self.touched.get(id(target), ()))
            if site.target is not None:
                names.update(root for root in (dotted(arg) for arg in site.node.args) if root)
        return {name.split(".")[0] for name in names
                if name != "self" and binding_scope(function, name.split(".")[0]) is not function}

    def _propagate_states(self) -> None:
        visits: Dict[int, int] = {}
        by_id = {id(f): f for f in self.functions}
        queue = sorted((f for f in self.functions if not f.external), key=lambda f: bool(f.callers))
        queued = {id(f) for f in queue}
        while queue:
            function = queue.pop(0)
            queued.discard(id(function))
            visits[id(function)] = visits.get(id(function), 0) + 1
            self._changed_entries = set()
            self._analyze(function, self._entry_state(function))
            for target in self._changed_entries:
                callee = by_id[target]
                if callee.external:
                    continue
                if id(callee) not in queued and visits.get(target, 0) < self.MAX_VISITS:
                    queue.append(callee)
                    queued.add(target)

    def add_external_call(self, function: FunctionInfo, key: int, grad, modes: Modes) -> None:
        """A call from another module of the project (its state, as that module saw it)."""
        self._contributions.setdefault(id(function), {})[key] = State(frozenset(grad), modes)

    def contributions(self, function: FunctionInfo) -> Dict[int, State]:
        """The state each in-file call site passes to ``function``, by id of the call site."""
        return self._contributions.get(id(function), {})

    def _entry_state(self, function: FunctionInfo) -> State:
        contributions = self._contributions.get(id(function), {})
        decorated = self._decorator_grad(function)
        if function.name in api.LIGHTNING_EVAL_HOOKS and function.cls is not None:
            return State(GRAD_OFF, {"self": frozenset({(EVAL, None)})})
        modes: Optional[Modes] = None
        grad: FrozenSet[str] = frozenset()
        for state in contributions.values():
            modes = join_modes(modes, state.modes)
            grad |= state.grad
        if decorated is not None:
            grad = decorated
        elif not contributions and not self._called_where_it_never_runs(function):
            grad = GRAD_ON
        return State(grad, self._with_fixed_attribute_modes(function, modes or {}))

    def _with_fixed_attribute_modes(self, function: FunctionInfo, modes: Modes) -> Modes:
        """In a method of a plain object, the models ``__init__`` built and nothing switches
        are in the mode ``__init__`` left them in, whatever the callers know of the object."""
        cls = function.cls
        if cls is None or cls.is_module or function.name == "__init__" or function.external:
            return modes
        fixed = self.facts.attributes_of_fixed_mode(cls)
        if not fixed:
            return modes
        built = self.effects.get(id(cls.find_method("__init__")), {})
        modes = dict(modes)
        for attribute in fixed:
            key = f"self.{attribute}"
            mode = built.get(key)
            if mode and all(tag in (TRAIN, EVAL) for tag, _ in mode) and \
                    (key not in modes or UNKNOWN in modes[key]):
                modes[key] = mode
        return modes

    @staticmethod
    def _called_where_it_never_runs(function: FunctionInfo) -> bool:
        """The file calls the function, yet no call has contributed a state: every call stands
        where no path reaches (after a ``sys.exit()`` or a NameError) and no other module's
        call was linked, so it never runs -- under no grad mode at all, until a reached call
        contributes one."""
        return bool(function.callers)

    # -- one function ---------------------------------------------------------------------
    def _analyze(self, function: FunctionInfo, entry: State) -> None:
        self._function = function
        self._returns = []
        self._return_mode = None
        self._return_elements: Optional[tuple] = None
        before = {}
        if self._summarizing:
            for site in function.sites:
                self.symbolic_site_modes.pop(id(site), None)
        else:
            self.entry_grad[id(function)] = entry.grad
            self.entry_modes[id(function)] = entry.modes
            for site in function.sites:
                self.site_grad.pop(id(site), None)
                self.site_modes.pop(id(site), None)
                for target in site.targets():
                    before[(id(site), id(target))] = self._contributions.get(id(target), {}).get(id(site))
        self._fresh_contributions = set()
        unbound = self._unbound_at_entry(function)
        if unbound:
            modes = dict(entry.modes)
            for name in unbound:
                modes.setdefault(name, frozenset({UNBOUND}))
            entry = State(entry.grad, modes)
        end = self._block(function.ir, entry)
        for site in function.sites:
            for target in site.targets():
                if (id(site), id(target)) not in before:
                    continue
                old = before[(id(site), id(target))]
                after = self._contributions.get(id(target), {}).get(id(site))
                if old is None or after is None or old.grad != after.grad or old.modes != after.modes:
                    self._changed_entries.add(id(target))
        exit_state = end
        for state in self._returns:
            exit_state = join(exit_state, state)
        if self._summarizing:
            self._record_effects(function, exit_state)
            self.return_modes[id(function)] = self._return_mode
            self.return_element_modes[id(function)] = self._return_elements or None

    def _unbound_at_entry(self, function: FunctionInfo) -> List[str]:
        """The variables holding models (or objects of the project's classes, which hold
        models) that the function binds itself (not its parameters, not the globals or
        closure variables it uses)."""
        found = self._unbound.get(id(function))
        if found is None:
            found = self._unbound[id(function)] = sorted(
                name for name in function.local_names
                if name not in function.params and (
                    self.facts.is_model(function, name) or
                    (id(function), name) in self.facts.instance_class)
                and not self.facts.aliases.is_alias(function, name))
        return found

    def _record_effects(self, function: FunctionInfo, exit_state: Optional[State]) -> None:
        """What the function leaves behind: the modes of the models it was passed (or of
        ``self``'s attributes) that it switched, assigned or handed to a switching helper."""
        touched = set()
        roots = set(function.params) | {"self"} | self._free_roots(function)
        for site in function.sites:
            if site.method in ("eval", "train") and site.receiver:
                touched.add(self._key(site.receiver))
            for target in site.targets():
                for key in self.touched.get(id(target), ()):
                    mapped = self._map_key_to_caller(site, key, target)
                    if mapped:
                        touched.add(mapped)
        if exit_state is not None:
            touched |= set(exit_state.modes)
        rebound = self._rebound_names(function)
        touched = {key for key in touched if key.split(".")[0] in roots and key.split(".")[0] not in rebound}
        effects = {}
        for key in touched:
            value = lookup_mode(exit_state.modes, key) if exit_state is not None else None
            if value is None:
                value = UNKNOWN_MODE
            unchanged = len(value) == 1 and next(iter(value))[0] == PASSED_IN and (
                key == next(iter(value))[1] or key.startswith(next(iter(value))[1] + "."))
            if not unchanged:
                effects[key] = value
        self.touched[id(function)] = set(effects)
        self.effects[id(function)] = effects

    @staticmethod
    def _rebound_names(function: FunctionInfo) -> Set[str]:
        """Parameters the function assigns a new object to: what it does to them afterwards
        no longer touches the caller's object."""
        counts = binding_counts(function)
        return {param for param in function.params if counts.get(param, 0) > 1}

    def _block(self, block, state: Optional[State]) -> Optional[State]:
        for node in block:
            if state is None:
                return None
            state = self._node(node, state)
        return state

    def _node(self, node, state: State) -> Optional[State]:
        kind = node[0]
        if kind == "simple":
            state = self._sites(node[2], state)
            if not self._summarizing:
                key = id(node[1])
                previous = self.statement_grad.get(key)
                self.statement_grad[key] = state.grad if previous is None else previous | state.grad
            return self._assign(node[1], state) if type(node[1]) in ASSIGNMENT_STATEMENTS else state
        if kind == "exit":
            state = self._sites(node[2], state)
            if isinstance(node[1], ast.Return):
                self._returns.append(state)
                returned = node[1].value
                value = self._expression_mode(state, returned) if returned is not None else None
                self._return_mode = (value or UNKNOWN_MODE) | (self._return_mode or frozenset())
                if self._summarizing:
                    self._note_returned_elements(state, returned)
            return None
        if kind == "with":
            outer_grad = state.grad
            inner = state
            for item, sites in node[2]:
                inner = self._sites(sites, inner)
                grad = self._context_grad(item)
                if grad is not None:
                    inner = inner.with_grad(grad)
            after = self._block(node[3], inner)
            return after.with_grad(outer_grad) if after is not None else None
        if kind == "if":
            state = self._sites(node[2], state)
            return join(self._block(node[3], state), self._block(node[4], state))
        if kind == "loop":
            state = self._sites(node[3], state)
            models = self.facts.loop_models(self._function, node[1])
            self._loop_depth += 1
            try:
                first = self._iteration(node[4], state, models)
                # A loop over models runs at least once (there is a model to run), and so does
                # a framework's loop over its data; any other loop may not run at all.
                once = models or node[2].runs_at_least_once
                top = join(state, first) if not once or first is None else first
                # A second pass carries the end of one iteration into the next; it is needed only
                # when the first changed something, and (cost 2**depth) not deep inside loops.
                if _same(top, state) or self._loop_depth > 4:
                    after = top
                else:
                    after = join(top, self._iteration(node[4], top, models))
            finally:
                self._loop_depth -= 1
            return self._block(node[5], after) if node[5] else after
        if kind == "try":
            body = self._block(node[2], state)
            handled = body
            for handler in node[3]:
                handled = join(handled, self._block(handler, join(state, body)))
            if node[4]:
                handled = join(handled, self._block(node[4], body) if body else None)
            if node[5]:
                final = self._block(node[5], handled or state)
                return final if handled is not None else None
            return handled
        if kind == "branches":
            state = self._sites(node[2], state)
            result = state
            for case in node[3]:
                result = join(result, self._block(case, state))
            return result
        return state

    def _iteration(self, body, state: State, models) -> Optional[State]:
        """One pass over a loop's body. A loop variable that holds a model (``for net in
        nets``) starts in the join of its sources' modes; what the body switched it to
        becomes the mode of every source (the loop visits them all)."""
        bound = {}
        for target, sources, elements in models:
            sources = [self._key(source) for source in sources]
            values = [lookup_mode(state.modes, source) for source in sources] if sources else \
                [self._expression_mode(state, element) for _, element in elements]
            value = None if any(v is None for v in values) else frozenset().union(*values)
            state = state.set_mode(target, value)
            bound[target] = lookup_mode(state.modes, target)
        end = self._block(body, state)
        if end is None:
            return None
        for target, sources, _ in models:
            value = lookup_mode(end.modes, target)
            if value is not None and value != bound[target]:
                for source in sources:
                    end = end.set_mode(self._key(source), value)
        return end

    # -- effects of calls -----------------------------------------------------------------
    def _sites(self, sites: List[CallSite], state: State) -> State:
        for site in sites:
            if self._summarizing:
                if (site.network or site.through_helper) and self._from_caller(site, state):
                    self.caller_dependent.add(id(self._function))
                if site.target is not None and site.target.external:
                    previous_modes = self.symbolic_site_modes.get(id(site))
                    self.symbolic_site_modes[id(site)] = join_modes(previous_modes, state.modes) \
                        if previous_modes is not None else dict(state.modes)
            else:
                key = id(site)
                previous = self.site_grad.get(key)
                self.site_grad[key] = state.grad if previous is None else previous | state.grad
                if site.network is not None or site.target is not None or site.method in ("eval", "train"):
                    previous_modes = self.site_modes.get(key)
                    self.site_modes[key] = join_modes(previous_modes, state.modes) \
                        if previous_modes is not None else dict(state.modes)
                for target in site.targets():
                    self._contribute(site, state, target)
            if site.target is not None or site.method in _SWITCHING_METHODS or \
                    site.qualified == api.SET_GRAD_ENABLED:  # (what ``_effect`` looks at)
                state = self._effect(site, state)
        return state

    def _from_caller(self, site: CallSite, state: State) -> bool:
        """The forward's grad mode or its model's mode is still the one the caller gave."""
        if FROM_CALLER in state.grad:
            return True
        value = lookup_mode(state.modes, self._key(site.network or site.through_helper))
        return value is not None and any(mode == PASSED_IN for mode, _ in value)

    def _effect(self, site: CallSite, state: State) -> State:
        if site.is_statement and site.qualified == api.SET_GRAD_ENABLED:
            grad = self._set_grad_enabled_value(site.node)
            return state.with_grad(grad)
        if site.method == "enter_context" and site.node.args:
            grad = self._context_grad(site.node.args[0])  # ``stack.enter_context(torch.no_grad())``
            if grad is not None:
                return state.with_grad(grad)
        if site.method in ("eval", "train") and site.receiver and not self._own_method(site):
            mode = self.switch_mode(site)
            value = frozenset({(mode, site.line)}) if mode else None
            return state.set_mode(self._key(site.receiver), value)
        if site.target is not None and not site.registers and site.constructs is None:
            # one of the targets runs: the join of their effects
            after = None
            for target in site.targets():
                after = join(after, self._call_effect(site, target, state))
            return after
        return state

    def _call_effect(self, site: CallSite, target: FunctionInfo, state: State) -> State:
        for key, value in self.effects.get(id(target), {}).items():
            mapped = self._map_key_to_caller(site, key, target)
            if mapped:
                state = state.set_mode(mapped, self._resolve(site, value, state, target=target))
        return state

    @staticmethod
    def _own_method(site: CallSite) -> bool:
        """``gan.train()`` of a class that is no nn.Module: its own method, not a mode switch."""
        target = site.target
        return target is not None and target.cls is not None and not target.cls.is_module

    @staticmethod
    def switch_mode(site: CallSite) -> Optional[str]:
        """The mode ``model.eval()`` / ``model.train(flag)`` switches to (None: a flag nobody
        can read)."""
        node = site.node
        if site.method == "eval":
            return EVAL if not node.args and not node.keywords else None
        argument = mode_argument(node)
        if argument is None:
            return TRAIN
        if isinstance(argument, ast.Constant) and isinstance(argument.value, bool):
            return TRAIN if argument.value else EVAL
        return None

    def _note_returned_elements(self, state: State, returned: Optional[ast.AST]) -> None:
        """``return model, criterion, postprocessors``: each element's mode (UNKNOWN where it
        is no model we know); a return of another shape makes the elements unknown."""
        site = self._site_of_node.get(id(returned)) if returned is not None else None
        if isinstance(returned, ast.Tuple) and not any(isinstance(e, ast.Starred) for e in returned.elts):
            elements = tuple(self._expression_mode(state, e) or UNKNOWN_MODE for e in returned.elts)
        elif site is not None and site.target is not None and self.return_element_modes.get(id(site.target)):
            # ``return build(args)``: what the callee returns, seen from here
            elements = tuple(self._resolve(site, mode, state)
                             for mode in self.return_element_modes[id(site.target)])
        else:
            elements = ()
        previous = self._return_elements
        if previous is None:
            self._return_elements = elements
        elif len(previous) != len(elements):
            self._return_elements = ()
        else:
            self._return_elements = tuple(a | b for a, b in zip(previous, elements))

    def _unpack_returned(self, target: ast.AST, value: ast.AST, state: State) -> Optional[State]:
        """``model, criterion = build_model(args)``: the modes of the elements the function
        returns (None when it does not return such a tuple)."""
        site = self._site_of_node.get(id(value))
        if site is None or site.target is None or site.constructs is not None:
            return None
        elements = self.return_element_modes.get(id(site.target))
        if not elements or len(elements) != len(target.elts):
            return None
        for element, mode in zip(target.elts, elements):
            key = dotted(element)
            if key and (mode != UNKNOWN_MODE or key in state.modes):
                state = state.set_mode(key, self._resolve(site, mode, state))
        return state

    def _assign(self, statement: ast.stmt, state: State) -> State:
        for target, value in assignment_pairs(statement):
            site = self._site_of_node.get(id(value))
            key = dotted(target)
            if isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, ast.Call):
                state = self._unpack_returned(target, value, state) or state
                continue
            if not key or type(target) is ast.Name and self.facts.aliases.is_alias(self._function, key):
                continue  # (binding an alias changes no mode: it is the element it names)
            key = self._key(key)
            if site is not None and site.constructs is not None:
                state = self._apply_constructor(site, key, state)
                continue
            if isinstance(value, ast.Constant) and value.value is None and \
                    key in self._unbound_at_entry(self._function):
                # ``model = None`` before ``if ...: model = Net()``: no model runs on this path
                state = state.set_mode(key, frozenset({UNBOUND}))
                continue
            mode = self._expression_mode(state, value)
            if mode is not None or key in state.modes or lookup_mode(state.modes, key) is not None:
                state = state.set_mode(key, mode)
        return state

    def _registry_mode(self, builders: list):
        """``MODELS[arch](...)``: a class builds a module in training mode, a builder function
        returns what its returns say (``build_sam()`` may switch to eval first)."""
        modes = []
        for builder in builders:
            if getattr(builder, "methods", None) is not None:  # a class
                modes.append(frozenset({(TRAIN, None)}))
                continue
            returned = self.return_modes.get(id(builder))
            if not returned or any(mode in (PASSED_IN, UNKNOWN_TAG) for mode, _ in returned):
                return UNKNOWN_MODE
            modes.append(returned)
        return frozenset().union(*modes)

    def _expression_mode(self, state: State, expr: ast.AST):
        """The mode of the model an expression evaluates to, or None when it is not one we
        know: a fresh module trains, ``from_pretrained`` evaluates, ``m.to(dev)`` is ``m``."""
        key = dotted(expr)
        if key is not None:
            return lookup_mode(state.modes, self._key(key))
        if type(expr) is ast.Subscript:
            key = self.facts.element(self._function, expr)
            return lookup_mode(state.modes, key) if key is not None else None
        if isinstance(expr, ast.IfExp):
            return self._either_mode(state, expr)
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set, ast.ListComp, ast.SetComp, ast.GeneratorExp,
                             ast.Dict, ast.DictComp)):
            return self._elements_mode(state, expr)
        site = self._site_of_node.get(id(expr))
        if isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Attribute) and func.attr in api.SELF_RETURNING_METHODS and \
                    isinstance(func.value, ast.Call):
                # ``Net().eval()``, ``nn.DataParallel(net).eval()``, ``Net().to(device)``
                if site is not None and site.method in ("eval", "train"):
                    inner = self._expression_mode(state, func.value)
                    if inner is None:
                        return None
                    mode = self.switch_mode(site)
                    return frozenset({(mode, site.line)}) if mode else UNKNOWN_MODE
                return self._expression_mode(state, func.value)
            if expr.args and self.imports.resolve(func) in api.WRAPPERS_KEEPING_MODEL:
                inner = self._expression_mode(state, expr.args[0])
                if inner is not None:
                    return inner  # the wrapper runs the model it wraps, in that model's mode
        if site is not None and site.target is not None and site.constructs is None:
            returned = self.return_modes.get(id(site.target))
            if returned is not None:
                return self._resolve(site, returned, state)
        registered = self.facts.registered_builders(expr.func) if isinstance(expr, ast.Call) else None
        if registered is not None:
            return self._registry_mode(registered)
        found = self.facts.model_expression(self._function, expr)
        if found is None:
            return None
        origin, _, same = found
        if same is not None:
            if site is not None and site.method in ("eval", "train"):
                mode = self.switch_mode(site)
                return frozenset({(mode, site.line)}) if mode else UNKNOWN_MODE
            return lookup_mode(state.modes, self._key(same))
        if origin == "fresh" or (site is not None and site.constructs is not None):
            return frozenset({(TRAIN, None)})
        if origin == "pretrained":
            return frozenset({(EVAL, None)})
        return UNKNOWN_MODE

    def _elements_mode(self, state: State, expr: ast.AST):
        """A container of models (``[Net() for _ in range(3)]``): the join of its elements'
        modes, when every element is a model."""
        elements = self.facts.container_elements(self._function, expr)
        modes = [self._expression_mode(state, element) for element in elements]
        if not modes or any(mode is None for mode in modes):
            return None
        return frozenset().union(*modes)

    def _either_mode(self, state: State, expr: ast.IfExp):
        """``Net().cuda() if cuda else Net()``: the modes of both branches (a ``None`` branch
        holds no model)."""
        modes = [self._expression_mode(state, branch) for branch in (expr.body, expr.orelse)
                 if not (isinstance(branch, ast.Constant) and branch.value is None)]
        if all(mode is None for mode in modes):
            return None
        return frozenset().union(*(mode or UNKNOWN_MODE for mode in modes))

    def _resolve(self, site: CallSite, value, state: State, new_object: Optional[str] = None,
                 target: Optional[FunctionInfo] = None):
        """A callee's summary value seen from the caller: its switches happen at the call's
        line, and "passed in" becomes the mode of the argument the caller passed (for a
        constructor, ``self`` is ``new_object``, the name the new instance is bound to)."""
        resolved = set()
        for mode, detail in value:
            if mode == PASSED_IN and detail == "self" and new_object is not None:
                resolved |= lookup_mode(state.modes, new_object) or UNKNOWN_MODE
            elif mode == PASSED_IN:
                resolved |= self._argument_mode(site, detail, state, target or site.target) or UNKNOWN_MODE
            elif mode == UNKNOWN_TAG:
                resolved.add(UNKNOWN)
            else:
                resolved.add((mode, site.line))
        return frozenset(resolved)

    def _argument_mode(self, site: CallSite, root: str, state: State, target: FunctionInfo):
        if root == "self":
            return lookup_mode(state.modes, self._key(site.receiver)) if site.receiver else None
        for param, arg in self.facts.bind_arguments(site, target):
            if param == root:
                return self._expression_mode(state, arg)
        if shares_variable(site.function, target, root):
            return lookup_mode(state.modes, root)
        return None

    def _apply_constructor(self, site: CallSite, key: str, state: State) -> State:
        """``obj = Trainer(model)``: a fresh module is in training mode; ``__init__`` may
        leave ``self.model`` in some mode, which becomes ``obj.model``."""
        cls = site.constructs
        state = state.set_mode(key, frozenset({(TRAIN, None)}) if cls.is_module else None)
        if site.target is None:
            return state
        for inner, value in self.effects.get(id(site.target), {}).items():
            root, _, rest = inner.partition(".")
            if root == "self" and rest:
                state = state.set_mode(f"{key}.{rest}", self._resolve(site, value, state, key))
        return state

    def _map_key_to_caller(self, site: CallSite, key: str,
                           target: Optional[FunctionInfo] = None) -> Optional[str]:
        """The caller's name for ``key`` of the callee: ``model`` -> the argument passed
        (``nets.['snet']`` -> ``snet`` where the caller built ``nets = {'snet': snet}``)."""
        return self._key(self._caller_spelling(site, key, target), site.function)

    def _caller_spelling(self, site: CallSite, key: str,
                         target: Optional[FunctionInfo] = None) -> Optional[str]:
        root, _, rest = key.partition(".")
        target = target or site.target
        if root == "self":
            receiver = site.receiver if site.receiver is not None else None
            if receiver is None:
                return None
            return f"{receiver}.{rest}" if rest else receiver
        for param, arg in self.facts.bind_arguments(site, target):
            if param == root:
                text = dotted(arg)
                if text is None:
                    return None
                return f"{text}.{rest}" if rest else text
        if shares_variable(site.function, target, root):
            return key  # a global, or a variable the callee closes over
        return None

    def _contribute(self, site: CallSite, state: State, target: FunctionInfo) -> None:
        modes: Modes = {}
        passed = []
        for param, arg in self.facts.bind_arguments(site, target):
            text = dotted(arg)
            if text is None:
                mode = self._expression_mode(state, arg)
                if mode is not None:
                    modes[param] = mode
            passed.append((param, self._key(text, site.function)))
        receiver = self._key(site.receiver, site.function)
        aliases = self.facts.aliases
        for caller_key, stored in state.modes.items():
            value = lookup_mode(state.modes, caller_key)
            if value is None:
                continue  # unknown, or not bound: the callee knows as much without it
            # Map the caller's names back onto the callee's parameters and ``self``; an element
            # of a container the caller passes too (``snet`` is ``nets['snet']``).
            spellings = [caller_key] + aliases.spellings(site.function, caller_key) if aliases.any \
                else (caller_key,)
            for spelling in spellings:
                for param, text in passed:
                    if text and (spelling == text or spelling.startswith(text + ".")):
                        modes[param + spelling[len(text):]] = value
                if receiver and (spelling == receiver or spelling.startswith(receiver + ".")):
                    modes["self" + spelling[len(receiver):]] = value
            root = caller_key.partition(".")[0]
            if caller_key not in modes and shares_variable(site.function, target, root):
                modes[caller_key] = value
        contribution = State(state.grad, modes)
        # Within one analysis of the caller a call may be reached several times (loops): join.
        # A new analysis of the caller replaces what its earlier, provisional one passed on.
        bucket = self._contributions.setdefault(id(target), {})
        fresh = (id(site), id(target))
        previous = bucket.get(id(site)) if fresh in self._fresh_contributions else None
        bucket[id(site)] = join(previous, contribution) if previous is not None else contribution
        self._fresh_contributions.add(fresh)

    # -- grad-mode contexts ---------------------------------------------------------------
    def _set_grad_enabled_value(self, call: ast.Call) -> FrozenSet[str]:
        argument = mode_argument(call)
        if isinstance(argument, ast.Constant):
            return GRAD_ON if argument.value else GRAD_OFF
        if isinstance(argument, ast.UnaryOp) and isinstance(argument.op, ast.Not) and \
                isinstance(argument.operand, ast.Constant):
            return GRAD_OFF if argument.operand.value else GRAD_ON
        values = self._constant_argument_values(argument)
        if values:
            return frozenset(ON if value else OFF for value in values)
        return frozenset({DYNAMIC})

    def _constant_argument_values(self, argument) -> Optional[Set[bool]]:
        """``set_grad_enabled(train)`` where every in-file caller passes a constant ``train``."""
        function = self._function
        if not isinstance(argument, ast.Name) or argument.id not in function.params or \
                not function.callers:
            return None
        negate = False
        values: Set[bool] = set()
        for site in function.callers:
            bound = dict(self.facts.bind_arguments(site, function))
            value = bound.get(argument.id)
            if value is None:
                default = parameter_default(function, argument.id)
                value = default
            if not isinstance(value, ast.Constant) or not isinstance(value.value, bool):
                return None
            values.add(bool(value.value) != negate)
        return values

    def _context_grad(self, expr: ast.AST) -> Optional[FrozenSet[str]]:
        """The grad mode inside ``with expr:``, or None when it does not change it."""
        if not isinstance(expr, ast.Call):
            # ``with torch.no_grad:`` raises (TGL103); read it as the intent it shows, so that
            # the body is not reported a second time.
            qualified = self.imports.resolve(expr)
            if qualified in (api.NO_GRAD, api.INFERENCE_MODE):
                return GRAD_OFF
            return GRAD_ON if qualified == api.ENABLE_GRAD else None
        qualified = self.imports.resolve(expr.func)
        if qualified in (api.NO_GRAD,):
            return GRAD_OFF
        if qualified == api.INFERENCE_MODE:
            argument = mode_argument(expr)
            if isinstance(argument, ast.Constant) and argument.value is False:
                return GRAD_ON
            return GRAD_OFF
        if qualified == api.ENABLE_GRAD:
            return GRAD_ON
        if qualified == api.SET_GRAD_ENABLED:
            return self._set_grad_enabled_value(expr)
        if self._is_no_grad_helper(expr.func):
            return GRAD_OFF
        return None

    def grad_set_by(self, function: FunctionInfo) -> Optional[FrozenSet[str]]:
        """The grad mode a function's decorators give its body (``@torch.no_grad()``), for a
        function of another module as its summary says; None when they set none."""
        if function.external:
            decorated = (function.external_facts or {}).get("decorated_grad")
            return frozenset(decorated) if decorated else None
        return self._decorator_grad(function)

    def _decorator_grad(self, function: FunctionInfo) -> Optional[FrozenSet[str]]:
        grad = None
        for decorator in function.decorators:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            qualified = self.imports.resolve(target)
            if qualified in (api.NO_GRAD, api.INFERENCE_MODE):
                grad = GRAD_OFF
                if qualified == api.INFERENCE_MODE and isinstance(decorator, ast.Call):
                    grad = self._context_grad(decorator) or GRAD_OFF
            elif qualified == api.ENABLE_GRAD:
                grad = GRAD_ON
            elif qualified == api.SET_GRAD_ENABLED and isinstance(decorator, ast.Call):
                grad = self._set_grad_enabled_value(decorator)
            elif self._is_no_grad_helper(target):
                grad = GRAD_OFF
        return grad

    def _is_no_grad_helper(self, expr: ast.AST) -> bool:
        name = dotted(expr)
        if name is None:
            return False
        configured = self.config.no_grad_decorators
        name_words = set(api.words(name.rsplit(".", 1)[-1]))
        if any(required <= name_words for required in api.NO_GRAD_HELPER_WORDS):
            return True  # ``smart_inference_mode``, ``no_grad_if_eval``: imported project helpers
        if name in configured or name.rsplit(".", 1)[-1] in configured or \
                (self.imports.qualify(name) or "") in configured:
            return True
        for function in self.functions:
            if id(function) in self.no_grad_helpers and function.name == name.rsplit(".", 1)[-1] and (
                    function.parent is not None and function.parent.is_module_scope or
                    name.startswith(("self.", "cls."))):
                return True
        return False

    def _find_no_grad_helpers(self) -> None:
        """In-file decorators and context factories that wrap no_grad / inference_mode. Only
        functions that the file uses as decorators or ``with`` items are looked into."""
        used = set()
        for function in self.functions:
            for decorator in function.decorators:
                name = dotted(decorator.func if isinstance(decorator, ast.Call) else decorator)
                if name:
                    used.add(name.rsplit(".", 1)[-1])
        for item, _function in self._with_items:
            name = dotted(item.func if isinstance(item, ast.Call) else item)
            if name:
                used.add(name.rsplit(".", 1)[-1])
        for function in self.functions:
            if function.is_module_scope or function.name not in used:
                continue
            if self.wraps_no_grad(function) and \
                    id(function) not in self.facts.training_functions:
                self.no_grad_helpers.add(id(function))
