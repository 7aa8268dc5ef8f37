"""The runtime monitor: observes forwards, backward passes and optimizer steps of real PyTorch code.

Everything here is installed on entry of :class:`Watch` and removed on exit:

* global module forward pre/post hooks (``torch.nn.modules.module``) that see every *top-level*
  module call (a call made while no other module forward is running);
* global optimizer step post-hooks (``torch.optim.optimizer``; post, so that the backward passes
  of an LBFGS-style closure run inside ``step()`` count for that step);
* wrappers around ``torch.autograd.backward`` (used by ``Tensor.backward``) and
  ``torch.autograd.grad``;
* ``register_post_accumulate_grad_hook`` on the parameters of every model seen in a forward and of
  every optimizer seen stepping;
* a ``TorchFunctionMode`` that labels autograd nodes created by user-level tensor operations with
  the user line that created them (only used to find where a graph is kept alive, TGL302).

Nothing keeps a tensor or a graph alive: forward records hold ids, class names and lines; a
forward's output nodes carry a tiny tag object in ``grad_fn.metadata`` that the monitor watches
through a weak reference (tag freed => graph freed); tensor hooks on outputs live in the graph
and hold only a weak reference to the monitor.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import sysconfig
import warnings
import weakref
from typing import Dict, List, Optional, Set, Tuple

import torch
import torch.nn.modules.module as _module_mod
import torch.optim.optimizer as _optim_mod
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.overrides import TorchFunctionMode

from ..semantic.torch_api import CONTAINER_ADDING_METHODS
from .findings import RuntimeFinding, RuntimeReport

_TAG = "torchgradlint.forward"  # metadata key: _NodeTag of a recorded forward's output node
_LINE = "torchgradlint.line"  # metadata key: user stack (_user_stack) of the op that made it
_SERIALS = itertools.count(1)  # numbers the monitors: each watch has its own metadata keys
_WALK_LIMIT = 5000  # bound of every graph walk
_EVENT_MEMORY = 256  # backward events remembered for TGL301 "second time" attribution

Site = Tuple[str, int]

_active_monitor: Optional["Monitor"] = None


def _excluded_roots() -> List[str]:
    roots = [os.path.dirname(torch.__file__), os.path.dirname(os.path.dirname(__file__))]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.append(path)
    for path in sys.path:
        if path.endswith(("site-packages", "dist-packages")):
            roots.append(path)
    return [os.path.realpath(r) + os.sep for r in roots]


class _NodeTag:
    """Stored in ``grad_fn.metadata`` of a forward's output: alive exactly as long as the node."""

    __slots__ = ("rec_ids", "__weakref__")

    def __init__(self, rec_id: int):
        self.rec_ids = [rec_id]


class _ForwardRecord:
    """One top-level forward of a module that owns parameters."""

    __slots__ = (
        "id", "module_key", "cls", "site", "grad_enabled", "has_graph", "stoch_train",
        "stoch_eval", "stoch_kind", "upstream", "reached_at", "reached_events", "alive_nodes",
        "surv_total", "surv_after", "trained", "clock", "loop_key", "stack", "detached",
        "next_clock", "fed_failed_backward",
    )

    def __init__(self, rid, module_key, cls, site, clock):
        self.id = rid
        self.module_key = module_key
        self.cls = cls
        self.site = site
        self.clock = clock
        self.grad_enabled = torch.is_grad_enabled()
        self.has_graph = False
        self.stoch_train: frozenset = frozenset()
        self.stoch_eval: frozenset = frozenset()
        self.stoch_kind = ""
        self.upstream: Set[int] = set()
        self.reached_at: Optional[int] = None
        self.reached_events: List[int] = []
        self.alive_nodes = 0
        self.surv_total = 0
        self.surv_after = 0
        self.trained = False
        self.loop_key: tuple = ()
        self.stack: tuple = ()
        self.detached = False  # user code called .detach() on its output or a value derived
        self.next_clock: Optional[int] = None  # clock of the next forward at the same call
        self.fed_failed_backward = False  # graphless output followed by a TGL102 backward


class _BackwardEvent:
    __slots__ = ("id", "kind", "site", "graphless", "written_modules", "reached", "wrote_any")

    def __init__(self, eid, kind, site, graphless):
        self.id = eid
        self.kind = kind
        self.site = site
        self.graphless = graphless
        self.written_modules: Set[int] = set()
        self.reached: Set[int] = set()
        self.wrote_any = False


class _OptimizerState:
    __slots__ = ("last_step_clock",)

    def __init__(self):
        self.last_step_clock = 0


