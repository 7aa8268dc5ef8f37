"""Facts about names: which calls reach which in-file functions, which names hold models and
optimizers, which classes are nn.Modules, where training happens."""

from __future__ import annotations

import ast
import re
from typing import Dict, Iterable, List, Optional, Set, Tuple

from . import torch_api as api
from .aliases import ElementAliases, subscript_key
from .names import (ImportTable, arguments_by_parameter, assigned_names, call_argument,
                    child_nodes, dotted, owners_of_calls, walk)
from .structure import CallSite, ClassInfo, FunctionInfo, parameter_default

PRETRAINED_OWNER = re.compile(r"Model|Net|VAE|Encoder|Decoder|Transformer|For[A-Z]|GPT|Bert|"
                              r"Llama|T5|CLIP|ViT|Whisper")
# ``from_pretrained`` of these libraries' classes loads a model, unless the class is one of these.
PRETRAINED_MODEL_LIBRARIES = {"diffusers", "transformers", "peft"}
NOT_PRETRAINED_MODEL = re.compile(r"Pipeline|Tokenizer|Processor|Scheduler|Config|FeatureExtractor")

# How a model comes to exist, which decides its mode when created.
FRESH, PRETRAINED, UNKNOWN_ORIGIN = "fresh", "pretrained", "unknown"
LIBRARY_FACTORY, NAMED_FACTORY = "library", "named"


def join_compositions(verdicts: Iterable[Optional[bool]]) -> Optional[bool]:
    """Several models that one name may hold: True if one of them holds Dropout/BatchNorm,
    False only if none may."""
    verdicts = list(verdicts)
    if any(verdicts):
        return True
    return False if all(v is False for v in verdicts) else None


def _may_be_nonzero(node: Optional[ast.AST]) -> bool:
    return node is not None and not (isinstance(node, ast.Constant) and not node.value)


def _walked_by_a_loop(site: CallSite) -> bool:
    """The call is the iterable of a ``for`` loop (``for m in net.modules():``)."""
    return any(isinstance(loop.node, ast.For) and loop.node.iter is site.node for loop in site.function.loops)


def _keeps_what_it_is_handed(info: ClassInfo) -> bool:
    """The class's ``__init__`` stores one of its parameters on ``self``, unchanged: a module
    built elsewhere and handed in (``Seq2Seq(encoder, decoder)``)."""
    return bool(_handed_modules(info))


def _handed_modules(info: ClassInfo) -> Set[str]:
    """The parameters of ``__init__`` it stores on ``self`` unchanged and that a method then
    calls: modules built elsewhere and handed in, not hyper-parameters."""
    init = info.methods.get("__init__")
    if init is None:
        return set()
    params = set(init.params) - {"self"}
    called = {site.callee for method in info.methods.values() for site in method.sites}
    return {statement.value.id for statement in init.statements
            if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Name) and
            statement.value.id in params and any(
                isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                and f"self.{t.attr}" in called for t in statement.targets)}


