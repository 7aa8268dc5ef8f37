"""The semantic model of one file: the one place where facts are derived.

Rules ask it questions (``grad_at(site)``, ``mode_of(site, key)``, ``evaluation_evidence(site)``,
``reaches_training(site)``) and never walk the tree themselves.
"""

from __future__ import annotations

import ast
import functools
import os
from typing import Dict, FrozenSet, Iterator, List, Optional, Set, Tuple, Union

from ..config import DEFAULT_CONFIG, Config
from ..findings import ForeignLine, line_ref
from . import torch_api as api
from .dataflow import MUTATING_METHODS, TRAINING, Dataflow, may_reach_training
from .facts import Facts
from .frameworks import FrameworkLoops
from .flow import EVAL, OFF, ON, PASSED_IN, TRAIN, UNKNOWN, FlowAnalysis, lookup_mode
from .names import ImportTable, NameReferences, assigned_names, dotted, owners_of_calls, stored_targets, written_tensor
from .structure import CallSite, ClassInfo, FunctionInfo, Loop, StructureBuilder, binding_counts
from .summary import bind_record, mode_from_json
from .usage import DETACHED, TRAINS, UNUSED, UsageAnalysis
from .value_graph import ValueGraph


def forwarded_network(site: CallSite) -> Optional[str]:
    """The model a call runs: its own forward, or the one a project helper runs for it."""
    return site.network if site.network is not None else site.through_helper


class _CallsFromOtherModules:
    """What the calls other modules make into the file say (``ExternalLinker.incoming``)."""

    def __init__(self, incoming):
        # functions whose result another module trains on
        self.returns_training = [function for function, call in incoming
                                 if call.get("trains_through_result")]
        # functions other modules call -> one of those calls uses the result for training
        # (as a loss or, detached, as a target) or hands it on out of sight
        self.called: Dict[int, bool] = {}
        for function, call in incoming:
            self.called[id(function)] = self.called.get(id(function), False) \
                or bool(call.get("feeds_training")) or bool(call.get("result_escapes"))
        self.evaluation = {
            id(function): f"called from evaluation code at {_caller_file(call)}:{call['line']}"
            for function, call in incoming if call.get("evaluation") and not call.get("feeds_training")}
        # (function, parameter) -> whether the models other modules pass hold Dropout or
        # BatchNorm, per call (None: that call cannot tell); and the modes with them
        self.compositions: Dict[Tuple[int, str], List[Optional[bool]]] = {}
        self.passed_models: Dict[Tuple[int, str], List[Tuple[frozenset, Optional[bool]]]] = {}
        for function, call in incoming:
            params, method = list(function.params), function.cls is not None
            compositions = bind_record(call, params, method, "arg_compositions", "kwarg_compositions",
                                       receiver=None)
            for param, verdict in compositions.items():
                self.compositions.setdefault((id(function), param), []).append(verdict)
            for param, mode in bind_record(call, params, method, receiver=None).items():
                self.passed_models.setdefault((id(function), param), []).append(
                    (mode_from_json(mode) or frozenset(), compositions.get(param)))
        self.evaluation_grad: Dict[int, FrozenSet[str]] = {}
        for function, call in incoming:
            if call.get("evaluation") and not call.get("feeds_training"):
                self.evaluation_grad[id(function)] = \
                    self.evaluation_grad.get(id(function), frozenset()) | frozenset(call["grad"])


class TooDeepToAnalyse(Exception):
    """A part of the model built on demand met a file nested deeper than the analysis goes."""


def _arguments_along_the_chain(call: ast.Call) -> List[ast.expr]:
    """The arguments of a construction and of the methods chained to it that return the module
    itself: ``Translator(model=m).to(device)`` gives ``m`` and ``device``."""
    found = []
    while True:
        found.extend(list(call.args) + [keyword.value for keyword in call.keywords])
        func = call.func
        if type(func) is ast.Attribute and func.attr in api.SELF_RETURNING_METHODS and type(func.value) is ast.Call:
            call = func.value
            continue
        return found


