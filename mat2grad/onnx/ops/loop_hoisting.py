"""Hoisting the step-independent work out of a ``Loop`` body.

# NOTE: [Hoisting a Loop body]
# A tf2onnx recurrent layer's Loop body reads step t of the input sequence with
# ``Gather(sequence, t)`` (t a loop-carried counter the body advances by ``Add(t, 1)``, or the
# iteration counter), multiplies it by the input weights and adds the biases before it meets
# the recurrent state; it also splits and squeezes the weights it carries unchanged. Run step
# by step, that is a handful of small operations per step, forwards and again backwards. The
# body's nodes fall in three classes:
# - invariant: computed from values no iteration changes (outer-scope values, carried values
#   the body passes through unchanged, constants): computed once per Loop evaluation;
# - hoisted: computed from the gathered steps (all read with the same counter) and invariant
#   values only: computed for every position of the sequence at once, by ``torch.func.vmap``
#   of those nodes over the gathered axis (for the input projection, one product for all
#   steps instead of one per step), then indexed by the step's counter;
# - per step: the rest (the recurrence, the counters and the loop condition).
# Every node computes what the body would compute (``vmap`` evaluates each node as it would
# for one position); only the order of evaluation changes, so results agree with the
# step-by-step body to round-off (a product over all steps may sum in another order). A step
# whose counter lies outside the sequence (where ``Gather`` would fail), or a Loop whose
# counter or sequences the plan cannot read, runs the original body, whose errors are the
# original ones. Bodies with random operators are not hoisted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

__all__ = ["HoistPlan", "Hoisted", "plan_hoisting", "plan_scan_hoisting"]

_INVARIANT, _HOISTED, _STEP = "invariant", "hoisted", "step"
_IDENTITIES = ("OnnxCopyIdentity", "Identity")


@dataclass(frozen=True)
class _Ref:
    """Where a value comes from at run time: a body input (``0``) or the invariant part's
    outputs (``1``), at ``index``."""

    source: int
    index: int


def _module(body: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return body.get_submodule(node.target) if node.op == "call_module" else None


def _kind_name(body: fx.GraphModule, node: fx.Node) -> str:
    module = _module(body, node)
    return "" if module is None else type(module).__name__


def _through_identities(body: fx.GraphModule, node: fx.Node) -> fx.Node:
    while _kind_name(body, node) in _IDENTITIES and len(node.args) == 1:
        node = node.args[0]
    return node


def _attribute(body: fx.GraphModule, target: str) -> object:
    return functools.reduce(getattr, target.split("."), body)


def _adds_one(body: fx.GraphModule, node: fx.Node, value: fx.Node) -> bool:
    """Whether ``node`` is ``Add(value, 1)`` (either order) with a constant 1."""
    module = _module(body, node)
    if type(module).__name__ != "OnnxBinaryMathOperation" or len(node.args) != 2:
        return False
    if module.math_op_function is not torch.add or module.broadcast == 1:
        return False
    first, second = node.args
    other = second if first is value else first if second is value else None
    if other is None or getattr(other, "op", None) != "get_attr":
        return False
    constant = _attribute(body, other.target)
    return (
        isinstance(constant, torch.Tensor)
        and constant.numel() == 1
        and float(constant.reshape(-1)[0]) == 1.0
    )


def _extract(
    body: fx.GraphModule, inputs: Sequence[fx.Node], outputs: Sequence[fx.Node]
) -> fx.GraphModule:
    """The part of ``body`` that computes ``outputs`` from ``inputs`` (new placeholders, in
    that order), as a module returning a tuple."""
    stop = set(inputs)
    needed: set[fx.Node] = set()
    stack = [o for o in outputs if o not in stop]
    while stack:
        node = stack.pop()
        if node in needed or node in stop:
            continue
        if node.op == "placeholder":
            raise ValueError(f"loop hoisting: {node.name} is needed but not an input")
        needed.add(node)
        stack.extend(node.all_input_nodes)
    graph = fx.Graph()
    env = {node: graph.placeholder(f"value_{k}") for k, node in enumerate(inputs)}
    for node in body.graph.nodes:
        if node in needed:
            env[node] = graph.node_copy(node, lambda a: env[a])
    graph.output(tuple(env[o] for o in outputs))
    return fx.GraphModule(body, graph)


#: sequences shorter than this run the body as written: below it, setting up the hoisted
#: evaluation costs more than it saves (``benchmarks/loops.py``: 4-5 steps 1.05-1.15x the
#: time as written, 12 steps 0.7-0.9x, 120 steps 0.8x)
MIN_STEPS = 8


def _worth_it(sources: Sequence[torch.Tensor], axes: Sequence[int]) -> bool:
    """Whether the sequences read along ``axes`` have one length, at least MIN_STEPS."""
    if any(s.ndim == 0 for s in sources):
        return False
    lengths = {int(s.shape[a % s.ndim]) for s, a in zip(sources, axes, strict=True)}
    return len(lengths) == 1 and lengths.pop() >= MIN_STEPS


class Hoisted:
    """One Loop evaluation's hoisted values (made by :meth:`HoistPlan.start`)."""

    def __init__(self, plan: HoistPlan, start: int, length: int, hoisted, extra) -> None:
        self.plan = plan
        self.start = start
        self.length = length
        # each value's positions as views, taken once: one unbind node, whose backward pass
        # stacks the steps' gradients once (see NOTE: [Recurrent steps as one unbind])
        self.hoisted = [v.unbind(0) for v in hoisted]
        self.extra = extra

    def step(self, s: int, inputs: Sequence[torch.Tensor], body: nn.Module) -> object:
        """Iteration ``s`` from the body's inputs ``(counter, cond, carried..., outer...)``:
        the per-step part, or the original body where the counter is outside the sequence."""
        position = self.start + s
        if not -self.length <= position < self.length:
            return body(*inputs)
        return self.plan.step(*inputs, *(v[position] for v in self.hoisted), *self.extra)


