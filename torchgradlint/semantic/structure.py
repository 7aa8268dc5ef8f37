"""The file's structure: classes, functions, loops, statements and call sites.

One walk over flake8's ``ast`` tree turns every function body (and the module body, as the
pseudo-function ``<module>``) into a small control-flow IR whose leaves are the call sites in
evaluation order. The analyses (grad mode, module mode, dataflow) run on this IR, never on the
raw tree again.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
import builtins
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple, Union

from .names import (RUN_TIME_BINDINGS, ImportTable, assignment_pairs, child_fields, dotted, name_bound_by,
                    names_bound_anywhere, stored_targets, walk)
from .torch_api import PROCESS_STARTERS, SELF_RETURNING_METHODS as _SELF_RETURNING

FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.Module]


# Expression nodes that cannot hold a call of this scope: leaves, and new scopes.
_NO_CALLS_INSIDE = frozenset({ast.Name, ast.Constant, ast.FunctionDef, ast.AsyncFunctionDef,
                              ast.ClassDef, ast.Lambda})
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
# The statements ``names.assignment_pairs`` reads (it finds no pair in any other).
ASSIGNMENT_STATEMENTS = frozenset({ast.Assign, ast.AnnAssign})
# Statements without a body, other than ``return`` and ``raise``.
_SIMPLE_STATEMENTS = frozenset({ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Import,
                                ast.ImportFrom, ast.Pass, ast.Break, ast.Continue, ast.Delete,
                                ast.Global, ast.Nonlocal, ast.Assert})


class _VisitTable(dict):
    """Type of a field's value -> worth walking into (an expression that may hold a call)."""

    def __missing__(self, kind: type) -> bool:
        visit = self[kind] = issubclass(kind, ast.AST) and kind not in _NO_CALLS_INSIDE and \
            not issubclass(kind, (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop))
        return visit


_VISIT = _VisitTable()


class _FieldsBackwards(dict):
    """Type of a node -> the fields that may hold a call, last first (not the operators of
    ``BinOp``, ``BoolOp``, ``UnaryOp``, ``AugAssign``, ``Compare``)."""

    def __missing__(self, kind: type) -> Tuple[str, ...]:
        fields = self[kind] = tuple(reversed([name for name in child_fields(kind) if name not in ("op", "ops")]))
        return fields


_FIELDS_BACKWARDS = _FieldsBackwards()


@dataclass(eq=False, repr=False)
class Loop:
    node: ast.stmt
    parent: Optional["Loop"]
    first_index: int = 0  # statement indexes of the loop's header and last body statement
    last_index: int = 0
    sites: List["CallSite"] = field(default_factory=list)  # every call in header and body
    # Known to run at least once: ``while True:``, ``for epoch in range(3)``, a framework's loop
    # over the data it is given (``trainer.run(loader)``).
    runs_at_least_once: bool = False

    @property
    def line(self) -> int:
        return self.node.lineno

    @property
    def iterable_identifiers(self) -> List[str]:
        """Every identifier in the loop's iterable: ``zip(x_val.split(8), y_val)`` gives
        ``zip, x_val, split, y_val``."""
        if not isinstance(self.node, (ast.For, ast.AsyncFor)):
            return []
        found = []
        for node in ast.walk(self.node.iter):
            if isinstance(node, ast.Name):
                found.append(node.id)
            elif isinstance(node, ast.Attribute):
                found.append(node.attr)
        return found

    @property
    def walked_names(self) -> Set[str]:
        """The names a ``for`` loop binds to what its iterable yields, unless it only counts
        (``range(n)``, ``enumerate(range(n))``): ``imgs, caps`` of ``for imgs, caps in loader``."""
        if not isinstance(self.node, (ast.For, ast.AsyncFor)):
            return set()
        iterable = self.node.iter
        if isinstance(iterable, ast.Call) and dotted(iterable.func) == "enumerate" and iterable.args:
            iterable = iterable.args[0]
        if isinstance(iterable, ast.Call) and dotted(iterable.func) == "range":
            return set()
        return {node.id for node in ast.walk(self.node.target) if isinstance(node, ast.Name)}

    def contains_index(self, index: int) -> bool:
        return self.first_index <= index <= self.last_index