class SemanticModel:
    def __init__(self, tree: ast.Module, filename: str = "<string>", config: Config = DEFAULT_CONFIG,
                 project=None, for_summary: bool = False, imports: Optional[ImportTable] = None,
                 source: Optional[str] = None):
        """``project``: a ProjectIndex, to see the project modules this file imports and the calls
        they make into it; ``for_summary``: building this module's summary (read what it imports,
        not who imports it); ``source``: the text of the tree, when at hand (text searches can
        then spare walks of the tree)."""
        self.tree = tree
        self.filename = filename
        self.config = config
        self.imports = imports or ImportTable.from_tree(tree)
        if project is not None and self.imports.star_modules and not self.imports.star_aliases_added:
            # ``from utils import *`` brings in what utils imports (``torch``, ``nn``) too.
            self.imports.add_star_aliases(project.star_aliases(filename, self.imports.star_modules))
        star_import_may_define = None
        if project is not None and self.imports.star_modules:
            star_import_may_define = functools.partial(
                project.star_import_may_define, filename, self.imports.star_modules)
        structure = StructureBuilder(tree, self.imports, star_import_may_define).build()
        self.structure = structure
        self.functions: List[FunctionInfo] = structure.functions
        self.classes: Dict[str, ClassInfo] = structure.classes
        self.module_function = structure.module_function
        self.frameworks = FrameworkLoops(tree, self.imports, self.functions)
        self.functions.extend(self.frameworks.build())
        self.linker = None
        if project is not None:
            from .summary import ExternalLinker

            self.linker = ExternalLinker(self, project, for_summary)
            self.linker.link()
            self.functions.extend(self.frameworks.build_trainer_loops(self.classes))
        self.facts = Facts(self.imports, self.functions, self.classes, self.module_function, config,
                           self.linker)
        self.facts.frameworks = self.frameworks
        self.facts.context_managers = {id(expr) for expr, _ in self.structure.with_items}
        self.facts.compute()
        self._references: Optional[NameReferences] = None
        self._source = source
        self._flow: Optional[FlowAnalysis] = None
        self._dataflow: Optional[Dataflow] = None
        self._usage: Optional[UsageAnalysis] = None
        self._anything_trains: Optional[bool] = None
        self._grad_of_methods_named: Dict[str, Optional[FrozenSet[str]]] = {}
        self._runtime_questions: Optional[bool] = None
        self._in_test_file = _is_test_file(filename, tree)
        self._loop_trains: Dict[int, bool] = {}
        self._runs_with_grad: Dict[int, Optional[bool]] = {}  # _runs_itself_with_grad per method
        self._assignments: Dict[tuple, List[Tuple[int, ast.stmt]]] = {}
        self._generators: Dict[frozenset, bool] = {}
        self._trained_bindings: Dict[frozenset, bool] = {}
        self._inference_only: Dict[frozenset, bool] = {}  # computes_training_targets per model
        self._site_by_id = {id(site): site for site in self.sites()}
        self._function_by_id = {id(function): function for function in self.functions}
        self._evaluation_entries_found: Optional[Dict[int, str]] = None

    def release(self) -> None:
        """Take the model apart once its questions are answered; it answers none afterwards.
        Its parts point at one another (a call site at its function and the function at its
        sites, a method at its class, the analyses at the model), so that it would stay
        until the cyclic garbage collector traversed all of it -- tens of thousands of objects
        on a big file -- to find it unreachable; taken apart, reference counting frees it at
        once."""
        for function in self.functions:
            for site in function.sites:
                site.__dict__.clear()
            for loop in function.loops:
                loop.__dict__.clear()
            if function.cls is not None:
                function.cls.__dict__.clear()
        for cls in self.classes.values():
            cls.__dict__.clear()
        for function in self.functions:
            function.__dict__.clear()
        for part in (self.facts, self._flow, self._dataflow, self._usage, self.linker, self.frameworks,
                     self.structure):
            if part is not None:
                part.__dict__.clear()
        self.__dict__.clear()

    @property
    def references(self) -> NameReferences:
        """Every name and attribute of the module (one walk, on the first question)."""
        if self._references is None:
            self._references = NameReferences(self.tree)
        return self._references

    # -- the flow, on the first question that needs it ---------------------------------------
    @property
    def flow(self) -> FlowAnalysis:
        """Grad mode and model modes at every call, with the calls other modules make into
        the file: built on the first question that needs them (a file whose forwards are all a
        model's own layers, with no backward pass, never asks)."""
        if self._flow is None:
            try:
                self._analyse_flow()
            except (RecursionError, MemoryError) as error:
                raise TooDeepToAnalyse(str(error)) from None
        return self._flow

    def _analyse_flow(self) -> None:
        flow = FlowAnalysis(self.facts, self.imports, self.config, self.functions,
                            self.structure.with_items, self._source, lambda: self.references)
        incoming = []
        if self.linker is not None:
            self.linker.preset_flow(flow)
        flow.summarize()
        if self.linker is not None:
            # Read only now: which functions' forwards see the state their callers give is known.
            incoming = self.linker.incoming(flow.caller_dependent)
        for number, (function, call) in enumerate(incoming):
            flow.add_external_call(function, -1 - number, call["grad"],
                                   self._incoming_modes(function, call))
        self._flow = flow
        flow.propagate()
        self._from_other_modules = _CallsFromOtherModules(incoming)

    @property
    def _returns_training(self) -> List[FunctionInfo]:
        return self._calls_in().returns_training

    @property
    def _externally_called(self) -> Dict[int, bool]:
        return self._calls_in().called

    @property
    def _external_evaluation(self) -> Dict[int, str]:
        return self._calls_in().evaluation

    @property
    def _external_evaluation_grad(self) -> Dict[int, FrozenSet[str]]:
        return self._calls_in().evaluation_grad

    def _calls_in(self) -> "_CallsFromOtherModules":
        self.flow  # noqa: B018 -- read with the flow
        return self._from_other_modules

    def has_runtime_questions(self) -> bool:
        """Whether the file holds what the rules about grad mode, module mode and graphs look
        at: a call that runs a backward pass or trains (here or in a project helper), a
        Lightning training hook, or a forward that is not a model's own layers inside its
        methods. Answered from the facts alone: a file of model definitions never builds the
        flow (the rules that read the text still run)."""
        if self._runtime_questions is None:
            self._runtime_questions = not self.config.shortcuts or any(
                api.backward_run_by(site) or self.facts.site_trains(site) for site in self.sites()
            ) or any(function.name in api.LIGHTNING_TRAIN_HOOKS for function in self.functions) or \
                not all(self._is_model_internal(site, callers_elsewhere=False) for site in self.forwards())
        return self._runtime_questions

    # -- what rules read of the file itself -------------------------------------------------
    @property
    def values(self) -> ValueGraph:
        """The def-use graph, for questions about where values come from and go."""
        return ValueGraph(self.dataflow)

    def with_items(self) -> List[Tuple[ast.expr, FunctionInfo]]:
        """Every ``with`` item of the file (``torch.no_grad()``), with its function."""
        return self.structure.with_items

    def expression_statements(self) -> List[Tuple[ast.Expr, FunctionInfo]]:
        """Every statement that is a bare expression (``model.eval``), with its function."""
        return self.structure.expression_statements

    def resolve(self, node: ast.AST) -> Optional[str]:
        """The qualified name a name or attribute refers to through the imports
        (``nn.Dropout`` -> ``torch.nn.Dropout``); None when it is not imported."""
        return self.imports.resolve(node)

    def is_optimizer(self, function: FunctionInfo, key: str) -> bool:
        """``key`` holds an optimizer in ``function`` (built from ``torch.optim`` or a known
        optimizer library, or passed in by callers that hold one)."""
        return self.facts.is_optimizer(function, key)

    def bound_arguments(self, site: CallSite, function: FunctionInfo):
        """(parameter of ``function``, argument expression) for the call ``site`` of it."""
        return self.facts.bind_arguments(site, function)

    @property
    def dataflow(self) -> Dataflow:
        """The def-use graph, built on the first question that needs it (many files, model
        definitions above all, never ask one)."""
        if self._dataflow is None:
            dataflow = Dataflow(self.facts, self.imports, self.functions, self.linker,
                                self._returns_training)
            try:
                dataflow.build()
            except (RecursionError, MemoryError) as error:
                raise TooDeepToAnalyse(str(error)) from None
            self._dataflow = dataflow
        return self._dataflow

    @property
    def usage(self) -> UsageAnalysis:
        """Where call results go, forwards along the def-use graph (built on first use)."""
        if self._usage is None:
            self._usage = UsageAnalysis(self.dataflow, self.functions, self._hides_a_use,
                                        self._externally_called, self.references)
        return self._usage

    def output_fate(self, site: CallSite, with_values: Union[bool, str] = False) -> str:
        """Where the output of ``site`` goes: TRAINS (its autograd history reaches a backward
        pass), ESCAPES (into code the analysis cannot see) or UNUSED (nowhere a backward pass
        can use it). ``with_values``: through ``.detach()`` and ``.item()`` too; DETACHED:
        through ``.detach()`` only."""
        try:
            return self.usage.fate(site, with_values)
        except RecursionError as error:
            raise TooDeepToAnalyse(str(error)) from None

    def _hides_a_use(self, site: CallSite) -> bool:
        """A call of code we cannot read that may keep what it is handed, or train on it
        (``accelerator.backward(loss)``, ``meter.update(loss)``, ``self.log(...)`` aside)."""
        qualified = site.qualified or ""
        if qualified.startswith(api.PURE_ROOTS) or qualified in api.PURE_BUILTINS:
            return False
        if site.method in api.REPORTING_METHODS or api.stops_gradient(site.method, getattr(site.node.func, "value", None)):
            return False
        if site.method in MUTATING_METHODS and \
                written_tensor(site.node.func.value, api.TENSOR_VIEW_METHODS):
            return False  # ``outputs.append(y)``, ``m.view(-1).add_(y)``: the dataflow follows the container
        arguments = list(site.node.args) + [k.value for k in site.node.keywords]
        if any(self.facts.is_optimizer(site.function, dotted(arg) or "") for arg in arguments):
            return True  # ``loss_scaler(loss, optimizer)``: a training step in disguise
        callee = (site.callee or "").rsplit(".", 1)[-1]
        if set(api.words(callee)) & api.LOSS_WORDS:
            return False  # a criterion computes a value from its inputs
        return True

    # -- iteration ------------------------------------------------------------------------
    def sites(self) -> Iterator[CallSite]:
        """Every call of the file, function by function, in evaluation order."""
        for function in self.functions:
            yield from function.sites

    def forwards(self) -> Iterator[CallSite]:
        """Every call that runs a network forward (``site.network`` names it): ``net(x)``,
        ``model.encode(x)``, ``self.decoder(h)``, a part of a model called on its own."""
        for site in self.sites():
            if site.network is not None:
                yield site

    # -- grad and module mode -------------------------------------------------------------
    def grad_at(self, site: CallSite) -> FrozenSet[str]:
        """The grad modes that may be in effect at the call: ``on``, ``off``, ``dynamic``
        (``set_grad_enabled(flag)`` with a flag the analysis cannot read). A forward through a
        method that sets its own grad mode (``@torch.no_grad() def generate``) runs in that."""
        if site.network is not None and site.target is not None:
            own = self.flow.grad_set_by(site.target)
            if own is not None:
                return own
            if site.handed_to == "off" or not site.target.external and site.network == site.receiver and \
                    site.target.cls is not None and site.target.name not in ("forward", "__call__") and \
                    self._runs_itself_with_grad(site.target) is False:
                return frozenset({OFF})  # ``model.sample(x)`` whose loop runs under no_grad
        elif site.network is not None and site.network == site.receiver and site.method:
            own = self._grad_set_by_methods_named(site.method)
            if own is not None:
                return own  # ``model.generate(x)`` of a parameter: every class's ``generate`` sets it
        elif site.network is not None and site.method is None:
            cls = self.facts.model_class_of(site.function, site.network)
            forward = cls.find_method("forward") if cls is not None else None
            own = self.flow.grad_set_by(forward) if forward is not None else None
            if own is not None:
                return own  # ``m(im)`` of a class whose ``forward`` is decorated (YOLOv5's AutoShape)
            if self._built_from_library_classes_without_grad(site):
                return frozenset({OFF})
        return self.flow.site_grad.get(id(site), frozenset({ON}))

    def _built_from_library_classes_without_grad(self, site: CallSite) -> bool:
        """Every construction of the model in sight is of a library class whose ``forward``
        runs under no_grad (diffusers' ``StableDiffusionSafetyChecker.from_pretrained(...)``)."""
        calls = self._constructions_in_sight(site)
        if not calls:
            return False
        for call in calls:
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "from_pretrained":
                func = func.value
            if (self.imports.resolve(func) or "") not in api.LIBRARY_CLASSES_FORWARD_WITHOUT_GRAD:
                return False
        return True

    def _grad_set_by_methods_named(self, name: str) -> Optional[FrozenSet[str]]:
        """The grad mode the file's network classes' methods called ``name`` set for their
        bodies (``@torch.no_grad() def generate``), when every one of them sets one."""
        if name not in self._grad_of_methods_named:
            modes = [self.flow.grad_set_by(function) for function in self.functions
                     if function.name == name and function.cls is not None and function.cls.is_module]
            self._grad_of_methods_named[name] = frozenset().union(*modes) \
                if modes and all(mode is not None for mode in modes) else None
        return self._grad_of_methods_named[name]

    def _runs_itself_with_grad(self, method: FunctionInfo) -> Optional[bool]:
        """Whether a method of a model class runs the model's layers, itself or through the
        methods it calls on ``self``, where autograd may be on: False when every such forward
        it shows runs under no_grad, None when it shows none."""
        if id(method) in self._runs_with_grad:
            return self._runs_with_grad[id(method)]
        self._runs_with_grad[id(method)] = None  # a cycle of methods adds nothing
        verdicts = []
        for site in method.sites:
            if site.runs_own_layers:
                verdicts.append(ON in self.flow.site_grad.get(id(site), frozenset({ON})))
            elif site.receiver == "self" and site.target is not None and not site.target.external:
                verdicts.append(self._runs_itself_with_grad(site.target))
        found = True if True in verdicts else False if False in verdicts else None
        self._runs_with_grad[id(method)] = found
        return found

    def grad_may_be_on(self, site: CallSite) -> bool:
        """Autograd may be on at the call (on some path into it)."""
        return ON in self.grad_at(site)

    def grad_may_be_on_statement(self, statement: ast.stmt) -> bool:
        """Autograd may be on where the statement runs."""
        return ON in self.flow.statement_grad.get(id(statement), frozenset({ON}))

    def grad_is_off(self, site: CallSite) -> bool:
        """Autograd is off at the call on every path (no_grad, inference_mode)."""
        return self.grad_at(site) == frozenset({OFF})

    def mode_of(self, site: CallSite, key: str):
        """The set of (mode, line) the model ``key`` may be in at ``site``; None when unknown."""
        key = self.facts.aliases.canonical(site.function, key)  # ``snet = nets['snet']``
        return lookup_mode(self.flow.site_modes.get(id(site), {}), key)

    def mode_when_training(self, site: CallSite, key: str):
        """The mode of ``key`` at a training forward, counting only the in-file callers whose
        call trains -- its result reaches a backward pass, or it trains itself, with autograd on
        (a helper that evaluation calls too, under no_grad, is not training in eval mode)."""
        mode = self.mode_of(site, key)
        function = site.function
        if not mode or function.is_module_scope:
            return mode
        key = self.facts.aliases.canonical(function, key)
        first, last = function.node.lineno, function.node.end_lineno or function.node.lineno
        if any(line and first <= line <= last for _, line in mode):
            return mode  # set inside this function
        joined = None
        for caller_id, state in self.flow.contributions(function).items():
            caller = self._site_by_id.get(caller_id)
            if caller is None or ON not in state.grad or not (
                    self.reaches_training(caller) or self.site_trains(caller)):
                continue
            value = lookup_mode(state.modes, key) or frozenset({("?", None)})
            joined = value if joined is None else joined | value
        return joined if joined is not None else mode

    @property
    def in_test_file(self) -> bool:
        """The file is a test module (named like one and written like one)."""
        return self._in_test_file

    def switched_to_eval_by_its_method(self, site: CallSite) -> bool:
        """The call runs a method of the model that a decorator puts in eval mode first
        (``@eval_decorator def generate_images(self, ...)``): the forwards inside are not in
        the caller's mode."""
        targets = site.targets()
        return bool(targets) and all(self.facts.switched_to_eval_by_a_decorator(target) for target in targets)

    def eval_switch_correlates(self, site: CallSite, lines) -> bool:
        """The ``eval()`` that makes the mode mixed sits under a guard that the forward shares
        (``if encoder is not None: encoder.eval()`` ... ``if encoder is not None: encoder(x)``)
        or that tests the model itself (``if isinstance(net, nn.Module): net.eval()``): the
        paths that skip it are not paths where the forward runs in training mode."""
        function = site.function
        if site.index >= len(function.guards):
            return False
        around_site = {(ast.dump(test), branch) for test, branch in function.guards[site.index]}
        root = (site.network or "").split(".")[0]
        flags = set(function.params) - {root, "self"}
        for index, statement in enumerate(function.statements):
            if statement.lineno not in lines:
                continue
            for test, branch in function.guards[index]:
                if (ast.dump(test), branch) in around_site:
                    return True
                names = {node.id for node in ast.walk(test) if isinstance(node, ast.Name)}
                if root in names:
                    return True
                if names & flags:
                    return True  # ``if training: model.train()``: the caller picks the mode
        return False

    def training_excluded_by_guard(self, site: CallSite, eval_lines) -> bool:
        """Every ``eval()`` that reaches the training forward ``site`` runs under one branch of
        a test, and every training step of the forward's loop under the other branch of the same
        test, whose names nothing reassigns inside the iteration (the ``for phase in ["train",
        "val"]`` idiom): on the paths where the forward trains, the model is not in eval mode."""
        function = site.function
        switches = [index for index, statement in enumerate(function.statements)
                    if statement.lineno in eval_lines]
        if len(switches) < len(set(eval_lines)):
            return False  # an eval() in a helper is not guarded here
        if not switches:
            return False
        loop = next((loop for loop in reversed(site.loops)
                     if all(loop.contains_index(index) for index in switches)), None)
        if loop is not None:
            def stable(test, first_use):
                return self._stable_within(function, loop, test, first_use)
        else:
            # ``def run_epoch(is_train): if is_train: model.train() else: model.eval()`` before
            # the batch loop, the step under ``if is_train:``: a flag the function never rebinds
            # holds for the whole call (an unguarded eval() before the loop holds for every step)
            def stable(test, first_use):
                return self._parameter_never_rebound(function, test)
        steps = [other for other in (loop or function).sites if self.facts.site_trains(other) and
                 not self._trains_only_what_else_it_is_handed(other, site.network)]
        if not steps:
            return False
        for eval_index in switches:
            for step in steps:
                if not any(stable(test, min(eval_index, step.index))
                           for test in function.opposite_branch_tests(eval_index, step.index)):
                    return False
        return True

    @staticmethod
    def _parameter_never_rebound(function: FunctionInfo, test: ast.expr) -> bool:
        """The test reads only parameters of the function that nothing in it binds again."""
        names = {node.id for node in ast.walk(test) if isinstance(node, ast.Name)}
        counts = binding_counts(function)
        return bool(names) and all(name in function.params and counts.get(name, 0) == 1 for name in names)

    def _trains_only_what_else_it_is_handed(self, step: CallSite, key: Optional[str]) -> bool:
        """``ODFA(model, inputs)``: a helper handed the model whose backward reaches only its
        other arguments (an adversarial example's input gradients, on a copy of the model) is
        no training step of the model."""
        target = step.target
        if target is None or not key:
            return False
        bound = [(param, dotted(argument)) for param, argument in self.facts.bind_arguments(step, target)]
        handed = [param for param, argument in bound if argument == key]
        if not handed:
            return False
        facts = target.external_facts if target.external else None
        reaching = set(facts.get("params_reaching_training") or ()) if facts is not None else \
            set(self.dataflow.params_training_inside(target))
        return bool(reaching) and not reaching & set(handed)

    @staticmethod
    def _stable_within(function: FunctionInfo, loop: Loop, test: ast.expr, first_use: int) -> bool:
        """Inside one iteration of ``loop``, the names the test reads are bound only before
        ``first_use`` and not inside an inner loop (``is_train = split == "train"`` at the top)."""
        names = {node.id for node in ast.walk(test) if isinstance(node, ast.Name)}
        for index in range(loop.first_index + 1, loop.last_index + 1):
            statement = function.statements[index]
            targets = list(statement.targets) if isinstance(statement, ast.Assign) else \
                [statement.target] if isinstance(statement, (ast.AugAssign, ast.AnnAssign, ast.For)) else []
            if not any(isinstance(node, ast.Name) and node.id in names
                       for target in targets for node in ast.walk(target)):
                continue
            inner = any(other is not loop and loop.first_index < other.first_index <= index <= other.last_index
                        for other in function.loops)
            if index >= first_use or inner:
                return False
        return True

    def may_have_dropout_or_batchnorm(self, site: CallSite, key: str) -> bool:
        """The model holds Dropout/BatchNorm (or code that reads ``self.training``), or may:
        when its layers cannot be seen, a model this program trains is taken to hold them
        (a trained network that is evaluated usually does); one it never trains is not."""
        verdict = self.known_composition(site.function, key)
        if verdict is not None:
            return verdict
        root = key.split(".")[0]
        if root in site.function.params and id(site.function) in self._externally_called:
            # handed in by another module: what its callers know of the models they pass
            passed = self._calls_in().compositions.get((id(site.function), root))
            return not passed or root != key or any(v is not False for v in passed)
        return self.trains_model(site.function, key)

    def training_mode_comes_with_dropout_or_batchnorm(self, site: CallSite, key: str) -> bool:
        """Every call that hands the function ``key`` in training mode hands it a model whose
        construction shows Dropout/BatchNorm (``evaluate(loader, model)`` called after
        ``train_one_epoch`` with a timm model, and with an EMA copy the linter cannot follow):
        the paths of unknown mode do not make the training-mode ones harmless."""
        function = site.function
        if key not in function.params:
            return False
        found = False
        for caller_id, state in self.flow.contributions(function).items():
            caller = self._site_by_id.get(caller_id)
            if caller is None:
                continue  # another module's call: its record below
            if not any(mode == TRAIN for mode, _ in lookup_mode(state.modes, key) or ()):
                continue
            argument = next((arg for param, arg in self.facts.bind_arguments(caller, function) if param == key), None)
            if argument is None or self.facts.expression_composition(caller.function, argument) is not True:
                return False
            found = True
        for modes, composition in self._calls_in().passed_models.get((id(function), key), ()):
            if any(mode == TRAIN for mode, _ in modes):
                if composition is not True:
                    return False
                found = True
        return found

    def known_composition(self, function: FunctionInfo, key: str) -> Optional[bool]:
        """Whether the model holds Dropout/BatchNorm as far as its construction shows (its
        class, or how it was built here); None when that cannot be seen."""
        cls = self.facts.model_class_of(function, key) or self._part_class(function, key)
        verdict = self.facts.class_composition(cls) if cls is not None else None
        # a class that keeps the modules it is handed: what the constructions here hand it
        return verdict if verdict is not None else self.facts.composition_of(function, key)

    def trains_model(self, function: FunctionInfo, key: str) -> bool:
        """Some forward of the model (or of the model it is a part of: ``model.encoder``)
        reaches a backward pass, or an optimizer steps its parameters."""
        root = key.split(".")[0]
        if root != key and root != "self" and self.trains_model(function, root):
            return True
        binding = frozenset(self.binding(function, key))
        known = self._trained_bindings.get(binding)
        if known is None:
            known = any(self.binding(site.function, site.network) & binding and self.reaches_training(site)
                        for site in self.forwards()) or self._stepped_by_an_optimizer(binding)
            self._trained_bindings[binding] = known
        return known

    def _stepped_by_an_optimizer(self, binding) -> bool:
        return any(self.binding(self._function_by_id[scope], owner) & binding
                   for (scope, _), owners in self.facts.optimizers.items() if scope in self._function_by_id
                   for owner in owners)

    def _part_class(self, function: FunctionInfo, key: str) -> Optional[ClassInfo]:
        """The class of a model's part, ``model.encoder``, when the model's class builds it
        from a class of the file (``self.encoder = Encoder()``)."""
        owner, _, attribute = key.partition(".")
        if not attribute or "." in attribute or owner == "self":
            return None
        cls = self.facts.model_class_of(function, owner)
        part = self.facts.class_attr_class.get((id(cls), attribute)) if cls is not None else None
        return part if part is not None and part.is_module else None

    def class_holds_no_parameters(self, cls: ClassInfo) -> bool:
        """Instances of the class build no graph of their own (for the module's summary)."""
        return _holds_no_parameters(cls, self.imports)

    def runs_a_module_without_parameters(self, site: CallSite) -> bool:
        """The forward runs a module of a class that holds no parameters (a positional encoding
        of a buffer and a Dropout): nothing can train it, whatever trains the model around it."""
        cls = self.facts.model_class_of(site.function, site.network) if site.network else None
        return cls is not None and _holds_no_parameters(cls, self.imports)

    def is_frozen(self, site: CallSite) -> bool:
        """The model a forward runs has its parameters frozen, or has none (an activation
        written as a module): it builds no graph of its own."""
        if self.facts.is_frozen(forwarded_network(site), site.function):
            return True
        return self.runs_a_module_without_parameters(site) or self._built_without_parameters(site)

    # -- training -------------------------------------------------------------------------
    def reaches_training(self, site: CallSite) -> bool:
        """The call's value flows into a backward pass or autograd.grad."""
        return self.anything_trains and self.dataflow.site_reaches_training(site)

    @property
    def anything_trains(self) -> bool:
        """Something in the file can feed a training step: a backward pass, autograd.grad, a
        Lightning training hook, or a project function or caller that trains what it is given.
        Without one, nothing reaches training and the def-use graph need not be built."""
        if self._anything_trains is None:
            self._anything_trains = not self.config.shortcuts or may_reach_training(
                self.functions, self.linker, self._returns_training)
        return self._anything_trains

    def site_trains(self, site: CallSite) -> bool:
        return self.facts.site_trains(site)

    def loop_trains(self, loop: Loop) -> bool:
        """A call in the loop runs a backward pass or an optimizer step, itself or through
        in-file helpers."""
        known = self._loop_trains.get(id(loop))
        if known is None:
            known = self._loop_trains[id(loop)] = any(self.facts.site_trains(s) for s in loop.sites)
        return known

    def is_optimizer_step(self, site: CallSite) -> bool:
        """``optimizer.step()`` of a name that holds an optimizer."""
        return site.method == "step" and bool(site.receiver) and self.facts.is_optimizer(site.function, site.receiver)

    def loop_steps_an_optimizer(self, loop: Loop) -> bool:
        """An ``optimizer.step()`` runs in the loop: each iteration is a step of its own."""
        return any(self.is_optimizer_step(site) for site in loop.sites)

    def function_trains(self, function: FunctionInfo) -> bool:
        return id(function) in self.facts.training_functions

    def wants_input_gradients(self, function: FunctionInfo) -> bool:
        return any(id(scope) in self.facts.gradient_wanted for scope in function.enclosing_functions())

    def needs_input_gradients(self, site: CallSite) -> bool:
        """The forward's graph serves gradients with respect to inputs, not the model's
        training: its output is what an ``autograd.grad`` call differentiates (a gradient
        penalty, saliency), or it runs on an input made to require gradients (an adversarial
        example). Other forwards of the same function are not exempt."""
        if not self.wants_input_gradients(site.function):
            return False
        if self.anything_trains and self.usage.reaches_input_gradient(site):
            return True
        wanting = self._inputs_wanting_gradients(site)
        return bool(wanting) and self._arguments_derive_from(site, wanting)

    def _inputs_wanting_gradients(self, site: CallSite) -> Set[str]:
        """Names the function (or one enclosing it) makes require gradients on a path that
        can reach ``site``: not in the other branch of an ``if`` around it (``if sobolev:
        img.requires_grad = True; ... else: with no_grad: ...``)."""
        names: Set[str] = set()
        for scope in site.function.enclosing_functions():
            for name, indexes in self.facts.gradient_inputs.get(id(scope), {}).items():
                if scope is not site.function or \
                        not all(scope.opposite_branch_tests(index, site.index) for index in indexes):
                    names.add(name)
        return names

    def computed_without_graph(self, site: CallSite, expr: ast.AST) -> Optional[int]:
        """The line where ``expr`` (used at ``site``) was computed with autograd off, when every
        way it could have carried a graph was cut that way; None otherwise."""
        function = site.function
        sites_by_id = self._site_by_id
        statements = function.statements
        stack = list(self.dataflow.sources(function, site.index, expr))
        seen: Set[tuple] = set()
        lines: List[int] = []
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            kind = node[0]
            if kind == "call":
                producer = sites_by_id.get(node[1])
                if producer is None or producer.function is not function:
                    return None
                if producer.qualified == "torch.nn.Parameter" or any(
                        k.arg == "requires_grad" for k in producer.node.keywords):
                    return None  # a leaf that requires grad even under no_grad
                if producer.target is not None:
                    return None  # what an in-file function returns (parameters?) is its business
                if self.grad_is_off(producer):
                    lines.append(producer.line)
                    continue
                if producer.network is not None:
                    return None
                if self._may_run_a_model(producer):
                    return None
                stack.extend(self.dataflow.preds.get(node, ()))
            elif kind == "def" and node[1] == id(function):
                statement = statements[node[2]]
                if self.flow.statement_grad.get(id(statement)) == frozenset({OFF}) and \
                        _computes(statement):
                    lines.append(statement.lineno)
                    continue
                stack.extend(self.dataflow.preds.get(node, ()))
            elif kind in ("attr", "return", "def", "grad"):
                return None
        return min(lines) if lines else None

    def is_loss_like(self, function: FunctionInfo, index: int, expr: ast.AST) -> bool:
        """The value is a loss: computed by a loss function or criterion, reduced to a scalar,
        or itself sent to a backward pass (not a feature map or a list of outputs)."""
        stack = list(self.dataflow.sources(function, index, expr))
        seen: Set[tuple] = set()
        backward_roots = self.dataflow.preds.get(TRAINING, set())
        while stack and len(seen) < 64:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if node in backward_roots:
                return True  # the very value a backward pass starts from
            if node[0] == "call":
                site = self._site_by_id.get(node[1])
                if site is None:
                    continue
                if _is_loss_call(site, self.facts):
                    return True
                if site.network is not None or site.target is not None:
                    continue  # a model's output, or what a helper returns, is not a loss here
                stack.extend(self.dataflow.preds.get(node, ()))
            elif node[0] in ("def", "attr"):
                stack.extend(self.dataflow.preds.get(node, ()))
        return False

    def _may_run_a_model(self, site: CallSite) -> bool:
        """A call into code we cannot see that is handed a model (``diffusion.training_losses(
        model, x, t)``), or that is no torch operation at all."""
        arguments = list(site.node.args) + [k.value for k in site.node.keywords]
        if any(self.facts.is_model(site.function, dotted(arg)) for arg in arguments):
            return True
        qualified = site.qualified or ""
        return site.method is None and not qualified.startswith("torch.")

    # -- for fixes -------------------------------------------------------------------------
    def torch_name(self) -> str:
        """How this file spells the torch module (``T`` after ``import torch as T``)."""
        for local, target in self.imports.aliases.items():
            if target == "torch":
                return local
        return "torch"

    def trainer_loop_callbacks(self, site: CallSite, key: str, mode: str):
        """For a forward of a project trainer's loop that ``frameworks.py`` wrote out (its
        training step, located at ``trainer.run()``): the call that runs the loop, and the
        callbacks of the loop that may leave ``key`` in ``mode``, each with the line of the
        switch that does it (None when a helper does it). None for any other forward."""
        function = site.function
        runner = getattr(function, "framework_call", None)
        if runner is None:
            return None
        found = []
        for call in function.sites:
            callback = call.target
            if callback is None or callback.external or call is site:
                continue
            lines = [inner.line for inner in callback.sites if inner.receiver == key
                     and inner.method in ("eval", "train") and self.flow.switch_mode(inner) == mode]
            effect = self.flow.effects.get(id(callback), {}).get(key) or ()
            if lines or any(value == mode for value, _ in effect):
                found.append((callback.name, lines[-1] if lines else None))
        return runner, found

    def statement_of(self, site: CallSite) -> ast.stmt:
        """The statement that holds the call."""
        return site.function.statements[site.index]

    def evaluation_start(self, site: CallSite, model: Optional[str] = None) -> ast.stmt:
        """Where an evaluation around ``site`` begins: its outermost loop that does not train,
        else its own statement (where a fix puts ``no_grad`` or ``model.eval()``). With
        ``model``, inside the loop that binds it (``for net in nets: net(x)``)."""
        loops = list(site.loops)
        if model is not None:
            root = model.split(".")[0]
            binding = [i for i, loop in enumerate(loops) if isinstance(loop.node, (ast.For, ast.AsyncFor))
                       and root in {n.id for n in ast.walk(loop.node.target) if isinstance(n, ast.Name)}]
            if binding:
                loops = loops[binding[-1] + 1:]
        for loop in loops:
            if not self.loop_trains(loop):
                return loop.node
        return self.statement_of(site)

    # -- who trains what: bindings, optimizers, gradient paths ----------------------------
    def binding(self, function: FunctionInfo, key: str, depth: int = 0) -> Set[tuple]:
        """Where the object a name refers to lives, seen through parameters: ``netD`` in
        ``d_loss(netD, ...)`` is the ``netD`` its callers pass; ``self.netD`` is the class's;
        ``snet = nets['snet']`` is the element of the ``nets`` its callers pass."""
        key = self.facts.aliases.canonical(function, key)
        root, _, rest = key.partition(".")
        if root == "self" and rest:
            cls = self.facts.enclosing_class(function)
            if cls is not None:
                return {("attr", id(cls), rest.split(".")[0])}
        if root in function.params and function.callers and depth < 4:
            found: Set[tuple] = set()
            for site in function.callers:
                for param, arg in self.facts.bind_arguments(site, function):
                    text = dotted(arg)
                    if param == root and text:
                        found |= self.binding(site.function, text + (f".{rest}" if rest else ""), depth + 1)
            if found:
                return found
        for scope in function.enclosing_functions():
            if root in scope.local_names or root in scope.params or scope.is_module_scope:
                return {("name", id(scope), key)}
        return {("name", id(function), key)}

    def optimizer_step_after(self, site: CallSite, depth: int = 0) -> Optional[CallSite]:
        """The first optimizer step that runs after ``site`` (in its function, else after the
        call that led to it in a caller)."""
        function = site.function
        for other in function.sites:
            if other.index < site.index or other is site:
                continue
            if self.is_optimizer_step(other):
                return other
        if depth < 2:
            for caller in function.callers:
                found = self.optimizer_step_after(caller, depth + 1)
                if found is not None:
                    return found
        return None

    def backward_passes(self):
        """(backward call, the optimizer step after it, the models it steps or None, the loss
        expression) for every ``loss.backward()`` -- or ``(a + b).backward()`` -- followed by a
        step."""
        for backward in self.sites():
            if backward.method != "backward" or not isinstance(backward.node.func, ast.Attribute):
                continue
            if backward.receiver is None and not isinstance(backward.node.func.value, (ast.BinOp, ast.Call)):
                continue
            step = self.optimizer_step_after(backward)
            if step is not None:
                yield backward, step, self.stepped_models(step), backward.node.func.value

    def later_steps(self, site: CallSite) -> List[CallSite]:
        """Optimizer steps after ``site`` in its function, in order."""
        return [other for other in site.function.sites if other.index > site.index and self.is_optimizer_step(other)]

    def gradients_used_later(self, backward: CallSite, binding: Set[tuple]) -> bool:
        """A later step in the same function updates the model, and nothing zeroes its
        gradients in between: the gradients this backward left are used, not wasted."""
        zeroed_at = []
        for other in backward.function.sites:
            if other.index <= backward.index:
                continue
            # ``reset_grad()``: an in-file helper that zeroes gradients does so where it is called
            zeroing = [other] if other.method == "zero_grad" else [
                inner for inner in (other.target.sites if other.target is not None and
                                    not other.target.external else ()) if inner.method == "zero_grad"]
            if any(self._zeroes(inner, binding) for inner in zeroing):
                zeroed_at.append(other.index)
        for step in self.later_steps(backward):
            stepped = self.stepped_models(step)
            if stepped and stepped & binding:
                return not any(index < step.index for index in zeroed_at)
        return False

    def _zeroes(self, zero_grad: CallSite, binding: Set[tuple]) -> bool:
        """``x.zero_grad()`` clears the gradients of the model ``binding``: ``x`` is that model,
        or an optimizer that steps it (or one whose construction we cannot see)."""
        if not zero_grad.receiver:
            return False
        if self.binding(zero_grad.function, zero_grad.receiver) & binding:
            return True
        if self.facts.is_optimizer(zero_grad.function, zero_grad.receiver):
            stepped = self.stepped_models(zero_grad)
            return stepped is None or bool(stepped & binding)
        return False

    def stepped_models(self, step: CallSite) -> Optional[Set[tuple]]:
        """The bindings of the models whose parameters an optimizer step updates; None when
        the optimizer's construction cannot be seen."""
        found: Set[tuple] = set()
        for kind, owner, key in self.binding(step.function, step.receiver):
            created = []
            if kind == "name":
                models = self.facts.optimizers.get((owner, key))
                if models is not None:
                    created.append((self._function_by_id[owner], models))
            else:
                for function in self.functions:
                    if function.cls is not None and id(function.cls) == owner:
                        models = self.facts.optimizers.get((id(function), f"self.{key}"))
                        if models is not None:
                            created.append((function, models))
            if not created:
                return None
            for function, models in created:
                for model_key in models:
                    found |= self.binding(function, model_key)
        return found

    def runs_inside(self, site: CallSite, bindings: Set[tuple]) -> bool:
        """A forward of one of a model's own layers (``self.network(x)`` in a method of the
        class), when the model is one of ``bindings``: it is a part of that model, not
        another model."""
        key = forwarded_network(site) or ""
        if not (key == "self" or key.startswith("self.")):
            return False
        cls = self.facts.enclosing_class(site.function)
        if cls is None:
            return False
        for kind, owner, name in bindings:
            if kind == "attr":
                function = next((f for f in self.functions if f.cls is not None and id(f.cls) == owner), None)
                found = self.facts.class_of_instance(function, f"self.{name}") if function else None
            else:
                function = self._function_by_id.get(owner)
                found = self.facts.model_class_of(function, name) if function else None
            if found is not None and any(ancestor is cls for ancestor in found.lineage()):
                return True
        return False

    def gradient_upstream(self, function: FunctionInfo, index: int, expr: ast.AST) -> Set[tuple]:
        """Every dataflow node whose autograd history flows into ``expr``."""
        start = self.dataflow.sources(function, index, expr)
        found = set(start)
        for node in start:
            found |= self.dataflow.upstream(node)
        return found

    def site_of(self, node: tuple) -> Optional[CallSite]:
        """The call whose value ``node`` (of ``values``) is; None for other values."""
        return self._site_by_id.get(node[1]) if node and node[0] == "call" else None

    def forward_sites_in(self, nodes: Set[tuple], through_helpers: bool = False) -> List[CallSite]:
        """The forward passes among ``nodes``; with ``through_helpers``, also the calls of
        project helpers that run one model of the caller's (for questions about the graph)."""
        found = [self._site_by_id[node[1]] for node in nodes if node[0] == "call"
                 and node[1] in self._site_by_id]
        found = [site for site in found if site.network is not None or
                 through_helpers and site.through_helper is not None]
        return sorted(found, key=lambda s: (s.line, s.col))

    def network_binding(self, site: CallSite) -> Set[tuple]:
        """Where the network the forward runs was bound (the same object has the same
        bindings: ``netD`` in ``train()`` and the global ``netD`` it was passed)."""
        return self.binding(site.function, forwarded_network(site))

    # -- evaluation context ---------------------------------------------------------------
    def feeds_training(self, site: CallSite) -> bool:
        """The call's value is used by a training step, even through ``.detach()`` (a DQN
        target, a teacher's soft labels)."""
        # The def-use graph's answer is context-insensitive (a loss helper shared with the
        # training step links every caller to its backward): the walk forwards, with calls
        # matched to returns, has the last word when it finds no use at all.
        return self.anything_trains and self.dataflow.site_feeds_training(site) and \
            self.output_fate(site, True) != UNUSED

    def computes_training_targets(self, site: CallSite) -> bool:
        """A forward of a model that nothing in the file trains -- no optimizer steps it, none of
        its graphs reaches a backward pass, its weights are not copied or averaged in from
        another model (a target network, an EMA teacher) -- whose values feed a training step:
        a teacher's soft labels. That is inference. (A model frozen with ``requires_grad_(False)``
        is not enough: LoRA and adapter training freeze a network and train parts inside it.)"""
        if site.network is None or not self.feeds_training(site):
            return False
        binding = frozenset(self.binding(site.function, site.network))
        known = self._inference_only.get(binding)
        if known is None:
            known = self._inference_only[binding] = not self._stepped_by_an_optimizer(binding) and \
                not any(self.binding(other.function, other.network) & binding and
                        not self.grad_is_off(other) and self.reaches_training(other)
                        for other in self.forwards()) and \
                not self._weights_updated_in_place(binding)
        return known

    def fixed_while_its_routine_trains(self, site: CallSite) -> bool:
        """A forward whose values feed the training step of a routine that builds and steps
        its own optimizers, none of which holds the model (``distill(teacher, student)`` with
        ``SGD(student.parameters())``; RepDistiller's ``init()`` fitting connectors on the
        student's features): the model is not trained there, its forward is inference for that
        routine, however it is trained elsewhere."""
        function = site.function
        if site.network is None or function.is_module_scope or not self.feeds_training(site):
            return False
        own = {key: owners for (scope, key), owners in self.facts.optimizers.items() if scope == id(function)}
        steps = [other for other in function.sites if self.is_optimizer_step(other)]
        if not own or not steps or any(other.receiver not in own for other in steps) or \
                not all(own.values()) or any(len(self.values.definitions(function, key)) != 1 for key in own):
            return False  # no optimizer of its own, it steps one it was handed, what one steps
            # is out of sight (``Adam(params)`` of a list built elsewhere), or a name is rebound
        if any(other.target is not None and other.target is not function and self.function_trains(other.target)
               for other in function.sites):
            return False  # a helper it calls trains too, what it steps is not in sight
        network = site.network
        binding = frozenset(self.binding(function, network))
        return not any(self.binding(function, owner) & binding or owner.startswith(network + ".")
                       or network.startswith(owner + ".") or owner == network
                       for owners in own.values() for owner in owners)

    def _weights_updated_in_place(self, binding) -> bool:
        """``for t, s in zip(teacher.parameters(), student.parameters()): t.mul_(m).add_(...)``
        (an EMA), or ``target.load_state_dict(online.state_dict())`` (a target network)."""
        for other in self.functions:
            for loop in other.loops:
                iterable = getattr(loop.node, "iter", None)
                owners = owners_of_calls(iterable, api.WEIGHT_READING_METHODS) if iterable is not None else ()
                if any(self.binding(other, owner) & binding for owner in owners) and (
                        any(site.method in api.IN_PLACE_UPDATES for site in loop.sites) or any(
                            type(target) is ast.Attribute and target.attr == "data"
                            for statement in other.statements[loop.first_index:loop.last_index + 1]
                            for target in stored_targets(statement))):
                    return True
            for site in other.sites:
                # ``target.load_state_dict(online.state_dict())``: copied from another model
                if site.method == "load_state_dict" and site.receiver and site.node.args and \
                        isinstance(site.node.args[0], ast.Call) and \
                        isinstance(site.node.args[0].func, ast.Attribute) and \
                        site.node.args[0].func.attr == "state_dict" and \
                        self.binding(other, site.receiver) & binding:
                    return True
        return False

    def is_training_context(self, site: CallSite) -> bool:
        """The call's value is used by a training step, or it serves input gradients
        (adversarial examples, saliency, gradient penalties: ``needs_input_gradients``) and may
        record them (a forward under no_grad on every path records no gradient for anyone)."""
        return self.feeds_training(site) or (
            self.needs_input_gradients(site) and not self.grad_is_off(site))

    def in_training_loop(self, site: CallSite) -> bool:
        """The innermost loop around the call trains (``loop_trains``)."""
        loop = site.loop
        return loop is not None and self.loop_trains(loop)

    def evaluation_evidence(self, site: CallSite, include_mode: bool = True) -> Optional[str]:
        """Why the code around ``site`` evaluates (a short phrase), or None.

        Inside a loop that trains, only evidence about this very call counts (the model was
        switched to eval mode, it is fed validation data); elsewhere the enclosing function's
        name, the data its loops walk and its in-file callers count too, when the forward runs
        repeatedly (in a loop, or in a function called from one): a single forward in a
        ``test()`` that checks shapes is not an evaluation. Tests (pytest files) are not
        evaluation code: they run models in whatever mode they test."""
        if self._in_test_file or self._is_smoke_test(site) or self._is_model_internal(site):
            return None
        if include_mode and site.network is not None:
            mode = self.mode_of(site, site.network)
            if mode and all(value == EVAL for value, _ in mode):
                lines = sorted(line for _, line in mode if line)
                where = f" at {line_ref(lines[0])}" if lines else ""
                return f"`{site.network}` switched to eval mode{where}"
        return self._context_evidence(site, strong_only=self.in_training_loop(site))

    def unused_graph_evidence(self, site: CallSite) -> Optional[str]:
        """Why the graph a forward records is built for nothing, decided by where its output
        goes rather than by names: nothing computed from the output can reach a backward pass,
        and none of it leaves for code the analysis cannot see. None when that is not shown, or
        when the forward is not the caller's to judge (a model's internals, a test, a shape
        probe, a method whose callers -- and so its grad mode -- are unknown)."""
        if not self._judged_here(site) or not self._grad_is_known(site.function):
            return None
        if self.output_fate(site) != UNUSED or self._is_smoke_test(site):
            return None
        if self.needs_input_gradients(site):
            return None  # its input requires gradients: they are read elsewhere (hooks, .grad)
        if self._loaded_from_a_hub_wrapper(site):
            return None  # the hub's entry point may run its own inference code

        if self.output_fate(site, with_values=DETACHED) == TRAINS and self._trained_by_a_step(site):
            return None  # detached on purpose for another model's step (a GAN's fake for D)
        return self._explained("the graph is built for nothing", site)

    def _assignments_of(self, function: FunctionInfo, name: str) -> List[Tuple[int, ast.stmt]]:
        """(index, statement) of every statement of ``function`` that binds ``name``: where a
        model is built (asked by several questions about one forward, so read once)."""
        key = (id(function), name)
        found = self._assignments.get(key)
        if found is None:
            found = self._assignments[key] = [
                (index, statement) for index, statement in enumerate(function.statements)
                if name in assigned_names(statement)]
        return found

    def _constructions(self, site: CallSite, before: bool = False) -> List[Tuple[int, ast.Call]]:
        """The calls that build the model of a forward in its own function (``before``: above
        the forward only), as (statement index, call)."""
        root = (site.network or "").split(".")[0]
        return [(index, statement.value) for index, statement in self._assignments_of(site.function, root)
                if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)
                and (not before or index < site.index)]

    def _constructions_in_sight(self, site: CallSite) -> List[ast.Call]:
        """The calls whose result the forward's model name is bound to, in its function and the
        scopes around it (a module-level model used inside a function)."""
        root = (site.network or "").split(".")[0]
        return [statement.value for scope in site.function.enclosing_functions()
                for _, statement in self._assignments_of(scope, root)
                if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)]

    def _loaded_from_a_hub_wrapper(self, site: CallSite) -> bool:
        for call in self._constructions_in_sight(site):
            if self.imports.resolve(call.func) == "torch.hub.load":
                return not api.plain_hub_module(call)
        return False

    def _trained_by_a_step(self, site: CallSite) -> bool:
        """Some optimizer step of the file may update the model the forward runs (one whose
        construction we cannot see may update anything)."""
        key = forwarded_network(site) or ""
        root = key if key.startswith("self.") else key.split(".")[0]
        binding = self.binding(site.function, root)
        for step in self.sites():
            if self.is_optimizer_step(step):
                stepped = self.stepped_models(step)
                if stepped is None or stepped & binding:
                    return True
        return False

    def judged_by_its_caller(self, site: CallSite) -> bool:
        """Whether the code around a forward decides how it runs: not a model's own layers in
        its methods, not a call in ``__init__`` (it builds layers or probes shapes), not a
        one-off architecture check, not a test (tests run models in whatever mode they test)."""
        return self._judged_here(site) and not self._is_smoke_test(site)

    def _judged_here(self, site: CallSite) -> bool:
        """``judged_by_its_caller`` without the architecture check (which reads the dataflow)."""
        return not (self._in_test_file or site.function.name == "__init__" or
                    self._is_model_internal(site) or self._inside_model_forward(site.function))

    def unused_output_evidence(self, site: CallSite) -> Optional[str]:
        """Like ``unused_graph_evidence``, for the value itself: nothing computed from the
        output is used by training, not even detached (a DQN target, a teacher's labels are)."""
        if self.unused_graph_evidence(site) is None:
            return None
        if self.output_fate(site, with_values=True) != UNUSED:
            return None
        return self._explained("its output is never used for training", site)

    def _explained(self, reason: str, site: CallSite) -> str:
        """Names explain a finding, they do not make it: ``in `translate()```."""
        function = site.function
        if not function.is_module_scope and function.name not in ("__call__", "<module>"):
            return f"{reason}, in `{function.name}()`"
        return reason

    def evaluated_through_a_flag(self, site: CallSite) -> Optional[str]:
        """A step function shared by training and evaluation through a flag: the forward's
        training steps run only under ``if train:`` (a parameter of its function), and some
        caller passes a constant that skips them (``run_epoch(model, data, train=False)``).
        Returns how that caller evaluates, or None."""
        function = site.function
        if function.is_module_scope or not self.anything_trains:
            return None
        steps = [other for other in function.sites if self.facts.site_trains(other)]
        if not steps:
            return None
        guards = {_flag_test(test, branch, function.params)
                  for step in steps for test, branch in function.guards[step.index]}
        guards.discard(None)
        common = [guard for guard in guards
                  if all(any(_flag_test(test, branch, function.params) == guard
                             for test, branch in function.guards[step.index]) for step in steps)]
        if not common:
            return None
        param, wanted = common[0]
        if _switches_mode_by(function, param):
            return None  # ``model.train(training)``: the flag picks the mode as well
        if any(_flag_test(test, branch, function.params) is not None and
               _flag_test(test, branch, function.params)[0] == param
               for test, branch in function.guards[site.index]):
            return None  # the forward itself runs only on one side of the flag
        return self._caller_skipping(function, param, wanted, depth=0)

    def _caller_skipping(self, function: FunctionInfo, param: str, wanted, depth: int) -> Optional[str]:
        """A call (through up to three helpers passing the flag on) that gives ``param`` a
        constant other than ``wanted``."""
        if depth > 3:
            return None
        for caller in function.callers:
            for bound, arg in self.facts.bind_arguments(caller, function):
                if bound != param:
                    continue
                if isinstance(arg, ast.Constant):
                    if _truth(arg.value, wanted) is False:
                        return f"called with `{param}={arg.value!r}` at line {caller.line}"
                elif isinstance(arg, ast.Name) and arg.id in caller.function.params:
                    found = self._caller_skipping(caller.function, arg.id, wanted, depth + 1)
                    if found:
                        return found
        return None

    def drawn_during_training(self, site: CallSite, depth: int = 0) -> bool:
        """The forward runs inside a loop that trains, directly or through helpers called
        there (a GAN's progress samples, or a validation run each epoch)."""
        if self.in_training_loop(site):
            return True
        if depth >= 3:
            return False
        return any(self.drawn_during_training(caller, depth + 1) for caller in site.function.callers)

    def _context_evidence(self, site: CallSite, strong_only: bool = False) -> Optional[str]:
        function = site.function
        if self._inside_model_forward(function):
            return None  # a model's forward serves training and evaluation alike
        for arg in list(site.node.args) + [k.value for k in site.node.keywords]:
            text = dotted(arg)
            if text and api.names_evaluation_data(text):
                return f"on `{text}`"
        training_loop = site.loop if strong_only else None
        for loop in reversed(site.loops):
            if loop is training_loop:
                break
            for name in loop.iterable_identifiers:
                if api.names_evaluation_data(name):
                    return f"in a loop over `{name}`"
        if strong_only:
            return None
        for scope in function.enclosing_functions():
            if scope.is_module_scope:
                break
            if self._has_evaluation_name(scope) and not self.function_trains(scope):
                return f"in `{scope.name}()`"
        entries = self._evaluation_entries_found
        if entries is None:
            entries = self._evaluation_entries_found = self._find_evaluation_entries()
        return entries.get(id(function))

    def _is_smoke_test(self, site: CallSite) -> bool:
        """One forward of a model freshly built in the same function, run once: a shape check
        of an architecture (``def test(): net = ResNet18(); print(net(x).size())``)."""
        if site.network is None:
            return False
        if (id(site.function), site.network) in self.facts.model_origin and \
                self._binds_its_model(site) and \
                self.facts.origin(site.function, site.network) == "fresh" and \
                self._built_from_scratch(site) and \
                not self._trained_before(site) and not self._made_ready_for_use(site) and \
                not self._walks_a_data_loader(site):
            # An untrained network with no weights loaded (nor switched to eval): its output
            # can only be looked at for its shape, in a loop or not. A notebook's
            # `print(net(x).shape)` cell too. Run over a whole DataLoader, it is evaluated (the
            # accuracy of an untrained network, a baseline), whatever that is worth.
            return True
        if self._global_untrained_at_every_call(site):
            return True
        return not self._runs_repeatedly(site) and self._fed_dummy_input(site) and \
            self._only_shape_is_read(site)

    @staticmethod
    def _binds_its_model(site: CallSite) -> bool:
        """The forward's function builds the model itself (a module-level model used inside a
        function may have been trained by the module before the call)."""
        function = site.function
        root = (site.network or "").split(".")[0]
        return function.is_module_scope or root in function.local_names

    def _global_untrained_at_every_call(self, site: CallSite) -> bool:
        """The forward runs, inside a function, a model the module builds once from scratch,
        and every call of that function is a module-level statement after the construction and
        before any training or weight loading (``encoder = EncoderRNN(...); test(); ... train
        loop``): the demo of an untrained architecture, as for a model built in the function."""
        function = site.function
        root = (site.network or "").split(".")[0]
        module = self.module_function
        if function.is_module_scope or not function.callers or root in function.local_names or \
                root in function.params or self.function_trains(function) or self._walks_a_data_loader(site):
            return False
        if self.facts.origin(module, root) != "fresh":
            return False
        constructions = self._assignments_of(module, root)
        cls = self.facts.model_class_of(module, root)
        if len(constructions) != 1 or cls is None or not self.class_loads_no_weights(cls):
            return False
        built = constructions[0][0]
        for caller in function.callers:
            if caller.function is not module or caller.loops or caller.index < built:
                return False
            if any(built < other.index < caller.index and (self.facts.site_trains(other) or _prepares(other, root))
                   for other in module.sites):
                return False
        return True

    def _walks_a_data_loader(self, site: CallSite) -> bool:
        """A loop around the forward iterates a ``torch.utils.data.DataLoader`` the code built
        (``for images, labels in testloader``, through ``enumerate``/``tqdm``/``iter``)."""
        return any(self.facts.walks_a_data_loader(site.function, loop) for loop in site.loops)

    def _built_from_scratch(self, site: CallSite) -> bool:
        """The model's construction loads no trained weights: a torch.nn layer, or a class of
        the file whose construction reads no checkpoint and builds no pretrained backbone. A
        wrapper handed a model (``AutoShape(model)``) runs that model's weights."""
        if any(self.facts.is_model(site.function, dotted(arg)) if dotted(arg) else
               isinstance(arg, ast.Call) and not (self.imports.resolve(arg.func) or "").startswith("torch.") and
               self.facts.model_expression(site.function, arg) is not None
               for _, call in self._constructions(site, before=True)
               for arg in _arguments_along_the_chain(call)):
            return False  # also ``Translator(model=load_model(opt)).to(device)``
        cls = self.facts.model_class_of(site.function, site.network)
        if cls is None:
            return (id(site.function), site.network) in self.facts.model_origin and \
                self.facts.model_class.get((id(site.function), site.network)) is None and \
                self._constructed_without_weights(site)
        return self.class_loads_no_weights(cls)

    def _loads_weights(self, function: FunctionInfo) -> bool:
        return any(inner.method in ("load_state_dict", "from_pretrained", "load") or
                   (inner.qualified or "").startswith(("torchvision.", "timm.", "torch.hub.", "transformers.")) or
                   any(k.arg in _WEIGHT_KEYWORDS for k in inner.node.keywords)
                   for inner in function.sites)

    def class_loads_no_weights(self, cls: ClassInfo) -> bool:
        """Building the class reads no checkpoint and builds no pretrained backbone (a class
        of another project module: as its own module's summary says)."""
        for current in cls.lineage():
            if getattr(current, "external", False):
                if getattr(current, "loads_no_weights", False):
                    continue
                return False  # built where we cannot see
            if any(self._loads_weights(method) for method in current.methods.values()):
                return False
        return True

    def _constructed_without_weights(self, site: CallSite) -> bool:
        """Built by a torch.nn layer, or by a factory of the file (``densenet_cifar()``) that
        loads no weights and builds classes of the file that load none."""
        constructions = self._constructions(site, before=True)
        if not constructions:
            return False
        _, call = constructions[-1]
        if (self.imports.resolve(call.func) or "").startswith("torch.nn."):
            return True
        factory = next((other.target for other in site.function.sites if other.node is call), None)
        if factory is None or factory.external or self._loads_weights(factory):
            return False
        return all(self.class_loads_no_weights(inner.constructs)
                   for inner in factory.sites if inner.constructs is not None)

    def is_progress_sample(self, site: CallSite) -> bool:
        """A GAN's progress samples: a forward drawn during training of a model whose output,
        elsewhere in the file, feeds another model that also runs on other data (a generator
        feeding its discriminator, which judges real images too; not an encoder feeding its
        decoder). Sampling it in training mode for pictures is a deliberate, widespread
        convention."""
        if not self.anything_trains or not self.drawn_during_training(site) or self._fed_by_loop_data(site):
            return False
        binding = self.network_binding(site)
        key = frozenset(binding)
        known = self._generators.get(key)
        if known is None:
            forwards = [other for other in self.forwards() if other.network is not None]
            own = {("call", id(other)) for other in forwards if self.network_binding(other) & binding}
            fed: Dict[frozenset, List[bool]] = {}  # other model -> per forward: fed by this one
            for other in forwards:
                other_binding = self.network_binding(other)
                if not other_binding & binding:
                    fed.setdefault(frozenset(other_binding), []).append(
                        bool(own & self.dataflow.upstream(("call", id(other)))))
            # A discriminator judges the generator's output and, in other calls, real data:
            # a decoder runs only on what its encoder made.
            known = any(any(calls) and not all(calls) for calls in fed.values())
            self._generators[key] = known
        return known

    def _fed_by_loop_data(self, site: CallSite) -> bool:
        """The forward runs on what a loop of its function walks (``for imgs, caps in
        val_loader: encoder(imgs)``), not on noise drawn for a picture: a validation pass."""
        walked = set().union(*(loop.walked_names for loop in site.loops))
        return bool(walked) and self._arguments_derive_from(site, walked)

    def _arguments_derive_from(self, site: CallSite, names: Set[str]) -> bool:
        """An argument of the call is one of ``names`` (variables of its function), or is
        computed from one of them."""
        for arg in list(site.node.args) + [k.value for k in site.node.keywords]:
            if any(isinstance(node, ast.Name) and node.id in names for node in ast.walk(arg)):
                return True
            if any(node[0] == "def" and node[3] in names
                   for node in self.gradient_upstream(site.function, site.index, arg)):
                return True
        return False

    def _trained_before(self, site: CallSite) -> bool:
        """Some training step of the forward's function runs between the model's construction
        and the forward (or, in a loop, may)."""
        function = site.function
        if not self.function_trains(function):
            return False
        root = (site.network or "").split(".")[0]
        built = max((index for index, _ in self._assignments_of(function, root) if index < site.index),
                    default=-1)
        first_loop = min((loop.first_index for loop in site.loops), default=site.index)
        return any(built < other.index < first_loop and self.facts.site_trains(other)
                   for other in function.sites) or any(self.loop_trains(loop) for loop in site.loops)

    def _built_without_parameters(self, site: CallSite) -> bool:
        """The model was built, in the scope that binds it, by torch.nn layers that hold no
        parameters (a pooling layer, an activation): calling it builds no graph."""
        root = (site.network or "").split(".")[0]
        for scope in site.function.enclosing_functions():
            if root in scope.params:
                return False
            if root not in scope.local_names:
                continue
            constructions = [statement.value for _, statement in self._assignments_of(scope, root)
                             if isinstance(statement, ast.Assign)]
            return bool(constructions) and all(
                isinstance(value, ast.Call) and _parameterless_layer(self.imports.resolve(value.func) or "")
                for value in constructions)
        return False

    def _made_ready_for_use(self, site: CallSite) -> bool:
        """Before the forward, its function loads weights into the model or switches its mode."""
        root = (site.network or "").split(".")[0]
        if any(other.index < site.index and _prepares(other, root) for other in site.function.sites):
            return True
        # ``resnet50(pretrained=True)``: built with trained weights
        return any(k.arg in _WEIGHT_KEYWORDS | {"checkpoint_path"} and
                   not (isinstance(k.value, ast.Constant) and not k.value.value)
                   for _, call in self._constructions(site, before=True) for k in call.keywords)

    def _only_shape_is_read(self, site: CallSite) -> bool:
        """The forward's output is read for its size (``model(dummy).shape[1]``, or a name it
        is bound to read later as ``feat.shape``), as when sizing the next layer."""
        function = site.function
        statement = function.statements[site.index]
        for node in ast.walk(statement):
            if isinstance(node, ast.Attribute) and node.attr in ("shape", "size") and \
                    any(inner is site.node for inner in ast.walk(node.value)):
                return True
        names = set()
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        if not names:
            return False
        for later in function.statements[site.index + 1:]:
            for node in ast.walk(later):
                if isinstance(node, ast.Attribute) and node.attr in ("shape", "size") and \
                        any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node.value)):
                    return True
        return False

    def _fed_dummy_input(self, site: CallSite) -> bool:
        """Every input of the forward is a tensor made up on the spot (``torch.randn(...)``)."""
        arguments = [arg for arg in list(site.node.args) + [k.value for k in site.node.keywords]
                     if not isinstance(arg, ast.Constant)]  # flags such as ``is_feat=True``
        if not arguments:
            return False
        for arg in arguments:
            producers = set(self.dataflow.sources(site.function, site.index, arg))
            for node in list(producers):
                if node[0] == "def":
                    producers |= self.dataflow.preds.get(node, set())
            for node in list(producers):  # ``Variable(torch.zeros(...))`` wraps what it is given
                wrapper = self._site_by_id.get(node[1]) if node[0] == "call" else None
                if wrapper is not None and wrapper.qualified == "torch.autograd.Variable":
                    producers.discard(node)
                    producers |= self.dataflow.preds.get(node, set())
            calls = [self._site_by_id.get(node[1]) for node in producers if node[0] == "call"]
            if not calls or any(call is None or (call.qualified or "") not in api.TENSOR_FACTORIES
                                for call in calls):
                return False
        return True

    def _runs_repeatedly(self, site: CallSite, depth: int = 0) -> bool:
        if site.loops:
            return True
        if depth >= 3:
            return False
        return any(self._runs_repeatedly(caller, depth + 1) for caller in site.function.callers)

    def _is_model_internal(self, site: CallSite, callers_elsewhere: bool = True) -> bool:
        """A submodule called inside a model's own methods (``self.backbone(x)`` in a detector's
        ``inference()``): the grad mode and the mode are the caller's, who runs the model. A
        sampling or generation loop written as a method still counts (it has a loop), and so
        does a training routine written as a method of the model (it is no internal). Without
        ``callers_elsewhere``, calls from other modules are not read (and do not count)."""
        if not site.runs_own_layers:
            return False
        cls = self.facts.enclosing_class(site.function)
        if cls is None or not cls.is_module:
            return False
        if any(self.function_trains(scope) for scope in site.function.enclosing_functions()
               if not scope.is_module_scope):
            return False
        if site.loops and self._has_evaluation_name(site.function, allow_model_methods=True):
            # A generation loop written as a method: judged where it is called as a forward of
            # a model (``model.generate(x)``, here or in another module), else here.
            return any(caller.network is not None for caller in site.function.callers) or \
                callers_elsewhere and id(site.function) in self._externally_called
        return True

    def _inside_model_forward(self, function: FunctionInfo) -> bool:
        cls = self.facts.enclosing_class(function)
        return cls is not None and cls.is_module and any(
            scope.name in ("forward", "__call__", "_forward") for scope in function.enclosing_functions())

    def _has_evaluation_name(self, function: FunctionInfo, allow_model_methods: bool = False) -> bool:
        if function.is_module_scope:
            return False
        if function.parent is not None and not function.parent.is_module_scope and \
                function.cls is None and not function.callers:
            return False  # a nested function handed to code we cannot see (a callback)
        name_words = set(api.words(function.name))
        if not name_words & api.EVAL_FUNCTION_WORDS:
            return False
        if function.name.startswith("test_") and (self._in_test_file or not function.params):
            return False  # a pytest test, not an evaluation routine
        if self._in_test_file and "test" in name_words:
            return False
        cls = self.facts.enclosing_class(function)
        if cls is not None and cls.is_module and not function.loops and not allow_model_methods:
            return False  # an inference method of a model: its callers choose the grad mode
        if function.name in ("__init__", "forward"):
            return False
        return True

    def _incoming_modes(self, function: FunctionInfo, call: dict):
        """The modes another module's call passes in; the lines that set them are lines of
        that module (ForeignLine), so that messages name its file."""
        def modes_of(value, record=call):
            found = set()
            for mode, line in mode_from_json(value):
                if mode != PASSED_IN:
                    found.add((mode, ForeignLine(line, _caller_file(record)) if type(line) is int else line))
                    continue
                # passed to the calling function: what the calls into that function pass
                passed = self.linker.passed_to_the_caller(record, line)
                if passed is None:
                    found.add(UNKNOWN)
                for outer_value, outer_file in passed or ():
                    found |= modes_of(outer_value, {"caller_file": outer_file})
            return frozenset(found)

        return {key: modes_of(value) for key, value in
                bind_record(call, list(function.params), function.cls is not None).items()
                if value is not None}

    def _find_evaluation_entries(self) -> Dict[int, str]:
        """Functions that evaluation code calls -- in this file, or in another module of the
        project -- and that do not train. (Found on the first question that needs them: the
        summaries of other modules never ask.)"""
        self._evaluation_entries_found = {}  # (what the questions below see meanwhile)
        entries: Dict[int, str] = {key: reason for key, reason in self._external_evaluation.items()
                                   if not self.function_trains(self._function_by_id[key])}
        # The grad modes evaluation code calls each function with: a helper that evaluation
        # calls under no_grad and training calls with autograd on is not TGL101's business.
        self.evaluation_caller_grad: Dict[int, FrozenSet[str]] = dict(self._external_evaluation_grad)
        changed = True
        while changed:
            changed = False
            self._evaluation_entries_found = entries
            for function in self.functions:
                if function.is_module_scope or function.external:
                    continue
                if self.function_trains(function) or not function.callers:
                    continue
                for site in function.callers:
                    reason = self._call_evidence(site)
                    if not reason or self.feeds_training(site):
                        continue
                    grad = self.evaluation_caller_grad.get(id(function), frozenset())
                    caller_grad = self.grad_at(site)
                    if id(site.function) in self.evaluation_caller_grad and not \
                            self._evidence_of_its_own(site):
                        caller_grad = (self.evaluation_caller_grad[id(site.function)] & caller_grad) | \
                            (caller_grad - {ON})  # off/dynamic always carry over
                    if not self._grad_is_known(site.function):
                        caller_grad = caller_grad - {ON}
                    if not caller_grad <= grad:
                        self.evaluation_caller_grad[id(function)] = grad | caller_grad
                        changed = True
                    if id(function) not in entries:
                        entries[id(function)] = f"called from evaluation code at line {site.line}"
                        changed = True
        return entries

    def _grad_is_known(self, function: FunctionInfo) -> bool:
        """Autograd is on in ``function`` because something says so: the module's own code, a
        call that we can see, a decorator, or its own backward pass (a training routine runs
        with autograd on). A method nobody in the project calls runs in whatever mode its unseen
        callers choose: its callees do not inherit an assumed "on"."""
        if function.is_module_scope or function.callers or function.decorators or \
                any(self.facts.site_trains(site) for site in function.sites):
            return True
        return function.cls is None or bool(self.flow.contributions(function))

    def _without_inherited_evidence(self, query, site: CallSite) -> bool:
        """``query(site)`` finds evidence at the site itself (names, data, modes), not only
        the evidence its function inherits from evaluation callers."""
        saved, self._evaluation_entries_found = self._evaluation_entries_found, {}
        try:
            return query(site) is not None
        finally:
            self._evaluation_entries_found = saved

    def _evidence_of_its_own(self, site: CallSite) -> bool:
        return self._without_inherited_evidence(self._call_evidence, site)

    def evaluation_reaches_with_grad(self, site: CallSite) -> bool:
        """When the evidence for ``site`` is only that evaluation code calls its function,
        some such call runs with autograd on."""
        if self._without_inherited_evidence(self.evaluation_evidence, site):
            return True
        if self._evaluation_entries_found is None:
            self._evaluation_entries_found = self._find_evaluation_entries()
        grad = self.evaluation_caller_grad.get(id(site.function))
        return grad is None or ON in grad

    def _call_evidence(self, site: CallSite) -> Optional[str]:
        evidence = self._context_evidence(site)
        if evidence:
            return evidence
        for param, arg in self.facts.bind_arguments(site, site.target):
            key = dotted(arg)
            if key and self.facts.is_model(site.function, key):
                mode = self.mode_of(site, key)
                if mode and all(value == EVAL for value, _ in mode):
                    return f"`{key}` in eval mode"
        return None


