"""TGL201: an evaluation forward pass while the model is (or may be) in training mode.

The mode comes from the flow analysis: a fresh module is in training mode, ``.train()`` puts it
there, helpers that switch it carry their effect to the caller. Unknown modes stay silent (unknown
on some paths and training mode on others: only for models whose construction shows Dropout or
BatchNorm), and so do models that hold neither.
"""

from ..findings import Finding, Fix, RuleInfo, line_ref, span
from ..semantic.flow import EVAL, TRAIN
from ..semantic.usage import TRAINS

RULE = RuleInfo(
    "TGL201", "evaluation-in-training-mode",
    "an evaluation forward pass while the model is (or may be) in training mode",
    fix_safety="unsafe",
    fix_summary="insert `model.eval()`",
)


def check(analysis):
    if not analysis.has_runtime_questions():
        return  # no forward or backward pass of the file's own to judge
    if analysis.in_test_file:
        return  # tests run models in whatever mode they test (equivalence checks, shapes)
    for site in analysis.forwards():
        mode = analysis.mode_of(site, site.network)
        if not mode or not any(value == TRAIN for value, _ in mode) or analysis.switched_to_eval_by_its_method(site):
            continue
        if not analysis.may_have_dropout_or_batchnorm(site, site.network):
            continue
        if not all(value in (TRAIN, EVAL) for value, _ in mode) and \
                analysis.known_composition(site.function, site.network) is not True and \
                not analysis.training_mode_comes_with_dropout_or_batchnorm(site, site.network):
            # Unknown on some path: only a model whose construction shows Dropout/BatchNorm
            # (the training-mode paths may hand in models that hold neither).
            continue
        eval_lines = {line for value, line in mode if value == EVAL and line}
        switch_lines = {line for value, line in mode if line}
        if eval_lines and analysis.eval_switch_correlates(site, switch_lines):
            continue
        flagged = None
        if analysis.is_training_context(site):
            flagged = analysis.evaluated_through_a_flag(site)
            if flagged is None and analysis.known_composition(site.function, site.network) is True and \
                    not analysis.runs_a_module_without_parameters(site):
                if analysis.computes_training_targets(site):
                    flagged = f"its output feeds training but nothing trains `{site.network}`"
                elif analysis.fixed_while_its_routine_trains(site):
                    flagged = f"its output feeds what `{site.function.name}()` trains, but no optimizer " \
                              f"of `{site.function.name}()` steps `{site.network}`"
            if flagged is None:
                continue
        evidence = flagged or analysis.evaluation_evidence(site, include_mode=False)
        if evidence is None and analysis.in_training_loop(site):
            # Inside a training loop a no_grad forward may be part of training (GAN samples for
            # a progress picture); switching to eval on another path shows evaluation intent.
            if any(value == EVAL for value, _ in mode):
                evidence = "evaluated in eval mode on another path"
        elif evidence is None and analysis.grad_is_off(site) and analysis.judged_by_its_caller(site) and \
                analysis.output_fate(site, with_values=True) != TRAINS:
            # (a no-grad forward whose values feed a loss is a target: DQN's, a teacher's)
            evidence = "under no_grad"
        if evidence is None and not analysis.drawn_during_training(site):
            # Sampling in training mode during training is a deliberate GAN convention: only
            # what the code says of itself counts there.
            evidence = analysis.unused_output_evidence(site)
        if evidence is None:
            continue
        if not eval_lines and analysis.is_progress_sample(site):
            continue  # a GAN generator sampled in training mode for pictures: deliberate
        lines = sorted(line for value, line in mode if value == TRAIN and line)
        since = f"; training mode set at {line_ref(lines[0])}" if lines else ""
        yield Finding(
            RULE.code, site.line, site.col,
            f"`{site.network}` evaluates in training mode: call `{site.network}.eval()` first "
            f"(evaluation: {evidence}{since})",
            Fix("insert-before", span(analysis.evaluation_start(site, site.network)), f"{site.network}.eval()",
                safe=False))
