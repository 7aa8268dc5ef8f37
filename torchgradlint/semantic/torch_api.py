"""What the linter knows about torch and the libraries around it, by qualified name."""

from __future__ import annotations

import ast
import functools
import re
from typing import Optional

# Grad-mode contexts, canonical names (see names.CANONICAL).
NO_GRAD = "torch.no_grad"
INFERENCE_MODE = "torch.inference_mode"
ENABLE_GRAD = "torch.enable_grad"
SET_GRAD_ENABLED = "torch.set_grad_enabled"
GRAD_CONTEXTS = {NO_GRAD, INFERENCE_MODE, ENABLE_GRAD, SET_GRAD_ENABLED}

AUTOGRAD_GRAD = {"torch.autograd.grad"}
AUTOGRAD_BACKWARD = {"torch.autograd.backward"}
BACKWARD_METHODS = ("backward", "manual_backward")
# Methods that put their argument into a container (which then keeps its graph alive) ...
LIST_APPENDING_METHODS = frozenset({"append", "extend", "insert", "appendleft"})
CONTAINER_ADDING_METHODS = LIST_APPENDING_METHODS | {"add", "setdefault", "update"}
# ... and that write into a tensor in place.
IN_PLACE_WRITING_METHODS = frozenset({"add_", "copy_", "put", "__setitem__", "sub_", "mul_", "div_", "addcmul_",
                                      "addcdiv_", "lerp_", "index_add_", "index_copy_", "index_put_",
                                      "scatter_", "scatter_add_", "scatter_reduce_", "masked_scatter_"})
# Methods whose result shares the tensor's storage: an in-place write into it writes the tensor
# (``m.view(-1).index_add_(0, index, values)``).
TENSOR_VIEW_METHODS = frozenset({"view", "view_as", "reshape", "flatten", "unflatten", "narrow", "select",
                                 "t", "transpose", "permute", "squeeze", "unsqueeze", "diagonal"})
# Methods after which a list or dict may hold other things than it was built with.
CONTAINER_CHANGING_METHODS = CONTAINER_ADDING_METHODS | {
    "pop", "popitem", "clear", "remove", "sort", "reverse", "__setitem__", "__delitem__"}
# How a call runs a backward pass (what counts as training, for every part of the analysis):
RUNS_BACKWARD_ON_LOSS = "loss"  # through its receiver and arguments: loss.backward(), a hidden step
RUNS_BACKWARD_ON_OUTPUTS = "outputs"  # through its first argument: torch.autograd.grad(outputs, ...)


def backward_run_by(site) -> Optional[str]:
    """``RUNS_BACKWARD_ON_LOSS`` for ``loss.backward()``, ``self.manual_backward(loss)`` and a
    loss handed to code that steps out of sight (``loss_scaler(loss, optimizer)``, once the
    facts have marked it), ``RUNS_BACKWARD_ON_OUTPUTS`` for ``torch.autograd.grad`` /
    ``torch.autograd.backward``, else None."""
    if site.method in BACKWARD_METHODS or site.hidden_step:
        return RUNS_BACKWARD_ON_LOSS
    if site.qualified in AUTOGRAD_GRAD or site.qualified in AUTOGRAD_BACKWARD:
        return RUNS_BACKWARD_ON_OUTPUTS
    return None

# Packages whose presence makes a file worth analysing.


# Calls that run a function in a new process or thread with the arguments they are given.
PROCESS_STARTERS = frozenset({"multiprocessing.Process", "torch.multiprocessing.Process",
                              "threading.Thread", "torch.multiprocessing.spawn",
                              "multiprocessing.context.Process"})

# Class methods that build an instance of their class, by the convention of torch libraries
# (``GPT.from_pretrained("gpt2")``, Lightning's ``Model.load_from_checkpoint(path)``).
ALTERNATIVE_CONSTRUCTORS = frozenset({"from_pretrained", "from_config", "load_from_checkpoint"})

