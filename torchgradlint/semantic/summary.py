"""Module summaries: what other files need to know about a module, and how a file uses them.

``summarize(model)`` condenses a module's SemanticModel into plain JSON data: for each function
whether it disables autograd (a no-grad decorator or context factory), the grad mode its
decorators give its body, whether it trains, the modes it leaves the models it is passed in
(keyed by parameter paths, also to the elements of a dict or list: ``nets.['snet']``),
whether it returns a model, which parameters reach a backward pass; which classes are
``nn.Module``s and whether they hold Dropout/BatchNorm; and every call it makes into other
modules of the project with the grad mode and model modes at the call.

``ExternalModule`` turns a summary back into stub functions and classes that the analysis of
another file uses exactly as it uses in-file ones.
"""

from __future__ import annotations

import ast
import os
from functools import partial
from typing import Dict, List, Optional

from . import torch_api as api
from .flow import PASSED_IN, TRAIN, UNKNOWN, UNKNOWN_MODE, lookup_mode
from .names import dotted
from .trainers import is_stores, is_trainer_loop, stored_parameters, trainer_loop
from .usage import ESCAPES

SUMMARY_FORMAT = 18  # part of the cache key: bump it when summaries change shape or meaning


def _mode_to_json(value, keep_lines: bool = False) -> Optional[list]:
    """A mode set as JSON; the lines that set a mode are kept for call records (they say where
    the caller switched the model) and dropped from function effects (the caller's call line
    replaces them)."""
    if value is None:
        return None
    out = []
    for mode, detail in sorted(value, key=str):
        out.append([mode, detail if mode == PASSED_IN or keep_lines else None])
    return out


def mode_from_json(value):
    if value is None:
        return None
    return frozenset((mode, detail) for mode, detail in value)


def _disables_grad(model, function) -> bool:
    return model.flow.wraps_no_grad(function) and not model.function_trains(function)


def summarize(model, module_name: str) -> dict:
    functions: Dict[str, dict] = {}
    handed_with_grad = params_handed_to_forwards(model, with_grad=True)
    handed = params_handed_to_forwards(model, with_grad=False)
    for function in model.functions:
        if function.is_module_scope or getattr(function, "external", False):
            continue
        if function.parent is not None and not function.parent.is_module_scope or \
                getattr(function, "framework_loop", False):
            continue  # nested functions are not importable
        decorated = model.flow.grad_set_by(function)
        functions[function.qualname] = {
            "params": list(function.params),
            "method": function.cls is not None,
            "no_grad_helper": _disables_grad(model, function),
            "decorated_grad": sorted(decorated) if decorated else None,
            "decorated_eval": model.facts.switched_to_eval_by_a_decorator(function),
            "switches_to_eval": model.facts.wraps_with_eval(function),
            "trains": model.function_trains(function),
            "effects": {key: _mode_to_json(value)
                        for key, value in model.flow.effects.get(id(function), {}).items()},
            "returns_model": model.facts.returns_model.get(id(function)),
            "returns_dropout_or_batchnorm": model.facts.returns_composition.get(id(function)),
            "returned_elements": _returned_elements(model, function),
            "returned_class": _returned_class(model, function),
            "forwards_to": _forwarded_to(model, function),
            "return_mode": _mode_to_json(model.flow.return_modes.get(id(function))),
            "return_element_modes": [_mode_to_json(value) for value in
                                     model.flow.return_element_modes.get(id(function)) or ()],
            "params_run_as_models": sorted(set(_params_run_as_models(model, function)) |
                                           set(handed_with_grad.get(id(function), ()))),
            "params_run_forward": sorted(set(_params_run_forward(function)) | set(handed.get(id(function), ()))),
            "params_reaching_training": model.dataflow.params_training_inside(function)
            if model.anything_trains else [],
            "stores": stored_parameters(function),
            "trainer_loop": trainer_loop(model, function),
        }
    classes = {}
    for name, info in model.classes.items():
        if getattr(info, "external", False):
            continue
        classes[name] = {"is_module": info.is_module,
                         "module_by_base_name": id(info) in model.facts.modules_by_base_name,
                         "bases": _base_classes(model, info),
                         "dropout_or_batchnorm": info.composition(),
                         "freezes_itself": model.facts.class_freezes_itself(info),
                         "holds_no_parameters": info.is_module and model.class_holds_no_parameters(info),
                         "loads_no_weights": info.is_module and model.class_loads_no_weights(info)}
    imports = sorted(model.linker.imported_modules) if model.linker is not None else []
    return {"format": SUMMARY_FORMAT, "module": module_name, "functions": functions,
            "classes": classes, "calls": _calls_out(model), "imports": imports}


