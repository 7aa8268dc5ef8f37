"""Trainer classes of the project: what a module's summary says of them, read from the code.

A hand-written trainer (minGPT's ``Trainer``) keeps the model it is given and the callables it is
handed, and its run method trains in a loop that calls those callables between steps::

    class Trainer:
        def __init__(self, config, model, dataset):
            self.model = model                            # stores: model -> model
            self.callbacks = defaultdict(list)
        def set_callback(self, onevent, callback):
            self.callbacks[onevent] = [callback]          # stores: callback -> callbacks[onevent]
        def trigger_callbacks(self, onevent):
            for callback in self.callbacks.get(onevent, []):
                callback(self)                            # calls what callbacks[onevent] holds
        def run(self):
            model = self.model
            model.train()                                 # once, before the loop
            while True:
                loss = model(x, y); loss.backward(); self.optimizer.step()
                self.trigger_callbacks('on_batch_end')    # the callables, after the step

Nothing here goes by names: a registration method is any method that stores a parameter into an
attribute of ``self``, and a run method any method whose loop trains a model (a forward whose
value reaches a backward pass, and a backward or optimizer step in the loop) and calls what an
attribute holds. The summary records, per method, the parameters it stores (``stores``) and, for
a run method, its training loop (``trainer_loop``): which model it trains (an attribute of
``self`` or a parameter), the modes the model is switched to before the loop or inside it before
the forward (read from the flow's modes at that forward), and the stored callables called in the
loop, before or after the forward. ``frameworks.py`` writes that loop out in the files that
build such a trainer, with their callbacks in it.
"""

from __future__ import annotations

import ast
from typing import Dict, List, Optional, Tuple

from . import torch_api as api
from .flow import EVAL, TRAIN, UNKNOWN_TAG
from .names import arguments_by_parameter, dotted
from .structure import CallSite, FunctionInfo, Loop

# A key of a stored callable: None (the attribute itself, or a list of them), ["param", name]
# (the method's parameter: the caller's argument decides), ["const", text], ["unknown", ""].
Key = Optional[List[str]]


def _key(node: ast.AST, params) -> Key:
    if isinstance(node, ast.Name) and node.id in params:
        return ["param", node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return ["const", node.value]
    return ["unknown", ""]


def _self_slot(node: ast.AST, params) -> Tuple[Optional[str], Key]:
    """The attribute of ``self`` (and the key within it) that ``node`` names: ``self.cbs``,
    ``self.cbs[event]``, ``self.cbs.setdefault(event, [])``, ``self.cbs.get(event, [])``."""
    key: Key = None
    if isinstance(node, ast.Subscript):
        key, node = _key(node.slice, params), node.value
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr in ("setdefault", "get") and node.args:
        key, node = _key(node.args[0], params), node.func.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr, key
    return None, None


def _stored_parameter(value: ast.AST, params) -> Optional[str]:
    """The parameter a stored value is: ``model``, ``[callback]``, ``model.to(device)``."""
    if isinstance(value, (ast.List, ast.Tuple)) and len(value.elts) == 1:
        value = value.elts[0]
    value = api.module_chained_from(value)
    if isinstance(value, ast.Name) and value.id in params:
        return value.id
    return None


def stored_parameters(function: FunctionInfo) -> List[list]:
    """[parameter, attribute, key] for each parameter a method stores into an attribute of
    ``self``: ``self.model = model``, ``self.callbacks[onevent] = [callback]``,
    ``self.callbacks[onevent].append(callback)``."""
    if function.cls is None or not function.params:
        return []
    known = getattr(function, "_stored_parameters", None)
    if known is not None:
        return known
    params = set(function.params[1:])
    found = function._stored_parameters = []
    for target, value in function.assignments():
        param = _stored_parameter(value, params)
        attribute, key = _self_slot(target, params) if param else (None, None)
        if attribute:
            found.append([param, attribute, key])
    for site in function.sites:
        if site.method in ("append", "add", "insert") and site.node.args and \
                isinstance(site.node.func, ast.Attribute):
            param = _stored_parameter(site.node.args[-1], params)
            attribute, key = _self_slot(site.node.func.value, params) if param else (None, None)
            if attribute:
                found.append([param, attribute, key])
    return found


def _called_slots(function: FunctionInfo, within: Optional[Loop] = None) -> List[Tuple[CallSite, str, Key]]:
    """(call, attribute, key) for each call of a callable that an attribute of ``self`` holds:
    ``for callback in self.callbacks.get(onevent, []): callback(self)``, ``self.hook(self)``."""
    params = set(function.params[1:]) if function.cls is not None else set()
    found = []
    for loop in function.loops:
        node = loop.node
        if not isinstance(node, (ast.For, ast.AsyncFor)) or not isinstance(node.target, ast.Name):
            continue
        iterable = node.iter
        if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) and \
                iterable.func.attr == "values" and not iterable.args:
            iterable = iterable.func.value
        attribute, key = _self_slot(iterable, params)
        if not attribute:
            continue
        for site in loop.sites:
            if site.callee == node.target.id and (within is None or site in within.sites):
                found.append((site, attribute, key))
    for site in function.sites:
        if site.receiver == "self" and site.target is None and site.method and site.network is None and \
                (within is None or site in within.sites) and \
                _stores_anywhere(function, site.method):
            found.append((site, site.method, None))
    return found