TORCH_ROOTS = ("torch", "torchvision", "timm", "lightning", "pytorch_lightning", "transformers",
               "diffusers", "peft", "accelerate", "ignite", "detectron2", "torchaudio", "torchtext")

# A loop over one of these walks a dataset, batch by batch.
DATA_LOADERS = {"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"}
# Calls that return a module in training mode (fresh) or eval mode (pretrained loaders).
# pytorch-fid's InceptionV3 loads its weights but, unlike torchmetrics' FID extractor, leaves
# the module in training mode (its BatchNorm layers included); its own fid_score calls eval().
FRESH_MODEL_CALLS = {"timm.create_model", "torch.hub.load", "pytorch_fid.inception.InceptionV3"}
# detectron2's ``build_model(cfg)`` builds the meta-architecture its config names with no weights
# loaded, in training mode (its documentation says to call ``eval()`` before inference): every
# meta-architecture branches on ``self.training`` (training needs ground truth) and its backbones
# hold BatchNorm.
FRESH_MODEL_CALLS |= {f"detectron2.modeling.{path}build_model" for path in ("", "meta_arch.", "meta_arch.build.")}
EVAL_MODE_SUFFIXES = (".from_pretrained",)
# Methods of a checkpointer handed a model (fvcore's and detectron2's ``Checkpointer``) that load
# weights into it: they leave its mode alone.
CHECKPOINT_LOADING_METHODS = frozenset({"load", "resume_or_load", "load_checkpoint", "load_weights"})
# What restores a whole pickled or TorchScript model (or anything else that was saved: a name
# bound to it is a model only where it is called).
WHOLE_MODEL_LOADS = {"torch.load", "torch.jit.load", "torch.export.load"}
WRAPPERS_KEEPING_MODEL = {
    "torch.nn.DataParallel", "torch.nn.DistributedDataParallel", "torch.compile",
    "torch.nn.parallel.DataParallel", "torch.nn.parallel.DistributedDataParallel",
    "copy.deepcopy", "torch.nn.SyncBatchNorm.convert_sync_batchnorm",
}
# Methods that return the module itself.
SELF_RETURNING_METHODS = {"to", "cuda", "cpu", "float", "half", "double", "bfloat16", "eval",
                          "train", "requires_grad_", "to_empty", "type"}


def module_chained_from(expr, keeping=()):
    """What a chain of methods returning the module itself starts from: ``Net().to(device)``
    gives ``Net()``, ``model.cuda().half()`` gives ``model``; a method in ``keeping`` ends the
    walk (``torch.load(path).eval()`` is no plain load when ``eval`` is kept)."""
    while type(expr) is ast.Call and type(expr.func) is ast.Attribute and \
            expr.func.attr in SELF_RETURNING_METHODS and expr.func.attr not in keeping:
        expr = expr.func.value
    return expr

# torch.nn classes that hold no parameters: calling them never builds a graph of their own.
PARAMETERLESS_NN = re.compile(
    r"(.*Loss(\dd)?|ReLU\d*|LeakyReLU|GELU|SiLU|Mish|ELU|SELU|CELU|Sigmoid|Tanh|Softmax\d*d?|LogSoftmax|"
    r"Softmin|Softplus|Softsign|Hardswish|Hardsigmoid|Hardtanh|Tanhshrink|Threshold|GLU|"
    r"(Adaptive)?(Max|Avg|LP)Pool\dd|MaxUnpool\dd|FractionalMaxPool\dd|Dropout\d?d?|AlphaDropout|"
    r"FeatureAlphaDropout|Flatten|Unflatten|Identity|Upsample.*|PixelShuffle|PixelUnshuffle|"
    r"(Zero|Constant|Reflection|Replication|Circular)Pad\dd|ChannelShuffle|CosineSimilarity|"
    r"PairwiseDistance|Fold|Unfold|Module|ModuleList|ModuleDict|ParameterList|ParameterDict|"
    r"Parameter|functional(\..*)?|init(\..*)?|utils(\..*)?)"
)
DROPOUT_OR_BATCHNORM = re.compile(
    r"(Dropout\d?d?|AlphaDropout|FeatureAlphaDropout|BatchNorm\dd|SyncBatchNorm|LazyBatchNorm\dd|"
    r"InstanceNorm\dd)"
)