def _returned_elements(model, function) -> Optional[list]:
    """Per place of the tuple the function returns: [origin (None: no model), holds
    Dropout/BatchNorm, the class it builds] where a model or an object of a project class
    stands, else None. A class is [module, name]: "" for this module, else the module as this
    one imports it (``.respace``), resolved by the reader."""
    facts = model.facts.returns_elements.get(id(function))
    if function.is_module_scope:
        return None
    returns = [value for value in function.returned_values if type(value) is ast.Tuple]
    if not returns:
        return None
    width = len(returns[0].elts)
    if any(len(value.elts) != width for value in returns) or facts and len(facts) != width:
        return None
    elements = []
    for place in range(width):
        refs: Optional[set] = set()
        for value in returns:
            built = _classes_built_by(model, function, value.elts[place])
            refs = refs | built if built is not None and refs is not None else None
        # one class, or the classes of every binding (``model = DETR(...)``, then under a
        # condition ``model = DETRsegm(model)``): the reader knows then that a module is fresh
        ref = (list(next(iter(refs))) if len(refs) == 1 else sorted(list(r) for r in refs)) if refs else None
        fact = facts[place] if facts else None
        if fact is not None:
            elements.append([fact[0], fact[2], ref])
        elif ref is not None:
            elements.append([None, None, ref])
        else:
            elements.append(None)
    return elements if any(elements) else None


def _classes_built_by(model, function, expr: ast.AST) -> Optional[set]:
    """The project classes an expression may evaluate to an instance of, as ``class_built_by``
    names them: one, or one per binding of a name bound several times; None if unsure."""
    if type(expr) is ast.Name:
        values = model.facts.name_bindings(function).get(expr.id, ())
        if len(values) > 1:
            refs = [class_built_by(model, function, value, 1) for value in values]
            return None if None in refs else {tuple(ref) for ref in refs}
    ref = class_built_by(model, function, expr)
    return {tuple(ref)} if ref else None


def _returned_class(model, function) -> Optional[List[str]]:
    """The project class of the one object every return builds (``return SpacedDiffusion(...)``
    in ``create_diffusion``), as ``class_built_by`` names it; None for a tuple or if unsure."""
    returns = function.returned_values
    if not returns or function.is_module_scope or any(type(value) is ast.Tuple for value in returns):
        return None
    refs = {tuple(ref) if ref else None for ref in (class_built_by(model, function, value) for value in returns)}
    return list(refs.pop()) if len(refs) == 1 and None not in refs else None


def _forwarded_to(model, function) -> Optional[List[str]]:
    """``def build_model(args): return build(args)`` with ``build`` imported (``from .detr
    import build``): [module as imported here, name]. The reader follows it to learn what the
    function returns, which a summary computed from this file alone cannot know."""
    returns = function.returned_values
    if len(returns) != 1 or type(returns[0]) is not ast.Call or function.is_module_scope:
        return None
    text = dotted(returns[0].func) or ""
    if not text or not model.imports.is_imported(text.split(".")[0]):
        return None
    module, _, name = (model.imports.resolve(returns[0].func) or "").rpartition(".")
    if not module or module.lstrip(".").split(".")[0] in api.TORCH_ROOTS:
        return None
    return [module, name]


def class_built_by(model, function, expr: ast.AST, depth: int = 0) -> Optional[List[str]]:
    """The project class whose instance an expression evaluates to, followed through names
    bound once and through this module's functions that return one: [module, name], module ""
    for this module, else as imported here (the reader resolves it). None if it cannot tell."""
    expr = api.module_chained_from(expr)  # ``UNetModel(...).to(device)``
    if depth > 3:
        return None
    if type(expr) is ast.Name:
        values = model.facts.name_bindings(function).get(expr.id, ())
        return class_built_by(model, function, values[0], depth + 1) if len(values) == 1 else None
    if type(expr) is not ast.Call:
        return None
    text = dotted(expr.func) or ""
    own = model.classes.get(text)
    if own is not None and not getattr(own, "external", False):
        return ["", text]
    if "." not in text:
        callee = model.module_function.nested.get(text)
        if callee is not None and not callee.external:
            returned = callee.returned_values
            refs = {tuple(ref) if ref else None
                    for ref in (class_built_by(model, callee, value, depth + 1) for value in returned)}
            return list(refs.pop()) if len(refs) == 1 and None not in refs else None
    qualified = model.imports.resolve(expr.func) or ""
    module, _, name = qualified.rpartition(".")
    if module and api.is_class_like(name) and module.lstrip(".").split(".")[0] not in api.TORCH_ROOTS and \
            model.imports.is_imported(text.split(".")[0]):
        return [module, name]
    return None


def _base_classes(model, info) -> List[List[str]]:
    """A class's bases that the project may define, as ``class_built_by`` spells classes."""
    bases = []
    for base in info.bases:
        if base in model.classes and not getattr(model.classes[base], "external", False):
            bases.append(["", base])
            continue
        qualified = model.imports.qualify(base) if base else None
        module, _, name = (qualified or "").rpartition(".")
        if module and module.lstrip(".").split(".")[0] not in api.TORCH_ROOTS:
            bases.append([module, name])
    return bases


def _params_run_as_models(model, function) -> List[str]:
    """Parameters the function runs forward itself, with autograd on (``netD(fake)`` in a loss
    helper): for its callers, a call of it is a forward pass of the model they pass."""
    return sorted({site.network.split(".")[0] for site in function.sites
                   if site.network is not None and site.network.split(".")[0] in function.params
                   and model.grad_may_be_on(site)})


def _params_run_forward(function) -> List[str]:
    """Parameters (``self`` too) the function runs forward, with autograd on or off: for the
    module mode, ``model.generate(x)`` of a project class is a forward of ``model``."""
    return sorted({site.network.split(".")[0] for site in function.sites
                   if site.network is not None and site.network.split(".")[0] in function.params})