def _tensors_in(obj, depth=0, out=None):
    """Tensors inside nested tuples/lists/dicts/dataclass-like outputs (bounded)."""
    if out is None:
        out = []
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif depth < 4 and len(out) < 64:
        if isinstance(obj, (tuple, list)):
            for item in obj[:64]:
                _tensors_in(item, depth + 1, out)
        elif isinstance(obj, dict):
            for item in list(obj.values())[:64]:
                _tensors_in(item, depth + 1, out)
    return out


def _is_stochastic(sub) -> bool:
    if isinstance(sub, _DropoutNd):
        return sub.p > 0
    if isinstance(sub, torch.nn.MultiheadAttention):
        return sub.dropout > 0  # dropout on the attention weights, a float, not a submodule
    if isinstance(sub, torch.nn.RNNBase):
        return sub.dropout > 0 and sub.num_layers > 1  # between stacked layers only
    return isinstance(sub, _BatchNorm)


class _LabelMode(TorchFunctionMode):
    """Labels autograd nodes made by user-level tensor operations with their user line."""

    def __init__(self, monitor: "Monitor"):
        super().__init__()
        self._mon = weakref.ref(monitor)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        mon = self._mon()
        if (mon is not None and mon._active and not mon._busy and not mon._fwd_stack
                and getattr(func, "__name__", None) in ("detach", "detach_") and args):
            try:
                mon._note_detach(args[0])
            except Exception as exc:  # the monitor must never break user code
                mon._internal_error(exc)
        result = func(*args, **(kwargs or {}))
        if mon is not None and mon._active and not mon._busy and not mon._fwd_stack:
            try:
                mon._label_result(result)
            except Exception as exc:
                mon._internal_error(exc)
        return result