# Functional layers whose ``training`` argument (its position) makes them mode-dependent.
FUNCTIONAL_TRAINING_ARGUMENT = {
    "dropout": 2, "dropout1d": 2, "dropout2d": 2, "dropout3d": 2, "alpha_dropout": 2,
    "feature_alpha_dropout": 2, "batch_norm": 5,
}
# Methods that hand out a module's submodules (``list(backbone.children())[:-1]``).
SUBMODULE_LISTINGS = {"children", "modules", "named_children", "named_modules"}
# Words that name a module of model classes (``getattr(models, arch)()``).
MODEL_MODULE_WORDS = {"models", "model", "nets", "net", "networks", "network", "archs",
                      "architectures", "backbones", "zoo"}
# Base classes that make a class an nn.Module.
MODULE_BASES = {
    "torch.nn.Module", "torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict",
    "lightning.LightningModule", "pytorch_lightning.LightningModule",
    "lightning.pytorch.LightningModule", "pytorch_lightning.core.LightningModule",
    "transformers.PreTrainedModel", "diffusers.ModelMixin",
}
LIGHTNING_EVAL_HOOKS = {"validation_step", "test_step", "predict_step"}
LIGHTNING_TRAIN_HOOKS = {"training_step"}

# Methods that only nn.Modules have: calling one is evidence that the receiver is a model.
MODULE_ONLY_METHODS = {"eval", "parameters", "named_parameters", "modules", "named_modules",
                       "children", "named_children", "buffers", "named_buffers", "apply",
                       "register_forward_hook", "register_forward_pre_hook"}

OPTIMIZER_PREFIXES = ("torch.optim.",)
OPTIMIZER_NAMES = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam",
                   "RAdam", "LBFGS", "Lion", "Adafactor", "LARS", "LAMB", "Lamb", "FusedAdam",
                   "DeepSpeedCPUAdam", "AdamW8bit", "Adam8bit"}
OPTIMIZER_NOT_CLASSES = re.compile(r"torch\.optim\.(lr_scheduler|swa_utils|Optimizer$).*")

# Calls and attributes whose result carries no autograd history.
GRADIENT_STOPPING_METHODS = {"detach", "item", "tolist", "numpy", "detach_", "argmax", "argmin",
                             "long", "int", "bool", "size", "dim", "numel", "nelement", "eq", "ne",
                             "__len__", "ge", "gt", "le", "lt", "sign", "sample"}
# Methods of library models (``from_pretrained``) that run the model: diffusers' autoencoders,
# CLIP's feature extractors (transformers and OpenAI's package).
LIBRARY_MODEL_FORWARD_METHODS = frozenset({"encode", "decode", "forward", "get_text_features",
                                           "get_image_features", "encode_image", "encode_text"})
# Methods that, by the convention of the libraries that define them, run under ``no_grad``
# themselves (Hugging Face's, minGPT's and nanoGPT's ``generate``): of a model whose class is out
# of sight, no forward with autograd on.
SELF_GRAD_SETTING_METHODS = frozenset({"generate"})
# Library models whose ``forward`` is decorated with ``@torch.no_grad()``: diffusers' safety checkers.
LIBRARY_CLASSES_FORWARD_WITHOUT_GRAD = frozenset(
    f"diffusers.pipelines.{path}" for path in (
        "stable_diffusion.safety_checker.StableDiffusionSafetyChecker",
        "stable_diffusion.StableDiffusionSafetyChecker",
        "deepfloyd_if.safety_checker.IFSafetyChecker",
        "deepfloyd_if.IFSafetyChecker",
    )) | {"diffusers.StableDiffusionSafetyChecker"}