def params_handed_to_forwards(model, with_grad: bool) -> Dict[int, List[str]]:
    """id(function) -> the parameters it hands down a chain of this module's functions to one
    that runs them forward: ``p_sample_loop(model)`` -> ``p_sample_loop_progressive`` ->
    ``p_sample`` -> ``p_mean_variance``'s ``model(x, t)``; ``self`` of a method that calls one
    that runs its layers (``translate_sentence`` -> ``self._model_decode``).
    For its callers in other modules, a call of it runs the model they pass. ``with_grad``:
    only where autograd may be on, at the forward and at every call down the chain."""
    handed: Dict[int, set] = {}
    for function in model.functions:
        if not function.external:
            handed[id(function)] = {root for root in (site.network.split(".")[0] for site in function.sites
                                                      if site.network is not None and
                                                      (not with_grad or model.grad_may_be_on(site)))
                                    if root in function.params}
    changed = True
    while changed:
        changed = False
        for function in model.functions:
            found = handed.get(id(function))
            if found is None:
                continue
            for site in function.sites:
                if with_grad and not model.grad_may_be_on(site):
                    continue
                for target in site.targets():
                    runs = handed.get(id(target))
                    if not runs:
                        continue
                    if site.receiver == "self" and "self" in runs and "self" in function.params and \
                            "self" not in found:
                        found.add("self")  # ``self._model_decode(...)`` runs ``self.model``
                        changed = True
                    for param, argument in model.facts.bind_arguments(site, target):
                        root = dotted(argument)
                        if param in runs and root in function.params and root not in found:
                            found.add(root)
                            changed = True
    return {key: sorted(value) for key, value in handed.items() if value}


def _passed_mode(model, site, key: str):
    """The mode of ``key`` at a call into another module. Where it is unknown only because
    the calling function was passed it (``evaluate_model(self, ...)`` in a method that no code
    of this module calls), the symbolic mode of the summarizing pass (``("=", "self")``): the
    callee resolves it through the calls into the calling function."""
    final = model.mode_of(site, key)
    if final is not None and UNKNOWN not in final or site.function.is_module_scope:
        return final
    symbolic = lookup_mode(model.flow.symbolic_site_modes.get(id(site), {}), key)
    if symbolic and UNKNOWN not in symbolic and any(mode == PASSED_IN for mode, _ in symbolic):
        return symbolic
    return final


def _composition(model, site, key: Optional[str]) -> Optional[bool]:
    """Whether the model passed as ``key`` holds Dropout/BatchNorm (None: not known, or no
    model)."""
    if not key or not model.facts.is_model(site.function, key):
        return None
    return model.known_composition(site.function, key)


def bind_record(call: dict, params: List[str], method: bool, positional: str = "args",
                keywords: str = "kwargs", receiver: Optional[str] = "receiver") -> Dict[str, object]:
    """What a call record gives each parameter of its callee (JSON, None where it does not
    know): by default the modes, ``self`` and its attributes from the receiver of a method
    called on an object; the fields named say which record fields to read."""
    bound: Dict[str, object] = {}
    if method and params:
        params = params[1:]  # called on an instance: ``gan.visualize_results()``
        for suffix, value in (call.get(receiver) or {}).items() if receiver else ():
            bound["self" + suffix] = value
    bound.update(zip(params, call.get(positional, ())))
    bound.update((name, value) for name, value in call.get(keywords, {}).items() if name in params)
    return bound


def _calls_out(model) -> List[dict]:
    """Calls into imported project code, seen from here: the grad mode and the modes of the
    models passed, whether the call is evaluation code, whether its result trains."""
    calls = []
    for site in model.sites():
        targets = [t.external_name for t in site.targets() if getattr(t, "external_name", None)]
        if not targets:
            continue
        # A model handed to an object's method is judged here, at the call (``handed_to``): its
        # mode does not travel to the called module, which would judge the forward again.
        judged_here = site.network if site.handed_to else None
        positional = []
        for arg in site.node.args:
            key = dotted(arg)
            positional.append(_mode_to_json(_passed_mode(model, site, key), True)
                              if key and key != judged_here else None)
        keywords = {k.arg: _mode_to_json(_passed_mode(model, site, dotted(k.value)), True)
                    for k in site.node.keywords if k.arg and dotted(k.value) and dotted(k.value) != judged_here}
        receiver = {}
        if site.target.cls is not None and site.receiver:
            # ``gan.visualize_results()``: the modes of ``gan`` and its attributes, as ``self``'s
            modes = model.flow.site_modes.get(id(site), {})
            receiver = {key[len(site.receiver):]: _mode_to_json(_passed_mode(model, site, key), True)
                        for key in modes
                        if key == site.receiver or key.startswith(site.receiver + ".")}
        feeds = model.feeds_training(site)
        # A result handed on out of sight (returned to this module's own callers, stored):
        # the callee cannot tell it is not used for training.
        escapes = not feeds and not site.is_statement and (
            model.output_fate(site, True) == ESCAPES if model.anything_trains
            else not site.function.is_module_scope)  # no def-use graph to build: it may be returned
        record = {
            "arg_compositions": [_composition(model, site, dotted(arg)) for arg in site.node.args],
            "kwarg_compositions": {k.arg: _composition(model, site, dotted(k.value))
                                   for k in site.node.keywords if k.arg and dotted(k.value)},
            "caller_function": site.function.qualname,
            "result_escapes": escapes,
            "receiver": receiver,
            "line": site.line,
            "grad": sorted(model.grad_at(site)),
            "args": positional,
            "kwargs": keywords,
            "feeds_training": feeds,
            "trains_through_result": model.reaches_training(site),
            "evaluation": None if feeds else model._call_evidence(site),
        }
        calls.extend(dict(record, target=target) for target in targets)
    return calls


