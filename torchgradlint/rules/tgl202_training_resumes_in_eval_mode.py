"""TGL202: training resumes while an evaluation left the model in eval mode.

A training forward (its value reaches a backward pass) whose model may be in eval mode because
of an ``eval()`` -- inline or in a helper -- that the flow analysis carries around the loop.
"""

from ..findings import Finding, Fix, RuleInfo, line_ref, span
from ..semantic.flow import EVAL, TRAIN, UNKNOWN_TAG

RULE = RuleInfo(
    "TGL202", "training-resumes-in-eval-mode",
    "training resumes after an evaluation left the model in eval mode",
    fix_safety="safe",
    unsafe_when=("a function shared by training and evaluation",),
    fix_summary="insert `model.train()`",
)


def check(analysis):
    if not analysis.has_runtime_questions():
        return  # no forward or backward pass of the file's own to judge
    for site in analysis.forwards():
        mode = analysis.mode_when_training(site, site.network)
        if not mode:
            continue
        eval_lines = sorted(line for value, line in mode if value == EVAL and line)
        if not eval_lines or analysis.grad_is_off(site) or not analysis.reaches_training(site):
            continue  # (under no_grad a forward trains nothing, whatever its values feed)
        if analysis.is_frozen(site):
            continue  # a frozen encoder kept in eval on purpose
        if analysis.needs_input_gradients(site):
            continue  # input gradients of a model kept in eval on purpose (saliency, FGSM)
        if analysis.computes_training_targets(site) or analysis.fixed_while_its_routine_trains(site):
            continue  # a teacher nothing (or nothing in this routine) trains, kept in eval on
            # purpose (TGL201's fix)
        if not analysis.may_have_dropout_or_batchnorm(site, site.network):
            continue
        # Training resumes after an evaluation, rather than a model kept in eval on purpose:
        # on another path it trains in training mode (an earlier iteration) or in a mode its
        # caller set where we cannot see (the first epoch of a model built elsewhere, evaluated
        # by the caller between epochs), or it is switched to eval inside the training loop.
        resumed = any(value in (TRAIN, UNKNOWN_TAG) for value, _ in mode) or any(
            loop.node.lineno <= line <= loop.node.end_lineno for loop in site.loops for line in eval_lines)
        if not resumed:
            continue
        if analysis.training_excluded_by_guard(site, set(eval_lines)):
            continue  # ``if phase == "train": model.train() else: model.eval()`` ... backward likewise
        trainer = analysis.trainer_loop_callbacks(site, site.network, EVAL)
        if trainer is not None:
            yield _in_a_trainer_loop(site, *trainer)
            continue
        yield Finding(
            RULE.code, site.line, site.col,
            f"`{site.network}` may train in eval mode: call `{site.network}.train()` first "
            f"(eval mode set at {line_ref(eval_lines[0])})",
            Fix("insert-before", span(analysis.statement_of(site)), f"{site.network}.train()",
                safe=_only_trains(analysis, site)))


def _in_a_trainer_loop(site, runner, callbacks):
    """The training step is the project trainer's, in another module: the place to act is the
    callback that leaves the model in eval mode (no fix: where the callback ends, and whether
    every path through it evaluates, is the user's to read)."""
    named = ", ".join(f"`{name}`" + (f" (eval mode set at {line_ref(line)})" if line else "")
                      for name, line in callbacks) or "a callback"
    return Finding(
        RULE.code, site.line, site.col,
        f"`{site.network}` may train in eval mode: `{runner}` resumes training after the callback "
        f"{named} left it in eval mode; call `{site.network}.train()` at the end of the callback")


def _only_trains(analysis, site):
    """The function of the training forward does not also evaluate (a shared ``run_epoch``)."""
    return analysis.grad_at(site) == frozenset({"on"}) and \
        analysis.evaluation_evidence(site, include_mode=False) is None