# ``sample()`` of a torch distribution records no graph, but these receivers' ``sample()`` is
# reparameterized (diffusers' ``vae.encode(x).latent_dist.sample()`` is mean + std * noise).
REPARAMETERIZED_SAMPLERS = {"latent_dist"}


def stops_gradient(method: Optional[str], receiver: Optional[ast.AST]) -> bool:
    """A method call whose result carries no autograd history of its receiver."""
    if method == "sample" and type(receiver) is ast.Attribute and receiver.attr in REPARAMETERIZED_SAMPLERS:
        return False
    return method in GRADIENT_STOPPING_METHODS
# What hands a module's parameters to an optimizer, and what else reads its weights.
PARAMETER_METHODS = frozenset({"parameters", "named_parameters"})
# The methods every nn.Module has: none of them is a forward pass of a part of the model.
NN_MODULE_METHODS = frozenset({
    "add_module", "apply", "bfloat16", "buffers", "children", "compile", "cpu", "cuda", "double",
    "eval", "extra_repr", "float", "get_buffer", "get_extra_state", "get_parameter",
    "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia", "named_buffers",
    "named_children", "named_modules", "named_parameters", "parameters", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook", "register_module",
    "register_parameter", "register_state_dict_pre_hook", "requires_grad_", "set_extra_state",
    "share_memory", "state_dict", "to", "to_empty", "train", "type", "xpu", "zero_grad",
    "save_pretrained", "from_pretrained", "push_to_hub", "resize_token_embeddings",
    "get_input_embeddings", "set_input_embeddings", "tie_weights", "init_weights", "reset_parameters",
})
WEIGHT_READING_METHODS = PARAMETER_METHODS | {"state_dict", "buffers"}
# In-place tensor updates an EMA or a soft target update writes weights with.
IN_PLACE_UPDATES = frozenset({"mul_", "add_", "copy_", "lerp_", "sub_", "addcmul_"})
# Of those, the ones that return the tensor itself without its history.
DETACHING_METHODS = frozenset({"detach", "detach_"})
GRADIENT_STOPPING_FUNCTIONS = {"float", "int", "bool", "len", "str", "round", "print", "isinstance",
                               "torch.argmax", "torch.argmin", "torch.eq", "numpy.array",
                               "np.array", "torch.multinomial", "torch.argsort", "torch.bernoulli",
                               "torch.randint", "torch.randperm", "torch.nonzero", "torch.bucketize",
                               "torch.searchsorted", "torch.isnan", "torch.isinf", "torch.isfinite"}
GRADIENT_STOPPING_ATTRIBUTES = {"data", "shape", "dtype", "device", "requires_grad", "grad_fn",
                                "is_cuda", "ndim", "indices"}

# Code that is handed a value and neither keeps it nor runs a backward pass on it: the value's
# graph ends there (what such a call returns, if anything, is followed like any value).
PURE_ROOTS = ("torch.", "torchvision.", "numpy.", "math.", "matplotlib.", "PIL.", "cv2.",
              "logging.", "json.", "pickle.", "wandb.", "tqdm.", "sklearn.", "scipy.", "pandas.",
              "einops.", "imageio.", "skimage.", "seaborn.")
PURE_BUILTINS = {"print", "len", "sum", "min", "max", "abs", "list", "tuple", "dict", "set",
                 "zip", "enumerate", "sorted", "reversed", "float", "int", "str", "bool", "round",
                 "repr", "format", "isinstance", "range", "any", "all", "iter", "next", "map",
                 "filter", "hasattr", "type", "id", "hash", "divmod", "pow"}
# Methods that report or draw a value: loggers, summary writers, progress bars, plots.
REPORTING_METHODS = {"add_scalar", "add_scalars", "add_image", "add_images", "add_histogram",
                     "add_figure", "add_text", "add_pr_curve", "add_embedding", "add_video",
                     "add_audio", "add_mesh", "log", "info", "debug", "warning", "warn", "error",
                     "write", "writelines", "set_postfix", "set_description", "set_postfix_str",
                     "imshow", "plot", "scatter", "savefig", "hist", "bar", "errorbar", "imsave",
                     "imwrite", "format", "join", "set_data", "fill_between", "semilogy",
                     "loglog", "set_title", "text", "annotate"}