# -- the schema a summary read back from disk must match ------------------------------------
# A cache entry is data from disk: anything of another shape (an older format, a damaged or
# hand-edited file) is refused as a whole, and the summary is computed again.

GRAD_MODES = frozenset({"on", "off", "dynamic"})


def _is_list_of(value, kinds) -> bool:
    return type(value) is list and all(type(item) in kinds for item in value)


def _is_class_ref(value) -> bool:
    return type(value) is list and len(value) == 2 and all(type(part) is str for part in value)


def _is_str_list(value) -> bool:
    return _is_list_of(value, (str,))


def _is_mode(value, allow_none: bool = True) -> bool:
    """A mode set as ``_mode_to_json`` writes it: [[mode, detail], ...]."""
    if value is None:
        return allow_none
    return type(value) is list and all(
        type(pair) is list and len(pair) == 2 and type(pair[0]) is str
        and type(pair[1]) in (str, int, type(None)) for pair in value)


def _has_exactly(value, fields: Dict[str, object]) -> bool:
    if type(value) is not dict or set(value) != set(fields):
        return False
    return all(check(value[name]) for name, check in fields.items())


# What a forwarding function (``return build(args)``) takes over from the function it calls.
FORWARDED_RETURN_FACTS = ("returns_model", "returns_dropout_or_batchnorm", "returned_elements",
                          "return_mode", "return_element_modes")


def _optional(*kinds):
    return lambda value: value is None or type(value) in kinds


def _is(*kinds):
    return lambda value: type(value) in kinds


FUNCTION_FIELDS = {
    "params": _is_str_list,
    "method": _is(bool),
    "no_grad_helper": _is(bool),
    "decorated_grad": lambda v: v is None or (_is_str_list(v) and set(v) <= GRAD_MODES),
    "decorated_eval": _is(bool),
    "switches_to_eval": _is(bool),
    "trains": _is(bool),
    "effects": lambda v: type(v) is dict and all(type(k) is str and _is_mode(m) for k, m in v.items()),
    "returns_model": _optional(str, bool),
    "returns_dropout_or_batchnorm": _optional(bool),
    "returned_elements": lambda v: v is None or type(v) is list and all(
        item is None or (type(item) is list and len(item) == 3 and (item[0] is None or type(item[0]) is str) and
                         item[1] in (None, True, False) and (item[2] is None or _is_class_ref(item[2]) or (
                             type(item[2]) is list and len(item[2]) > 1 and all(_is_class_ref(r) for r in item[2]))))
        for item in v),
    "forwards_to": lambda v: v is None or _is_class_ref(v),
    "returned_class": lambda v: v is None or _is_class_ref(v),
    "return_mode": _is_mode,
    "return_element_modes": lambda v: type(v) is list and all(_is_mode(item) for item in v),
    "params_run_as_models": _is_str_list,
    "params_run_forward": _is_str_list,
    "params_reaching_training": _is_str_list,
    "stores": is_stores,
    "trainer_loop": is_trainer_loop,
}
CLASS_FIELDS = {
    "is_module": _is(bool),
    "module_by_base_name": _is(bool),
    "bases": lambda v: type(v) is list and all(_is_class_ref(item) for item in v),
    "dropout_or_batchnorm": _optional(bool),
    "freezes_itself": _is(bool),
    "holds_no_parameters": _is(bool),
    "loads_no_weights": _is(bool),
}
CALL_FIELDS = {
    "target": lambda v: type(v) is str and ":" in v,
    "caller_function": _is(str),
    "arg_compositions": lambda v: type(v) is list and all(item is None or type(item) is bool for item in v),
    "kwarg_compositions": lambda v: type(v) is dict and all(
        type(k) is str and (m is None or type(m) is bool) for k, m in v.items()),
    "result_escapes": _is(bool),
    "receiver": lambda v: type(v) is dict and all(type(k) is str and _is_mode(m) for k, m in v.items()),
    "line": _is(int),
    "grad": lambda v: _is_str_list(v) and set(v) <= GRAD_MODES,
    "args": lambda v: type(v) is list and all(_is_mode(item) for item in v),
    "kwargs": lambda v: type(v) is dict and all(type(k) is str and _is_mode(m) for k, m in v.items()),
    "feeds_training": _is(bool),
    "trains_through_result": _is(bool),
    "evaluation": _optional(str, bool),
}