def _stores_anywhere(function: FunctionInfo, attribute: str) -> bool:
    """A method of the class stores a parameter into ``self.<attribute>``: it holds what the
    class's users hand it."""
    return any(slot[1] == attribute for method in function.cls.methods.values()
               for slot in stored_parameters(method))


def _callback_calls(loop: Loop, function: FunctionInfo) -> List[Tuple[CallSite, str, Key]]:
    """The calls of stored callables a loop makes, itself or through a method of its class
    (``self.trigger_callbacks('on_batch_end')``): (the call in the loop, attribute, key), the
    key of a trigger method's parameter read from the constant the loop passes."""
    found = list(_called_slots(function, loop))
    for site in loop.sites:
        target = site.target
        if target is None or target.cls is not function.cls or site.receiver != "self" or target is function:
            continue
        for _, attribute, key in _called_slots(target):
            if key is not None and key[0] == "param":
                argument = dict(arguments_by_parameter(site.node, target.params[1:])).get(key[1])
                key = _key(argument, ()) if argument is not None else ["unknown", ""]
            found.append((site, attribute, key))
    return found


def _trained_model(function: FunctionInfo, key: str) -> Optional[str]:
    """What the forward's model is, seen from the method's callers: ``self.model`` (also through
    ``model = self.model``), or a parameter of the method."""
    root, _, rest = key.partition(".")
    if root == "self":
        return key
    if root in function.params:
        return key if function.params[0] != root or function.cls is None else None
    values = [value for target, value in function.assignments()
              if isinstance(target, ast.Name) and target.id == root]
    origins = set()
    for value in values:
        origins.add(dotted(api.module_chained_from(value)))
    if len(origins) != 1:
        return None
    origin = origins.pop()
    if not origin or not origin.startswith("self."):
        return None
    return origin + ("." + rest if rest else "")


def trainer_loop(model, function: FunctionInfo) -> Optional[dict]:
    """The training loop of a run method that calls stored callables between its steps (see the
    module's docstring), or None."""
    if function.cls is None or function.cls.is_module or not function.params or \
            not model.function_trains(function):
        return None
    for loop in function.loops:
        if loop.parent is not None or not model.loop_trains(loop):
            continue
        callbacks = _callback_calls(loop, function)
        if not callbacks:
            continue
        forwards = [site for site in loop.sites if site.network and site.function is function
                    and model.reaches_training(site)]
        trained = {_trained_model(function, site.network) for site in forwards}
        if len(trained) != 1 or None in trained:
            continue  # one model, which the callers can name
        forward = forwards[0]
        modes = []
        for mode, line in sorted(model.mode_of(forward, forward.network) or (), key=str):
            if mode in (TRAIN, EVAL) and line:
                inside = loop.node.lineno <= line <= (loop.node.end_lineno or line)
                modes.append([mode, "loop" if inside else "before"])
            elif [UNKNOWN_TAG, "before"] not in modes:
                # on some path the mode is the caller's, or unknown: the switches before the
                # loop may not run
                modes.append([UNKNOWN_TAG, "before"])
        return {
            "model": trained.pop(),
            "modes": modes,
            "callbacks": [[attribute, key, "before" if site.index < forward.index else "after"]
                          for site, attribute, key in callbacks],
            "at_least_once": loop.runs_at_least_once,
        }
    return None


def _is_key(value) -> bool:
    return value is None or (type(value) is list and len(value) == 2 and all(type(v) is str for v in value))


def is_stores(value) -> bool:
    return type(value) is list and all(
        type(item) is list and len(item) == 3 and type(item[0]) is str and type(item[1]) is str
        and _is_key(item[2]) for item in value)


def is_trainer_loop(value) -> bool:
    if value is None:
        return True
    if type(value) is not dict or set(value) != {"model", "modes", "callbacks", "at_least_once"}:
        return False
    return type(value["model"]) is str and type(value["at_least_once"]) is bool and \
        type(value["modes"]) is list and all(
            type(m) is list and len(m) == 2 and m[0] in (TRAIN, EVAL, UNKNOWN_TAG) and m[1] in ("before", "loop")
            for m in value["modes"]) and \
        type(value["callbacks"]) is list and all(
            type(c) is list and len(c) == 3 and type(c[0]) is str and _is_key(c[1])
            and c[2] in ("before", "after") for c in value["callbacks"])


def keys_match(stored: Key, called: Key) -> bool:
    """A callable stored under ``stored`` is called where the loop calls ``called``: the same
    constant, or no key on both sides; a key nobody can read matches any."""
    if stored is None or called is None:
        return stored is None and called is None
    if "unknown" in (stored[0], called[0]):
        return True
    return stored == called


def bound_keys(record: list, arguments: Dict[str, ast.AST]) -> Key:
    """The key of a ``stores`` record at one call: a parameter's key read from the argument."""
    key = record[2]
    if key is not None and key[0] == "param":
        argument = arguments.get(key[1])
        return _key(argument, ()) if argument is not None else ["unknown", ""]
    return key