_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def words(name: str) -> list:
    """``evaluateModel_on_val`` -> ['evaluate', 'model', 'on', 'val']."""
    return [w.lower() for w in _WORD.findall(name)]


EVAL_FUNCTION_WORDS = {
    "eval", "evaluate", "evaluation", "evaluator", "valid", "validate", "validation", "val",
    "test", "testing", "predict", "prediction", "predictions", "infer", "inference", "sample",
    "sampling", "generate", "generation", "translate", "beam", "greedy", "benchmark", "accuracy",
    "demo", "visualize", "visualise", "visualization", "inpaint",
}
# Words in a project helper's name that say it disables autograd (``smart_inference_mode``).
NO_GRAD_HELPER_WORDS = ({"no", "grad"}, {"nograd"}, {"inference", "mode"})
LOSS_WORDS = {"loss", "losses", "criterion", "crit", "nll", "entropy", "mse", "bce"}
EVAL_DATA_WORDS = {"val", "valid", "validation", "test", "testing", "eval", "evaluation", "dev",
                   "holdout", "heldout"}
# ``valid_lens``, ``test_mask``: words that make a name a mask or a length, not a dataset.
NOT_DATA_WORDS = {"mask", "masks", "len", "lens", "length", "lengths", "ratio", "idx", "index",
                  "indices", "ids", "flag", "flags", "size", "sizes", "num", "count", "counts",
                  "fn", "func", "mode", "step", "steps", "freq", "every", "interval", "metric",
                  "metrics", "score", "scores", "loss", "losses", "acc", "accuracy"}
TENSOR_FACTORIES = {"torch.randn", "torch.rand", "torch.zeros", "torch.ones", "torch.empty",
                    "torch.randint", "torch.full", "torch.arange", "torch.randn_like",
                    "torch.rand_like", "torch.zeros_like", "torch.ones_like", "torch.tensor",
                    "torch.Tensor", "torch.FloatTensor", "torch.LongTensor"}


def names_evaluation_data(name: str) -> bool:
    """``val_loader``, ``x_test``, ``eval_dataset``: a name that holds evaluation data."""
    parts = set(words(name.split(".")[-1]))
    return bool(parts & EVAL_DATA_WORDS) and not parts & NOT_DATA_WORDS


MODEL_NAME_WORDS = {
    "model", "net", "network", "encoder", "decoder", "generator", "discriminator",
    "classifier", "backbone", "critic", "actor", "policy", "teacher", "student", "unet", "vae",
    "autoencoder", "transformer", "resnet", "vgg", "gan", "netg", "netd", "qnet", "dqn",
    "detector", "segmenter", "regressor", "predictor", "denoiser",
}
NOT_MODEL_NAME_WORDS = {
    "fn", "func", "function", "cls", "class", "name", "names", "path", "dir", "file", "config",
    "cfg", "conf", "builder", "factory", "type", "types", "args", "kwargs", "output", "outputs",
    "out", "loss", "losses", "optimizer", "opt", "params", "state", "dict", "url", "id", "kind",
    "registry", "zoo", "list", "dataset", "loader", "data", "info", "spec", "version", "hub",
    "str", "mode", "flag", "size", "dim", "key", "keys", "arch", "trainer", "wrapper", "utils",
    "util", "lib", "lr", "scheduler", "criterion", "tokenizer", "processor", "pipeline",
    "callback", "callbacks", "get", "build", "create", "make", "load", "init", "ckpt",
    "checkpoint", "features", "feature", "inputs", "input", "logits", "pred", "preds", "result",
    "results", "batch", "step", "steps", "pipe", "pipeline", "pipelines", "transform",
    "transforms", "env", "envs", "hook", "hooks", "meter", "metric", "metrics", "fwd",
}