class HoistPlan(nn.Module):
    """A Loop body split as NOTE: [Hoisting a Loop body] describes (a module, so that its
    parts follow the Loop's dtype and device).

    ``invariant(*body_inputs[invariant_inputs])`` -> invariant values;
    ``hoisted(*gathered_steps, *values[hoisted_inputs])`` -> the hoisted values of one
    position (vmapped over ``axes`` of ``sources``); ``step(*body_inputs, *hoisted_values,
    *values[step_inputs])`` -> the body's outputs. ``counter`` is the body input the gathers
    index with: 0 for the iteration counter, else a carried value's input position.
    """

    def __init__(
        self,
        parts: tuple[fx.GraphModule, fx.GraphModule, fx.GraphModule],
        invariant_inputs: list[int],
        sources: list[_Ref] | None,
        axes: list[int] | None,
        hoisted_inputs: list[_Ref],
        step_inputs: list[_Ref],
        counter: int | None,
        counts: dict[str, int],
    ) -> None:
        super().__init__()
        self.invariant, self.hoisted, self.step = parts
        self.invariant_inputs = invariant_inputs
        self.sources = sources
        self.axes = axes
        self.hoisted_inputs = hoisted_inputs
        self.step_inputs = step_inputs
        self.counter = counter
        self.counts = counts

    def start(self, inputs: Sequence[torch.Tensor]) -> Hoisted | None:
        """A Loop's hoisted values for one evaluation whose first iteration gets the body
        inputs ``inputs``, or None where it cannot use them (NOTE: [Hoisting a Loop body])."""
        start = 0
        if self.counter:
            value = inputs[self.counter]
            if value.ndim != 0 or value.is_floating_point():
                return None
            try:
                start = int(value.item())
            except RuntimeError:  # a counter computed from the data (under vmap)
                return None
        return self._prepare(inputs, None, start)

    def start_scan(
        self, inputs: Sequence[torch.Tensor], sequences: Sequence[torch.Tensor]
    ) -> Hoisted | None:
        """A Scan's hoisted values: ``inputs`` are the first step's body inputs,
        ``sequences`` the scan inputs with their scan axis first, in the order of the steps."""
        return self._prepare(inputs, list(sequences), 0)

    def _prepare(
        self, inputs: Sequence[torch.Tensor], sources: list[torch.Tensor] | None, start: int
    ) -> Hoisted | None:
        if sources is not None and not _worth_it(sources, [0] * len(sources)):
            return None
        if sources is None and all(r.source == 0 for r in self.sources):
            if not _worth_it([inputs[r.index] for r in self.sources], self.axes):
                return None
        values = (list(inputs), list(self.invariant(*(inputs[k] for k in self.invariant_inputs))))

        def value(ref: _Ref) -> torch.Tensor:
            return values[ref.source][ref.index]

        if sources is None:
            sources = [value(r) for r in self.sources]
        axes = [0] * len(sources) if self.axes is None else self.axes
        if not _worth_it(sources, axes):
            return None
        axes = [a % s.ndim for s, a in zip(sources, axes, strict=True)]
        # canonical strides: a size-1 axis with another stride (the per-sample batch axis
        # of a transposed sequence) keeps torch's matmul from folding the positions into
        # the rows of one product, and it falls back to a batched product per sample
        sources = [s.clone(memory_format=torch.contiguous_format) for s in sources]
        dims = (*axes, *([None] * len(self.hoisted_inputs)))
        hoisted = torch.func.vmap(self.hoisted, in_dims=dims)(
            *sources, *(value(r) for r in self.hoisted_inputs)
        )
        length = int(sources[0].shape[axes[0]])
        return Hoisted(self, start, length, hoisted, [value(r) for r in self.step_inputs])

    def describe(self) -> str:
        """One line: how the converted body's operations are run."""
        c = self.counts
        return (
            f"of the {sum(c.values())} operations of its converted body, {c[_HOISTED]} run once "
            f"for all steps together (the work that does not depend on the carried state), "
            f"{c[_INVARIANT]} once per evaluation, {c[_STEP]} at every step"
        )