class Monitor:
    """Collects the events of one watch and turns them into findings. Use :class:`Watch`."""

    def __init__(self, paths=None):
        self._paths = None if paths is None else {os.path.realpath(str(p)) for p in paths}
        # A graph that outlives a watch (an output kept by the caller) keeps the metadata this
        # watch put on its nodes; record ids restart at 1 in every watch, so a later watch must
        # not read them as its own: the keys carry the monitor's serial number.
        serial = next(_SERIALS)
        self._tag_key = f"{_TAG}.{serial}"
        self._line_key = f"{_LINE}.{serial}"
        self._excluded = _excluded_roots() if paths is None else []
        self._code_cache: Dict[object, Optional[str]] = {}
        self._active = False
        self._busy = False
        self._clock = 0
        self._fwd_stack: List[Tuple[object, Optional[_ForwardRecord]]] = []
        self._records: Dict[int, _ForwardRecord] = {}
        self._module_names: Dict[int, str] = {}
        self._module_refs: Dict[int, weakref.ref] = {}
        self._param_owners: Dict[int, Set[int]] = {}
        self._param_last_grad: Dict[int, int] = {}
        self._hooked_params: Set[int] = set()
        self._handles: list = []
        self._tag_refs: Dict[int, weakref.ref] = {}
        self._site_alive: Dict[Tuple[tuple, int], List[_ForwardRecord]] = {}
        self._starved_modules: Set[int] = set()
        self._updated_modules: Set[int] = set()  # modules some optimizer step has updated
        self._last_at_call: Dict[Tuple[tuple, int], _ForwardRecord] = {}
        self._step_clocks: List[int] = []
        self._boundary_clock = 0  # clock of the last backward pass or optimizer step
        self._leak_sites: Dict[Tuple[Site, int], List[Site]] = {}
        self._bw_stack: List[_BackwardEvent] = []
        self._events: Dict[int, _BackwardEvent] = {}
        self._pending: List[_BackwardEvent] = []
        self._steps_since_bw: List[Set[int]] = []
        self._bw_history: List[Tuple[int, bool, bool]] = []  # (clock, graphless, wrote_any)
        self._optimizers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._findings: List[RuntimeFinding] = []
        self._errors: List[str] = []
        self._orig_backward = None
        self._orig_grad = None
        self._mode: Optional[_LabelMode] = None

    # ------------------------------------------------------------------ install / uninstall
    def start(self) -> None:
        global _active_monitor
        if _active_monitor is not None:
            raise RuntimeError("torchgradlint.runtime.watch() cannot be nested")
        _active_monitor = self
        self._active = True
        ref = weakref.ref(self)

        def pre(module, args):
            mon = ref()
            if mon is not None and mon._active:
                mon._on_forward_pre(module)

        def post(module, args, kwargs, output):
            mon = ref()
            if mon is not None and mon._active:
                mon._on_forward_post(module, args, kwargs, output)

        def step_post(optimizer, args, kwargs):
            mon = ref()
            if mon is not None and mon._active:
                mon._on_step(optimizer)

        self._handles.append(_module_mod.register_module_forward_pre_hook(pre))
        self._handles.append(
            _module_mod.register_module_forward_hook(post, with_kwargs=True, always_call=True)
        )
        self._handles.append(_optim_mod.register_optimizer_step_post_hook(step_post))
        self._patch_autograd()
        self._mode = _LabelMode(self)
        self._mode.__enter__()

    def stop(self, report: RuntimeReport) -> None:
        global _active_monitor
        if not self._active:
            return
        try:
            if self._mode is not None:
                self._mode.__exit__(None, None, None)
        finally:
            self._mode = None
            self._active = False
            _active_monitor = None
            torch.autograd.backward = self._orig_backward
            torch.autograd.grad = self._orig_grad
            for handle in self._handles:
                try:
                    handle.remove()
                except Exception:
                    pass
            self._handles.clear()
        try:
            self._evaluate_pending()
            self._final_findings()
        except Exception as exc:
            self._internal_error(exc)
        report.monitor_errors.extend(self._errors)
        self._tag_refs.clear()
        self._site_alive.clear()
        self._module_refs.clear()
        report._set(report.findings + self._findings)

    def _patch_autograd(self) -> None:
        self._orig_backward = torch.autograd.backward
        self._orig_grad = torch.autograd.grad
        orig_backward, orig_grad = self._orig_backward, self._orig_grad
        ref = weakref.ref(self)

        def backward(tensors, *args, **kwargs):
            mon = ref()
            if mon is None or not mon._active:
                return orig_backward(tensors, *args, **kwargs)
            return mon._run_backward("backward", orig_backward, tensors, args, kwargs)

        def grad(outputs, *args, **kwargs):
            mon = ref()
            if mon is None or not mon._active:
                return orig_grad(outputs, *args, **kwargs)
            return mon._run_backward("grad", orig_grad, outputs, args, kwargs)

        backward.__wrapped__ = orig_backward
        backward.__doc__ = orig_backward.__doc__
        grad.__wrapped__ = orig_grad
        grad.__doc__ = orig_grad.__doc__
        torch.autograd.backward = backward
        torch.autograd.grad = grad

    # ------------------------------------------------------------------ helpers
    def _watched(self, code) -> Optional[str]:
        try:
            return self._code_cache[code]
        except KeyError:
            pass
        filename = code.co_filename
        result = None
        if not filename.startswith("<"):
            real = os.path.realpath(filename)
            if self._paths is not None:
                result = real if real in self._paths else None
            elif not any(real.startswith(root) for root in self._excluded):
                result = real
        self._code_cache[code] = result
        return result

    def _user_site(self) -> Optional[Site]:
        frame = sys._getframe(1)
        while frame is not None:
            filename = self._watched(frame.f_code)
            if filename is not None:
                return (filename, frame.f_lineno)
            frame = frame.f_back
        return None

    def _loop_key(self) -> tuple:
        """The call path through user code: (code, bytecode offset) of every watched frame.

        Two calls on one line (``netD(real) + netD(fake)``) or one helper called from two places
        get different keys; the same call in the next loop iteration gets the same key.
        """
        key = []
        frame = sys._getframe(1)
        while frame is not None:
            if self._watched(frame.f_code) is not None:
                key.append((frame.f_code, frame.f_lasti))
            frame = frame.f_back
        return tuple(key)

    def _user_stack(self) -> tuple:
        """``((code id, filename, line), ...)`` of the watched frames, innermost first (code
        objects stay alive in ``_code_cache``, so their ids are stable)."""
        stack = []
        frame = sys._getframe(1)
        while frame is not None:
            filename = self._watched(frame.f_code)
            if filename is not None:
                stack.append((id(frame.f_code), filename, frame.f_lineno))
            frame = frame.f_back
        return tuple(stack)

    def _user_frames(self):
        frame = sys._getframe(1)
        while frame is not None:
            if self._watched(frame.f_code) is not None:
                yield frame
            frame = frame.f_back

    def _internal_error(self, exc: BaseException) -> None:
        """A bug of the monitor: never raised into user code, reported in ``monitor_errors``."""
        import traceback

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if len(self._errors) < 20:
            self._errors.append(text)

    def _add(self, code: str, site: Site, message: str) -> None:
        self._findings.append(RuntimeFinding(code, site[0], site[1], message))

    def _note_detach(self, tensor) -> None:
        if isinstance(tensor, torch.Tensor) and tensor.grad_fn is not None:
            self._busy = True
            try:
                for rid in self._upstream_of([tensor]):
                    self._records[rid].detached = True
            finally:
                self._busy = False

    def _label_result(self, result) -> None:
        if not torch.is_grad_enabled():
            return
        tensors = _tensors_in(result)
        nodes = [t.grad_fn for t in tensors if t.grad_fn is not None]
        if not nodes:
            return
        stack = self._user_stack()
        if not stack:
            return
        for node in nodes:
            meta = node.metadata
            if self._line_key not in meta:
                meta[self._line_key] = stack

    def _walk(self, roots, visit) -> None:
        """Depth-first walk of autograd nodes from ``roots``; ``visit(node)`` True = stop there."""
        stack = [r for r in roots if r is not None]
        seen = set()
        count = 0
        while stack and count < _WALK_LIMIT:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            count += 1
            if visit(node):
                continue
            for child, _ in getattr(node, "next_functions", ()):
                if child is not None and child not in seen:
                    stack.append(child)

    def _upstream_of(self, tensors) -> Set[int]:
        found: Set[int] = set()

        def visit(node):
            tag = node.metadata.get(self._tag_key) if _has_metadata(node) else None
            if tag is None:
                return False
            found.update(tag.rec_ids)
            return True

        self._walk([t.grad_fn for t in tensors], visit)
        return found

    def _transitive_upstream(self, rec: _ForwardRecord) -> Set[int]:
        result: Set[int] = set()
        stack = list(rec.upstream)
        while stack:
            rid = stack.pop()
            if rid in result:
                continue
            result.add(rid)
            up = self._records.get(rid)
            if up is not None:
                stack.extend(up.upstream)
        return result

    # ------------------------------------------------------------------ forwards
    def _on_forward_pre(self, module) -> None:
        if self._fwd_stack:
            self._fwd_stack.append((module, None))
            return
        rec = None
        self._busy = True
        try:
            rec = self._new_record(module)
        except Exception as exc:
            self._internal_error(exc)
        finally:
            self._busy = False
            self._fwd_stack.append((module, rec))

    def _new_record(self, module) -> Optional[_ForwardRecord]:
        rec = None
        site = self._user_site()
        if site is not None and next(module.parameters(), None) is not None:
            self._clock += 1
            key = id(module)
            if key not in self._module_refs:
                self._module_refs[key] = weakref.ref(module)
                self._module_names[key] = type(module).__name__
                self._hook_params(module.parameters(), key)
            rec = _ForwardRecord(len(self._records) + 1, key, type(module).__name__, site,
                                 self._clock)
            train, evals, kinds = set(), set(), []
            for sub in module.modules():
                if _is_stochastic(sub):
                    (train if sub.training else evals).add(id(sub))
                    if type(sub).__name__ not in kinds:
                        kinds.append(type(sub).__name__)
            rec.stoch_train, rec.stoch_eval = frozenset(train), frozenset(evals)
            rec.stoch_kind = "/".join(kinds)
            rec.loop_key = self._loop_key()
            previous = self._last_at_call.get((rec.loop_key, key))
            if previous is not None:
                previous.next_clock = rec.clock
            self._last_at_call[(rec.loop_key, key)] = rec
            rec.stack = self._user_stack()
            self._records[rec.id] = rec
            self._note_survivors(rec)
        return rec

    def _on_forward_post(self, module, args, kwargs, output) -> None:
        if not self._fwd_stack:
            return
        entry_module, rec = self._fwd_stack.pop()
        if entry_module is not module:  # unbalanced (should not happen): resynchronise
            while self._fwd_stack and self._fwd_stack[-1][0] is not module:
                self._fwd_stack.pop()
            if self._fwd_stack:
                self._fwd_stack.pop()
        if self._fwd_stack or output is None:
            return
        self._busy = True
        try:
            self._record_outputs(rec, args, kwargs, output)
        except Exception as exc:
            self._internal_error(exc)
        finally:
            self._busy = False

    def _record_outputs(self, rec, args, kwargs, output) -> None:
        outs = _tensors_in(output)
        if rec is None:  # a parameterless top-level module (a loss): label its output nodes
            stack = self._user_stack()
            if stack and torch.is_grad_enabled():
                for t in outs:
                    if t.grad_fn is not None and self._line_key not in t.grad_fn.metadata:
                        t.grad_fn.metadata[self._line_key] = stack
            return
        rec.upstream = self._upstream_of(_tensors_in(args) + _tensors_in(kwargs))
        ref = weakref.ref(self)
        rid = rec.id
        for t in outs:
            node = t.grad_fn
            if node is None or not t.requires_grad:
                continue
            rec.has_graph = True
            meta = node.metadata
            meta.setdefault(self._line_key, rec.stack)
            tag = meta.get(self._tag_key)
            if tag is None:
                tag = _NodeTag(rid)
                meta[self._tag_key] = tag
                rec.alive_nodes += 1
                self._tag_refs[id(tag)] = weakref.ref(tag, _make_freed_callback(ref, rid))
            elif rid not in tag.rec_ids:
                tag.rec_ids.append(rid)
            self._handles.append(t.register_hook(_make_output_hook(ref, rid)))
        if rec.has_graph:
            key = (rec.loop_key, rec.module_key)
            alive = [r for r in self._site_alive.get(key, []) if r.alive_nodes > 0]
            alive.append(rec)
            self._site_alive[key] = alive

    def _on_node_freed(self, rid: int) -> None:
        rec = self._records.get(rid)
        if rec is not None:
            rec.alive_nodes -= 1

    def _on_output_grad(self, rid: int) -> None:
        rec = self._records.get(rid)
        if rec is None:
            return
        if rec.reached_at is None:
            rec.reached_at = self._clock
        if self._bw_stack:
            event = self._bw_stack[-1]
            event.reached.add(rid)
            if event.id not in rec.reached_events:
                rec.reached_events.append(event.id)

    # ------------------------------------------------------------------ TGL302
    def _note_survivors(self, rec: _ForwardRecord) -> None:
        """A new forward at ``rec``'s site: count the earlier graphs of that site still alive."""
        for old in self._site_alive.get((rec.loop_key, rec.module_key), []):
            if old.alive_nodes <= 0:
                continue
            old.surv_total += 1
            if old.reached_at is not None:
                old.surv_after += 1
            suspicious = old.surv_after >= 2 or (old.reached_at is None and old.surv_total >= 2)
            key = (old.site, old.module_key)
            if suspicious and key not in self._leak_sites:
                self._leak_sites[key] = self._find_keepers(old)

    def _find_keepers(self, old: _ForwardRecord) -> List[Site]:
        """User lines that keep ``old``'s graph alive; the forward line when none is found.

        The live tensors whose graph reaches ``old``'s output are found with ``gc``; those not
        derived from another such tensor are the keepers. A keeper held in a list/dict bound to
        a name in user code is reported at the line that adds to that container
        (``name.append(``, ``name[...] =``...); otherwise at the user line that created its
        autograd node (``total += loss`` => that line).
        """
        target = old.id
        memo: Dict[object, bool] = {}

        def reaches(root) -> bool:
            hit = [False]

            def visit(node):
                if hit[0]:
                    return True
                if node in memo:
                    hit[0] = hit[0] or memo[node]
                    return True
                tag = node.metadata.get(self._tag_key) if _has_metadata(node) else None
                if tag is not None and target in tag.rec_ids:
                    hit[0] = True
                    return True
                return False

            self._walk([root], visit)
            memo[root] = hit[0]
            return hit[0]

        keepers = []
        try:
            everything = gc.get_objects()
            with warnings.catch_warnings():
                # isinstance() on every object touches deprecated ones
                # (torch.distributed.reduce_op warns): not the user's business
                warnings.simplefilter("ignore")
                for obj in everything:
                    if isinstance(obj, torch.Tensor) and not isinstance(obj, torch.nn.Parameter):
                        node = obj.grad_fn
                        if node is not None and reaches(node):
                            keepers.append(obj)
            obj = None
            # A forward's output tensor (it carries the monitor's hook) has its Python object
            # preserved by torch as long as the next node saves it: it keeps nothing itself.
            # Count it only when a Python object (a list, an attribute dict) refers to it.
            # (Frame locals are invisible to gc.get_referrers; such an output, e.g. the hidden
            # state ``h = rnn(x, h)``, is then reported at its forward line.)
            mine = {id(everything), id(keepers), id(sys._getframe())}
            keepers = [k for k in keepers if self._tag_key not in k.grad_fn.metadata
                       or any(id(r) not in mine for r in gc.get_referrers(k))]
            del everything
        except Exception as exc:
            self._internal_error(exc)
            keepers = []
        # keep the minimal keepers: drop those whose graph contains another keeper's node
        nodes = [k.grad_fn for k in keepers]
        minimal = []
        for i, k in enumerate(keepers):
            others = {n for j, n in enumerate(nodes) if j != i and n is not nodes[i]}
            contains = [False]

            def visit(node, others=others, contains=contains):
                if node in others:
                    contains[0] = True
                    return True
                return contains[0]

            self._walk([nodes[i]], visit)
            if not contains[0]:
                minimal.append(k)
        lines: List[Site] = []
        forward_codes = {entry[0] for entry in old.stack}
        for k in minimal:
            site = self._container_line(k)
            if site is None:
                site = _pick_line(k.grad_fn.metadata.get(self._line_key), forward_codes)
            if site is not None and site not in lines:
                lines.append(site)
        memo.clear()
        del keepers, nodes, minimal
        return lines or [old.site]

    def _container_line(self, tensor) -> Optional[Site]:
        """The line adding ``tensor`` to a container reachable from a name of a running user
        frame: a list/dict holding it, or an object/list/dict holding that container
        (``history["loss"].append(loss)``, ``self.losses.append(loss)``)."""
        first = [r for r in gc.get_referrers(tensor) if isinstance(r, (list, dict))]
        if not first:
            return None
        ids = {id(c) for c in first}
        for container in first:
            for holder in gc.get_referrers(container):
                if isinstance(holder, (list, dict)) or hasattr(holder, "__dict__"):
                    ids.add(id(holder))
        for frame in self._user_frames():
            names = {n for n, v in frame.f_globals.items() if id(v) in ids}
            names.update(n for n, v in _frame_locals(frame) if id(v) in ids)
            if not names:
                continue
            filename = self._watched(frame.f_code)
            line = _container_add_line(filename, names, frame.f_code, frame.f_lineno)
            if line is not None:
                return (filename, line)
        return None

    # ------------------------------------------------------------------ backward passes
    def _hook_params(self, params, owner: Optional[int]) -> None:
        ref = weakref.ref(self)
        for p in params:
            pid = id(p)
            if owner is not None:
                self._param_owners.setdefault(pid, set()).add(owner)
            if pid in self._hooked_params or not p.requires_grad:
                continue
            self._hooked_params.add(pid)
            try:
                handle = p.register_post_accumulate_grad_hook(_make_param_hook(ref, pid))
            except Exception:  # e.g. an uninitialized lazy parameter
                continue
            self._handles.append(handle)

    def _on_param_grad(self, pid: int) -> None:
        self._param_last_grad[pid] = self._clock
        if self._bw_stack:
            event = self._bw_stack[-1]
            event.wrote_any = True
            event.written_modules.update(self._param_owners.get(pid, ()))

    def _run_backward(self, kind, func, roots, args, kwargs):
        self._busy = True
        event = None
        try:
            tensors = _tensors_in(roots)
            site = self._user_site()
            graphless = bool(tensors) and all(t.grad_fn is None for t in tensors)
            self._clock += 1
            event = _BackwardEvent(self._clock, kind, site, graphless)
            no_grad = [t for t in tensors if not t.requires_grad]
            if no_grad and site is not None:
                how = ("made under torch.inference_mode()" if any(t.is_inference() for t in no_grad)
                       else "computed with autograd disabled (torch.no_grad()?)")
                call = ".backward()" if kind == "backward" else "torch.autograd.grad()"
                for rec in self._records.values():
                    if rec.clock > self._boundary_clock and not rec.has_graph:
                        rec.fed_failed_backward = True
                self._add("TGL102", site,
                          f"{call} of a tensor with no autograd graph: it was {how}")
            if self._steps_since_bw:
                self._evaluate_pending()
            self._events[event.id] = event
            if len(self._events) > _EVENT_MEMORY:
                self._events.pop(next(iter(self._events)))
            self._bw_stack.append(event)
        except Exception as exc:
            self._internal_error(exc)
            event = None
        finally:
            self._busy = False
        if event is None:
            return func(roots, *args, **kwargs)
        try:
            return func(roots, *args, **kwargs)
        except RuntimeError as exc:
            if "backward through the graph a second time" in str(exc):
                try:
                    self._second_time(event)
                except Exception as inner:
                    self._internal_error(inner)
            raise
        finally:
            self._bw_stack.pop()
            self._bw_history.append((event.id, event.graphless, event.wrote_any))
            self._boundary_clock = self._clock
            if kind == "backward":
                self._pending.append(event)

    def _second_time(self, event: _BackwardEvent) -> None:
        """TGL301 for a graph freed by an earlier backward that should not have reached it."""
        sites = []
        for rid in event.reached:
            rec = self._records[rid]
            for eid in rec.reached_events:
                earlier = self._events.get(eid)
                if earlier is None or eid == event.id:
                    continue
                for gid in earlier.reached:
                    g = self._records[gid]
                    if rid in self._transitive_upstream(g):
                        sites.append((g, rec))
        if not sites and event.site is not None:
            self._add("TGL301", event.site, "backward through a graph already freed by an "
                      "earlier backward pass (a model's output was not detached?)")
        for g, rec in sites:
            self._add("TGL301", g.site, f"input of {g.cls} carries the graph of {rec.cls}, which "
                      "an earlier backward pass already consumed (missing .detach()?)")

    # ------------------------------------------------------------------ optimizer steps
    def _on_step(self, optimizer) -> None:
        """After ``optimizer.step()``: TGL303/TGL102 checks; note what the step updated."""
        self._busy = True
        try:
            self._check_step(optimizer)
        except Exception as exc:
            self._internal_error(exc)
        finally:
            self._busy = False

    def _check_step(self, optimizer) -> None:
        self._clock += 1
        site = self._user_site()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        updated: Set[int] = set()
        for p in params:
            updated.update(self._param_owners.get(id(p), ()))
        self._steps_since_bw.append(updated)
        self._updated_modules |= updated
        state = self._optimizers.get(optimizer)
        if state is None:
            state = self._optimizers[optimizer] = _OptimizerState()
        received = False
        for p in params:
            pid = id(p)
            if self._param_last_grad.get(pid, -1) > state.last_step_clock:
                received = True
                break
            if pid not in self._hooked_params and p.grad is not None:
                # a parameter no hook watched before this step (never seen in a forward):
                # trust its .grad this once
                received = True
                break
        if params and not received and site is not None:
            since = [h for h in self._bw_history if h[0] > state.last_step_clock]
            name = type(optimizer).__name__
            if since and all(graphless for _, graphless, _ in since):
                self._add("TGL102", site, f"{name}.step() after a backward of a loss with no "
                          "autograd graph: no parameter received a gradient")
            else:
                for p in params:
                    self._starved_modules.update(self._param_owners.get(id(p), ()))
                self._add("TGL303", site, f"{name}.step() updates nothing: none of its "
                          f"{len(params)} parameter tensors received a gradient since its "
                          "previous step (output detached from the loss?)")
        self._hook_params(params, None)
        state.last_step_clock = self._clock
        self._step_clocks.append(self._clock)
        self._boundary_clock = self._clock

    # ------------------------------------------------------------------ TGL301
    def _evaluate_pending(self) -> None:
        if not self._steps_since_bw:
            self._pending.clear()
            return
        updated: Set[int] = set().union(*self._steps_since_bw)
        for event in self._pending:
            for rid in event.reached:
                rec = self._records[rid]
                if rec.module_key in updated:
                    rec.trained = True
            if not event.written_modules & updated:
                continue  # the backward trained nothing the steps update: TGL303's business
            for key in event.written_modules - updated:
                own = [self._records[r] for r in event.reached
                       if self._records[r].module_key == key]
                if not own:
                    continue
                legit = False
                for rec in own:
                    ups = self._transitive_upstream(rec)
                    if any(self._records[u].module_key in updated for u in ups):
                        legit = True
                if legit:
                    continue
                own_ids = {r.id for r in own}
                name = self._module_names.get(key, "?")
                downstream = [self._records[g] for g in event.reached
                              if self._records[g].module_key in updated
                              and own_ids & self._transitive_upstream(self._records[g])]
                for g in downstream:
                    self._add("TGL301", g.site, f"input of {g.cls} carries the graph of {name}: "
                              f"the backward pass writes gradients into {name}, which the next "
                              "optimizer step does not update (missing .detach()?)")
                if not downstream:
                    for rec in own:
                        self._add("TGL301", rec.site, f"output of {name} entered a loss with "
                                  f"autograd on: the backward pass writes gradients into {name}, "
                                  "which the next optimizer step does not update")
        self._pending.clear()
        self._steps_since_bw.clear()

    # ------------------------------------------------------------------ end of watch
    def _final_findings(self) -> None:
        trained_stoch: Dict[int, Set[int]] = {}
        for rec in sorted(self._records.values(), key=lambda r: r.id):
            reached = rec.reached_at is not None
            if rec.module_key in self._starved_modules:
                # its optimizer stepped without gradients (TGL303): the unused graph is that
                # bug's consequence, not an evaluation forward
                reached = True
            elif rec.fed_failed_backward:
                reached = True  # its loss was built without graph: TGL102 reports it
            used_detached = rec.detached and any(
                rec.clock < c < (rec.next_clock or self._clock + 1) for c in self._step_clocks)
            # Detached inside a training iteration: its value serves training (a GAN's fake for
            # the discriminator, a DQN target, a teacher's labels). The graph is wasted all the
            # same, but for a model that some step trains the detach is the GAN idiom; for one
            # that nothing trains (target network, teacher) the graph is plain waste.
            graph_used = reached or used_detached and rec.module_key in self._updated_modules
            if used_detached:
                reached = True
            if rec.grad_enabled and rec.has_graph and not graph_used:
                self._add("TGL101", rec.site, f"forward of {rec.cls} ran with autograd enabled "
                          "and its graph never reached a backward pass (missing torch.no_grad()?)")
            if rec.stoch_train and not reached:
                self._add("TGL201", rec.site, f"forward of {rec.cls} in training mode (has "
                          f"{rec.stoch_kind}) whose output never reached a backward pass "
                          "(missing .eval()?)")
            if reached and rec.trained:
                seen = trained_stoch.setdefault(rec.module_key, set())
                if rec.stoch_eval & seen:
                    self._add("TGL202", rec.site, f"forward of {rec.cls} in eval mode (has "
                              f"{rec.stoch_kind}) used for training after earlier training in "
                              "training mode (missing .train() after evaluation?)")
                seen.update(rec.stoch_train)
        for key, lines in self._leak_sites.items():
            recs = [r for r in self._records.values() if (r.site, r.module_key) == key]
            if any(r.surv_after >= 2 or (r.reached_at is None and r.surv_total >= 2)
                   for r in recs):
                cls = recs[0].cls if recs else "?"
                where = f"line {key[0][1]}"
                for site in lines:
                    self._add("TGL302", site, f"keeps the autograd graph of {cls} (forward at "
                              f"{where}) alive across iterations (accumulate .item() or "
                              ".detach() instead)")