def _is_self_training(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        node = node.operand
    return isinstance(node, ast.Attribute) and node.attr == "training" and \
        isinstance(node.value, ast.Name) and node.value.id == "self"


def _attribute_uses(tree: ast.AST, names: Set[str]):
    """(attribute node, parent, grandparent, enclosing function definition) for every
    ``x.name`` in the tree with ``name`` in ``names``."""
    stack = [(tree, None, None, None)]
    while stack:
        node, parent, grandparent, function = stack.pop()
        if type(node) is ast.Attribute and node.attr in names:
            yield node, parent, grandparent, function
        inner = node if type(node) in (ast.FunctionDef, ast.AsyncFunctionDef) else function
        for child in child_nodes(node):
            stack.append((child, node, parent, inner))


def _only_loads_weights_through(call: ast.Call, parent: Optional[ast.AST], function: ast.AST) -> bool:
    """A checkpointer handed the model, used for nothing but loading weights into it:
    ``Checkpointer(model).load(path)``, or ``checkpointer = Checkpointer(model)`` followed only by
    ``checkpointer.resume_or_load(path)`` calls in ``function``. Loading weights keeps the mode."""
    if type(parent) is ast.Attribute:
        return parent.attr in api.CHECKPOINT_LOADING_METHODS
    if type(parent) is not ast.Assign or len(parent.targets) != 1 or type(parent.targets[0]) is not ast.Name:
        return False
    name = parent.targets[0].id
    uses = 0
    for node in ast.walk(function):
        if type(node) is ast.Attribute and type(node.value) is ast.Name and node.value.id == name:
            if node.attr not in api.CHECKPOINT_LOADING_METHODS:
                return False
            uses += 1
    loads = sum(1 for node in ast.walk(function) if type(node) is ast.Call and type(node.func) is ast.Attribute
                and type(node.func.value) is ast.Name and node.func.value.id == name)
    names = sum(1 for node in ast.walk(function) if type(node) is ast.Name and node.id == name)
    return uses > 0 and uses == loads == names - 1  # every other mention of the name is a load


class Facts:
    def __init__(self, imports: ImportTable, functions: List[FunctionInfo],
                 classes: Dict[str, ClassInfo], module_function: FunctionInfo, config, linker=None):
        self.linker = linker
        self.frameworks = None  # FrameworkLoops: the functions a framework calls, and when
        self.context_managers: Set[int] = set()  # ids of the expressions ``with`` statements enter
        self._module_dicts: Optional[Dict[str, ast.Dict]] = None  # module-level registries by name
        self.imports = imports
        self.functions = functions
        self.classes = classes
        self.module = module_function
        self.config = config
        self.constructors = {name.split(".")[-1] for name in config.model_constructors} | set(
            config.model_constructors)
        # (function, key) -> origin of the model held by that name (FRESH / PRETRAINED / ...)
        self.model_origin: Dict[Tuple[int, str], str] = {}
        self.model_class: Dict[Tuple[int, str], ClassInfo] = {}
        # Whether a model built inline (``nn.Sequential(nn.Linear(...), nn.Dropout())``) holds
        # Dropout or BatchNorm; None when it cannot be seen.
        self.composition: Dict[Tuple[int, str], Optional[bool]] = {}
        self.instance_class: Dict[Tuple[int, str], ClassInfo] = {}
        # the further classes a name holds instances of, when paths build different ones
        self.instance_alternatives: Dict[Tuple[int, str], List[ClassInfo]] = {}
        self.class_attr_class: Dict[Tuple[int, str], ClassInfo] = {}
        self.models: Dict[int, Set[str]] = {id(f): set() for f in functions}
        self.frozen: Set[str] = set()
        self.frozen_by_function: Dict[int, Set[str]] = {}
        self.optimizers: Dict[Tuple[int, str], Set[str]] = {}
        self.returns_model: Dict[int, str] = {}
        self.returns_composition: Dict[int, Optional[bool]] = {}  # of the model it returns
        # id(function) -> per element of the tuple it returns: (origin, class, composition) of
        # the model at that place, or None (``return model, diffusion``)
        self.returns_elements: Dict[int, Tuple[Optional[tuple], ...]] = {}
        # (function, name) -> element expressions of a list/dict/comprehension of models
        self.containers: Dict[Tuple[int, str], List[ast.AST]] = {}
        self.loop_bindings: Dict[int, List[tuple]] = {}  # id of a ``for`` -> loop_models()
        self.training_sites: Set[int] = set()  # id(site) of backward / step / autograd.grad
        self.gradient_wanted: Set[int] = set()  # id(function) asking for input gradients
        self.passed_models: Set[Tuple[int, str]] = set()  # parameters callers pass models to
        # id(function) -> names it makes require gradients (inputs of saliency, FGSM, penalties)
        # function id -> name made to require gradients -> the statements that do it
        self.gradient_inputs: Dict[int, Dict[str, List[int]]] = {}
        self._model_expressions: Optional[Dict[Tuple[int, int], object]] = None
        self._fixed_mode_attributes: Dict[int, Set[str]] = {}
        # ``snet = nets['snet']``, ``nets = {'snet': snet}``: names of containers' elements
        self.aliases = ElementAliases(self.is_model)
        self._name_values: Dict[int, Dict[str, List[ast.AST]]] = {}  # name_bindings per function

    # -- entry point ----------------------------------------------------------------------
    def compute(self) -> None:
        if self.linker is not None:
            self.linker.preset_models(self)  # ``net = build()`` with ``build`` imported
        self._classify_classes()
        for function in self.functions:
            self._find_instances(function)
        self.aliases.find_all(self.functions)
        self.own_module_names = self._own_module_names()
        for function in self.functions:
            self._resolve_calls(function)
        self._resolve_calls_of_passed_instances()
        self._find_models_to_a_fixpoint()
        self._propagate_compositions()
        for function in self.functions:
            self._find_optimizers_and_training(function)
        self._mark_forwards()
        self._compute_training_closure()
        self._mark_forwards_through_methods()
        # The models are known now: the flow asks the same expressions again and again.
        self._model_expressions = {}
        self.aliases.settle()

    # -- classes --------------------------------------------------------------------------
    def _classify_classes(self) -> None:
        for info in self.classes.values():
            info.base_classes = [self.classes[b] for b in info.bases if b in self.classes]
            for base in info.bases:  # ``class Net(BaseNet)`` with BaseNet imported from the project
                local = base.rsplit(".", 1)[-1]
                imported = self.classes.get(local) if base not in self.classes else None
                if imported is None or not imported.external or imported is info:
                    continue
                info.base_classes.append(imported)  # its methods are inherited: ``self.step(loss)``
                if imported.is_module:
                    info.is_module = True
        # classes taken for models only for the name of a base this file cannot see
        self.modules_by_base_name: Set[int] = set()
        for info in self.classes.values():
            # A class with a ``forward`` is a model; so is one built on an imported base that is
            # named like one (``GeneralizedRCNN``, ``ModelMixin``, ``GaussianDiffusion``).
            if "forward" in info.methods and (any(b not in self.classes and b != "object" for b in info.bases)
                                              or self._builds_trainable_tensors(info)):
                # (``class LogisticRegression():`` whose ``forward`` computes on plain tensors
                # that need no gradient is no model: its methods are plain calls)
                info.is_module = True
            elif not info.is_module and any(
                    b not in self.classes and b and api.looks_like_model_base(b) for b in info.bases):
                info.is_module = True
                self.modules_by_base_name.add(id(info))
        changed = True
        while changed:
            changed = False
            for info in self.classes.values():
                if info.is_module:
                    continue
                if any(b in api.MODULE_BASES or b.endswith(("Module", "LightningModule"))
                       and self.imports.is_imported(b) for b in info.bases) or any(
                        base.is_module for base in info.base_classes):
                    info.is_module = True
                    changed = True
        self._composition_verdicts: Dict[int, Optional[bool]] = {}
        self._judging: Set[int] = set()
        for info in self.classes.values():
            if info.is_module and not info.external:
                verdict = self._class_has_dropout_or_batchnorm(info, set())
                info.has_dropout_or_batchnorm = self._composition_verdicts[id(info)] = verdict

    def _builds_trainable_tensors(self, info: ClassInfo) -> bool:
        """The class's ``__init__`` builds something autograd records: a tensor made with
        ``requires_grad=True`` (or ``.requires_grad_()``), an ``nn.Parameter`` or a torch.nn layer."""
        init = info.methods.get("__init__")
        if init is None:
            return False
        for node in ast.walk(init.node):
            if type(node) is not ast.Call:
                continue
            if any(k.arg == "requires_grad" and _may_be_nonzero(k.value) for k in node.keywords):
                return True
            if type(node.func) is ast.Attribute and node.func.attr == "requires_grad_":
                return True
            if (self.imports.resolve(node.func) or "").startswith("torch.nn."):
                return True
        return False

    def _plain_object_class(self, info: ClassInfo) -> bool:
        """No ``nn.Module``, and every base in sight: calling an instance runs its ``__call__``,
        whose forwards are judged where they are written."""
        return not info.is_module and all(
            base in self.classes or base == "object" for cls in info.lineage() for base in cls.bases)

    def _class_has_dropout_or_batchnorm(self, info: ClassInfo, seen: Set[int]) -> Optional[bool]:
        """True/False when every submodule the class builds is visible, None when unsure.

        A class already judged on its own is not walked again (an inheritance chain would cost
        its length squared): without cycles, its verdict is what the walk would find."""
        if id(info) in self._composition_verdicts:
            return self._composition_verdicts[id(info)]
        if info.external:
            return info.composition()
        if id(info) in seen or id(info) in self._judging:
            return False
        seen.add(id(info))
        self._judging.add(id(info))
        try:
            return self._judge_class(info, seen)
        finally:
            self._judging.discard(id(info))

    def _judge_class(self, info: ClassInfo, seen: Set[int], count_handed: bool = True) -> Optional[bool]:
        verdict: Optional[bool] = False
        if count_handed and _keeps_what_it_is_handed(info):
            verdict = None  # ``self.encoder = encoder``: layers built by the caller
        if any(b not in api.MODULE_BASES and b not in self.classes for b in info.bases):
            verdict = None  # inherits from something we cannot see
        for base in info.base_classes:
            inherited = self._class_has_dropout_or_batchnorm(base, seen)
            if inherited:
                return True
            if inherited is None:
                verdict = None
        for site in self._sites_building(info):
            node = site.node
            qualified = self.imports.resolve(node.func) or ""
            leaf = qualified.rsplit(".", 1)[-1]
            if qualified.startswith("torch.nn.functional."):
                if self._functional_depends_on_mode(leaf, node):
                    return True
                continue
            if qualified.startswith("torch.nn."):
                if self._layer_depends_on_mode(qualified[len("torch.nn."):], node):
                    return True
                continue
            if any(_is_self_training(arg) for arg in list(node.args) + [k.value for k in node.keywords]):
                return True  # ``self.drop_path(x, training=self.training)``
            if site.method in api.SUBMODULE_LISTINGS and site.receiver not in (None, "self") and \
                    not site.receiver.startswith("self.") and not _walked_by_a_loop(site):
                # ``nn.Sequential(*list(backbone.children())[:-1])``: another model's layers
                # (``for m in net.modules(): init(m)`` only visits them)
                inner = self._global_model_composition(site.receiver)
                if inner:
                    return True
                if inner is None:
                    verdict = None
            elif leaf in self.classes and self.classes[leaf].is_module or \
                    site.callee in self.classes and self.classes[site.callee].is_module:
                inner = self._class_has_dropout_or_batchnorm(
                    self.classes.get(leaf) or self.classes[site.callee], seen)
                if inner:
                    return True
                if inner is None:
                    verdict = None
            elif api.features_behave_the_same_in_both_modes(qualified) and \
                    id(node) in self._features_taken(info):
                continue  # ``models.vgg16(pretrained=True).features``: convolutions only
            elif api.is_fresh_model_call(qualified) or self._names_model_factory(site.node):
                return True  # torchvision / timm / torch.hub models hold BatchNorm or Dropout
            elif qualified.startswith(("transformers.", "diffusers.")) or qualified in self.constructors:
                verdict = None
            elif self.linker is None and api.is_class_like(leaf) and site.callee and \
                    self.imports.is_imported(site.callee.split(".")[0]) and \
                    qualified.split(".")[0] not in api.TORCH_ROOTS:
                verdict = None  # ``ConvBlock(3, 8)`` of a module this summary does not read
        if any(_is_self_training(test) for test in self._guard_tests(info)):
            return True  # ``if self.training:`` -- it behaves differently in training mode
        return verdict

    def _features_taken(self, info: ClassInfo) -> Set[int]:
        """The calls whose ``.features`` the class's building code reads
        (``models.vgg16(pretrained=True).features``), by id."""
        return {id(node.value) for function in self._building_functions(info) for node in walk(function.node)
                if type(node) is ast.Attribute and node.attr == "features" and type(node.value) is ast.Call}

    def _building_functions(self, info: ClassInfo) -> List[FunctionInfo]:
        """The class's methods, the functions nested in them (``def block(...)`` in
        ``__init__``) and the in-file functions they call (a module-level ``conv_block``)."""
        found: List[FunctionInfo] = []
        seen: Set[int] = set()
        stack = list(info.methods.values())
        while stack:
            function = stack.pop()
            if id(function) in seen or function.external:
                continue
            seen.add(id(function))
            found.append(function)
            stack.extend(function.nested.values())
            for site in function.sites:
                if site.receiver is None and site.callee and site.callee not in self.classes:
                    target = self.resolve_call(site)
                    if target is not None and target.cls is None:
                        stack.append(target)
        return found

    def _sites_building(self, info: ClassInfo) -> Iterable[CallSite]:
        for function in self._building_functions(info):
            yield from function.sites

    def _guard_tests(self, info: ClassInfo) -> Iterable[ast.expr]:
        seen: Set[int] = set()
        for function in info.methods.values():
            for guards in function.guards:
                for test, _ in guards:
                    if id(test) not in seen:
                        seen.add(id(test))
                        yield test

    @staticmethod
    def _layer_depends_on_mode(leaf: str, call: ast.Call) -> bool:
        """A torch.nn layer that behaves differently in training mode."""
        if leaf == "MultiheadAttention":
            return _may_be_nonzero(call_argument(call, "dropout", 2))  # no dropout unless asked
        if leaf in ("TransformerEncoderLayer", "TransformerDecoderLayer"):
            dropout = call_argument(call, "dropout", 3)  # 0.1 unless given
            return dropout is None or _may_be_nonzero(dropout)
        if leaf.startswith("Transformer"):
            return True
        if api.DROPOUT_OR_BATCHNORM.fullmatch(leaf):
            # Without running statistics a norm layer normalises each batch in both modes
            # (InstanceNorm keeps none unless asked to).
            tracks = call_argument(call, "track_running_stats", 4)
            if tracks is None:
                return not leaf.startswith("InstanceNorm")
            return not (isinstance(tracks, ast.Constant) and not tracks.value)
        if leaf in ("LSTM", "GRU", "RNN"):
            # dropout acts between stacked layers only: one layer (the default) has none
            dropout, layers = call_argument(call, "dropout", 5), call_argument(call, "num_layers", 2)
            return _may_be_nonzero(dropout) and (layers is not None and not (
                isinstance(layers, ast.Constant) and layers.value == 1))
        return False

    @staticmethod
    def _functional_depends_on_mode(leaf: str, call: ast.Call) -> bool:
        """``F.dropout(x, p, training=self.training)``: a functional layer whose ``training``
        argument is not a constant (a constant one behaves the same in both modes)."""
        position = api.FUNCTIONAL_TRAINING_ARGUMENT.get(leaf)
        if position is None:
            return False
        argument = call_argument(call, "training", position)
        return argument is not None and not isinstance(argument, ast.Constant)

    def _global_model_composition(self, key: Optional[str]) -> Optional[bool]:
        """Whether a module-level model holds Dropout/BatchNorm, from its assignments (class
        verdicts come before the models are found: read the statements themselves)."""
        if not key or "." in key:
            return None
        verdicts = [self.expression_composition(self.module, value)
                    for target, value in self.module.assignments() if dotted(target) == key]
        return join_compositions(verdicts) if verdicts else None

    def _names_model_factory(self, call: ast.Call) -> bool:
        return self.model_factory(call) == LIBRARY_FACTORY

    def registered_builders(self, func: ast.AST) -> Optional[list]:
        """``MODELS[arch]`` where the module binds ``MODELS`` once to a dict literal whose values
        are all model classes of the file or functions of the file that return a model
        (``sam_model_registry = {"vit_h": build_sam_vit_h, ...}``): those classes and functions."""
        if type(func) is not ast.Subscript or type(func.value) is not ast.Name:
            return None
        registry = self._module_dict(func.value.id)
        if registry is None:
            return None
        builders = []
        for value in registry.values:
            key = dotted(value) if value is not None else None
            if key in self.classes and self.classes[key].is_module:
                builders.append(self.classes[key])
            elif key in self.module.nested and self.returns_model.get(id(self.module.nested[key])):
                builders.append(self.module.nested[key])
            else:
                return None
        return builders

    def _module_dict(self, name: str) -> Optional[ast.Dict]:
        """The non-empty dict literal the module binds ``name`` to, once and only once."""
        if self._module_dicts is None:
            bindings: Dict[str, list] = {}
            for target, value in self.module.assignments():
                key = dotted(target)
                if key:
                    bindings.setdefault(key, []).append(value)
            self._module_dicts = {key: values[0] for key, values in bindings.items()
                                  if len(values) == 1 and type(values[0]) is ast.Dict and values[0].values}
        return self._module_dicts.get(name)

    def _built_by_one_of(self, builders: list) -> tuple:
        """(origin, class, None) of what one of a registry's classes or functions builds."""
        origins = {FRESH if isinstance(builder, ClassInfo) else self.returns_model[id(builder)]
                   for builder in builders}
        classes = {id(builder): builder for builder in builders if isinstance(builder, ClassInfo)}
        cls = next(iter(classes.values())) if len(classes) == 1 and len(builders) == len(
            [b for b in builders if isinstance(b, ClassInfo)]) else None
        return (origins.pop() if len(origins) == 1 else UNKNOWN_ORIGIN, cls, None)

    def model_factory(self, call: ast.Call) -> Optional[str]:
        """``getattr(models, arch)(...)``, ``models.__dict__[arch](...)``: a model class looked
        up by name in a module of models -- torchvision's or timm's (LIBRARY_FACTORY: they hold
        BatchNorm or Dropout), or an imported module named for models (NAMED_FACTORY)."""
        func = call.func
        if isinstance(func, ast.Call) and dotted(func.func) == "getattr" and func.args:
            owner = func.args[0]
        elif isinstance(func, ast.Subscript) and isinstance(func.value, ast.Attribute) and \
                func.value.attr == "__dict__":
            owner = func.value.value
        else:
            return None
        name = dotted(owner)
        if not name or not self.imports.is_imported(name.split(".")[0]):
            return None
        qualified = self.imports.resolve(owner) or ""
        if qualified in ("torchvision.models", "timm.models", "timm"):
            return LIBRARY_FACTORY
        if set(api.words(qualified.rsplit(".", 1)[-1])) & api.MODEL_MODULE_WORDS:
            return NAMED_FACTORY
        return None

    # -- calls ----------------------------------------------------------------------------
    def _resolve_calls(self, function: FunctionInfo) -> None:
        for site in function.sites:
            external = self.linker.resolve(site) if self.linker is not None else None
            if external is not None:
                site.target = external
            elif site.receiver is None and site.callee in self.classes:
                site.constructs = self.classes[site.callee]
                site.target = site.constructs.find_method("__init__")
            else:
                alias = self._bound_method_alias(site)
                if alias is not None:
                    # ``sample_fn = diffusion.p_sample_loop if a else diffusion.ddim_sample_loop``
                    # then ``sample_fn(model, ...)``: the call runs one of those methods
                    site.receiver, site.method, site.alternatives = alias
                site.target = self.resolve_call(site)
                if alias is not None:
                    site.target = site.target or site.alternatives[0]
                    for alternative in site.alternatives:
                        if alternative is not site.target and not alternative.external:
                            alternative.callers.append(site)
                    site.alternatives = tuple(a for a in site.alternatives if a is not site.target)
                elif site.receiver not in (None, "self", "cls"):
                    alternatives = self._alternative_targets(site)
                    if site.target is None and alternatives:
                        site.target, alternatives = alternatives[0], alternatives[1:]
                    site.alternatives = alternatives
                    for alternative in alternatives:
                        if not alternative.external:
                            alternative.callers.append(site)
            if site.target is None and self.frameworks is not None:
                site.target = self.frameworks.constructions.get(id(site.node))
                site.registers = site.target is not None
                site.target = site.target or self.frameworks.loop_run_by(site)
            trainer_loop = self.frameworks.trainer_runs.get(id(site.node)) if self.frameworks else None
            if trainer_loop is not None and trainer_loop not in site.targets():
                # ``trainer.run()``: the project's run method, and its loop with our callbacks
                if site.target is None:
                    site.target = trainer_loop
                else:
                    site.alternatives += (trainer_loop,)
                    trainer_loop.callers.append(site)
            if site.target is not None and not site.target.external:
                site.target.callers.append(site)

    def _bound_method_alias(self, site: CallSite) -> Optional[Tuple[str, str, Tuple[FunctionInfo, ...]]]:
        """A call of a name the function binds once to a method of a project object, or to one
        of two methods of it (``a.f if flag else a.g``): (receiver, first method, the methods)."""
        name = site.callee
        if site.receiver is not None or not name or "." in name or \
                any(name in scope.nested for scope in site.function.enclosing_functions()):
            return None
        values = self.name_bindings(site.function).get(name, ())
        if len(values) != 1:
            return None
        value = values[0]
        branches = [value.body, value.orelse] if type(value) is ast.IfExp else [value]
        if any(type(branch) is not ast.Attribute for branch in branches):
            return None
        receivers = {dotted(branch.value) for branch in branches}
        receiver = receivers.pop() if len(receivers) == 1 else None
        if not receiver or receiver in ("self", "cls"):
            return None
        cls = self.class_of_instance(site.function, receiver)
        if cls is None or cls.is_module:
            return None
        methods = tuple(cls.find_method(branch.attr) for branch in branches)
        if any(method is None for method in methods):
            return None
        return receiver, branches[0].attr, methods

    def name_bindings(self, function: FunctionInfo) -> Dict[str, List[ast.AST]]:
        """name -> the values the function's assignments bind the name to, in statement order
        (``name = value``): read once per function, for every call of a bare name asks."""
        found = self._name_values.get(id(function))
        if found is None:
            found = self._name_values[id(function)] = {}
            for target, value in function.assignments():
                if type(target) is ast.Name:
                    found.setdefault(target.id, []).append(value)
        return found

    def _alternative_targets(self, site: CallSite) -> Tuple[FunctionInfo, ...]:
        for scope in site.function.enclosing_functions():
            if (id(scope), site.receiver) in self.instance_class:
                others = self.instance_alternatives.get((id(scope), site.receiver), ())
                methods = (cls.find_method(site.method) for cls in others)
                return tuple(m for m in methods if m is not None and m is not site.target)
        return ()

    def _own_module_names(self) -> Set[str]:
        """Module-level names bound to this very module: ``importlib.import_module(__name__)``,
        ``sys.modules[__name__]`` (how a script's ``__main__`` block calls its public API)."""
        names = set()
        for statement in self.module.statements:
            if not isinstance(statement, ast.Assign) or len(statement.targets) != 1 or \
                    not isinstance(statement.targets[0], ast.Name):
                continue
            value = statement.value
            if isinstance(value, ast.Call) and self.imports.resolve(value.func) == "importlib.import_module":
                argument = value.args[0] if value.args else None
            elif isinstance(value, ast.Subscript) and self.imports.resolve(value.value) == "sys.modules":
                argument = value.slice
            else:
                continue
            if isinstance(argument, ast.Name) and argument.id == "__name__":
                names.add(statement.targets[0].id)
        return names

    def _resolve_calls_of_passed_instances(self) -> None:
        """``train_one_epoch(..., NativeScaler())``: a parameter holds an instance of an in-file
        class when its callers pass one; calling it (``loss_scaler(loss, optimizer)``) runs
        that class's ``__call__``. Down a chain of helpers, a few rounds."""
        for _ in range(3):
            gained = False
            for function in self.functions:
                if function.is_module_scope or function.external:
                    continue
                for site in function.callers:
                    for param, arg in self.bind_arguments(site, function):
                        cls = self._instance_passed(site.function, arg)
                        if cls is not None and (id(function), param) not in self.instance_class:
                            self.instance_class[(id(function), param)] = cls
                            gained = True
            if not gained:
                return
            for function in self.functions:
                for site in function.sites:
                    if site.target is None and site.constructs is None:
                        site.target = self.resolve_call(site)
                        if site.target is not None and not site.target.external:
                            site.target.callers.append(site)

    def _instance_passed(self, function: FunctionInfo, arg: ast.AST) -> Optional[ClassInfo]:
        if isinstance(arg, ast.Call):
            callee = dotted(arg.func)
            cls = self.classes.get(callee) if callee else None
            return cls if cls is not None and not cls.external else None
        key = dotted(arg)
        return self.class_of_instance(function, key) if key else None

    def enclosing_class(self, function: FunctionInfo) -> Optional[ClassInfo]:
        for scope in function.enclosing_functions():
            if scope.cls is not None:
                return scope.cls
        return None

    def resolve_call(self, site: CallSite) -> Optional[FunctionInfo]:
        if site.callee is None:
            return None
        function = site.function
        if site.receiver is None:
            name = site.callee
            for scope in function.enclosing_functions():
                if name in scope.nested:
                    return scope.nested[name]
            cls = self.class_of_instance(function, name)
            if cls is not None and not cls.is_module:
                return cls.find_method("__call__")  # an object of an in-file class, called
            return None
        if site.receiver in ("self", "cls"):
            cls = self.enclosing_class(function)
            return cls.find_method(site.method) if cls else None
        if site.receiver in self.own_module_names:
            found = self.module.nested.get(site.method or "")
            if found is not None:
                return found  # ``api = importlib.import_module(__name__)``; ``api.detect(net, x)``
        cls = self.class_of_instance(function, site.receiver)
        if cls is not None:
            return cls.find_method(site.method)
        return None

    def class_of_instance(self, function: FunctionInfo, key: str) -> Optional[ClassInfo]:
        if self.instance_class:  # (most files hold no object of a class of their own)
            for scope in function.enclosing_functions():
                found = self.instance_class.get((id(scope), key))
                if found is not None:
                    return found
        if key.startswith("self."):
            cls = self.enclosing_class(function)
            if cls is not None:
                return self.class_attr_class.get((id(cls), key[5:]))
        return None

    # -- models ---------------------------------------------------------------------------
    def is_model(self, function: FunctionInfo, key: Optional[str]) -> bool:
        if not key:
            return False
        class_like = api.is_class_like(key)
        if key in self.models[id(function)] and (not class_like or key in function.local_names
                                                 or (id(function), key) in self.passed_models):
            return True  # bound to a model here, however it is spelled (``Enc1 = Encoder()``,
            # ``def train_a_gan(D_net, G_net)`` called with models)
        if class_like and key not in function.local_names and \
                not self._bound_to_module_level_model(function, key):
            return False  # ``Model(envs)`` builds a model from a class, it runs none
        if key == "self":
            cls = self.enclosing_class(function)
            return bool(cls and cls.is_module)
        if key.startswith("self.") and key.count(".") == 1:
            cls = self.enclosing_class(function)
            return bool(cls and key[5:] in cls.model_attributes)
        if self.instance_class and key.count(".") == 1:
            # ``agent.policy``: a model an object of a class of the file holds
            owner, attribute = key.split(".")
            cls = self.class_of_instance(function, owner)
            if cls is not None and not cls.is_module and cls.find_method(attribute) is None and \
                    any(attribute in base.model_attributes for base in cls.lineage()):
                return True
        if "." not in key and key not in function.local_names and key not in function.params:
            # A module-level model used inside a function.
            return function is not self.module and key in self.models[id(self.module)]
        return False

    def _callers_pass_functions(self, function: FunctionInfo, param: str) -> bool:
        """Every in-file caller hands ``param`` a lambda or a function of the file: a callable
        named ``model`` that is no network (``plot_decision_boundary(lambda x: predict(x), ...)``)."""
        if param not in function.params or not function.callers:
            return False
        passed = [arg for site in function.callers for bound, arg in self.bind_arguments(site, function)
                  if bound == param]
        return bool(passed) and all(
            isinstance(arg, ast.Lambda) or isinstance(arg, ast.Name) and any(
                arg.id in scope.nested for scope in site_scopes) for arg, site_scopes in
            ((arg, list(function.parent.enclosing_functions()) if function.parent else []) for arg in passed))

    def _names_an_import(self, function: FunctionInfo, key: str) -> bool:
        """``key`` refers to an imported module or name, unless an assignment in sight rebinds
        it (``import model`` then ``model = model.RNNModel()``: from there on a network)."""
        if not self.imports.is_imported(key):
            return False
        root = key.split(".")[0]
        return not any(root in scope.local_names for scope in function.enclosing_functions())

    def _bound_in_sight(self, function: FunctionInfo, key: str) -> bool:
        """``key`` names something this file binds (a parameter, an assignment, an attribute of
        ``self``): a callable that comes from nowhere in sight (a star import) may be a plain
        function such as ``evaluate_model``."""
        if key.startswith("self."):
            return True
        root = key.split(".")[0]
        return any(root in scope.local_names or root in scope.params
                   for scope in function.enclosing_functions())

    def _bound_to_a_loaded_object(self, function: FunctionInfo, key: str) -> bool:
        """``rnn = torch.load("char-rnn.pt")`` and ``rnn`` is called: a whole pickled (or
        TorchScript) model, in whatever mode it was saved. Every binding of the name must be
        such a load."""
        if "." in key:
            return False
        for scope in function.enclosing_functions():
            if key in scope.params:
                return False
            if key not in scope.local_names:
                continue
            values = self.name_bindings(scope).get(key, ())
            if not values:
                return False
            for value in values:
                value = api.module_chained_from(value, keeping=("eval", "train"))  # ``torch.load(p).to(d)``
                if type(value) is not ast.Call or self.imports.resolve(value.func) not in api.WHOLE_MODEL_LOADS:
                    return False
            return True
        return False

    def _bound_to_module_level_model(self, function: FunctionInfo, key: str) -> bool:
        return "." not in key and key not in function.local_names and key not in function.params \
            and key in self.models[id(self.module)]

    def _composition_key(self, function: FunctionInfo, key: str):
        if key.startswith("self.") and key.count(".") == 1:
            cls = self.enclosing_class(function)
            if cls is not None:
                return (id(cls), key)
        return (id(function), key)

    def composition_of(self, function: FunctionInfo, key: str) -> Optional[bool]:
        key = self.aliases.canonical(function, key)  # ``snet = nets['snet']``: the element's
        owner, _, attribute = key.partition(".")
        if attribute and "." not in attribute and owner != "self":
            cls = self.model_class_of(function, owner)
            if cls is not None and (id(cls), f"self.{attribute}") in self.composition:
                return self.composition[(id(cls), f"self.{attribute}")]  # ``model.decoder``
        if key.startswith("self."):
            cls = self.enclosing_class(function)
            if cls is not None and (id(cls), key) in self.composition:
                return self.composition[(id(cls), key)]
        for scope in function.enclosing_functions():
            if (id(scope), key) in self.composition:
                return self.composition[(id(scope), key)]
        return self.composition.get((id(self.module), key))

    def origin(self, function: FunctionInfo, key: str) -> Optional[str]:
        return self.model_origin.get((id(function), key))

    def model_class_of(self, function: FunctionInfo, key: str) -> Optional[ClassInfo]:
        key = self.aliases.canonical(function, key)
        if key == "self":
            cls = self.enclosing_class(function)
            return cls if cls and cls.is_module else None
        found = self.class_of_instance(function, key)
        if found is not None and found.is_module:
            return found
        if function is not self.module and "." not in key and key not in function.local_names \
                and key not in function.params:
            return self.model_class.get((id(self.module), key))
        return self.model_class.get((id(function), key))

    def model_expression(self, function: FunctionInfo, expr: ast.AST):
        """(origin, class, same_as_key) if ``expr`` evaluates to a model, else None."""
        answers = self._model_expressions
        if answers is None:  # still finding the models: the answer may change
            return self._model_expression(function, expr)
        key = (id(function), id(expr))
        if key not in answers:
            answers[key] = self._model_expression(function, expr)
        return answers[key]

    def _model_expression(self, function: FunctionInfo, expr: ast.AST):
        if isinstance(expr, ast.IfExp):
            return self._either_model(function, expr)
        if isinstance(expr, ast.Call):
            func = expr.func
            if isinstance(func, ast.Attribute) and func.attr in api.SELF_RETURNING_METHODS and \
                    isinstance(func.value, ast.Call):
                return self.model_expression(function, func.value)  # ``Net().to(device)``
            text = dotted(func) or ""
            qualified = self.imports.qualify(text) or ""
            if text in self.classes and self.classes[text].is_module:
                # ``Net()``, or ``nets.Net()`` of a project module (a dotted name is a stub's)
                return (FRESH, self.classes[text], None)
            if text in self.classes and self._plain_object_class(self.classes[text]):
                return None  # ``Predictor(cfg)``: an object that may hold models, and runs them itself
            if qualified in api.WRAPPERS_KEEPING_MODEL and expr.args:
                # ``nn.DataParallel(net)`` runs ``net``: its mode and layers are the wrapped model's
                inner = expr.args[0]
                key = dotted(inner)
                if key is None:
                    return self.model_expression(function, inner)
                if qualified == "copy.deepcopy" and not self.is_model(function, key):
                    return None  # a copy of anything
                return ("same", None, key)
            if self.model_factory(expr) is not None:
                return (FRESH, None, None)  # ``getattr(models, arch)()``: a new module trains
            registered = self.registered_builders(func)
            if registered is not None:
                return self._built_by_one_of(registered)  # ``MODELS[arch]()``
            if isinstance(func, ast.Attribute):
                receiver = dotted(func.value)
                if func.attr in api.SELF_RETURNING_METHODS and self.is_model(function, receiver):
                    return ("same", None, receiver)
                if func.attr == "from_pretrained" and receiver:
                    owner = receiver.rsplit(".", 1)[-1]
                    if NOT_PRETRAINED_MODEL.search(owner):
                        return None  # pipelines run under no_grad themselves; tokenizers are no models
                    if PRETRAINED_OWNER.search(owner) or qualified.split(".")[0] in PRETRAINED_MODEL_LIBRARIES:
                        return (PRETRAINED, None, None)  # ``AutoencoderKL.from_pretrained``
                    if owner in self.classes and self.classes[owner].is_module:
                        return (PRETRAINED, self.classes[owner], None)
            if qualified in self.constructors or text.rsplit(".", 1)[-1] in self.constructors:
                return (UNKNOWN_ORIGIN, None, None)
            if qualified == "torch.hub.load" and not api.plain_hub_module(expr):
                return (UNKNOWN_ORIGIN, None, None)  # the hub's entry point may wrap it
            if api.is_fresh_model_call(qualified):
                return (FRESH, None, None)
            if "." not in text:
                for scope in function.enclosing_functions():
                    target = scope.nested.get(text)
                    if target is not None:
                        origin = self.returns_model.get(id(target))
                        return (origin, None, None) if origin else None
            if isinstance(func, ast.Name) and api.is_class_like(text) and api.looks_like_model_class(text) \
                    and not qualified.startswith("torch."):
                # ``D_A = Discriminator(shape)`` from a star import: a model, in a mode its
                # constructor chose (a ``Predictor`` may put itself in eval mode).
                return (UNKNOWN_ORIGIN, None, None)
            return None
        key = dotted(expr) or self.element(function, expr)
        if key and self.is_model(function, key):
            return ("same", None, key)
        return None

    def element(self, function: FunctionInfo, expr: ast.AST) -> Optional[str]:
        """The key of a container's element, ``nets['snet']``, as the scope knows it (its own
        name for the element when it built the container)."""
        key = subscript_key(expr) if type(expr) is ast.Subscript else None
        return self.aliases.canonical(function, key) if key is not None else None

    def _either_model(self, function: FunctionInfo, expr: ast.IfExp):
        """``Net().cuda() if cuda else Net()``: a model when a branch is one (a ``None``
        branch holds none); its origin and class when the branches agree."""
        found = []
        for branch in (expr.body, expr.orelse):
            if isinstance(branch, ast.Constant) and branch.value is None:
                continue
            result = self.model_expression(function, branch)
            if result is None:
                return None  # a branch that may not be a model at all
            origin, cls, same = result
            if same is not None:
                origin = self.origin(function, same) or UNKNOWN_ORIGIN
                cls = cls or self.model_class_of(function, same)
            found.append((origin, cls))
        if not found:
            return None
        origins = {origin for origin, _ in found}
        classes = {id(cls) for _, cls in found}
        return (origins.pop() if len(origins) == 1 else UNKNOWN_ORIGIN,
                found[0][1] if len(classes) == 1 else None, None)

    def _record_model(self, function: FunctionInfo, key: str, origin: str,
                      cls: Optional[ClassInfo]) -> bool:
        scope_id = id(function)
        changed = False
        if key.startswith("self.") and key.count(".") == 1:
            owner = self.enclosing_class(function)
            if owner is not None and key[5:] not in owner.model_attributes:
                owner.model_attributes.add(key[5:])
                changed = True
            if owner is not None and cls is not None:
                self.class_attr_class.setdefault((id(owner), key[5:]), cls)
        if key not in self.models[scope_id]:
            self.models[scope_id].add(key)
            changed = True
        self.model_origin.setdefault((scope_id, key), origin)
        if cls is not None:
            self.model_class.setdefault((scope_id, key), cls)
        return changed

    def _find_instances(self, function: FunctionInfo) -> None:
        """``trainer = Trainer(...)``: names holding instances of the file's classes; ``model,
        diffusion = create_model_and_diffusion()``: of the classes an imported function returns
        objects of."""
        for target, value in function.assignments():
            if not isinstance(value, ast.Call):
                continue
            if type(target) in (ast.Tuple, ast.List):
                self._record_unpacked_instances(function, target.elts, value)
                continue
            while isinstance(value.func, ast.Attribute) and value.func.attr in api.SELF_RETURNING_METHODS \
                    and isinstance(value.func.value, ast.Call):
                value = value.func.value  # ``Vgg16(requires_grad=False).to(device)``
            callee = dotted(value.func)
            if callee not in self.classes and isinstance(value.func, ast.Attribute) and \
                    value.func.attr in api.ALTERNATIVE_CONSTRUCTORS:
                callee = dotted(value.func.value)  # ``GPT.from_pretrained("gpt2")`` builds a GPT
            key = dotted(target)
            if callee not in self.classes:
                built = getattr(self._called_function(function, value), "returned_class", None)
                if key and built is not None and not built.is_module:
                    # ``diffusion = create_diffusion(...)`` of another module: a SpacedDiffusion
                    self.instance_class.setdefault((id(function), key), built)
                continue
            if not key:
                continue
            built = self.classes[callee]
            first = self.instance_class.setdefault((id(function), key), built)
            others = self.instance_alternatives.setdefault((id(function), key), [])
            if built is not first and built not in others:
                others.append(built)
            if key.startswith("self."):
                owner = self.enclosing_class(function)
                if owner is not None:
                    self.class_attr_class.setdefault((id(owner), key[5:]), self.classes[callee])

    def _record_unpacked_instances(self, function: FunctionInfo, targets: List[ast.AST], call: ast.Call) -> None:
        callee = self._called_function(function, call)
        classes = getattr(callee, "element_classes", ()) if callee is not None else ()
        if len(classes) != len(targets):
            return
        for target, cls in zip(targets, classes):
            key = dotted(target)
            if key and cls is not None and not cls.is_module:
                self.instance_class.setdefault((id(function), key), cls)

    def _record_assigned(self, function: FunctionInfo, key: str, values: List[tuple]) -> bool:
        """``key`` holds what one of ``values`` ((scope, expression) pairs) evaluates to:
        a model when every one is; a container of models when one is a list, tuple, dict or
        comprehension of them (``nets = [Net() for _ in range(3)]``)."""
        found = [self.model_expression(scope, value) for scope, value in values]
        if not found or any(f is None for f in found):
            if len(values) == 1 and values[0][0] is function:
                elements = self.container_elements(function, values[0][1])
                if elements:
                    self.containers[(id(function), key)] = elements
            return False
        origin, cls, verdict = self._joined_model(values, found)
        changed = self._record_model(function, key, origin, cls)
        if not all(same == key for _, _, same in found):
            # (``net = net.float()`` is the object the name held: it keeps its composition)
            self._add_composition(function, key, verdict)
        return changed

    def _joined_model(self, values: List[tuple], found: List[tuple]) -> tuple:
        """(origin, class, holds Dropout/BatchNorm) of what one of ``values`` ((scope,
        expression) pairs, each a model as ``found`` by ``model_expression``) evaluates to: the
        origin and class they agree on, else unknown / None."""
        origins, classes = set(), []
        for (scope, _), (origin, cls, same) in zip(values, found):
            if same is not None:
                origin = self.origin(scope, same) or UNKNOWN_ORIGIN
                cls = cls or self.model_class_of(scope, same)
            origins.add(origin)
            classes.append(cls)
        return (origins.pop() if len(origins) == 1 else UNKNOWN_ORIGIN,
                classes[0] if all(c is classes[0] for c in classes) else None,
                join_compositions(self.expression_composition(scope, value) for scope, value in values))

    def _add_composition(self, function: FunctionInfo, key: str, verdict: Optional[bool]) -> None:
        # One name assigned several models (``self.vq = EMA(...)`` / ``self.vq = Plain(...)``)
        where = self._composition_key(function, key)
        self.composition[where] = join_compositions([self.composition[where], verdict]) \
            if where in self.composition else verdict

    def container_elements(self, function: FunctionInfo, value: ast.AST) -> List[ast.AST]:
        """The element expressions of a literal list/tuple/dict or a comprehension, when every
        one is a model."""
        if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
            elements = list(value.elts)
        elif isinstance(value, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            elements = [value.elt]
        elif isinstance(value, ast.Dict):
            elements = list(value.values)
        elif isinstance(value, ast.DictComp):
            elements = [value.value]
        else:
            return []
        if not elements or any(isinstance(e, ast.Starred) or self.model_expression(function, e) is None
                               for e in elements):
            return []
        return elements

    def container(self, function: FunctionInfo, key: str) -> Optional[Tuple[FunctionInfo, List[ast.AST]]]:
        for scope in list(function.enclosing_functions()) + [self.module]:
            elements = self.containers.get((id(scope), key))
            if elements:
                return scope, elements
        return None

    def loop_models(self, function: FunctionInfo, node: ast.stmt) -> List[tuple]:
        """(target, source keys, element (scope, expression) pairs) for each loop variable
        that holds a model: ``for net in nets``, ``for net, opt in zip(nets, opts)``,
        ``for i, net in enumerate(nets)``, ``for name, net in nets.items()``,
        ``for m in [netG, netD]``. A source is an element's own name, or the container's
        name when its elements have none (``nets = [Net() for _ in range(3)]``)."""
        if not isinstance(node, (ast.For, ast.AsyncFor)):
            return []
        known = self.loop_bindings.get(id(node))
        if known is None:
            known = self.loop_bindings[id(node)] = self._loop_models(function, node)
        return known

    def _loop_models(self, function: FunctionInfo, node: ast.stmt) -> List[tuple]:
        if not isinstance(node, (ast.For, ast.AsyncFor)):
            return []
        pairs = [(node.target, node.iter)]
        found = []
        while pairs:
            target, iterable = pairs.pop()
            if isinstance(iterable, ast.Call) and isinstance(target, ast.Tuple):
                name = dotted(iterable.func)
                if name == "zip" and len(iterable.args) == len(target.elts):
                    pairs.extend(zip(target.elts, iterable.args))
                    continue
                if name == "enumerate" and iterable.args and len(target.elts) == 2:
                    pairs.append((target.elts[1], iterable.args[0]))
                    continue
                if isinstance(iterable.func, ast.Attribute) and iterable.func.attr == "items" and \
                        len(target.elts) == 2:
                    pairs.append((target.elts[1], iterable.func.value))
                    continue
            if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) and \
                    iterable.func.attr == "values" and not iterable.args:
                iterable = iterable.func.value
            key = dotted(target)
            if not key:
                continue
            if isinstance(iterable, (ast.List, ast.Tuple)) and iterable.elts:
                # ``for m in [netG, netD]``: the models it names; ``for m in (GCN(), MLP())``:
                # models without names of their own (no source to write back to)
                elements = self.container_elements(function, iterable)
                if elements:
                    names = [dotted(e) for e in elements]
                    found.append((key, names if all(names) else [], [(function, e) for e in elements]))
                continue
            name = dotted(iterable)
            held = self.container(function, name) if name else None
            if held is not None:
                scope, elements = held
                names = [dotted(e) for e in elements]
                sources = names if all(names) else [name]
                found.append((key, sources, [(scope, e) for e in elements]))
        return found

    def _find_models(self, function: FunctionInfo) -> bool:
        changed = False
        for target, value in function.assignments():
            key = dotted(target)
            if key and "." not in key:
                function.local_names.add(key)
            if key:
                changed |= self._record_assigned(function, key, [(function, value)])
            elif type(target) in (ast.Tuple, ast.List) and type(value) is ast.Call:
                changed |= self._record_unpacked(function, target.elts, value)
        for loop in function.loops:
            for target, sources, elements in self._loop_models(function, loop.node):
                changed |= self._record_assigned(function, target, elements)
        for param, annotation in function.annotations.items():
            leaf = annotation.rsplit(".", 1)[-1]
            if annotation in api.MODULE_BASES or (leaf in self.classes and self.classes[leaf].is_module):
                changed |= self._record_model(function, param, UNKNOWN_ORIGIN, self.classes.get(leaf))
        called: Set[str] = set()
        for site in function.sites:
            receiver = site.receiver
            if site.method in api.MODULE_ONLY_METHODS or (site.method == "train" and (
                    site.node.args or site.node.keywords)):
                if receiver and receiver not in ("self", "super") and \
                        not self._names_an_import(function, receiver):
                    changed |= self._record_model(function, receiver, UNKNOWN_ORIGIN, None)
            if site.receiver is None and site.callee:
                called.add(site.callee)
            elif site.callee and site.callee.startswith("self.") and site.callee.count(".") == 1:
                called.add(site.callee)
        for key in called:
            if self.is_model(function, key) or self._names_an_import(function, key):
                continue
            if any(key in scope.nested for scope in function.enclosing_functions()):
                continue
            if key in self.classes:
                continue
            instance_of = self.class_of_instance(function, key)
            if instance_of is not None and self._plain_object_class(instance_of):
                continue  # ``predictor(image)`` of a ``Predictor`` of the file: its ``__call__`` runs
            if key.startswith("self."):
                owner = self.enclosing_class(function)
                if owner is not None and owner.find_method(key[5:]) is not None:
                    continue  # ``self._swap_models(...)`` is a method, not a model
            if (api.looks_like_model_name(key) and self._bound_in_sight(function, key) or
                    self._bound_to_a_loaded_object(function, key)) and \
                    not self._callers_pass_functions(function, key):
                changed |= self._record_model(function, key, UNKNOWN_ORIGIN, None)
        elements = self._returned_elements(function)
        if elements != self.returns_elements.get(id(function)) and elements is not None:
            self.returns_elements[id(function)] = elements
            changed = True
        returned = self._returned_model(function)
        if returned and self.returns_model.get(id(function)) != returned:
            self.returns_model[id(function)] = returned
            changed = True
        if returned:
            composition = join_compositions(
                self.expression_composition(function, value) for value in function.returned_values)
            if self.returns_composition.get(id(function)) != composition:
                self.returns_composition[id(function)] = composition
                changed = True
        return changed

    def dropout_or_batchnorm_in(self, call: ast.Call) -> Optional[bool]:
        """Whether a torch.nn construction expression builds Dropout or BatchNorm layers."""
        qualified = self.imports.resolve(call.func) or ""
        if not qualified.startswith("torch.nn."):
            return None
        leaf = qualified[len("torch.nn."):]
        if self._layer_depends_on_mode(leaf, call):
            return True
        if leaf in ("Sequential", "ModuleList") and not call.keywords:
            verdict: Optional[bool] = False
            elements = list(call.args)
            if len(elements) == 1 and isinstance(elements[0], (ast.List, ast.Tuple)):
                elements = list(elements[0].elts)
            for element in elements:
                inner = self.dropout_or_batchnorm_in(element) if isinstance(element, ast.Call) else None
                if inner:
                    return True
                if inner is None:
                    verdict = None
            return verdict
        if qualified in api.WRAPPERS_KEEPING_MODEL:
            return None
        return False if leaf[:1].isupper() and "." not in leaf else None

    def class_composition(self, cls: ClassInfo) -> Optional[bool]:
        if cls.external or id(cls) in self._composition_verdicts:
            return cls.composition()
        return self._class_has_dropout_or_batchnorm(cls, set())

    def expression_composition(self, function: FunctionInfo, expr: ast.AST) -> Optional[bool]:
        """Whether the model an expression evaluates to holds Dropout/BatchNorm (None: cannot
        tell). Follows ``a if c else b``, ``.to(device)`` chains and wrappers such as
        ``nn.DataParallel``, which run the model they wrap."""
        if isinstance(expr, ast.IfExp):
            branches = [b for b in (expr.body, expr.orelse)
                        if not (isinstance(b, ast.Constant) and b.value is None)]
            return join_compositions(self.expression_composition(function, b) for b in branches)
        key = dotted(expr) or self.element(function, expr)
        if key is not None:
            return self.key_composition(function, key)
        if not isinstance(expr, ast.Call):
            return None
        func = expr.func
        if isinstance(func, ast.Attribute) and func.attr in api.SELF_RETURNING_METHODS and \
                isinstance(func.value, ast.Call):
            return self.expression_composition(function, func.value)
        qualified = self.imports.resolve(func) or ""
        if qualified in api.WRAPPERS_KEEPING_MODEL and expr.args:
            return self.expression_composition(function, expr.args[0])
        registered = self.registered_builders(func)
        if registered is not None:
            return join_compositions(self.class_composition(builder) if isinstance(builder, ClassInfo)
                                     else self.returns_composition.get(id(builder)) for builder in registered)
        text = dotted(func) or ""
        if text in self.classes and self.classes[text].is_module:
            verdict = self.class_composition(self.classes[text])
            if verdict is None and not self.classes[text].external:
                return self._composition_with_handed_modules(function, expr, self.classes[text])
            return verdict
        if "." not in text:
            for scope in function.enclosing_functions():
                target = scope.nested.get(text)
                if target is not None:  # ``make_calibrator()``: what the factory returns
                    return self.returns_composition.get(id(target))
        if qualified.startswith("torch.nn."):
            return self.dropout_or_batchnorm_in(expr)
        if api.is_fresh_model_call(qualified) or self.model_factory(expr) == LIBRARY_FACTORY:
            return True  # torchvision / timm / torch.hub models hold BatchNorm or Dropout
        return None

    def key_composition(self, function: FunctionInfo, key: str) -> Optional[bool]:
        cls = self.model_class_of(function, key)
        verdict = self.class_composition(cls) if cls is not None else None
        return verdict if verdict is not None else self.composition_of(function, key)

    def _composition_with_handed_modules(self, function: FunctionInfo, call: ast.Call,
                                         cls: ClassInfo) -> Optional[bool]:
        """``RNNModel(rnn_layer, vocab_size)`` of a class that keeps the modules it is handed:
        its own layers joined with those of the modules this construction hands it."""
        handed = _handed_modules(cls)
        init = cls.methods.get("__init__")
        if not handed or init is None or cls.base_classes or \
                any(b not in api.MODULE_BASES for b in cls.bases):
            return None
        key = ("own", id(cls))
        if key not in self._composition_verdicts:
            self._composition_verdicts[key] = self._judge_class(cls, set(), count_handed=False)
        verdicts = [self._composition_verdicts[key]]
        bound = dict(arguments_by_parameter(call, list(init.params)[1:], init.params))
        for param in handed:
            argument = bound.get(param)
            if argument is None:
                return None  # left to its default
            verdicts.append(self.expression_composition(function, argument))
        return join_compositions(verdicts)

    def _returned_model(self, function: FunctionInfo) -> Optional[str]:
        if function.is_module_scope:
            return None
        for value in function.returned_values:
            found = self.model_expression(function, value)
            if found:
                origin, _, same = found
                return self.origin(function, same) or UNKNOWN_ORIGIN if same else origin
        return None

    def _returned_elements(self, function: FunctionInfo) -> Optional[Tuple[Optional[tuple], ...]]:
        """What a function returning a tuple written out (``return model, diffusion``) returns
        at each place: (origin, class, composition) where every return puts a model there, else
        None; None for the whole when no place holds a model or the returns disagree in length."""
        if function.is_module_scope:
            return None
        returns = function.returned_values
        passed_through = {self._elements_returned_by_call(function, value) for value in returns}
        if len(passed_through) == 1 and None not in passed_through:
            return passed_through.pop()  # ``return build(args)``: what ``build`` returns
        if not returns or any(type(value) is not ast.Tuple for value in returns) or \
                len({len(value.elts) for value in returns}) != 1 or \
                any(isinstance(element, ast.Starred) for value in returns for element in value.elts):
            return None
        elements = []
        for place in zip(*(value.elts for value in returns)):
            found = [self.model_expression(function, expr) for expr in place]
            elements.append(None if any(result is None for result in found) else
                            self._joined_model([(function, expr) for expr in place], found))
        return tuple(elements) if any(elements) else None

    def _elements_returned_by_call(self, function: FunctionInfo, value: ast.AST) -> Optional[tuple]:
        if type(value) is not ast.Call:
            return None
        callee = self._called_function(function, value)
        return self.returns_elements.get(id(callee)) if callee is not None else None

    def _record_unpacked(self, function: FunctionInfo, targets: List[ast.AST], call: ast.Call) -> bool:
        """``model, diffusion = create_model_and_diffusion(...)``: the names take the models the
        called function returns at their places."""
        elements = self._elements_returned_by_call(function, call)
        if not elements or len(elements) != len(targets):
            return False
        changed = False
        for target, element in zip(targets, elements):
            key = dotted(target)
            if key is None or element is None:
                continue
            origin, cls, composition = element
            changed |= self._record_model(function, key, origin, cls)
            self._add_composition(function, key, composition)
        return changed

    def _called_function(self, function: FunctionInfo, call: ast.Call) -> Optional[FunctionInfo]:
        """The function of this file, or the imported project function, a call runs."""
        text = dotted(call.func)
        if not text:
            return None
        if "." not in text:
            for scope in function.enclosing_functions():
                target = scope.nested.get(text)
                if target is not None:
                    return target
            return None
        return self.linker.stubs.get(text) if self.linker is not None else None

    def _find_models_to_a_fixpoint(self) -> None:
        """Rounds of ``_find_models`` over the functions until nothing changes, whatever the
        definition order. A function is looked at again only when something it reads changed
        since it was last looked at: itself, an enclosing scope (globals, closures), a function
        it calls, a method of its class (``self.encoder`` is built in ``__init__``), a caller
        (what it passes). Without the shortcuts, every function every round."""
        dependencies = {id(f): self._model_dependencies(f) for f in self.functions}
        changed_at: Dict[int, int] = {}  # id(function) -> tick of its last change
        looked_at: Dict[int, int] = {}  # id(function) -> tick it was last looked at
        tick = 0
        for _ in range(len(self.functions) + 4):
            changed = False
            for function in self.functions:
                seen = looked_at.get(id(function))
                if seen is not None and self.config.shortcuts and not any(
                        changed_at.get(other, -1) > seen for other in dependencies[id(function)]):
                    continue
                tick += 1
                looked_at[id(function)] = tick
                if self._find_models(function):
                    tick += 1
                    changed_at[id(function)] = tick
                    changed = True
            gained = self._propagate_model_params()
            for function_id in gained:
                tick += 1
                changed_at[function_id] = tick
            if not changed and not gained:
                break

    def _model_dependencies(self, function: FunctionInfo) -> Set[int]:
        found = {id(scope) for scope in function.enclosing_functions()}
        found.update(id(site.target) for site in function.sites if site.target is not None)
        found.update(id(site.function) for site in function.callers)
        owner = self.enclosing_class(function)
        for cls in owner.lineage() if owner is not None else ():
            found.update(id(method) for method in cls.methods.values())
        return found

    def _propagate_model_params(self) -> Set[int]:
        """A parameter that in-file callers pass a model to holds a model. Down a chain of
        helpers in one pass: a function is looked at again when a caller gains a model. The
        functions whose parameters gained a model."""
        changed: Set[int] = set()
        pending = [function for function in reversed(self.functions) if not function.is_module_scope]
        queued = {id(function) for function in pending}
        while pending:
            function = pending.pop()
            queued.discard(id(function))
            gained = False
            for site in function.callers:
                for param, arg in self.bind_arguments(site, function):
                    key = dotted(arg)
                    if key is None:  # ``extract(Features(), loader)``: a model built in the call
                        found = self.model_expression(site.function, arg)
                        if found is None:
                            continue
                        cls = found[1]
                    elif not self.is_model(site.function, key):
                        continue
                    else:
                        cls = self.model_class_of(site.function, key)
                    if param not in self.models[id(function)] or (
                            cls is not None and (id(function), param) not in self.model_class):
                        self._record_model(function, param, UNKNOWN_ORIGIN, cls)
                        self.passed_models.add((id(function), param))
                        gained = True
                for element, caller_key in self._elements_passed(site, function):
                    if element not in self.models[id(function)] and self.is_model(site.function, caller_key):
                        # ``nets['snet']`` of a ``nets`` whose ``'snet'`` is a model
                        self._record_model(function, element, UNKNOWN_ORIGIN,
                                           self.model_class_of(site.function, caller_key))
                        self.passed_models.add((id(function), element))
                        gained = True
            if not gained:
                continue
            changed.add(id(function))
            for site in function.sites:
                callee = site.target
                if callee is not None and not callee.is_module_scope and id(callee) not in queued:
                    pending.append(callee)
                    queued.add(id(callee))
        return changed

    def _propagate_compositions(self) -> None:
        """A parameter holds Dropout/BatchNorm if any caller passes a model that does; a caller
        that passes on its own parameter (``train_and_predict(model)`` calling
        ``predict(model)``) passes what its callers pass, so the verdicts settle in a few rounds."""
        settled: Set[Tuple[int, str]] = set()
        for _ in range(4):
            changed = False
            for function in self.functions:
                verdicts: Dict[str, List[Optional[bool]]] = {}
                for site in function.callers:
                    for param, arg in self.bind_arguments(site, function):
                        key = dotted(arg)
                        if key and self.is_model(site.function, key) or \
                                key is None and self.model_expression(site.function, arg) is not None:
                            verdicts.setdefault(param, []).append(self.expression_composition(site.function, arg))
                    for element, caller_key in self._elements_passed(site, function):
                        if self.is_model(site.function, caller_key):
                            verdicts.setdefault(element, []).append(self.key_composition(site.function, caller_key))
                for param, found in verdicts.items():
                    where = (id(function), param)
                    if where in self.composition and where not in settled:
                        continue  # set otherwise (an annotation, a default): not the callers' to change
                    verdict = join_compositions(found)
                    if self.composition.get(where, "unset") != verdict:
                        self.composition[where] = verdict
                        settled.add(where)
                        changed = True
            if not changed:
                break

    def _elements_passed(self, site: CallSite, function: FunctionInfo) -> Iterable[Tuple[str, str]]:
        """(element key of ``function``, the caller's key for it): ``nets.['snet']`` of
        ``train(nets)``, which is ``snet`` where the caller built ``nets = {'snet': snet}``."""
        elements = self.aliases.elements_used(function)
        if not elements:
            return
        for param, arg in self.bind_arguments(site, function):
            text = dotted(arg)
            if text is None:
                continue
            for element in elements:
                if element.startswith(param + "."):
                    yield element, self.aliases.canonical(site.function, text + element[len(param):])

    def bind_arguments(self, site: CallSite, target: FunctionInfo) -> Iterable[Tuple[str, ast.AST]]:
        params = list(target.params)
        if target.cls is not None and params and (site.receiver is not None or site.constructs or
                                                  target.name == "__call__"):
            params = params[1:]  # self / cls
        return arguments_by_parameter(site.node, params, target.params)

    # -- optimizers and training evidence -------------------------------------------------
    def _find_optimizers_and_training(self, function: FunctionInfo) -> None:
        for index, statement in enumerate(function.statements):
            if type(statement) is not ast.Assign:
                continue
            if type(statement.value) is ast.Call:
                if self._builds_an_optimizer(statement.value) or any(
                        type(arg) is ast.Call and self._builds_an_optimizer(arg) for arg in statement.value.args):
                    # (``CustomLRAdamOptimizer(Adam(model.parameters()), ...)``: a wrapper that steps it)
                    models = owners_of_calls(statement.value, api.PARAMETER_METHODS)
                    for target in statement.targets:
                        key = dotted(target)
                        if key:
                            self.optimizers[(id(function), key)] = models
            for target in statement.targets:
                if not isinstance(target, ast.Attribute) or target.attr != "requires_grad":
                    continue
                value = statement.value
                if isinstance(value, ast.Constant) and value.value is True:
                    self.gradient_wanted.add(id(function))
                    self._wants_gradients_of(function, index, dotted(target.value))
                elif not (isinstance(value, ast.Constant) and value.value):
                    # ``= False`` or ``= requires_grad`` (a flag the caller sets False)
                    self._freeze_from_loop(function, target, value)
        for site in function.sites:
            backward = api.backward_run_by(site)
            if backward == api.RUNS_BACKWARD_ON_LOSS:
                self.training_sites.add(id(site))
            elif backward == api.RUNS_BACKWARD_ON_OUTPUTS or (
                    site.qualified or "").startswith("torch.autograd.functional."):
                self.training_sites.add(id(site))
                self.gradient_wanted.add(id(function))
            elif site.method == "step" and site.receiver and (
                    self.is_optimizer(function, site.receiver)):
                self.training_sites.add(id(site))
            elif site.method == "step" and site.receiver and "scaler" in site.receiver.lower():
                self.training_sites.add(id(site))
            elif len(site.node.args) >= 2 and self._hands_loss_to_unknown_step(function, site):
                site.hidden_step = True
                self.training_sites.add(id(site))
            elif site.method == "requires_grad_":
                args = site.node.args
                if not args or (isinstance(args[0], ast.Constant) and args[0].value is True):
                    self.gradient_wanted.add(id(function))
                    self._wants_gradients_of(function, site.index, site.receiver, *assigned_names(
                        function.statements[site.index]))
                elif isinstance(args[0], ast.Constant) and args[0].value is False:
                    if site.receiver:
                        self._freeze(function, site.receiver)
                    else:  # ``vae = AutoencoderKL.from_pretrained(...).requires_grad_(False)``
                        self.frozen.update(self._bound_to_the_chain(function.statements[site.index], site.node))
            if site.node.keywords and any(k.arg == "requires_grad" and isinstance(k.value, ast.Constant) and
                                          k.value.value for k in site.node.keywords):
                # ``x = torch.zeros(..., requires_grad=True)``
                self._wants_gradients_of(function, site.index, *assigned_names(function.statements[site.index]))

    def _builds_an_optimizer(self, call: ast.Call) -> bool:
        qualified = self.imports.resolve(call.func) or ""
        return api.is_optimizer_class(qualified) or qualified.rsplit(".", 1)[-1] in api.OPTIMIZER_NAMES

    def _wants_gradients_of(self, function: FunctionInfo, index: int, *names: Optional[str]) -> None:
        wanted = self.gradient_inputs.setdefault(id(function), {})
        for name in names:
            if name:
                wanted.setdefault(name, []).append(index)

    def _hands_loss_to_unknown_step(self, function: FunctionInfo, site: CallSite) -> bool:
        """A call of code we cannot see (a parameter, an object of an imported class) handed a
        loss first and an optimizer after it: ``loss_scaler(loss, optimizer, ...)``. A function
        or class we can read decides by its own code; a constructor or torch builds, not steps."""
        if len(site.node.args) < 2 or site.target is not None or site.constructs is not None or \
                site.network is not None or site.callee is None or api.is_class_like(site.callee) or \
                (site.qualified or "").split(".")[0] in api.TORCH_ROOTS:
            return False
        arguments = [arg for arg in site.node.args if not isinstance(arg, ast.Starred)]
        if len(arguments) < 2 or not self._names_a_loss(function, arguments[0]):
            return False
        rest = arguments[1:] + [k.value for k in site.node.keywords if k.arg == "optimizer"]
        return any(self.is_optimizer(function, dotted(arg)) for arg in rest if dotted(arg))

    def _names_a_loss(self, function: FunctionInfo, expr: ast.AST) -> bool:
        """A loss: named one, or computed by a loss function or criterion call."""
        if isinstance(expr, ast.Call):
            callee = dotted(expr.func) or ""
            return bool(set(api.words(callee.rsplit(".", 1)[-1])) & api.LOSS_WORDS)
        key = dotted(expr)
        return bool(key) and bool(set(api.words(key.rsplit(".", 1)[-1])) & api.LOSS_WORDS)

    @staticmethod
    def _bound_to_the_chain(statement: ast.stmt, call: ast.Call) -> Set[str]:
        """The names an assignment binds to a chain of calls that holds ``call``
        (``x = A.from_pretrained(p).requires_grad_(False).to(device)``)."""
        if type(statement) is not ast.Assign:
            return set()
        value = statement.value
        while type(value) is ast.Call and value is not call and type(value.func) is ast.Attribute:
            value = value.func.value
        return assigned_names(statement) if value is call else set()

    def _freeze_from_loop(self, function: FunctionInfo, target: ast.Attribute, value: ast.AST) -> None:
        """``for p in model.parameters(): p.requires_grad = False`` freezes ``model``; the same
        loop over a parameter (``def freeze_params(params)``) freezes the models whose
        ``.parameters()`` the file's calls of the function hand it, and a helper's loop over a
        model it is handed, setting a flag (stylegan2's ``requires_grad(model, flag)``),
        freezes the models of the calls that pass the flag False."""
        variable = dotted(target.value)
        flag = value.id if type(value) is ast.Name and value.id in function.params else None
        for loop in function.loops:
            node = loop.node
            if not isinstance(node, ast.For) or dotted(node.target) != variable:
                continue
            if type(node.iter) is ast.Name and node.iter.id in function.params:
                self._freeze_what_callers_hand(function, node.iter.id)
            elif isinstance(node.iter, ast.Call) and isinstance(node.iter.func, ast.Attribute) and \
                    node.iter.func.attr in ("parameters", "named_parameters"):
                owner = dotted(node.iter.func.value)
                if owner in function.params and owner not in ("self", "cls"):
                    self._freeze_what_callers_hand(function, owner, flag)
                else:
                    self._freeze(function, owner)

    def _freeze(self, function: FunctionInfo, key: Optional[str]) -> None:
        """``key``'s parameters are frozen in ``function``: by name for the file, and, for
        ``self`` or a part of it, for the function's class (``RNDModel`` freezes ``self.target``;
        ``rnd_model.target`` of another function is that part)."""
        if not key:
            return
        if key == "self" or key.startswith("self."):
            self.frozen_by_function.setdefault(id(function), set()).add(key)
        if key != "self":
            self.frozen.add(key)

    def _freeze_what_callers_hand(self, function: FunctionInfo, param: str, flag: Optional[str] = None) -> None:
        """The models the file's calls hand ``param`` of a freezing helper -- the model itself
        (``requires_grad(generator, False)``) or its ``.parameters()`` (``freeze(net.parameters())``)
        -- for the calls that pass the helper's ``flag`` parameter False (every call, when the
        helper sets a constant)."""
        for caller in function.callers:
            bound = dict(self.bind_arguments(caller, function))
            if flag is not None:
                setting = bound.get(flag, parameter_default(function, flag))
                if not (type(setting) is ast.Constant and setting.value is False):
                    continue
            argument = bound.get(param)
            if type(argument) is ast.Call and type(argument.func) is ast.Attribute and \
                    argument.func.attr in ("parameters", "named_parameters"):
                argument = argument.func.value
            model = dotted(argument) if argument is not None else None
            if model and model != "self":
                self._freeze(caller.function, model)

    def is_frozen(self, key: str, function: Optional[FunctionInfo] = None) -> bool:
        """Parameters frozen anywhere in the file (by name: a frozen backbone stays frozen), or
        a model whose class freezes its own parameters (``Vgg16(requires_grad=False)``)."""
        if key in self.frozen and not self._part_trained(key):
            return True
        owner = key.rpartition(".")[0]
        while owner and owner != "self":  # ``self.vae.encode`` of a frozen ``self.vae``
            if owner in self.frozen and not self._part_trained(owner):
                return True
            owner = owner.rpartition(".")[0]
        if function is not None:
            cls = self.model_class_of(function, key)
            if cls is not None and self.class_freezes_itself(cls):
                return True
            owner, _, attribute = key.rpartition(".")
            if owner and "." not in owner and owner != "self" and not self._part_trained(key):
                # ``rnd_model.target(x)`` where RNDModel freezes ``self.target`` when it builds it
                cls = self.model_class_of(function, owner)
                if cls is not None and f"self.{attribute}" in self._frozen_in_class(cls):
                    return True
        return False

    def _part_trained(self, key: str) -> bool:
        """Fine-tuning a frozen backbone: an optimizer of the file steps a part of ``key``
        (``Adam(model.classifier.parameters())`` after freezing ``model``): the model runs
        trainable layers, it records a graph."""
        prefix = key + "."
        return any(owner.startswith(prefix) for owners in self.optimizers.values() for owner in owners)

    # What a use of ``self.net`` may do that leaves its mode as it was: run it, move it, load
    # weights into it, read or freeze its parameters.
    _MODE_KEEPING_METHODS = frozenset({"to", "cuda", "cpu", "float", "half", "double", "bfloat16",
                                       "load_state_dict", "state_dict", "parameters",
                                       "named_parameters", "requires_grad_"})

    def attributes_of_fixed_mode(self, cls: ClassInfo) -> Set[str]:
        """The models a plain object (no ``nn.Module``: nothing switches its attributes' modes
        for it) builds in ``__init__`` and the file only runs, moves or loads afterwards: their
        mode is the one ``__init__`` leaves them in, in every method (a FID evaluator's
        ``self.inception_v3``). Any other use anywhere in the file -- a mode switch, an alias,
        an argument, another object's ``.inception_v3`` -- and the attribute is not fixed."""
        cached = self._fixed_mode_attributes.get(id(cls))
        if cached is not None:
            return cached
        candidates = set() if cls.is_module or cls.external or cls.base_classes or \
            cls.find_method("__init__") is None else set(cls.model_attributes)
        if candidates:
            init = cls.find_method("__init__").node
            unrelated_methods = {id(inner) for other in self.classes.values()
                                 if other is not cls and all(c is not cls for c in other.lineage())
                                 for statement in other.node.body
                                 if type(statement) in (ast.FunctionDef, ast.AsyncFunctionDef)
                                 for inner in ast.walk(statement)
                                 if type(inner) in (ast.FunctionDef, ast.AsyncFunctionDef)}
            for node, parent, grandparent, method in _attribute_uses(self.module.node, candidates):
                attribute = node.attr
                on_self = type(node.value) is ast.Name and node.value.id == "self" and method is not None
                if on_self and id(method) in unrelated_methods:
                    continue  # another class's own ``self.model``
                owned = on_self and method in cls.node.body
                if owned and type(parent) is ast.Call and parent.func is node:
                    continue  # ``self.net(x)``
                if owned and type(parent) is ast.Attribute and parent.attr in self._MODE_KEEPING_METHODS \
                        and type(grandparent) is ast.Call and grandparent.func is parent:
                    continue  # ``self.net.to(device)``
                if owned and type(parent) is ast.Attribute and parent.attr in ("device", "dtype") and \
                        type(parent.ctx) is ast.Load:
                    continue  # ``images.to(self.model.device)``
                if owned and method is init and type(parent) in (ast.Assign, ast.AnnAssign) and \
                        type(node.ctx) is ast.Store:
                    continue  # built in ``__init__``
                if owned and method is init and type(parent) is ast.Attribute and \
                        parent.attr in ("eval", "train") and type(grandparent) is ast.Call:
                    continue  # switched once while built: ``__init__`` leaves the mode it chose
                if owned and method is init and type(parent) is ast.Call and node in parent.args and \
                        _only_loads_weights_through(parent, grandparent, init):
                    continue  # ``DetectionCheckpointer(self.model).load(path)``
                candidates.discard(attribute)
        self._fixed_mode_attributes[id(cls)] = candidates
        return candidates

    def class_freezes_itself(self, cls: ClassInfo) -> bool:
        return bool(getattr(cls, "freezes_itself", False)) or "self" in self._frozen_in_class(cls)

    def _frozen_in_class(self, cls: ClassInfo) -> Set[str]:
        return {key for method in cls.methods.values() for key in self.frozen_by_function.get(id(method), ())}

    def is_optimizer(self, function: FunctionInfo, key: str) -> bool:
        for scope in list(function.enclosing_functions()) + [self.module]:
            if (id(scope), key) in self.optimizers:
                return True
        cls = self.enclosing_class(function)
        if cls is not None and key.startswith("self."):
            for method in cls.methods.values():
                if (id(method), key) in self.optimizers:
                    return True
        return api.looks_like_optimizer_name(key)

    # -- forwards and the training closure ------------------------------------------------
    def _mark_forwards(self) -> None:
        for function in self.functions:
            for site in function.sites:
                if site.callee is None or id(site.node) in self.context_managers:
                    continue  # ``with base_model_context():`` enters a context, it runs no model
                if self.is_model(function, site.callee):
                    site.network = site.callee
                elif site.method in ("forward", "__call__") and self.is_model(function, site.receiver):
                    site.network = site.receiver
                elif site.receiver and self._is_submodule_of_a_model(function, site.receiver, site.method):
                    site.network = site.callee  # ``model.decoder(h)``: a part of the model runs
                elif site.receiver and self._part_of_a_held_model(function, site):
                    site.network = site.callee  # ``self.model.decoder(h)`` in a wrapper
                elif site.target is not None and site.target.external:
                    handed = self._model_handed_to_an_object(function, site)
                    if handed is not None:
                        site.network, site.handed_to = handed
                    else:
                        site.through_helper = self._model_run_by_helper(function, site)

    def _model_handed_to_an_object(self, function: FunctionInfo, site: CallSite) -> Optional[Tuple[str, str]]:
        """``diffusion.p_sample_loop(model, shape)``: a method of a plain object of another
        module that runs the model it is handed (down its own chain of methods) is a forward
        pass of that model here, in this caller's context; the called module cannot tell its
        callers apart (the same chain runs the model for training). (key, "on" when the
        method may run it with autograd on, else "off"), or None."""
        if not site.receiver or site.receiver in ("self", "cls") or site.receiver.startswith("self."):
            return None
        handed, with_grad = set(), False
        for target in site.targets():
            facts = target.external_facts if target.external else None
            if not facts or target.cls is None or target.cls.is_module or facts.get("trains"):
                return None
            runs, runs_with_grad = set(facts.get("params_run_forward") or ()), \
                set(facts.get("params_run_as_models") or ())
            for param, argument in self.bind_arguments(site, target):
                key = dotted(argument)
                if param in runs and key and self.is_model(function, key):
                    handed.add(key)
                    with_grad |= param in runs_with_grad
        if len(handed) != 1:
            return None
        return handed.pop(), "on" if with_grad else "off"

    def _is_submodule_of_a_model(self, function: FunctionInfo, owner: str, attribute: str) -> bool:
        """``owner.attribute`` is a layer the model ``owner``'s class builds in ``__init__``."""
        if owner == "self" or owner.startswith("self.") or not self.is_model(function, owner):
            return False
        cls = self.model_class_of(function, owner)
        return cls is not None and attribute in cls.model_attributes and \
            cls.find_method(attribute) is None

    def _part_of_a_held_model(self, function: FunctionInfo, site: CallSite) -> bool:
        """``self.model.decoder(trg, mask, enc)`` in a class that was handed the model
        (``Translator(model)``), or ``net.encoder(X, valid_len)`` in a function handed ``net``
        (d2l's ``predict_seq2seq``): a part of a model whose class is out of sight, called with
        arguments -- a submodule, or one of the model's own methods, which runs its layers.
        ``nn.Module``'s own methods (``.parameters()``, ``.to()``, ``.eval()``) are not."""
        receiver = site.receiver
        held = receiver.startswith("self.") and receiver.count(".") == 1
        if not (held or "." not in receiver) or not site.node.args or \
                site.method in api.NN_MODULE_METHODS or site.method in api.SELF_GRAD_SETTING_METHODS or \
                site.method.startswith("_"):
            return False
        if not self.is_model(function, receiver) or self.model_class_of(function, receiver) is not None or \
                self.class_of_instance(function, receiver) is not None:
            return False
        if not held and not any(self._tensor_valued(site, argument) for argument in site.node.args):
            return False  # ``net.init_hidden(batch_size)``: a method of the model's own, no forward
        if not held and self.origin(function, receiver) == PRETRAINED:
            # loaded as a library module here: its documented forwards (``vae.encode(x)``)
            return site.method in api.LIBRARY_MODEL_FORWARD_METHODS
        # a module by what the code does with it (``self.model.eval()``), not by its name: in
        # any method of the class that holds it, in the function itself, and for a module-level
        # model (CLIP's ``model.encode_text(tokens)`` in a notebook's helper) at module level
        owner = self.enclosing_class(function) if held else None
        functions = owner.methods.values() if owner is not None else () if held else \
            (function, self.module) if self._bound_to_module_level_model(function, receiver) else (function,)
        return any(other.receiver == receiver and other.method in api.MODULE_ONLY_METHODS | {"train"}
                   for method in functions for other in method.sites)

    def _tensor_valued(self, site: CallSite, expr: ast.AST, depth: int = 0) -> bool:
        """The expression is a tensor the code built with torch (``torch.unsqueeze(...)``,
        ``torch.Tensor(obs).to(device)``), data moved to a device (``tokenize(texts).cuda()``) or
        a batch of a ``DataLoader`` a loop around the call walks, also through a name bound to
        one and through methods and indexing of one."""
        function = site.function
        while depth < 4:
            depth += 1
            if type(expr) is ast.Subscript:
                expr = expr.value
            elif type(expr) is ast.Call:
                if (self.imports.resolve(expr.func) or "").split(".")[0] == "torch":
                    return True
                if type(expr.func) is not ast.Attribute:
                    return False
                if expr.func.attr in ("cuda", "to"):
                    return True  # ``clip.tokenize(texts).cuda()``: data moved to the model's device
                expr = expr.func.value  # ``x.float().to(device)``: the tensor it is called on
            elif type(expr) is ast.Name:
                return self._batch_of_a_data_loader(site, expr.id) or \
                    any(self._tensor_valued(site, value, depth)
                        for value in self.name_bindings(function).get(expr.id, ()))
            else:
                return False
        return False

    def _batch_of_a_data_loader(self, site: CallSite, name: str) -> bool:
        """``for x, y in loader`` around the call, ``loader = DataLoader(...)``."""
        for loop in site.loops:
            target = getattr(loop.node, "target", None)
            if target is not None and any(type(node) is ast.Name and node.id == name for node in walk(target)):
                return self.walks_a_data_loader(site.function, loop)
        return False

    def walks_a_data_loader(self, function: FunctionInfo, loop) -> bool:
        """The loop iterates a ``torch.utils.data.DataLoader`` the code built (``for images,
        labels in testloader``, through ``enumerate``/``tqdm``/``iter``)."""
        return any(type(value) is ast.Call and self.imports.resolve(value.func) in api.DATA_LOADERS
                   for identifier in loop.iterable_identifiers
                   for scope in function.enclosing_functions()
                   for value in self.name_bindings(scope).get(identifier, ()))

    def _mark_forwards_through_methods(self) -> None:
        """``model.encode(x)``: a method of the model's class that runs the model's layers is
        a forward pass of the model (its grad mode and module mode are the caller's)."""
        running: Set[int] = set()
        changed = True
        while changed:
            changed = False
            for function in self.functions:
                if function.cls is None or id(function) in running or not function.cls.is_module:
                    continue
                if function.name in ("__init__", "forward", "__call__") or \
                        id(function) in self.training_functions:
                    continue  # construction, a plain call of the model, or a training routine
                if any(site.runs_own_layers
                       or site.target is not None and id(site.target) in running
                       for site in function.sites):
                    running.add(id(function))
                    changed = True
        # ``model.generate(x)`` of a project class whose summary says the method runs ``self``.
        for function in self.functions:
            for site in function.sites:
                target = site.target
                if site.network is None and site.receiver and target is not None and \
                        target.external and target.cls is not None and target.cls.is_module and \
                        target.name not in ("__init__", "forward", "__call__") and \
                        id(target) not in self.training_functions and \
                        "self" in ((target.external_facts or {}).get("params_run_forward") or ()) and \
                        self.is_model(function, site.receiver):
                    site.network = site.receiver
                    site.handed_to = "on" if "self" in (target.external_facts.get("params_run_as_models") or ()) \
                        else "off"
        if not running:
            return
        # A model whose class is not known here (a parameter) calling a method that only the
        # file's network classes define, and that runs their layers: ``model.pi(x)``.
        by_name = {}
        for function in self.functions:
            if function.cls is not None and function.name not in ("__init__", "forward", "__call__"):
                by_name.setdefault(function.name, []).append(id(function) in running)
        running_names = {name for name, verdicts in by_name.items() if all(verdicts)}
        for function in self.functions:
            for site in function.sites:
                if site.network is not None or not site.receiver or site.receiver == "self" or \
                        site.receiver.startswith("self.") or not self.is_model(function, site.receiver):
                    continue
                if site.target is not None and id(site.target) in running or \
                        site.target is None and site.method in running_names:
                    site.network = site.receiver

    def _model_run_by_helper(self, function: FunctionInfo, site: CallSite) -> Optional[str]:
        """The caller's model that a project helper runs with autograd on, when it runs exactly
        one of the models it is passed (its summary lists the parameters it runs)."""
        runs = set((site.target.external_facts or {}).get("params_run_as_models") or ())
        models = []
        for param, arg in self.bind_arguments(site, site.target):
            key = dotted(arg)
            if param in runs and key and self.is_model(function, key):
                models.append(key)
        return models[0] if len(models) == 1 and len(runs) == 1 else None

    def _compute_training_closure(self) -> None:
        trains: Set[int] = set()
        if self.linker is not None:
            self.training_functions = trains
            self.linker.preset_facts(self)
        for function in self.functions:
            if any(id(site) in self.training_sites for site in function.sites) or \
                    id(function) in self.gradient_wanted or function.name in api.LIGHTNING_TRAIN_HOOKS:
                trains.add(id(function))
        changed = True
        while changed:
            changed = False
            for function in self.functions:
                if id(function) in trains:
                    continue
                if any(site.target is not None and id(site.target) in trains for site in function.sites):
                    trains.add(id(function))
                    changed = True
        self.training_functions = trains

    def switched_to_eval_by_a_decorator(self, function: FunctionInfo) -> bool:
        """A decorator of the file wraps the function in code that puts the model it is called
        on in eval mode first (lucidrains' ``eval_decorator``: ``def inner(model, *args):
        model.eval(); out = fn(model, *args); model.train(was_training)``)."""
        if function.external:
            return bool((function.external_facts or {}).get("decorated_eval"))
        for decorator in function.decorators:
            name = dotted(decorator.func if isinstance(decorator, ast.Call) else decorator)
            wrapper = self.module.nested.get(name) if name else None
            if wrapper is None:
                continue
            if wrapper.external:
                if (wrapper.external_facts or {}).get("switches_to_eval"):
                    return True
                continue
            if self.wraps_with_eval(wrapper):
                return True
        return False

    @staticmethod
    def wraps_with_eval(decorator: FunctionInfo) -> bool:
        """The function returns an inner function that switches its first argument to eval."""
        for inner in decorator.nested.values():
            first = inner.params[0] if inner.params else None
            if first and any(site.receiver == first and site.method == "eval" for site in inner.sites):
                return True
        return False

    def site_trains(self, site: CallSite) -> bool:
        """The call is a backward/step itself, or runs one through in-file helpers."""
        return id(site) in self.training_sites or (
            site.target is not None and id(site.target) in self.training_functions)