def _classify(
    body: fx.GraphModule,
    placeholders: dict[fx.Node, str],
    is_root: Callable[[fx.Node, dict[fx.Node, str]], bool],
) -> dict[fx.Node, str]:
    """Each node's class, given the placeholders' and which nodes read a step (roots)."""
    kinds = dict(placeholders)
    for node in body.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        seen = {kinds[a] for a in node.all_input_nodes}
        if node.op == "get_attr":
            kinds[node] = _INVARIANT
        elif "Random" in _kind_name(body, node):
            kinds[node] = _STEP
        elif is_root(node, kinds):
            kinds[node] = _HOISTED
        elif seen <= {_INVARIANT}:
            kinds[node] = _INVARIANT
        elif seen <= {_INVARIANT, _HOISTED}:
            kinds[node] = _HOISTED
        else:
            kinds[node] = _STEP
    return kinds


def _passed_through(body: fx.GraphModule, value: fx.Node, output: fx.Node) -> bool:
    return _through_identities(body, output) is value


def _body_io(body: fx.GraphModule) -> tuple[list[fx.Node], list[fx.Node], list[fx.Node]]:
    nodes = list(body.graph.nodes)
    (output,) = [n for n in nodes if n.op == "output"]
    outputs = list(output.args[0]) if isinstance(output.args[0], tuple | list) else [output.args[0]]
    return nodes, [n for n in nodes if n.op == "placeholder"], outputs


def plan_hoisting(body: fx.GraphModule, num_carried: int) -> HoistPlan | None:
    """The hoisting plan of a converted Loop body (inputs ``(iteration, cond, carried...,
    outer...)``), or None where it has nothing to hoist. Its roots are the ``Gather`` nodes
    that read an invariant sequence at a counter (all the same counter)."""
    nodes, placeholders, outputs = _body_io(body)
    if len(placeholders) < 2 + num_carried or len(outputs) < 1 + num_carried:
        return None
    kinds = {p: _INVARIANT for p in placeholders[2 + num_carried :]}
    kinds[placeholders[0]] = kinds[placeholders[1]] = _STEP
    counters = [placeholders[0]]
    for k, value in enumerate(placeholders[2 : 2 + num_carried]):
        passed = _passed_through(body, value, outputs[1 + k])
        kinds[value] = _INVARIANT if passed else _STEP
        if _adds_one(body, _through_identities(body, outputs[1 + k]), value):
            counters.append(value)
    gathers: list[fx.Node] = []

    def is_root(node: fx.Node, known: dict[fx.Node, str]) -> bool:
        if _kind_name(body, node) != "OnnxGather" or len(node.args) != 2:
            return False
        source, index = node.args
        chosen = gathers[0].args[1] if gathers else None
        if known.get(source) != _INVARIANT or index not in counters or chosen not in (None, index):
            return False
        gathers.append(node)
        return True

    kinds = _classify(body, kinds, is_root)
    if not gathers:
        return None
    axes = [int(body.get_submodule(g.target)._axis) for g in gathers]
    return _split(body, kinds, gathers, axes, placeholders.index(gathers[0].args[1]))


