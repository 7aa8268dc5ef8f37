"""Loops that a framework runs: the call order it guarantees, written out as functions.

``Engine(train_step)`` of pytorch-ignite runs ``train_step`` once per batch, and between
iterations the handlers registered on the engine (``trainer.add_event_handler(Events.
EPOCH_COMPLETED, handler)``, ``@trainer.on(...)``), some of which run another engine
(``evaluator.run(val_loader)``). Nothing in the file calls ``train_step``: without this, it is
entered in an unknown mode. For each engine the file builds, this module adds a function that
makes those calls in a loop::

    def <ignite loop of trainer>():        # defined where the engine is built
        while True:
            train_step()
            handler()
            evaluator.run()                # a lambda handler's engine runs

and links ``Engine(train_step)`` (the entry state: the modes when the engine is built, no
effect there) and ``trainer.run(...)`` (entry state and effect) to it. The analyses then treat it
like any in-file function.
"""

from __future__ import annotations

import ast
from typing import Dict, List, Optional, Tuple

from .names import ImportTable, dotted
from .structure import FunctionInfo, StructureBuilder, binding_scope

ENGINES = {"ignite.engine.Engine", "ignite.engine.engine.Engine", "ignite.engine.DeterministicEngine",
           "ignite.engine.deterministic.DeterministicEngine"}


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
        engines = []  # (function, name, construction call, step function name)
        for function in list(self.functions):
            for site in function.sites:
                if site.qualified not in ENGINES or not site.node.args:
                    continue
                step = dotted(site.node.args[0])
                name = self._bound_name(function.statements[site.index], site.node)
                if step and name:
                    engines.append((function, name, site.node, step))
        if not engines:
            return []
        handlers = self._handlers()
        created = []
        for function, name, call, step in engines:
            scope = binding_scope(function, name)
            body: List[ast.stmt] = [self._call(step, call)]
            for handler in handlers.get((id(scope), name), ()):
                body.append(handler)
            node = ast.FunctionDef(
                name=f"<ignite loop of {name}>", args=ast.arguments(
                    posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                    kwarg=None, defaults=[]),
                body=[ast.While(test=ast.Constant(value=True), body=body, orelse=[])],
                decorator_list=[], returns=None, type_comment=None)
            for inner in ast.walk(node):
                if "lineno" in inner._attributes:
                    ast.copy_location(inner, call)
            loop = StructureBuilder(self.tree, self.imports)._new_function(node, None, function)
            loop.framework_loop = True
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

    def _handlers(self) -> Dict[Tuple[int, str], List[ast.stmt]]:
        """What runs between an engine's iterations: registered functions, and the engines a
        lambda handler runs, as statements of the loop body."""
        found: Dict[Tuple[int, str], List[ast.stmt]] = {}
        for function in self.functions:
            for site in function.sites:
                if site.method != "add_event_handler" or not site.receiver or len(site.node.args) < 2:
                    continue
                key = (id(binding_scope(function, site.receiver)), site.receiver)
                handler = site.node.args[1]
                if isinstance(handler, ast.Lambda):
                    for inner in ast.walk(handler.body):
                        if isinstance(inner, ast.Call):
                            name = dotted(inner.func)
                            if name:
                                found.setdefault(key, []).append(self._call(name, inner))
                elif dotted(handler):
                    found.setdefault(key, []).append(self._call(dotted(handler), site.node))
            for nested in function.nested.values():
                for decorator in nested.decorators:
                    if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute) and \
                            decorator.func.attr == "on" and isinstance(decorator.func.value, ast.Name):
                        engine = decorator.func.value.id
                        key = (id(binding_scope(function, engine)), engine)
                        found.setdefault(key, []).append(self._call(nested.name, decorator))
        return found

    @staticmethod
    def _call(name: str, where: ast.AST) -> ast.stmt:
        """``name()`` as a statement: arguments are the framework's (engine, batch), not ours."""
        func: ast.expr = ast.Name(id=name.split(".")[0], ctx=ast.Load())
        for part in name.split(".")[1:]:
            func = ast.Attribute(value=func, attr=part, ctx=ast.Load())
        statement = ast.Expr(value=ast.Call(func=func, args=[], keywords=[]))
        for inner in ast.walk(statement):
            ast.copy_location(inner, where)
        return statement
