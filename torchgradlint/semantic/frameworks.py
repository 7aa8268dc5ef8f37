"""Loops that a framework runs: the call order it guarantees, written out as functions.

``Engine(train_step)`` of pytorch-ignite runs ``train_step`` once per batch, and between
iterations the handlers registered on the engine (``trainer.add_event_handler(Events.
EPOCH_COMPLETED, handler)``, ``@trainer.on(...)``), some of which run another engine
(``evaluator.run(val_loader)``). Nothing in the file calls ``train_step``: without this, it is
entered in an unknown mode. For each engine the file builds, this module adds a function that
makes those calls in a loop::

    def <ignite loop of trainer>():        # defined where the engine is built
        on_started()                       # Events.STARTED
        while True:                        # runs at least once
            on_iteration_started()
            train_step()
            handler()                      # Events.EPOCH_COMPLETED
            evaluator.run()                # a lambda handler's engine runs
            if <the event fires>:
                every_fifth_epoch()        # Events.EPOCH_COMPLETED(every=5)
        on_completed()                     # Events.COMPLETED

and links ``Engine(train_step)`` (the entry state: the modes when the engine is built, no
effect there) and ``trainer.run(...)`` (entry state and effect) to it. The analyses then treat it
like any in-file function. ``create_supervised_trainer(model, optimizer, loss)`` is an engine
whose step is ``model.train(); optimizer.step()``, ``create_supervised_evaluator(model)`` one
whose step is ``model.eval()`` (ignite's own steps do that on every iteration).
"""

from __future__ import annotations

import ast
from typing import Dict, List, Optional, Tuple

from .flow import EVAL, TRAIN, UNKNOWN_TAG
from .names import ImportTable, arguments_by_parameter, call_argument, dotted
from .structure import FunctionInfo, StructureBuilder, binding_counts, binding_scope
from .trainers import bound_keys, keys_match

ENGINES = {"ignite.engine.Engine", "ignite.engine.engine.Engine", "ignite.engine.DeterministicEngine",
           "ignite.engine.deterministic.DeterministicEngine"}
# Engines ignite builds around a model: every iteration of the trainer's step calls
# ``model.train()``, every iteration of the evaluator's ``model.eval()`` (under no_grad).
SUPERVISED_ENGINES = {"ignite.engine.create_supervised_trainer": "train",
                      "ignite.engine.create_supervised_evaluator": "eval"}