def plan_scan_hoisting(body: fx.GraphModule, states: int, scan_inputs: int) -> HoistPlan | None:
    """The hoisting plan of a converted Scan body (inputs ``(state..., scan_input...,
    outer...)``), or None where it has nothing to hoist. Its roots are the scan inputs."""
    nodes, placeholders, outputs = _body_io(body)
    if len(placeholders) < states + scan_inputs or len(outputs) < states:
        return None
    roots = placeholders[states : states + scan_inputs]
    kinds = {p: _HOISTED if p in roots else _INVARIANT for p in placeholders}
    for k, value in enumerate(placeholders[:states]):
        kinds[value] = _INVARIANT if _passed_through(body, value, outputs[k]) else _STEP
    return _split(body, _classify(body, kinds, lambda node, known: False), roots, None, None)


def _split(
    body: fx.GraphModule,
    kinds: dict[fx.Node, str],
    roots: list[fx.Node],
    axes: list[int] | None,
    counter: int | None,
) -> HoistPlan | None:
    """The plan that runs the classes ``kinds`` gives; ``roots`` are the values of one step
    (gathers of a Loop, scan inputs of a Scan); ``axes``: the Loop's gather axes."""
    nodes, placeholders, outputs = _body_io(body)
    output = nodes[-1]
    computed = [n for n in nodes if n.op not in ("placeholder", "get_attr", "output")]
    hoisted_nodes = [n for n in computed if kinds[n] == _HOISTED and n not in roots]
    if not hoisted_nodes:
        return None  # nothing but the step's own values to move

    def read_by(readers: Sequence[fx.Node]) -> list[fx.Node]:
        """The invariant values (not constants) that ``readers`` read."""
        found = [a for n in readers for a in n.all_input_nodes if kinds.get(a) == _INVARIANT]
        return [a for a in dict.fromkeys(found) if a.op != "get_attr"]

    step_readers = [n for n in computed if kinds[n] == _STEP] + [output]
    step_read = [a for a in read_by(step_readers) if a.op != "placeholder"]
    hoisted_read = read_by(hoisted_nodes)
    sources = [g.args[0] for g in roots if g.op != "placeholder"]
    invariant_out = list(
        dict.fromkeys([a for a in hoisted_read + sources if a.op != "placeholder"] + step_read)
    )
    invariant_in = [p for p in placeholders if kinds[p] == _INVARIANT]
    position = {node: k for k, node in enumerate(placeholders)}

    def ref(node: fx.Node) -> _Ref:
        if node.op == "placeholder":
            return _Ref(0, position[node])
        return _Ref(1, invariant_out.index(node))

    hoisted_out = [
        n
        for n in computed
        if kinds[n] == _HOISTED and any(u is output or kinds.get(u) == _STEP for u in n.users)
    ]
    try:
        parts = (
            _extract(body, invariant_in, invariant_out),
            _extract(body, roots + hoisted_read, hoisted_out),
            _extract(body, placeholders + hoisted_out + step_read, outputs),
        )
    except ValueError:
        return None
    counts = {k: sum(1 for n in computed if kinds[n] == k) for k in (_INVARIANT, _HOISTED, _STEP)}
    return HoistPlan(
        parts,
        invariant_inputs=[position[p] for p in invariant_in],
        sources=None if axes is None else [ref(g.args[0]) for g in roots],
        axes=axes,
        hoisted_inputs=[ref(a) for a in hoisted_read],
        step_inputs=[ref(a) for a in step_read],
        counter=counter,
        counts=counts,
    )