# ``exit``/``quit`` are the builtins unless imported or defined under that name in the file.
PROGRAM_EXITS = frozenset({"sys.exit", "os._exit", "exit", "quit"})
_EXIT_LEAVES = frozenset(name.rpartition(".")[2] for name in PROGRAM_EXITS)
# Names a module can read without binding them: builtins of this Python and of Python 2 (a file
# that runs there), a module's own attributes, and what IPython gives notebooks.
ALWAYS_DEFINED = frozenset(dir(builtins)) | frozenset({
    "__file__", "__name__", "__doc__", "__package__", "__spec__", "__loader__", "__path__",
    "__builtins__", "__annotations__", "__cached__", "__class__", "__dict__",
    "xrange", "raw_input", "unicode", "long", "unichr", "basestring", "reduce", "execfile",
    "file", "reload", "cmp", "buffer", "apply", "intern", "coerce",
    "get_ipython", "display", "In", "Out"})


@dataclass(eq=False)
class CallSite:
    node: ast.Call = field(repr=False)
    function: "FunctionInfo" = field(repr=False)
    loops: Tuple[Loop, ...] = field(repr=False)
    index: int  # index of the statement that holds the call, in the function's linear order
    callee: Optional[str]  # dotted text as written: ``self.model``, ``torch.no_grad``
    qualified: Optional[str]  # through the imports: ``torch.no_grad``
    receiver: Optional[str]  # for ``a.b.m(...)``: ``a.b``
    method: Optional[str]  # for ``a.b.m(...)``: ``m``
    is_statement: bool  # the call is a whole expression statement
    target: Optional["FunctionInfo"] = field(default=None, repr=False)  # in-file function called
    constructs: Optional["ClassInfo"] = field(default=None, repr=False)  # in-file class built
    network: Optional[str] = None  # the key of the network it runs forward, if it is a forward pass
    # A call of a project helper (another module) that runs this one model of the caller's with
    # autograd on: ``discriminator_loss(netD, real, fake)``. A forward for graph questions only.
    through_helper: Optional[str] = None
    # A forward pass of ``network`` run by a method of another module's object it is handed
    # (``diffusion.p_sample_loop(model, ...)``): "on" when that method may run it with autograd
    # on, "off" when only under no_grad.
    handed_to: Optional[str] = None
    # A call into code we cannot see that is handed a loss and an optimizer (``loss_scaler(loss,
    # optimizer)``, MAE's NativeScaler): it runs the backward pass and the step.
    hidden_step: bool = False
    # Hands a function to a framework that runs it later (``Engine(train_step)``): the target
    # is entered with the state here, but its effects do not happen here.
    registers: bool = False
    # ``model.evaluate()`` where ``model`` is built from one of several classes on different
    # paths (``if a: model = GAN() else: model = WGAN()``): the other classes' methods, which
    # the call runs on those paths (``target`` is the first).
    alternatives: Tuple["FunctionInfo", ...] = field(default=(), repr=False)

    def targets(self) -> Tuple["FunctionInfo", ...]:
        """The functions the call may run: its target and the alternatives."""
        return (self.target,) + self.alternatives if self.target is not None else ()

    @property
    def line(self) -> int:
        return self.node.lineno

    @property
    def runs_own_layers(self) -> bool:
        """A forward of ``self`` or of one of its attributes (``self(x)``, ``self.fc1(x)``):
        inside a model's method, the model running its own layers."""
        network = self.network
        return network is not None and (network == "self" or network.startswith("self."))

    @property
    def col(self) -> int:
        return self.node.col_offset

    @property
    def loop(self) -> Optional[Loop]:
        return self.loops[-1] if self.loops else None


