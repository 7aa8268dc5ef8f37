"""TGL301: a backward pass runs into a model that the following optimizer step does not train.

For every backward, the forward passes whose autograd history reaches its loss are the models
it sends gradients to. A model that the next step does not update, and whose own input does not
come from a model that step updates (the discriminator in a generator update lies between the
loss and the generator: its gradients are needed), receives gradients for nothing: the
generator's output fed to the discriminator's update without ``.detach()``, a DQN target network
or a distillation teacher run with autograd on. A model the backward must run through anyway is
not reported for its other forwards in that loss (no detach could spare it).
"""

from ..findings import Finding, Fix, span
from ..rules import RULES_BY_CODE
from ..semantic.model import forwarded_model
from ..semantic.roles import role

INFO = RULES_BY_CODE["TGL301"]


def check(model):
    reported = set()
    for finding in _findings(model):
        if (finding.line, finding.col) not in reported:
            reported.add((finding.line, finding.col))
            yield finding


def _findings(model):
    for backward, step, stepped, loss in model.backward_passes():
        upstream = model.gradient_upstream(backward.function, backward.index, loss)
        forwards = model.forward_sites_in(upstream, through_helpers=True)
        trained = [site for site in forwards if _is_stepped(model, site, stepped, step)]
        if not trained:
            continue  # the step trains nothing this loss reaches: TGL303's business
        on_the_path = set()  # models this backward must run through to reach a trained one
        for site in forwards:
            if site not in trained and _downstream_of(model, site, trained):
                on_the_path |= model.model_binding(site)
        for site in forwards:
            if site in trained or not model.grad_may_be_on(site) or model.is_frozen(site):
                continue
            if _is_stepped(model, site, stepped, step) is None:
                continue
            if _entered_without_grad(model, site, upstream):
                continue  # this loss reaches it through calls made under no_grad
            if _downstream_of(model, site, trained):
                continue  # downstream of a trained model: its gradients are needed
            if model.model_binding(site) & on_the_path:
                continue  # the model gets gradients in this backward anyway (softmax GAN's
                # partition function holds D(real) and D(G(z))): no detach can spare it
            if model.gradients_used_later(backward, model.model_binding(site)):
                continue  # a later step (with no zero_grad before it) uses these gradients
            consumers = [t for t in trained if ("call", id(site)) in model.dataflow.upstream(("call", id(t)))]
            if consumers:
                consumer = consumers[0]
                yield Finding(
                    INFO.code, consumer.line, consumer.col,
                    f"`{forwarded_model(consumer)}` is trained by `{step.receiver}.step()` "
                    f"(line {step.line}) on the output of `{forwarded_model(site)}` (line {site.line}) without "
                    f"`.detach()`: the backward at line {backward.line} also runs through "
                    f"`{forwarded_model(site)}`; "
                    f"pass `.detach()` of it", _detach_argument(model, consumer, site))
            elif site.model is not None:  # a helper's call: its result is a loss, not a tensor to cut
                yield Finding(
                    INFO.code, site.line, site.col,
                    f"the backward at line {backward.line} sends gradients into "
                    f"`{forwarded_model(site)}`, "
                    f"which `{step.receiver}.step()` (line {step.line}) does not train: run it "
                    f"under `torch.no_grad()` or `.detach()` its output",
                    Fix("method", span(site.node), "detach", safe=False))


def _downstream_of(model, site, trained) -> bool:
    upstream_of_site = model.dataflow.upstream(("call", id(site)))
    return any(("call", id(t)) in upstream_of_site for t in trained)


def _detach_argument(model, consumer, leaking):
    """``.detach()`` on the argument of the trained model's call that carries the leak."""
    node = ("call", id(leaking))
    for arg in consumer.node.args:
        sources = model.dataflow.sources(consumer.function, consumer.index, arg)
        if node in sources or any(node in model.dataflow.upstream(source) for source in sources):
            return Fix("method", span(arg), "detach")
    return None


def _entered_without_grad(model, site, upstream):
    """The forward sits in a helper that this loss reaches only through calls made with
    autograd off (``with torch.no_grad(): actor.get_action(next_obs)``), although other calls
    of the helper run with autograd on."""
    entries = [model.site_of(node) for node in upstream if node[0] == "call"]
    entries = [call for call in entries if call is not None and call.target is site.function]
    return bool(entries) and all(model.grad_is_off(call) for call in entries)


def _is_stepped(model, site, stepped, step):
    """True/False when the step updates the site's model; None when we cannot tell."""
    if stepped is not None:
        return bool(model.model_binding(site) & stepped) or model.runs_inside(site, stepped)
    optimizer_role, model_role = role(step.receiver), role(forwarded_model(site))
    if optimizer_role is None or model_role is None:
        return None
    return optimizer_role == model_role