def _caller_file(call: dict) -> str:
    """The file of a call record from another module (its path from the project root)."""
    return call.get("caller_file") or str(call.get("caller") or "?").replace(".", "/") + ".py"


def _is_loss_call(site: CallSite, facts) -> bool:
    qualified = site.qualified or ""
    leaf = qualified.rsplit(".", 1)[-1]
    if qualified.startswith("torch.nn.functional.") and (
            "loss" in leaf or "entropy" in leaf or leaf == "kl_div"):
        return True
    if site.method in ("mean", "sum") and not site.node.args and not site.node.keywords:
        return True  # reduced to the scalar a loss is
    callee = site.callee or ""
    if set(api.words(callee.rsplit(".", 1)[-1])) & api.LOSS_WORDS:
        return True
    return site.target is not None and bool(set(api.words(site.target.name)) & api.LOSS_WORDS)


def _computes(statement: ast.stmt) -> bool:
    """The statement computes a new value (a call or arithmetic), rather than naming one."""
    if isinstance(statement, ast.Expr):
        return False  # ``params.append(p)`` stores a value, it computes none
    value = getattr(statement, "value", None)
    if value is None:
        return False
    return any(isinstance(node, (ast.Call, ast.BinOp, ast.UnaryOp)) for node in ast.walk(value))