def is_valid_summary(summary) -> bool:
    """``summary`` has exactly the shape ``summarize`` gives (or the empty summary of a module
    that cannot draw a finding): every key, every type, nothing else."""
    if type(summary) is not dict:
        return False
    functions, classes, calls = summary.get("functions"), summary.get("classes"), summary.get("calls")
    if type(functions) is not dict or type(classes) is not dict or type(calls) is not list:
        return False
    if type(summary.get("module")) is not str or type(summary.get("format")) is not int:
        return False
    if not set(summary) <= {"format", "module", "functions", "classes", "calls", "imports"}:
        return False
    if "imports" in summary and not _is_str_list(summary["imports"]):
        return False
    return all(type(name) is str and _has_exactly(facts, FUNCTION_FIELDS)
               for name, facts in functions.items()) and \
        all(type(name) is str and _has_exactly(facts, CLASS_FIELDS) for name, facts in classes.items()) and \
        all(_has_exactly(call, CALL_FIELDS) for call in calls)


def _run_by_torch_or_a_framework(function) -> bool:
    """An ``nn.Module``'s ``forward`` (or ``__call__``), which other files run as ``model(x)``
    (a forward of their own model, never a call into this file), or a Lightning step hook, which
    runs in the state the Trainer gives it whoever else calls it."""
    if function.cls is None or not function.cls.is_module:
        return False
    return function.name in ("forward", "__call__") or \
        function.name in api.LIGHTNING_EVAL_HOOKS or function.name in api.LIGHTNING_TRAIN_HOOKS


def _words_of_a_call(function) -> tuple:
    """The words the text of a call of ``function`` from another module holds: its name, and
    for a method the name of its class, which the caller imports to build the object."""
    if function.cls is None:
        return (function.name,)
    if function.name == "__init__":
        return (function.cls.name,)
    return (function.cls.name, function.name)


def _joined_composition(classes) -> Optional[bool]:
    """Whether the model one of ``classes`` builds holds Dropout/BatchNorm: yes if one does,
    no if none does, else unknown (the summarizing module could not see every class)."""
    found = [cls.composition() if cls is not None and cls.is_module else None for cls in classes]
    return True if True in found else None if None in found else False


def _built_fresh(mode, cls, fresh_modules: bool = False):
    """The mode of a returned object whose summarizing module could not see its class (built
    from an imported class): a module class of the project, built there, trains. When each
    binding builds a module of the project (``fresh_modules``), the paths whose mode the
    summarizing module could not tell train too."""
    if cls is not None and cls.is_module and mode == UNKNOWN_MODE:
        return frozenset({(TRAIN, None)})
    if fresh_modules and mode is not None and UNKNOWN_MODE <= mode:
        return (mode - UNKNOWN_MODE) | frozenset({(TRAIN, None)})
    return mode


def _calls_methods_it_does_not_define(info) -> bool:
    """A method of the class calls ``self.name(...)`` where ``name`` is neither a method of the
    class nor an attribute it assigns (``self.conv1 = ...``): a method it inherits."""
    assigned = None
    for method in info.methods.values():
        for site in method.sites:
            if site.receiver != "self" or not site.method or site.method in info.methods or \
                    site.method in api.NN_MODULE_METHODS:
                continue
            if assigned is None:
                assigned = {node.attr for node in ast.walk(info.node) if type(node) is ast.Attribute and
                            type(node.ctx) is ast.Store and type(node.value) is ast.Name and node.value.id == "self"}
            if site.method not in assigned:
                return True
    return False


def _external_class(name: str, written: str, facts: dict):
    """A class of another project module, as its summary describes it."""
    from .structure import ClassInfo

    node = ast.ClassDef(name=name, bases=[], keywords=[], body=[], decorator_list=[])
    info = ClassInfo(node, written, [])
    info.external = True
    info.is_module = bool(facts.get("is_module"))
    info.has_dropout_or_batchnorm = facts.get("dropout_or_batchnorm")
    info.freezes_itself = bool(facts.get("freezes_itself"))
    info.holds_no_parameters = bool(facts.get("holds_no_parameters"))
    info.loads_no_weights = bool(facts.get("loads_no_weights"))
    return info


