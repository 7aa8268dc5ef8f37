"""TGL301: a backward pass runs into a model that the following optimizer step does not train.

For every backward, the forward passes whose autograd history reaches its loss are the models
it sends gradients to. A model that the next step does not update, and whose own input does not
come from a model that step updates (the discriminator in a generator update lies between the
loss and the generator: its gradients are needed), receives gradients for nothing: the
generator's output fed to the discriminator's update without ``.detach()``, a DQN target network
or a distillation teacher run with autograd on. A model the backward must run through anyway is
not reported for its other forwards in that loss (no detach could spare it).
"""

from ..findings import Finding, Fix, RuleInfo, line_ref, span
from ..semantic.model import forwarded_network
from ..semantic.roles import role
from .detach_fixes import detach_repair

RULE = RuleInfo(
    "TGL301", "gradient-leaks-into-untrained-model",
    "a backward pass sends gradients into a model the following optimizer step does "
    "not train (undetached GAN fake, target network, teacher)",
    fix_safety="safe",
    unsafe_when=("a target network or teacher (its output is detached)",
                 "a second forward of a model with Dropout or BatchNorm"),
    fix_summary="`.detach()` the input, or a second forward on it",
)


def check(analysis):
    if not analysis.has_runtime_questions():
        return  # no forward or backward pass of the file's own to judge
    reported = set()
    for finding in _findings(analysis):
        if (finding.line, finding.col) not in reported:
            reported.add((finding.line, finding.col))
            yield finding


def _findings(analysis):
    for backward, step, stepped, loss in analysis.backward_passes():
        upstream = analysis.gradient_upstream(backward.function, backward.index, loss)
        forwards = analysis.forward_sites_in(upstream, through_helpers=True)
        trained = [site for site in forwards if _is_stepped(analysis, site, stepped, step)]
        if not trained:
            continue  # the step trains nothing this loss reaches: TGL303's business
        on_the_path = set()  # models this backward must run through to reach a trained one
        for site in forwards:
            if site not in trained and _downstream_of(analysis, site, trained):
                on_the_path |= analysis.network_binding(site)
        for site in forwards:
            if site in trained or not analysis.grad_may_be_on(site) or analysis.is_frozen(site):
                continue
            if _is_stepped(analysis, site, stepped, step) is None:
                continue
            if _entered_without_grad(analysis, site, upstream):
                continue  # this loss reaches it through calls made under no_grad
            if _downstream_of(analysis, site, trained):
                continue  # downstream of a trained model: its gradients are needed
            if analysis.network_binding(site) & on_the_path:
                continue  # the model gets gradients in this backward anyway (softmax GAN's
                # partition function holds D(real) and D(G(z))): no detach can spare it
            if analysis.gradients_used_later(backward, analysis.network_binding(site)):
                continue  # a later step (with no zero_grad before it) uses these gradients
            consumers = [t for t in trained if analysis.values.call(site) in analysis.values.upstream(analysis.values.call(t))]
            if consumers:
                yield _leak_through(analysis, backward, step, loss, consumers[0], site)
            elif site.network is not None:  # a helper's call: its result is a loss, not a tensor to cut
                if _carries_a_trained_graph(analysis, backward, step, stepped, site):
                    continue  # a generator's update runs through the discriminator: no_grad
                    # there would cut the generator's gradients too
                yield Finding(
                    RULE.code, site.line, site.col,
                    f"`{forwarded_network(site)}` gets gradients nothing uses: run it under "
                    f"`torch.no_grad()` (the backward at {line_ref(backward.line)}; "
                    f"`{step.receiver}` does not train it)",
                    Fix("method", span(site.node), "detach", safe=False))


def _carries_a_trained_graph(analysis, backward, step, stepped, site) -> bool:
    """The forward's inputs carry the graph of a model that this step, or a later one before
    its gradients are cleared, trains (bicyclegan: the generator's output reaches the loss only
    through the discriminator, and the generator steps after another backward)."""
    inputs = analysis.forward_sites_in(analysis.values.upstream(analysis.values.call(site)))
    return any(_is_stepped(analysis, other, stepped, step) or
               analysis.gradients_used_later(backward, analysis.network_binding(other))
               for other in inputs if other is not site)


def _leak_through(analysis, backward, step, loss, consumer, leaking):
    repair = detach_repair(analysis, backward, loss, consumer, leaking)
    return Finding(
        RULE.code, consumer.line, consumer.col,
        f"`{forwarded_network(leaking)}`'s output reaches `{forwarded_network(consumer)}` "
        f"undetached: {repair.remedy} (the backward at {line_ref(backward.line)} runs into "
        f"`{forwarded_network(leaking)}`; `{step.receiver}` does not train it)", repair.fix)


def _downstream_of(analysis, site, trained) -> bool:
    upstream_of_site = analysis.values.upstream(analysis.values.call(site))
    return any(analysis.values.call(t) in upstream_of_site for t in trained)


def _entered_without_grad(analysis, site, upstream):
    """The forward sits in a helper that this loss reaches only through calls made with
    autograd off (``with torch.no_grad(): actor.get_action(next_obs)``), although other calls
    of the helper run with autograd on."""
    entries = [analysis.site_of(node) for node in upstream]
    entries = [call for call in entries if call is not None and call.target is site.function]
    return bool(entries) and all(analysis.grad_is_off(call) for call in entries)


def _is_stepped(analysis, site, stepped, step):
    """True/False when the step updates the site's model; None when we cannot tell."""
    if stepped is not None:
        return bool(analysis.network_binding(site) & stepped) or analysis.runs_inside(site, stepped)
    optimizer_role, model_role = role(step.receiver), role(forwarded_network(site))
    if optimizer_role is None or model_role is None:
        return None
    return optimizer_role == model_role