@functools.lru_cache(maxsize=1 << 16)  # asked about the same few names again and again
def is_class_like(name: str) -> bool:
    """``Discriminator``, ``ResNet``: a CamelCase name is a class, not an instance."""
    last = name.rpartition(".")[2]
    return last[:1].isupper() and any(map(str.islower, last))


def looks_like_model_name(name: str) -> bool:
    if is_class_like(name):
        return False
    return looks_like_model_class(name)


def looks_like_model_class(name: str) -> bool:
    parts = words(name.split(".")[-1])
    if not parts:
        return False
    if any(p in NOT_MODEL_NAME_WORDS for p in parts):
        return False
    return any(p in MODEL_NAME_WORDS for p in parts) or name.split(".")[-1] in {"G", "D", "E"}


MODEL_BASE_WORDS = MODEL_NAME_WORDS | {"diffusion", "rcnn", "mixin", "module", "model", "lightning"}


def looks_like_model_base(qualified: str) -> bool:
    """An imported base class named like a model (``GeneralizedRCNN``, ``ModelMixin``), not
    like what drives one (``DiffusionPipeline`` runs its models under no_grad itself)."""
    parts = set(words(qualified.rsplit(".", 1)[-1]))
    return bool(parts & MODEL_BASE_WORDS) and not parts & _NOT_MODEL_BASE_WORDS


_NOT_MODEL_BASE_WORDS = {"pipeline", "tokenizer", "processor", "scheduler", "config", "output",
                         "extractor", "trainer", "callback"}


def looks_like_optimizer_name(name: str) -> bool:
    last = name.split(".")[-1].lower()
    return last.startswith("opt") or last.endswith("optimizer") or last.endswith("optim") or \
        last.startswith("optimizer")


NOT_MODEL_FACTORIES = re.compile(r".*(Weights|_weights|get_weight|list_models|get_model_builder|"
                                 r"transforms.*|_utils.*|feature_extraction.*)")


def is_fresh_model_call(qualified: str) -> bool:
    """A call that builds a new module (in training mode) with parameters."""
    if qualified in FRESH_MODEL_CALLS:
        return True
    if qualified.startswith("torch.nn."):
        leaf = qualified[len("torch.nn."):]
        return "." not in leaf and leaf[:1].isupper() and not PARAMETERLESS_NN.fullmatch(leaf)
    for prefix in ("torchvision.models.", "timm.models."):
        if qualified.startswith(prefix):
            leaf = qualified[len(prefix):]
            return bool(leaf) and not NOT_MODEL_FACTORIES.fullmatch(leaf)
    return False


# The ``.features`` of these torchvision networks is convolutions, ReLUs and pooling: no
# BatchNorm (the ``_bn`` variants have it) and no Dropout (only their classifier has it).
PLAIN_FEATURE_NETWORKS = {"vgg11", "vgg13", "vgg16", "vgg19", "alexnet"}


def features_behave_the_same_in_both_modes(qualified: str) -> bool:
    """``torchvision.models.vgg16(...).features`` holds no layer that depends on the mode."""
    return qualified.startswith("torchvision.models.") and qualified.rsplit(".", 1)[-1] in PLAIN_FEATURE_NETWORKS


def is_optimizer_class(qualified: str) -> bool:
    return qualified.startswith(OPTIMIZER_PREFIXES) and not OPTIMIZER_NOT_CLASSES.match(qualified)


def plain_hub_module(call: ast.Call) -> bool:
    """``torch.hub.load("pytorch/vision", "resnet18")``: the PyTorch repositories' entry points
    return plain modules in training mode; others may return wrappers with their own inference
    code (YOLOv5's ``AutoShape`` runs in eval mode under inference_mode)."""
    repo = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "repo_or_dir"), None)
    return isinstance(repo, ast.Constant) and isinstance(repo.value, str) and repo.value.startswith("pytorch/")
