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

from .names import ImportTable, call_argument, dotted
from .structure import FunctionInfo, StructureBuilder, binding_scope

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
            node = ast.FunctionDef(
                name=f"<ignite loop of {name}>", args=ast.arguments(
                    posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                    kwarg=None, defaults=[]),
                body=at["start"] + [ast.While(test=ast.Constant(value=True), body=iteration,
                                              orelse=[])] + at["end"],
                decorator_list=[], returns=None, type_comment=None)
            for inner in ast.walk(node):
                if "lineno" in inner._attributes:
                    ast.copy_location(inner, call)
            loop = StructureBuilder(self.tree, self.imports)._new_function(node, None, function)
            loop.framework_loop = True
            loop.loops[0].runs_at_least_once = True
            self.loops[(id(scope), name)] = loop
            self.constructions[id(call)] = loop
            created.append(loop)
        return created

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