@dataclass(eq=False, repr=False)
class ClassInfo:
    node: ast.ClassDef
    name: str
    bases: List[str]
    methods: Dict[str, "FunctionInfo"] = field(default_factory=dict)
    is_module: bool = False
    base_classes: List["ClassInfo"] = field(default_factory=list)
    model_attributes: set = field(default_factory=set)
    # None: unknown (built from something we cannot see into).
    has_dropout_or_batchnorm: Optional[bool] = None
    external: bool = False
    # A class of another module whose composition is read from that module's imports when
    # first asked (it costs a summary of the module): a function returning the verdict.
    composition_resolver: Optional[Callable[[], Optional[bool]]] = None

    def composition(self) -> Optional[bool]:
        """``has_dropout_or_batchnorm``, resolved first if it waits for another module."""
        if self.composition_resolver is not None:
            resolve, self.composition_resolver = self.composition_resolver, None
            self.has_dropout_or_batchnorm = resolve()
        return self.has_dropout_or_batchnorm

    def find_method(self, name: str) -> Optional["FunctionInfo"]:
        """The method as Python would find it, depth first through the bases."""
        return next((cls.methods[name] for cls in self.lineage() if name in cls.methods), None)

    def lineage(self) -> Iterator["ClassInfo"]:
        """The class, then its bases depth first, left to right, each once (no recursion:
        inheritance chains can be long; a cycle of bases ends)."""
        stack, seen = [self], set()
        while stack:
            cls = stack.pop()
            if id(cls) in seen:
                continue
            seen.add(id(cls))
            yield cls
            stack.extend(reversed(cls.base_classes))


# IR node kinds (tuples, for speed):
#   ("simple", stmt, sites)
#   ("with", stmt, [(item_expr, sites)], body)
#   ("if", stmt, sites, body, orelse)
#   ("loop", stmt, loop, sites, body, orelse)
#   ("try", stmt, body, [handler_body...], orelse, finalbody)
#   ("exit", stmt, sites)                      -- return / raise
#   ("branches", stmt, sites, [case_body...])  -- match
Block = List[tuple]


@dataclass(eq=False, repr=False)
class FunctionInfo:
    node: FunctionNode
    name: str
    qualname: str
    cls: Optional[ClassInfo]
    parent: Optional["FunctionInfo"]
    params: List[str] = field(default_factory=list)
    annotations: Dict[str, str] = field(default_factory=dict)
    decorators: List[ast.expr] = field(default_factory=list)
    ir: Block = field(default_factory=list)
    sites: List[CallSite] = field(default_factory=list)
    loops: List[Loop] = field(default_factory=list)
    statements: List[ast.stmt] = field(default_factory=list)  # linear order; index = position
    blocks: List[Tuple[int, ...]] = field(default_factory=list)  # block chain per statement
    # per statement: the ``if`` tests it runs under, with the branch (True: body, False: else)
    guards: List[Tuple[Tuple[ast.expr, bool], ...]] = field(default_factory=list)
    nested: Dict[str, "FunctionInfo"] = field(default_factory=dict)
    callers: List[CallSite] = field(default_factory=list)
    local_names: set = field(default_factory=set)  # names bound by assignment in this function
    comprehensions: set = field(default_factory=set)  # indexes of statements holding one
    # A stub for a function of another project module (see semantic/summary.py).
    external: bool = False
    external_name: Optional[str] = None
    external_facts: Optional[dict] = None

    def __repr__(self) -> str:
        return f"<function {self.qualname} line {self.line}>"

    def opposite_branch_tests(self, first: int, second: int) -> List[ast.expr]:
        """The ``if`` tests (compared by their text) under which statements ``first`` and
        ``second`` sit in opposite branches: ``if phase == "train": ... else: ...``."""
        if first >= len(self.guards) or second >= len(self.guards):
            return []
        other = {(ast.dump(test), branch) for test, branch in self.guards[second]}
        return [test for test, branch in self.guards[first] if (ast.dump(test), not branch) in other]

    @property
    def is_module_scope(self) -> bool:
        return isinstance(self.node, ast.Module)

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 1)

    @property
    def returned_values(self) -> List[ast.expr]:
        """The expressions the function's ``return`` statements return (bare returns left out)."""
        return [statement.value for statement in self.statements
                if type(statement) is ast.Return and statement.value is not None]

    def assignments(self) -> Tuple[Tuple[ast.AST, ast.AST], ...]:
        """(target, value) of every assignment of the function, in statement order, tuples
        written out element by element (``names.assignment_pairs``): found once, on the first
        question after the build (the facts look at a function several times)."""
        pairs = self.__dict__.get("_assignments")
        if pairs is None:
            pairs = self._assignments = tuple(
                pair for statement in self.statements if type(statement) in ASSIGNMENT_STATEMENTS
                for pair in assignment_pairs(statement))
        return pairs

    def enclosing_functions(self) -> Tuple["FunctionInfo", ...]:
        """The function, the functions around it, out to the module (found once: the
        analyses ask for every name they look up)."""
        scopes = self.__dict__.get("_enclosing")
        if scopes is None:
            found = []
            function = self
            while function is not None:
                found.append(function)
                function = function.parent
            scopes = self._enclosing = tuple(found)
        return scopes