def _flag_test(test: ast.expr, branch: bool, params) -> Optional[tuple]:
    """``if train:`` / ``if not train:`` / ``if phase == "train":`` on a parameter, as
    (parameter, what it must be for the branch to run): ``True``/``False`` for a truth test,
    ``("==", value)`` / ``("!=", value)`` for a comparison with a constant."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _flag_test(test.operand, not branch, params)
    if isinstance(test, ast.Name) and test.id in params:
        return (test.id, branch)
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.left, ast.Name) \
            and test.left.id in params and isinstance(test.comparators[0], ast.Constant):
        op = test.ops[0]
        if isinstance(op, (ast.Eq, ast.NotEq)):
            equal = isinstance(op, ast.Eq) == branch
            return (test.left.id, ("==" if equal else "!=", test.comparators[0].value))
    return None


def _switches_mode_by(function: FunctionInfo, param: str) -> bool:
    """A statement of the function that switches a module's mode mentions ``param``."""
    for statement in function.statements:
        if isinstance(statement, (ast.For, ast.While, ast.If, ast.With, ast.Try)):
            continue
        nodes = list(ast.walk(statement))
        if any(isinstance(node, ast.Attribute) and node.attr in ("train", "eval") for node in nodes) \
                and any(isinstance(node, ast.Name) and node.id == param for node in nodes):
            return True
    # ``if train: model.train()``: a switch guarded by the flag
    return any(site.method in ("train", "eval") and site.is_statement and any(
        _flag_test(test, branch, (param,)) for test, branch in function.guards[site.index])
        for site in function.sites)