class FrameworkLoops:
    def __init__(self, tree: ast.Module, imports: ImportTable, functions: List[FunctionInfo]):
        self.tree = tree
        self.imports = imports
        self.functions = functions
        # (id of the scope binding the engine's name, name) -> the loop function
        self.loops: Dict[Tuple[int, str], FunctionInfo] = {}
        self.constructions: Dict[int, FunctionInfo] = {}  # id(ast.Call of Engine(...)) -> loop
        self.trainer_runs: Dict[int, FunctionInfo] = {}  # id(ast.Call of trainer.run()) -> loop

    def build(self) -> List[FunctionInfo]:
        """The loop functions (to add to the file's functions); none without an engine."""
        if not any(target in ENGINES for target in self.imports.aliases.values()) and \
                not any(target.startswith("ignite") for target in self.imports.aliases.values()):
            return []
        engines = []  # (function, name, construction call, what one step runs)
        for function in list(self.functions):
            for site in function.sites:
                if site.qualified in ENGINES and site.node.args:
                    step = dotted(site.node.args[0])
                    runs = [self._call(step, site.node)] if step else None
                elif site.qualified in SUPERVISED_ENGINES:
                    runs = self._supervised_step(site)
                else:
                    continue
                name = self._bound_name(function.statements[site.index], site.node)
                if runs is not None and name:
                    engines.append((function, name, site.node, runs))
        if not engines:
            return []
        handlers = self._handlers()
        created = []
        for function, name, call, runs in engines:
            scope = binding_scope(function, name)
            at: Dict[str, List[ast.stmt]] = {"start": [], "before": [], "after": [], "end": []}
            for handler, when in handlers.get((id(scope), name), ()):
                at["after" if when == "sometimes" else when].append(handler)
            iteration = at["before"] + runs + at["after"]
            body = at["start"] + [ast.While(test=ast.Constant(value=True), body=iteration,
                                            orelse=[])] + at["end"]
            loop = self._loop_function(f"<ignite loop of {name}>", body, call, function)
            loop.loops[0].runs_at_least_once = True
            self.loops[(id(scope), name)] = loop
            self.constructions[id(call)] = loop
            created.append(loop)
        return created

    def build_trainer_loops(self, classes) -> List[FunctionInfo]:
        """The loops of the project's trainer classes (``trainers.py``) that this file builds
        and runs with callbacks of its own, written out (to add to the file's functions)::

            def <loop of trainer.run>():     # defined where trainer.run() is called
                model.train()                # what the run method does before its loop
                while True:
                    model.train()            # ... or at the top of every iteration
                    <output> = model()       # the training step
                    <output>.backward()
                    batch_end_callback()     # the callables the file registered

        ``model`` is what the file handed the trainer (to its constructor or another method
        that stores it where the run method finds its model), ``batch_end_callback`` an in-file
        function the file handed a method that stores it where the loop calls it (under the
        same key: ``set_callback('on_batch_end', f)`` and ``trigger_callbacks('on_batch_end')``).
        A loop none of the file's functions is handed to is not written out."""
        trainers = {written: info for written, info in classes.items()
                    if info.external and any((method.external_facts or {}).get("trainer_loop")
                                             for method in info.methods.values())}
        if not trainers:
            return []
        instances = {}  # (id of the binding scope, name) -> (class, construction)
        calls: Dict[Tuple[int, str], list] = {}  # (id of the binding scope, name) -> method calls
        for function in self.functions:
            if function.external:
                continue
            for site in function.sites:
                if site.receiver is None and site.callee in trainers:
                    name = self._bound_name(function.statements[site.index], site.node)
                    scope = binding_scope(function, name) if name else None
                    if name and binding_counts(scope).get(name, 1) == 1:
                        instances[(id(scope), name)] = (trainers[site.callee], site)
                elif site.receiver and "." not in site.receiver:
                    calls.setdefault((id(binding_scope(function, site.receiver)), site.receiver), []).append(site)
        defined = {function.name for function in self.functions if not function.external}
        created = []
        for key, (cls, construction) in instances.items():
            # what the file handed the object: (attribute, key, argument) per stored parameter
            held = []
            for site in [construction] + calls.get(key, []):
                method = cls.methods.get("__init__" if site is construction else site.method)
                facts = method.external_facts if method is not None else None
                if not facts:
                    continue
                arguments = dict(arguments_by_parameter(site.node, facts["params"][1:]))
                for record in facts["stores"]:
                    if record[0] in arguments:
                        held.append((record[1], bound_keys(record, arguments), arguments[record[0]]))
            for site in calls.get(key, []):
                method = cls.methods.get(site.method)
                loop_facts = (method.external_facts or {}).get("trainer_loop") if method is not None else None
                if loop_facts:
                    loop = self._trainer_loop(site, method, loop_facts, held, defined)
                    if loop is not None:
                        self.trainer_runs[id(site.node)] = loop
                        created.append(loop)
        return created

    def _trainer_loop(self, site, method, facts: dict, held: list, defined) -> Optional[FunctionInfo]:
        trained = facts["model"]
        if trained.startswith("self."):
            attribute, _, rest = trained[len("self."):].partition(".")
            given = {dotted(argument) for held_attribute, key, argument in held
                     if held_attribute == attribute and key is None}
        else:
            root, _, rest = trained.partition(".")
            argument = dict(arguments_by_parameter(site.node, method.external_facts["params"][1:])).get(root)
            given = {dotted(argument)} if argument is not None else set()
        if len(given) != 1 or None in given:
            return None  # no model, or one of several
        model = given.pop() + ("." + rest if rest else "")
        callbacks: Dict[str, List[ast.stmt]] = {"before": [], "after": []}
        for attribute, key, when in facts["callbacks"]:
            for held_attribute, held_key, argument in held:
                name = dotted(argument)
                if held_attribute == attribute and keys_match(held_key, key) and name and \
                        name.rsplit(".", 1)[-1] in defined:
                    callbacks[when].append(self._call(name, site.node))
        if not callbacks["before"] and not callbacks["after"]:
            return None
        before = {mode for mode, place in facts["modes"] if place == "before" and mode in (TRAIN, EVAL)}
        every_iteration = {mode for mode, place in facts["modes"] if place == "loop"}
        if len(every_iteration) > 1:
            return None  # the trainer switches the model back and forth itself
        # A switch inside the loop is taken to run before every forward: the callbacks' modes
        # are then overwritten (a miss at worst, never a finding the trainer prevents).
        top = [self._call(f"{model}.{mode}", site.node) for mode in every_iteration]
        start = [self._call(f"{model}.{mode}", site.node) for mode in before] if len(before) == 1 else []
        if start and [UNKNOWN_TAG, "before"] in facts["modes"]:
            start = [ast.If(test=ast.Name(id="<the trainer switches>", ctx=ast.Load()), body=start, orelse=[])]
        output = f"<output of {site.method}>"
        step = [ast.Assign(targets=[ast.Name(id=output, ctx=ast.Store())],
                           value=self._call(model, site.node).value, type_comment=None),
                ast.Expr(value=ast.Call(func=ast.Attribute(value=ast.Name(id=output, ctx=ast.Load()),
                                                           attr="backward", ctx=ast.Load()),
                                        args=[], keywords=[]))]
        iteration = top + callbacks["before"] + step + callbacks["after"]
        test = ast.Constant(value=True) if facts["at_least_once"] else \
            ast.Name(id="<the trainer iterates>", ctx=ast.Load())
        body = start + [ast.While(test=test, body=iteration, orelse=[])]
        loop = self._loop_function(f"<loop of {site.callee}>", body, site.node, site.function)
        loop.loops[0].runs_at_least_once = facts["at_least_once"]
        loop.framework_call = f"{site.callee}()"
        return loop

    def _loop_function(self, name: str, body: List[ast.stmt], where: ast.AST, parent: FunctionInfo) -> FunctionInfo:
        node = ast.FunctionDef(
            name=name, args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[],
                                          kw_defaults=[], kwarg=None, defaults=[]),
            body=body, decorator_list=[], returns=None, type_comment=None)
        for inner in ast.walk(node):
            if "lineno" in inner._attributes:
                ast.copy_location(inner, where)
        loop = StructureBuilder(self.tree, self.imports)._new_function(node, None, parent)
        loop.framework_loop = True
        return loop

    def loop_run_by(self, site) -> Optional[FunctionInfo]:
        """The loop that ``site`` starts: ``trainer.run(data)``; None for any other call."""
        if site.method != "run" or not site.receiver or "." in site.receiver:
            return None
        scope = binding_scope(site.function, site.receiver)
        return self.loops.get((id(scope), site.receiver))

    def _supervised_step(self, site) -> Optional[List[ast.stmt]]:
        """What one iteration of ``create_supervised_trainer(model, optimizer, loss)`` does to
        the file's objects: ``model.train()`` and ``optimizer.step()``; of
        ``create_supervised_evaluator(model)``: ``model.eval()``."""
        model, optimizer = (dotted(call_argument(site.node, name, position))
                            for position, name in ((0, "model"), (1, "optimizer")))
        if not model:
            return None
        if SUPERVISED_ENGINES[site.qualified] == "eval":
            return [self._call(f"{model}.eval", site.node)]
        steps = [self._call(f"{model}.train", site.node)]
        if optimizer:
            steps.append(self._call(f"{optimizer}.step", site.node))
        return steps

    @staticmethod
    def _bound_name(statement: ast.stmt, call: ast.Call) -> Optional[str]:
        """``trainer = Engine(step)``, ``trainer, evaluator = Engine(a), Engine(b)``."""
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
            return None
        target, value = statement.targets[0], statement.value
        if value is call and isinstance(target, ast.Name):
            return target.id
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and \
                len(target.elts) == len(value.elts):
            for element, expr in zip(target.elts, value.elts):
                if expr is call and isinstance(element, ast.Name):
                    return element.id
        return None

    def _handlers(self) -> Dict[Tuple[int, str], List[Tuple[ast.stmt, str]]]:
        """What runs between an engine's iterations: registered functions, and the engines a
        lambda handler runs, as statements of the loop body, each with when it runs (see
        ``_when``)."""
        found: Dict[Tuple[int, str], List[Tuple[ast.stmt, str]]] = {}
        # Handler objects (``Checkpoint(...)``, ``EarlyStopping(...)``) are ignite's: they save
        # or stop, and run no model of the file.
        defined = {function.name for function in self.functions}
        for function in self.functions:
            for site in function.sites:
                if site.method != "add_event_handler" or not site.receiver or len(site.node.args) < 2:
                    continue
                key = (id(binding_scope(function, site.receiver)), site.receiver)
                when = _when(site.node.args[0])
                handler = site.node.args[1]
                if isinstance(handler, ast.Lambda):
                    for inner in ast.walk(handler.body):
                        if isinstance(inner, ast.Call):
                            name = dotted(inner.func)
                            if name:
                                found.setdefault(key, []).append((self._call(name, inner, when), when))
                elif dotted(handler) and dotted(handler).rsplit(".", 1)[-1] in defined:
                    found.setdefault(key, []).append((self._call(dotted(handler), site.node, when), when))
            for nested in function.nested.values():
                for decorator in nested.decorators:
                    if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute) and \
                            decorator.func.attr == "on" and isinstance(decorator.func.value, ast.Name):
                        engine = decorator.func.value.id
                        key = (id(binding_scope(function, engine)), engine)
                        when = _when(decorator.args[0]) if decorator.args else "sometimes"
                        found.setdefault(key, []).append((self._call(nested.name, decorator, when), when))
        return found

    @staticmethod
    def _call(name: str, where: ast.AST, when: str = "after") -> ast.stmt:
        """``name()`` as a statement: arguments are the framework's (engine, batch), not ours.
        A handler that runs only sometimes is called under a test nobody can decide."""
        func: ast.expr = ast.Name(id=name.split(".")[0], ctx=ast.Load())
        for part in name.split(".")[1:]:
            func = ast.Attribute(value=func, attr=part, ctx=ast.Load())
        statement: ast.stmt = ast.Expr(value=ast.Call(func=func, args=[], keywords=[]))
        if when == "sometimes":
            statement = ast.If(test=ast.Name(id="<the event fires>", ctx=ast.Load()),
                               body=[statement], orelse=[])
        for inner in ast.walk(statement):
            ast.copy_location(inner, where)
        return statement


def _when(event: ast.expr) -> str:
    """When a handler runs within an engine's run: once at the ``start`` (``Events.STARTED``) or
    the ``end`` (``COMPLETED``), ``before`` the step of every epoch or iteration
    (``EPOCH_STARTED``, ``ITERATION_STARTED``), ``after`` it (``EPOCH_COMPLETED``,
    ``ITERATION_COMPLETED``), or ``sometimes`` -- a filtered event
    (``Events.EPOCH_COMPLETED(every=5)``) may not fire after the last step, and some fire only
    when the run stops early or fails."""
    name = (dotted(event) or "").rsplit(".", 1)[-1]
    if name == "STARTED":
        return "start"
    if name == "COMPLETED":
        return "end"
    if name.endswith("_STARTED"):
        return "before"
    if name.endswith("_COMPLETED"):
        return "after"
    return "sometimes"