def _frame_locals(frame):
    """``frame.f_locals`` items without leaving tensors alive.

    Before Python 3.13, ``f_locals`` of a function frame is a snapshot dict cached on the frame
    until the frame ends; its strong references would keep the graphs of the moment alive. The
    snapshot is refreshed from the real locals on every access, so its tensor entries are
    dropped after reading (the frame's variables are untouched).
    """
    snapshot = frame.f_locals
    items = list(snapshot.items())
    if sys.version_info < (3, 13) and snapshot is not frame.f_globals:
        for name, value in items:
            if isinstance(value, torch.Tensor):
                snapshot.pop(name, None)
    return items


def _pick_line(stack, forward_codes) -> Optional[Site]:
    """From a node's creation stack, the line in the innermost function that also ran the
    forward (an accumulating helper ``meter.update(loss)`` is reported at its call next to the
    forward; ``self.total += loss`` in the method that runs the forward, at that line), else
    the innermost line."""
    if not stack:
        return None
    for code_id, filename, line in stack:
        if code_id in forward_codes:
            return (filename, line)
    return (stack[0][1], stack[0][2])


def _container_add_line(filename, names, code, current) -> Optional[int]:
    """Line of ``name.append(...)``/``name[k] = ...``/``name += ...`` for a name in ``names``
    within ``code``: the innermost loop around ``current`` first, then anywhere in ``code``."""
    import ast

    try:
        with open(filename, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return None
    if code.co_name == "<module>":
        low, high = 1, 10 ** 9
    else:
        numbers = [line for _, _, line in code.co_lines() if line is not None]
        numbers.append(code.co_firstlineno)
        low, high = min(numbers), max(numbers)
    adds, loops = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.While, ast.AsyncFor)):
            loops.append(node)
        target = None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in CONTAINER_ADDING_METHODS):
            target = node.func.value
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Subscript):
                    target = t.value
        elif isinstance(node, ast.AugAssign):
            target = node.target
        while isinstance(target, (ast.Subscript, ast.Attribute)):
            target = target.value
        if isinstance(target, ast.Name) and target.id in names and low <= node.lineno <= high:
            adds.append(node.lineno)
    if not adds:
        return None
    around = [n for n in loops if n.lineno <= current <= (n.end_lineno or n.lineno)]
    if around:
        inner = max(around, key=lambda n: n.lineno)
        inside = [line for line in adds if inner.lineno <= line <= (inner.end_lineno or 0)]
        if inside:
            return min(inside)
    return min(adds)


def _has_metadata(node) -> bool:
    return hasattr(node, "metadata")


def _make_freed_callback(ref, rid):
    def callback(_weak):
        mon = ref()
        if mon is not None:
            mon._on_node_freed(rid)
    return callback


def _make_output_hook(ref, rid):
    def hook(grad):
        mon = ref()
        if mon is not None and mon._active:
            try:
                mon._on_output_grad(rid)
            except Exception as exc:
                mon._internal_error(exc)
    return hook


def _make_param_hook(ref, pid):
    def hook(param):
        mon = ref()
        if mon is not None and mon._active:
            try:
                mon._on_param_grad(pid)
            except Exception as exc:
                mon._internal_error(exc)
    return hook