def _truth(value, wanted) -> Optional[bool]:
    """Whether a constant flag value lets the guarded branch run."""
    if isinstance(wanted, bool):
        return bool(value) == wanted
    op, expected = wanted
    return (value == expected) == (op == "==")


_PARAMETER_HOLDERS = {"Parameter", "ParameterList", "ParameterDict", "ModuleList", "ModuleDict",
                      "Module"}


def _parameterless_layer(qualified: str) -> bool:
    leaf = qualified.rsplit(".", 1)[-1]
    return qualified.startswith("torch.nn.") and bool(api.PARAMETERLESS_NN.fullmatch(leaf)) and \
        leaf not in _PARAMETER_HOLDERS


def _holds_no_parameters(cls: ClassInfo, imports) -> bool:
    """An ``nn.Module`` subclass whose ``__init__`` builds nothing that holds parameters
    (``class Swish(nn.Module)`` with only a ``forward``; a loss written as a module), in the
    file or, as its module's summary says, in another module of the project."""
    if getattr(cls, "external", False):
        return bool(getattr(cls, "holds_no_parameters", False))
    if not cls.bases or any(base not in api.MODULE_BASES for base in cls.bases):
        return False
    init = cls.methods.get("__init__")
    if init is None:
        return True
    for statement in init.statements:
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None and \
                not isinstance(statement.value, (ast.Constant, ast.Call)):
            return False  # ``self.encoder = encoder``: a module handed in holds parameters
    for site in init.sites:
        if site.method == "__init__" and site.receiver in (None, "super") or \
                site.method == "register_buffer" and site.receiver == "self":
            continue  # ``super().__init__()``, buffers
        if _parameterless_layer(site.qualified or ""):
            continue
        if site.callee == "super" or site.callee in ("float", "int", "str", "bool", "tuple", "list"):
            continue
        qualified = site.qualified or ""
        if qualified.startswith("torch.") and not qualified.startswith("torch.nn.") and \
                not any(k.arg == "requires_grad" for k in site.node.keywords):
            continue  # ``torch.arange(n)``, ``torch.zeros(...)``: a table for a buffer
        if site.callee is None and site.method and type(site.node.func.value) is ast.Call:
            continue  # ``torch.arange(n).unsqueeze(1)``: the inner call is judged on its own
        return False
    return True