def bound_names(function: FunctionInfo) -> Set[str]:
    """The names a function binds itself (its local variables): parameters, assignment, loop
    and ``with`` targets, imports, nested definitions, minus ``global``/``nonlocal`` names."""
    cached = getattr(function, "_bound_names", None)
    if cached is not None:
        return cached
    bound = set(binding_counts(function))
    function._bound_names = bound
    return bound


def binding_counts(function: FunctionInfo) -> Dict[str, int]:
    """How many places bind each of the function's local variables (a parameter counts once,
    ``del`` counts as a binding): a name bound once refers to one object wherever it is bound."""
    cached = getattr(function, "_binding_counts", None)
    if cached is not None:
        return cached
    counts: Dict[str, int] = {}
    for name in list(function.params) + list(function.nested):
        counts[name] = counts.get(name, 0) + 1
    shared: Set[str] = set()
    for statement in function.statements:
        for target in stored_targets(statement):
            if type(target) is ast.Name:
                counts[target.id] = counts.get(target.id, 0) + 1
        kind = type(statement)
        if kind in (ast.Import, ast.ImportFrom):
            for alias in statement.names:
                name = (alias.asname or alias.name).split(".")[0]
                counts[name] = counts.get(name, 0) + 1
        elif kind in (ast.Global, ast.Nonlocal):
            shared.update(statement.names)
        elif kind is ast.ClassDef:
            counts[statement.name] = counts.get(statement.name, 0) + 1
        elif isinstance(statement, ast.Try):
            for handler in statement.handlers:
                if handler.name:
                    counts[handler.name] = counts.get(handler.name, 0) + 1
    for name in shared:
        counts.pop(name, None)
    function._binding_counts = counts
    return counts


def parameter_default(function: FunctionInfo, param: str) -> Optional[ast.AST]:
    """The default value expression of a parameter of ``function``, or None."""
    args = function.node.args
    positional = list(getattr(args, "posonlyargs", [])) + list(args.args)
    defaults = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults):]],
                        args.defaults))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        if default is not None:
            defaults[arg.arg] = default
    return defaults.get(param)


def binding_scope(function: FunctionInfo, name: str) -> FunctionInfo:
    """The scope whose variable ``name`` is, seen from ``function`` (Python's LEGB without
    builtins: the function itself, an enclosing function, else the module)."""
    for scope in function.enclosing_functions():
        if scope.is_module_scope or name in bound_names(scope):
            return scope
    return function


def constants(body: List[ast.stmt], scope: ast.AST) -> Dict[str, Union[bool, int]]:
    """Names a block binds once, at its top level, to a bool or int literal, and that nothing
    else in ``scope`` binds (assignment, parameter, import, definition, ``del``). Read off the
    tree, not ``binding_counts``: the builder asks while it is still building the IR that
    ``binding_counts`` reads, and a name any scope rebinds (``global``) is no constant."""
    candidates: Dict[str, Optional[Union[bool, int]]] = {}
    for statement in body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign):
            target, value = statement.target, statement.value
        else:
            continue
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and \
                type(value.value) in (bool, int):
            candidates[target.id] = None if target.id in candidates else value.value
    found = {name: value for name, value in candidates.items() if value is not None}
    if not found:
        return found
    bindings: Dict[str, int] = {}
    for node in walk(scope):
        name = name_bound_by(node)
        if name in found:
            bindings[name] = bindings.get(name, 0) + 1
    return {name: value for name, value in found.items() if bindings.get(name) == 1}


