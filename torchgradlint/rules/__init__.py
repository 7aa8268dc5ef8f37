"""The rule catalogue. Each rule module exposes ``INFO`` (a RuleInfo) and ``check(model)``,
which yields Findings from the file's semantic model."""

from __future__ import annotations

from typing import Dict, List

from ..findings import RuleInfo

RULES: List[RuleInfo] = [
    RuleInfo("TGL101", "forward-with-autograd-in-evaluation",
             "evaluation or inference forward pass runs with autograd enabled", "unsafe"),
    RuleInfo("TGL102", "backward-of-no-grad-loss",
             "backward or optimizer step on a loss computed under no_grad / inference_mode", "none"),
    RuleInfo("TGL103", "grad-context-not-called",
             "no_grad / inference_mode / enable_grad used as a with item without being called", "safe"),
    RuleInfo("TGL201", "evaluation-in-training-mode",
             "evaluation forward pass while the model is in training mode", "unsafe"),
    RuleInfo("TGL202", "training-resumes-in-eval-mode",
             "training resumes after an evaluation left the model in eval mode", "safe"),
    RuleInfo("TGL203", "mode-switch-not-called",
             "model.eval / model.train referenced without being called", "safe"),
    RuleInfo("TGL301", "gradient-leaks-into-untrained-model",
             "backward pass sends gradients into a model the following step does not train", "safe"),
    RuleInfo("TGL302", "graph-kept-alive-by-accumulation",
             "tensor with autograd history accumulated across iterations", "safe"),
    RuleInfo("TGL303", "trained-model-cut-off-from-loss",
             "the model an optimizer step trains reaches its loss only through a detach or no_grad", "none"),
]

RULES_BY_CODE: Dict[str, RuleInfo] = {rule.code: rule for rule in RULES}


def checkers():
    """The ``check(model)`` function of every rule, in code order."""
    from . import (tgl101_autograd_in_evaluation, tgl102_backward_of_no_grad_loss,
                   tgl103_grad_context_not_called, tgl201_evaluation_in_training_mode,
                   tgl202_training_resumes_in_eval_mode, tgl203_mode_switch_not_called)
    modules = [tgl101_autograd_in_evaluation, tgl102_backward_of_no_grad_loss,
               tgl103_grad_context_not_called, tgl201_evaluation_in_training_mode,
               tgl202_training_resumes_in_eval_mode, tgl203_mode_switch_not_called]
    from . import (tgl301_gradient_leaks_into_untrained_model, tgl302_graph_kept_alive_by_accumulation,
                   tgl303_trained_model_cut_off)
    modules += [tgl301_gradient_leaks_into_untrained_model, tgl302_graph_kept_alive_by_accumulation,
                tgl303_trained_model_cut_off]
    return [(module.INFO, module.check) for module in modules]