class ExternalLinker:
    """Installs, in a file's semantic model, stubs for the project functions and classes it
    imports (from their summaries), and the calls other modules make into its functions."""

    def __init__(self, analysis, project, for_summary: bool):
        import os

        self.analysis = analysis
        self.project = project
        self.for_summary = for_summary
        self.path = analysis.filename
        self.module = project.module_of(self.path)
        self.is_package = os.path.basename(self.path) == "__init__.py"
        self.stubs: Dict[str, object] = {}  # dotted callee as written -> stub FunctionInfo
        self.imported_modules: set = set()
        self.presets: List[tuple] = []  # (stub, summary of the function)
        self._runs_models: Optional[set] = None  # ids of functions whose call closure runs a model
        self._passed_to_callers: Dict[tuple, Optional[List[tuple]]] = {}  # passed_to_the_caller's answers
        self._classes_of_refs: Dict[tuple, object] = {}  # (file, class name) -> class_of_ref's answer

    # -- imports ------------------------------------------------------------------------------
    def link(self) -> None:
        members: Dict[str, tuple] = {}  # local name -> (module, name) as imported
        modules: Dict[str, str] = {}
        for local, target in self.analysis.imports.aliases.items():
            absolute = self.project.absolute_module(self.module, target, self.is_package)
            if not absolute or absolute.split(".")[0] in api.TORCH_ROOTS:
                continue
            if self.project.path_of(absolute, self.path):
                modules[local] = absolute
                continue
            owner, _, name = absolute.rpartition(".")
            if owner and self.project.path_of(owner, self.path):
                members[local] = (owner, name)
        stars = [self.project.absolute_module(self.module, star, self.is_package)
                 for star in self.analysis.imports.star_modules]
        if not members and not modules and not stars:
            return
        wanted = set()

        def want(name: Optional[str]) -> None:
            if not name:
                return
            if name in members:
                wanted.add((name, members[name]))
            elif name.split(".")[0] in members:
                head = name.split(".")[0]  # ``GPT.from_pretrained(...)``: the class GPT
                wanted.add((head, members[head]))
            elif name.rpartition(".")[0] in modules:
                wanted.add((name, (modules[name.rpartition(".")[0]], name.rpartition(".")[2])))
            elif stars and "." not in name and name not in self._defined_here():
                wanted.add((name, ("*", name)))  # perhaps from ``from utils import *``

        for site in self.analysis.sites():
            want(site.callee)
        for info in list(self.analysis.classes.values()):
            if info.node.bases and _calls_methods_it_does_not_define(info):
                for base in info.node.bases:  # ``class Agent(Base_Agent)``: its inherited methods
                    want(dotted(base))
        for function in self.analysis.functions:
            for decorator in function.decorators:
                want(dotted(decorator.func if isinstance(decorator, ast.Call) else decorator))
        for item, _ in self.analysis.structure.with_items:
            want(dotted(item.func if isinstance(item, ast.Call) else item))
        for written, (owner, name) in sorted(wanted):
            candidates = stars if owner == "*" else [owner]
            for module in candidates:
                # Through re-exports: ``from pkg import f`` where pkg/__init__.py imports f.
                found = self.project.resolve_member(module, name, self.path)
                if found is not None:
                    source, name = found
                    self.imported_modules.add(self.project.relative(source))
                    self._install(written, source, name)
                    break
        for stub in list(self.stubs.values()):
            self._resolve_returned_classes(stub)

    def _resolve_returned_classes(self, stub) -> None:
        """The project classes a stub's function returns objects of (``model, diffusion =
        create_model_and_diffusion()``: a ``UNetModel``, a ``SpacedDiffusion``), as classes
        of this file, with their methods and bases."""
        info = stub.external_facts or {}
        owner = stub.external_name.partition(":")[0]
        elements = info.get("returned_elements") or ()
        stub.element_classes = tuple(
            self.class_of_ref(owner, element[2]) if element and _is_class_ref(element[2]) else None
            for element in elements)
        # a place whose bindings build different project classes (``DETR``, ``DETRsegm``)
        stub.element_alternatives = tuple(
            [self.class_of_ref(owner, ref) for ref in element[2]]
            if element and element[2] and not _is_class_ref(element[2]) else None
            for element in elements)
        # ... every one a module: a fresh module whichever is built
        stub.element_fresh_modules = tuple(
            classes is not None and all(cls is not None and cls.is_module for cls in classes)
            for classes in stub.element_alternatives)
        stub.returned_class = self.class_of_ref(owner, info.get("returned_class"))

    def class_of_ref(self, owner: str, ref: Optional[list], depth: int = 0):
        """The class a summary names as [module, name] -- "" for the summarized module at
        ``owner`` (a project-relative path), else as that module imports it -- as a class of
        this file (its methods as stubs, its project bases too). None if it cannot be read."""
        if not ref or depth > 3:
            return None
        owner_path = self.project._confined(owner)
        if owner_path is None:
            return None
        module, name = ref
        if module:
            absolute = self.project.absolute_module(
                self.project.module_of(owner_path), module, os.path.basename(owner_path) == "__init__.py")
            found = self.project.resolve_member(absolute, name, owner_path)
            if found is None:
                return None
            owner_path, name = found
        key = (os.path.abspath(owner_path) if module else owner_path, name)
        if key in self._classes_of_refs:
            return self._classes_of_refs[key]
        self._classes_of_refs[key] = None  # a cycle of bases ends here
        summary = self.project.summary(owner_path, shallow=True)
        facts = (summary or {}).get("classes", {}).get(name)
        if not facts:
            return None
        relative = self.project.relative(owner_path)
        info = _external_class(name, name, facts)
        for qualname, method_facts in summary.get("functions", {}).items():
            owner_name, _, method = qualname.partition(".")
            if owner_name == name and method and "." not in method and method_facts.get("method"):
                info.methods[method] = self._stub(f"<{relative}:{name}>.{method}", method, relative,
                                                  qualname, method_facts, info)
        bases = [self.class_of_ref(relative, list(ref), depth + 1) for ref in facts.get("bases", ())]
        info.base_classes = [base for base in bases if base is not None]
        if facts.get("module_by_base_name") and bases and None not in bases and \
                not any(base.is_module for base in bases):
            info.is_module = False  # ``SpacedDiffusion(GaussianDiffusion)``: no model after all
        self._classes_of_refs[key] = info
        return info

    def _defined_here(self) -> set:
        """Module-level names the file binds itself (a star import does not override them)."""
        from .structure import bound_names

        module = self.analysis.module_function
        return bound_names(module) | set(self.analysis.classes) | set(self.analysis.imports.aliases)

    def _install(self, written: str, source: str, name: str) -> None:
        owner = self.project.relative(source)
        # What the imported module's own file says: enough for the functions and classes a
        # file calls (on the study's 53 repositories, reading their imports too changed no
        # finding, and cost a tenth of the plugin's time on a sample of files).
        summary = self.project.summary(source, shallow=True)
        if summary is not None and name in summary.get("classes", {}):
            facts = summary["classes"][name]
            info = _external_class(name, written, facts)
            if info.is_module and info.has_dropout_or_batchnorm is None:
                # ``class UNet(nn.Module)`` built of ``DoubleConv`` layers from ``unet_parts``:
                # whether it holds Dropout/BatchNorm is in the modules it imports
                info.composition_resolver = partial(self._composition_read_deeper, source, name)
            if self.analysis.classes.setdefault(written, info) is info:
                # Its methods, so that ``gan = GAN(); gan.train()`` links to GAN.train's summary.
                for qualname, method_facts in summary.get("functions", {}).items():
                    owner_name, _, method = qualname.partition(".")
                    if owner_name == name and method and "." not in method and method_facts.get("method"):
                        info.methods[method] = self._stub(f"{written}.{method}", method, owner,
                                                          qualname, method_facts, info)
            return
        function_facts = (summary or {}).get("functions", {}).get(name)
        if summary is not None and function_facts is None:
            return  # not a function of that module (a constant, a re-export we cannot follow)
        if function_facts is not None and function_facts.get("forwards_to"):
            function_facts = self._with_forwarded_returns(source, function_facts)
        stub = self._stub(written, written.rsplit(".", 1)[-1], owner, name, function_facts, None)
        if "." not in written:
            self.analysis.module_function.nested.setdefault(written, stub)

    def _composition_read_deeper(self, source: str, name: str) -> Optional[bool]:
        deeper = ((self.project.summary(source) or {}).get("classes") or {}).get(name) or {}
        return deeper.get("dropout_or_batchnorm")

    def _with_forwarded_returns(self, source: str, function_facts: dict, depth: int = 0) -> dict:
        """A function that returns what an imported function returns (``return build(args)``),
        with that function's return facts, its classes named by absolute module."""
        if depth > 3 or any(function_facts.get(field) for field in ("returns_model", "returned_elements",
                                                                     "returned_class")):
            return function_facts
        module, name = function_facts["forwards_to"]
        owner_module = self.project.module_of(source)
        found = self.project.resolve_member(
            self.project.absolute_module(owner_module, module, os.path.basename(source) == "__init__.py"),
            name, source)
        if found is None:
            return function_facts
        target, name = found
        target_facts = ((self.project.summary(target, shallow=True) or {}).get("functions") or {}).get(name)
        if not target_facts:
            return function_facts
        if target_facts.get("forwards_to"):
            target_facts = self._with_forwarded_returns(target, target_facts, depth + 1)
        target_module = self.project.module_of(target)
        target_is_package = os.path.basename(target) == "__init__.py"

        def absolute(ref):  # ["", name] or [".respace", name] as the target's module wrote it
            if ref and not _is_class_ref(ref):
                return [absolute(one) for one in ref]  # the classes of several bindings
            return ref and [self.project.absolute_module(target_module, ref[0], target_is_package)
                            if ref[0] else target_module, ref[1]]

        merged = dict(function_facts)
        for field in FORWARDED_RETURN_FACTS:
            merged[field] = target_facts.get(field)
        merged["returned_class"] = absolute(target_facts.get("returned_class"))
        merged["returned_elements"] = [
            None if element is None else [element[0], element[1], absolute(element[2])]
            for element in target_facts.get("returned_elements") or ()] or None
        return merged

    def _stub(self, written: str, local: str, owner: str, name: str, function_facts, cls):
        from .structure import FunctionInfo

        params = list(function_facts["params"]) if function_facts else []
        arguments = ast.arguments(posonlyargs=[], args=[ast.arg(arg=p) for p in params],
                                  vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[])
        node = ast.FunctionDef(name=name, args=arguments, body=[ast.Pass()], decorator_list=[],
                               lineno=1, col_offset=0, end_lineno=1, end_col_offset=0)
        stub = FunctionInfo(node, local, f"{owner}:{name}", cls, self.analysis.module_function,
                            params=params)
        stub.external = True
        stub.external_name = f"{owner}:{name}"
        stub.external_facts = function_facts
        self.analysis.functions.append(stub)
        self.stubs[written] = stub
        return stub

    # -- what the analyses need from the stubs ------------------------------------------------
    def resolve(self, site):
        stub = self.stubs.get(site.callee) if site.callee else None
        return stub if stub is not None and stub.cls is None else None

    def _callers_matter(self, function, caller_dependent, shortcuts: bool = True) -> bool:
        """The grad mode and model modes its callers give can change what is reported: the
        function (or an in-file function it calls) runs a model forward whose grad mode or
        mode is still the caller's (``caller_dependent``, from the flow's summaries: an
        ``evaluate()`` that switches to eval and runs under no_grad itself does not need its
        callers read). Without the shortcut: whenever it uses what it is passed."""
        if not shortcuts:
            params = set(function.params)
            return any(site.method in ("eval", "train") or
                       site.callee is not None and site.callee.split(".")[0] in params
                       for site in function.sites)
        if self._runs_models is None:
            # Once per file, backwards over the in-file calls: from those functions to
            # everything that calls them.
            self._runs_models = set()
            stack = [f for f in self.analysis.functions if id(f) in caller_dependent]
            while stack:
                current = stack.pop()
                if id(current) not in self._runs_models:
                    self._runs_models.add(id(current))
                    stack.extend(site.function for site in current.callers)
        return id(function) in self._runs_models

    def preset_models(self, facts) -> None:
        for stub in self.stubs.values():
            info = stub.external_facts
            if info and info.get("returns_model"):
                facts.returns_model[id(stub)] = info["returns_model"]
                facts.returns_composition[id(stub)] = info.get("returns_dropout_or_batchnorm")
            if info and info.get("returned_elements"):
                classes = getattr(stub, "element_classes", ())
                alternatives = getattr(stub, "element_alternatives", ()) or (None,) * len(classes)
                facts.returns_elements[id(stub)] = tuple(
                    None if element is None or element[0] is None else
                    (element[0], cls, _joined_composition(others) if others else
                     element[1] if element[1] is not None or cls is None or not cls.is_module
                     else cls.composition())
                    for element, cls, others in zip(info["returned_elements"], classes, alternatives))

    def preset_facts(self, facts) -> None:
        for stub in self.stubs.values():
            info = stub.external_facts
            if info and info.get("trains"):
                facts.training_functions.add(id(stub))

    def preset_flow(self, flow) -> None:
        for stub in self.stubs.values():
            info = stub.external_facts
            if not info:
                continue
            flow.effects[id(stub)] = {key: mode_from_json(value) for key, value in info["effects"].items()}
            flow.touched[id(stub)] = set(info["effects"])
            flow.return_modes[id(stub)] = mode_from_json(info.get("return_mode"))
            modes = info.get("return_element_modes") or ()
            classes = getattr(stub, "element_classes", ()) or (None,) * len(modes)
            fresh = getattr(stub, "element_fresh_modules", ()) or (False,) * len(modes)
            flow.return_element_modes[id(stub)] = tuple(
                _built_fresh(mode_from_json(value), cls, modules)
                for value, cls, modules in zip(modes, classes, fresh)) or None
            if info.get("no_grad_helper"):
                flow.no_grad_helpers.add(id(stub))

    def preset_dataflow(self, dataflow) -> None:
        from .dataflow import TRAINING

        for stub in self.stubs.values():
            info = stub.external_facts
            if not info:
                continue
            for param in stub.params:
                dataflow.preds[("return", id(stub))].add(("param", id(stub), param))
            for param in info.get("params_reaching_training", ()):
                dataflow.preds[TRAINING].add(("param", id(stub), param))

    # -- calls from other modules -------------------------------------------------------------
    def passed_to_the_caller(self, call: dict, root: str) -> Optional[List[tuple]]:
        """What the calling function of ``call`` (a call record from another module) was
        itself passed as ``root`` (``self``, ``self.G``, ``model``), read from the calls into
        that function: (mode as JSON, caller file) for each. None when nothing calls it, or a
        caller passes a value it does not know (one step back only)."""
        import os

        caller_file, caller_function = call.get("caller_file"), call.get("caller_function")
        if not caller_file or not caller_function:
            return None
        memo = self._passed_to_callers
        key = (caller_file, caller_function, root)
        if key in memo:
            return memo[key]
        memo[key] = None
        path = os.path.join(self.project.root, caller_file)
        summary = self.project.summary(path)
        facts = summary and summary["functions"].get(caller_function)
        if not facts:
            return None
        owner, _, name = caller_function.rpartition(".")
        words = (owner, name) if facts["method"] and owner else (name,)
        found = []
        for outer in self.project.incoming_calls(path, [words]):
            if outer["function"] != caller_function:
                continue
            # (an attribute not switched on its own is in its parent's mode)
            value = lookup_mode(bind_record(outer, facts["params"], facts["method"]), root)
            if value is None or any(mode in (PASSED_IN, UNKNOWN[0]) for mode, _ in value):
                return None
            found.append((value, outer.get("caller_file")))
        memo[key] = found or None
        return memo[key]

    def incoming(self, caller_dependent=frozenset()):
        """(function, call record) for each call another module makes into this one, for the
        functions whose findings may depend on their callers."""
        if self.for_summary:
            return []
        shortcuts = self.analysis.config.shortcuts
        by_name = {f.qualname: f for f in self.analysis.functions
                   if not f.is_module_scope and not getattr(f, "external", False)
                   and not getattr(f, "framework_loop", False) and f.parent is not None and f.parent.is_module_scope
                   and not _run_by_torch_or_a_framework(f) and self._callers_matter(f, caller_dependent, shortcuts)}
        if not by_name:
            return []  # nothing here whose callers could change a finding: skip reading them
        found = []
        mentioned = {_words_of_a_call(function) for function in by_name.values()} if shortcuts else None
        for call in self.project.incoming_calls(self.path, mentioned):
            function = by_name.get(call["function"])
            if function is not None:
                found.append((function, call))
        return found