def _call_a_process_starts(node: ast.Call, qualified: Optional[str]) -> Optional[ast.Call]:
    """``mp.Process(target=test, args=(global_model,))``, ``Thread(target=f, args=...)``,
    ``torch.multiprocessing.spawn(f, args=(...))``: the call of the function the new process or
    thread runs (``test(global_model)``; ``spawn`` passes the rank first), so that the analyses
    see what it is given."""
    if qualified not in PROCESS_STARTERS:
        return None
    keywords = {keyword.arg: keyword.value for keyword in node.keywords if keyword.arg}
    if qualified.endswith(".spawn"):
        target = node.args[0] if node.args else keywords.get("fn")
        first = [ast.Constant(0)]  # the process index
    else:
        target = keywords.get("target")
        first = []
    arguments = keywords.get("args")
    if not isinstance(target, (ast.Name, ast.Attribute)) or \
            arguments is not None and not isinstance(arguments, (ast.Tuple, ast.List)):
        return None
    elements = list(arguments.elts) if arguments is not None else []
    if any(isinstance(element, ast.Starred) for element in elements):
        return None
    return ast.copy_location(ast.Call(func=target, args=first + elements, keywords=[]), node)


class StructureBuilder:
    """Builds FunctionInfo/ClassInfo objects for a module."""

    def __init__(self, tree: ast.Module, imports: ImportTable,
                 star_import_may_define: Optional[Callable[[str], bool]] = None):
        """``star_import_may_define(name)``: whether the file's ``from M import *`` lines may
        bind ``name`` (None: unknown, so they may)."""
        self.tree = tree
        self.imports = imports
        self._star_import_may_define = star_import_may_define
        self._bound_anywhere: Optional[frozenset] = None
        self._try_depth = 0
        self.functions: List[FunctionInfo] = []
        self.classes: Dict[str, ClassInfo] = {}
        self.module_function = FunctionInfo(tree, "<module>", "<module>", None, None)
        self._block_counter = 0
        self._guards: List[Tuple[ast.expr, bool]] = []
        # Syntactic facts some rules need, gathered on the same walk.
        self.with_items: List[Tuple[ast.expr, FunctionInfo]] = []
        self.expression_statements: List[Tuple[ast.Expr, FunctionInfo]] = []
        self._module_defines = {node.name for node in tree.body
                                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        self._module_constants_found: Optional[Dict[str, Union[bool, int]]] = None
        self._local_constants: Dict[int, Dict[str, Union[bool, int]]] = {}

    def build(self) -> "StructureBuilder":
        self._build_function(self.module_function, self.tree.body)
        return self

    # -- functions and classes -------------------------------------------------------------
    def _new_function(self, node, cls: Optional[ClassInfo], parent: FunctionInfo) -> FunctionInfo:
        if cls is not None:
            qualname = f"{cls.name}.{node.name}"
        elif parent.is_module_scope:
            qualname = node.name
        else:
            qualname = f"{parent.qualname}.{node.name}"
        function = FunctionInfo(node, node.name, qualname, cls, parent)
        args = node.args
        positional = list(getattr(args, "posonlyargs", [])) + list(args.args)
        for arg in positional + list(args.kwonlyargs) + [a for a in (args.vararg, args.kwarg) if a]:
            function.params.append(arg.arg)
            if arg.annotation is not None:
                annotation = arg.annotation
                if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                    try:
                        annotation = ast.parse(annotation.value, mode="eval").body
                    except (SyntaxError, ValueError, RecursionError, MemoryError):
                        annotation = None
                if annotation is not None:
                    text = self.imports.resolve(annotation)
                    if text is None and isinstance(annotation, ast.Subscript):
                        text = self.imports.resolve(annotation.value)  # Optional[...] etc.
                        inner = annotation.slice
                        inner_text = self.imports.resolve(inner)
                        if inner_text:
                            text = inner_text
                    if text:
                        function.annotations[arg.arg] = text
        function.decorators = list(node.decorator_list)
        self._build_function(function, node.body)
        return function

    def _build_function(self, function: FunctionInfo, body: List[ast.stmt]) -> None:
        self.functions.append(function)
        saved, self._guards = self._guards, []
        function.ir = self._block(function, body, (), ())
        self._guards = saved

    def _class(self, node: ast.ClassDef, parent: FunctionInfo) -> None:
        bases = [self.imports.resolve(base) or "" for base in node.bases]
        info = ClassInfo(node, node.name, bases)
        self.classes.setdefault(node.name, info)
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                info.methods[statement.name] = self._new_function(statement, info, parent)
            elif isinstance(statement, ast.ClassDef):
                self._class(statement, parent)

    # -- statements -----------------------------------------------------------------------
    def _block(self, function: FunctionInfo, body, chain: Tuple[int, ...], loops: Tuple[Loop, ...],
               always_runs: bool = False):
        # A block that always runs when its statement does (a ``with`` body) shares the chain
        # of the enclosing block: a definition in it dominates what follows.
        if not always_runs:
            self._block_counter += 1
            chain = chain + (self._block_counter,)
        block: Block = []
        for statement in body:
            node = self._statement(function, statement, chain, loops)
            if node is not None:
                block.append(node)
        return block

    def _index(self, function: FunctionInfo, statement: ast.stmt, chain) -> int:
        function.statements.append(statement)
        function.blocks.append(chain)
        function.guards.append(tuple(self._guards))
        return len(function.statements) - 1

    def _statement(self, function: FunctionInfo, statement: ast.stmt, chain, loops):
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested = self._new_function(statement, None, function)
            function.nested[statement.name] = nested
            return None
        if isinstance(statement, ast.ClassDef):
            self._class(statement, function)
            return None
        index = self._index(function, statement, chain)
        if type(statement) in _SIMPLE_STATEMENTS:  # (most statements: no compound kind to test)
            return self._simple(function, statement, loops, index)
        sites = lambda *exprs: self._sites(function, exprs, loops, index, statement)  # noqa: E731
        if isinstance(statement, (ast.For, ast.AsyncFor, ast.While)):
            loop = Loop(statement, loops[-1] if loops else None, first_index=index,
                        runs_at_least_once=self._runs_at_least_once(function, statement))
            function.loops.append(loop)
            header = sites(statement.iter) if not isinstance(statement, ast.While) else sites(statement.test)
            inner = loops + (loop,)
            for site in header:
                site.loops = inner  # the iterable of a loop is evaluated once, but belongs to it
            body = self._block(function, statement.body, chain, inner)
            loop.last_index = len(function.statements) - 1
            orelse = self._block(function, statement.orelse, chain, loops)
            for enclosing in inner:
                enclosing.sites.extend(header)
            return ("loop", statement, loop, header, body, orelse)
        if isinstance(statement, (ast.With, ast.AsyncWith)):
            self.with_items.extend((item.context_expr, function) for item in statement.items)
            items = [(item.context_expr, sites(item.context_expr)) for item in statement.items]
            body = self._block(function, statement.body, chain, loops, always_runs=True)
            return ("with", statement, items, body)
        if isinstance(statement, ast.If):
            test_sites = sites(statement.test)
            known = self._truth(statement.test)
            if known is not None:
                # ``if use_attn:`` on a flag the file sets once to a constant: the other branch
                # never runs, its calls are not part of the program.
                self._guards.append((statement.test, known))
                live = self._block(function, statement.body if known else statement.orelse,
                                   chain, loops, always_runs=True)
                self._guards.pop()
                return ("with", statement, [], live)
            self._guards.append((statement.test, True))
            body = self._block(function, statement.body, chain, loops)
            self._guards[-1] = (statement.test, False)
            orelse = self._block(function, statement.orelse, chain, loops)
            self._guards.pop()
            return ("if", statement, test_sites, body, orelse)
        if isinstance(statement, ast.Try) or type(statement).__name__ == "TryStar":
            self._try_depth += 1
            try_body = self._block(function, statement.body, chain, loops)
            self._try_depth -= 1
            return ("try", statement, try_body,
                    [self._block(function, handler.body, chain, loops) for handler in statement.handlers],
                    self._block(function, statement.orelse, chain, loops),
                    self._block(function, statement.finalbody, chain, loops))
        if type(statement).__name__ == "Match":
            return ("branches", statement, sites(statement.subject),
                    [self._block(function, case.body, chain, loops) for case in statement.cases])
        if isinstance(statement, (ast.Return, ast.Raise)):
            return ("exit", statement, sites(*[c for c in ast.iter_child_nodes(statement)]))
        return self._simple(function, statement, loops, index)

    def _simple(self, function: FunctionInfo, statement: ast.stmt, loops, index: int):
        """A statement without a body (or one of a kind the IR does not model)."""
        if self._ends_the_program(statement):
            return ("exit", statement, self._sites(function, list(ast.iter_child_nodes(statement)), loops,
                                                   index, statement))
        if type(statement) is ast.Expr:
            self.expression_statements.append((statement, function))
        return ("simple", statement, self._sites(function, (statement,), loops, index, statement))

    def _truth(self, test: ast.expr) -> Optional[bool]:
        """The value of an ``if`` test known before the program runs: ``True``/``False``, a
        flag bound once to one of them (``use_attn = True``), ``not`` of either."""
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            inner = self._truth(test.operand)
            return None if inner is None else not inner
        if isinstance(test, ast.Constant) and isinstance(test.value, bool):
            return test.value
        if isinstance(test, ast.Name):
            value = self._module_constants().get(test.id)
            return bool(value) if type(value) is bool else None
        return None

    def _module_constants(self) -> Dict[str, Union[bool, int]]:
        """Read on the first question (one walk of the whole tree when the module binds a
        candidate), so files that never ask pay nothing."""
        if self._module_constants_found is None:
            self._module_constants_found = constants(self.tree.body, self.tree)
        return self._module_constants_found

    def _runs_at_least_once(self, function: FunctionInfo, loop: ast.stmt) -> bool:
        """``while True:``, ``for epoch in range(n_epochs)`` with ``n_epochs = 2`` bound once:
        the body runs at least once."""
        if isinstance(loop, ast.While):
            return isinstance(loop.test, ast.Constant) and bool(loop.test.value)
        call = loop.iter
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "range"
                and not call.keywords and 1 <= len(call.args) <= 2):
            return False
        bounds = [self._integer(function, arg) for arg in call.args]
        if any(bound is None for bound in bounds):
            return False
        start, stop = (0, bounds[0]) if len(bounds) == 1 else bounds
        return stop > start

    def _integer(self, function: FunctionInfo, expr: ast.expr) -> Optional[int]:
        """The value of a small integer expression: literals, names bound once to one in the
        function or the module, ``+``/``-``/``*`` of those."""
        if isinstance(expr, ast.Constant):
            return expr.value if type(expr.value) is int else None
        if isinstance(expr, ast.Name):
            if not function.is_module_scope:
                local = self._local_constants.get(id(function))
                if local is None:
                    local = self._local_constants[id(function)] = constants(function.node.body, function.node)
                if expr.id in local:
                    value = local[expr.id]
                    return value if type(value) is int else None
            value = self._module_constants().get(expr.id)
            return value if type(value) is int else None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub, ast.Mult)):
            left, right = self._integer(function, expr.left), self._integer(function, expr.right)
            if left is None or right is None:
                return None
            if isinstance(expr.op, ast.Add):
                return left + right
            return left - right if isinstance(expr.op, ast.Sub) else left * right
        return None

    def _ends_the_program(self, statement: ast.stmt) -> bool:
        """``sys.exit(1)``, ``exit()``, or a call of a name nothing defines (``model =
        CNNText(config)`` in a script whose star imports never bring it): no statement after
        it runs on this path."""
        value = getattr(statement, "value", None)
        if not isinstance(value, ast.Call) or not isinstance(statement, (ast.Expr, ast.Assign, ast.AnnAssign)):
            return False
        func = value.func
        if isinstance(func, ast.Name) and func.id in self._module_defines:
            return False  # the file's own ``def exit()``
        if isinstance(func, ast.Name) and self._certainly_undefined(func.id):
            return True
        if type(func) is ast.Attribute and func.attr not in _EXIT_LEAVES:
            return False  # (``outputs.append(y)``: its name through the imports ends as written)
        return isinstance(statement, ast.Expr) and self.imports.resolve(func) in PROGRAM_EXITS

    def _certainly_undefined(self, name: str) -> bool:
        """Calling ``name`` raises NameError in a script that expects its star imports to bring
        it (``from utils import *`` then ``CNNText(config)``, which utils never defines): not a
        builtin, bound nowhere in the file (no assignment, import, definition, ``global``, in
        any scope), the file binds no names at run time (``globals()``, ``exec``), and every
        star import is a project module that cannot bring it. A file without star imports
        that calls an unbound name is more likely a fragment (an example, an exercise) whose
        names are bound outside it, so its paths go on. A ``try`` may catch the error, so
        calls inside one do not count."""
        if self._try_depth or not self.imports.star_modules or self._star_import_may_define is None \
                or name in ALWAYS_DEFINED or name in self.imports.aliases:
            return False
        if self._bound_anywhere is None:
            self._bound_anywhere = names_bound_anywhere(self.tree)
        if self._bound_anywhere is RUN_TIME_BINDINGS or name in self._bound_anywhere:
            return False
        return not self._star_import_may_define(name)

    # -- call sites -----------------------------------------------------------------------
    def _sites(self, function: FunctionInfo, exprs, loops, index: int, statement) -> List[CallSite]:
        found: List[CallSite] = []
        statement_call = statement.value if isinstance(statement, ast.Expr) else None
        for expr in exprs:
            if expr is None:
                continue
            self._collect_calls(expr, found, function, loops, index, statement_call)
        function.sites.extend(found)
        for loop in loops:
            loop.sites.extend(found)
        return found

    def _collect_calls(self, root, found, function, loops, index, statement_call) -> None:
        # Post-order without recursion: arguments are evaluated before the call they feed. The
        # stack holds nodes to visit, and 1-tuples of calls whose arguments have been visited.
        if not _VISIT[type(root)]:
            return
        stack = [root]
        pop, push, visit, fields_backwards = stack.pop, stack.append, _VISIT, _FIELDS_BACKWARDS
        call_kind, comprehensions = ast.Call, _COMPREHENSIONS
        while stack:
            node = pop()
            kind = type(node)
            if kind is tuple:
                call = node[0]
                site = self._site(call, function, loops, index, call is statement_call)
                found.append(site)
                if site.qualified in PROCESS_STARTERS:
                    started = _call_a_process_starts(call, site.qualified)
                    if started is not None:
                        found.append(self._site(started, function, loops, index, False))
                continue
            if kind is call_kind:
                push((node,))
            elif kind in comprehensions:
                function.comprehensions.add(index)
            # Children pushed last field first, so that they are visited in source order.
            for name in fields_backwards[kind]:
                value = getattr(node, name, None)
                if type(value) is list:
                    for child in reversed(value):
                        if visit[type(child)]:
                            push(child)
                elif visit[type(value)]:
                    push(value)

    def _site(self, node: ast.Call, function, loops, index, is_statement) -> CallSite:
        callee = dotted(node.func)
        receiver = method = None
        if isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if callee is not None:
                receiver = callee[:-len(method) - 1]  # (``a.b`` of ``a.b.m``: no call on the way)
            else:
                receiver_node = node.func.value
                # ``model.to(device).train()`` switches ``model``: those methods return the module.
                while isinstance(receiver_node, ast.Call) and isinstance(receiver_node.func, ast.Attribute) \
                        and receiver_node.func.attr in _SELF_RETURNING:
                    receiver_node = receiver_node.func.value
                receiver = dotted(receiver_node)
        return CallSite(node, function, loops, index, callee, self.imports.qualify(callee),
                        receiver, method, is_statement)