_WEIGHT_KEYWORDS = {"pretrained", "weights", "checkpoint"}
_PREPARING_METHODS = {"load_state_dict", "load_weights", "eval", "train", "requires_grad_"}


def _prepares(site: CallSite, root: str) -> bool:
    """The call loads weights into the model named ``root`` or switches its mode, itself or
    through a checkpointer handed the model (``DetectionCheckpointer(model).load(path)``)."""
    if site.method in api.CHECKPOINT_LOADING_METHODS and _loads_through_a_checkpointer(site, root):
        return True
    return bool(site.receiver) and site.receiver.split(".")[0] == root and site.method in _PREPARING_METHODS


def _loads_through_a_checkpointer(site: CallSite, root: str) -> bool:
    def handed_the_model(call) -> bool:
        return type(call) is ast.Call and any(type(arg) is ast.Name and arg.id == root for arg in call.args)

    func = site.node.func
    receiver = func.value if type(func) is ast.Attribute else None
    if handed_the_model(receiver):
        return True
    if type(receiver) is not ast.Name:
        return False
    return any(type(statement) is ast.Assign and handed_the_model(statement.value) and
               any(type(target) is ast.Name and target.id == receiver.id for target in statement.targets)
               for statement in site.function.statements[:site.index])


def _is_test_file(filename: str, tree: ast.Module) -> bool:
    """A file of tests: in a tests folder, a conftest, or named like a test and written like
    one (it defines tests or uses a test framework). A script named ``feature_extraction_test.py``
    that runs a model is not a test."""
    base = os.path.basename(filename)
    parts = set(os.path.normpath(filename).split(os.sep)[:-1])
    if base == "conftest.py" or "tests" in parts or "test" in parts:
        return True
    named_like_a_test = base.startswith("test_") or base.endswith(("_test.py", "_tests.py")) or \
        "unittest" in base
    return named_like_a_test and _written_like_tests(tree)


def _written_like_tests(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            if any(module.split(".")[0] in ("pytest", "unittest") for module in modules):
                return True
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            return True
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            return True
    return False
