"""ONNX control flow: ``Loop``, ``Scan`` and ``If``, the modules and their converters.

tf2onnx writes Keras ``SimpleRNN``/``GRU``/``LSTM`` layers (and ``tf.while_loop``) as a ``Loop``
whose body holds the cell and reads the time-major input sequence from the enclosing graph;
older converters write ``Scan``; ``If`` chooses a branch at run time. Each subgraph becomes a
torch module (:mod:`.control_flow_body`) run in a Python loop, so autograd, ``torch.func``
transforms and float64 work through it as through any other module.

# NOTE: [Control flow per sample]
# mat2grad evaluates a graph one sample at a time under ``torch.func.vmap`` (NOTE: [Batch
# axes] in ``mat2grad.onnx.graph``). A trip count, loop condition or ``If`` condition is read
# as a Python number to drive the loop; under ``vmap`` that works exactly when the value does
# not depend on the values of the batched data: constants, the iteration counter, and shapes
# (``Shape`` -> ``Gather`` -> trip count: the per-sample shape is the same for every sample).
# A condition computed from the data (a ``while`` on values, an ``If`` on a sign) could take
# a different path for each sample, which one vmapped evaluation cannot follow; it is refused
# with a :class:`Mat2GradError` naming the node, never evaluated for one sample and reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...errors import Mat2GradError
from ._common import Converter, Fix
from .control_flow_body import as_tuple, convert_subgraph, pick, subgraph_opset
from .loop_hoisting import HoistPlan, plan_hoisting, plan_scan_hoisting

__all__ = ["OnnxLoop", "OnnxScan", "OnnxIf", "CONVERTERS", "FIXES"]

_DATA_DEPENDENT = (
    "{where}: its {what} depends on the values of the input data, so different samples could "
    "take different paths, which mat2grad's per-sample evaluation (torch.func.vmap) cannot "
    "follow; only conditions and trip counts computed from constants, shapes or the iteration "
    "counter are supported"
)


def _as_python(value: torch.Tensor, where: str, what: str, kind: type) -> Any:
    """A scalar tensor as a Python bool/int; see NOTE: [Control flow per sample]."""
    try:
        return kind(value.reshape(-1)[0].item())
    except RuntimeError as exc:
        if "vmap" in str(exc) or "data-dependent" in str(exc):
            raise Mat2GradError(_DATA_DEPENDENT.format(where=where, what=what)) from None
        raise


class OnnxLoop(nn.Module):
    """ONNX ``Loop`` (1, 11, 13, ...): ``(M, cond, v_initial..., outer...) -> (v_final...,
    scan_outputs...)``.

    The body maps ``(iteration, cond, v...)`` (plus the outer-scope values it reads) to
    ``(cond, v..., scan_elements...)``. It runs while ``iteration < M`` (when M is given) and
    ``cond`` is true (when a condition is given); scan elements are stacked on a new axis 0.
    """

    def __init__(
        self,
        body: nn.Module,
        where: str,
        has_trip_count: bool,
        has_condition: bool,
        num_carried: int,
        num_scan: int,
        hoisting: HoistPlan | None = None,
    ) -> None:
        super().__init__()
        self.body = body
        #: the body split for speed (NOTE: [Hoisting a Loop body]); None runs it as written
        self.hoisting = hoisting
        self.where = where
        self.has_trip_count = has_trip_count
        self.has_condition = has_condition
        self.num_carried = num_carried
        self.num_scan = num_scan

    def forward(self, *args: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:  # noqa: D102
        args = list(args)
        trip = args.pop(0) if self.has_trip_count else None
        cond = args.pop(0) if self.has_condition else None
        carried, outer = args[: self.num_carried], args[self.num_carried :]
        limit = None if trip is None else _as_python(trip, self.where, "trip count", int)
        running = True if cond is None else _as_python(cond, self.where, "condition", bool)
        if limit is None and cond is None:
            raise Mat2GradError(f"{self.where}: a Loop without trip count or condition never ends")
        cond_in = torch.tensor(running) if cond is None else cond
        scans: list[list[torch.Tensor]] = [[] for _ in range(self.num_scan)]
        step = 0
        hoisted = None
        if self.hoisting is not None and running and (limit is None or limit > 0):
            hoisted = self.hoisting.start([torch.tensor(0), cond_in, *carried, *outer])
        while running and (limit is None or step < limit):
            counter = torch.tensor(step, dtype=torch.int64)
            inputs = (counter, cond_in, *carried, *outer)
            outs = as_tuple(
                self.body(*inputs) if hoisted is None else hoisted.step(step, inputs, self.body)
            )
            cond_in, carried = outs[0], list(outs[1 : 1 + self.num_carried])
            for k, element in enumerate(outs[1 + self.num_carried :]):
                scans[k].append(element)
            running = _as_python(cond_in, self.where, "loop condition", bool)
            step += 1
        if self.num_scan and step == 0:
            raise Mat2GradError(
                f"{self.where}: the Loop ran no iteration, so its scan outputs have no shape"
            )
        results = (*carried, *(torch.stack(s, 0) for s in scans))
        return results[0] if len(results) == 1 else results


class OnnxScan(nn.Module):
    """ONNX ``Scan`` (9 and later): ``(state..., scan_input..., outer...) -> (final_state...,
    scan_output...)``, each scan input sliced along its axis (backwards for direction 1),
    each scan output stacked along its axis (in reverse order for direction 1)."""

    def __init__(
        self,
        body: nn.Module,
        where: str,
        num_states: int,
        num_scan_inputs: int,
        input_axes: Sequence[int],
        input_directions: Sequence[int],
        output_axes: Sequence[int],
        output_directions: Sequence[int],
        hoisting: HoistPlan | None = None,
    ) -> None:
        super().__init__()
        self.body = body
        #: the body split for speed (NOTE: [Hoisting a Loop body]); None runs it as written
        self.hoisting = hoisting
        self.where = where
        self.num_states = num_states
        self.num_scan_inputs = num_scan_inputs
        self.input_axes = list(input_axes)
        self.input_directions = list(input_directions)
        self.output_axes = list(output_axes)
        self.output_directions = list(output_directions)

    def forward(self, *args: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:  # noqa: D102
        n, m = self.num_states, self.num_scan_inputs
        states, inputs, outer = list(args[:n]), args[n : n + m], args[n + m :]
        axes = [a % x.ndim for a, x in zip(self.input_axes, inputs, strict=True)]
        lengths = {int(x.shape[a]) for a, x in zip(axes, inputs, strict=True)}
        if len(lengths) != 1:
            raise Mat2GradError(
                f"{self.where}: Scan inputs differ in length along their scan axes ({lengths})"
            )
        steps = lengths.pop()
        collected: list[list[torch.Tensor]] = []
        hoisted = None
        # every step's slice as a view, taken once (see NOTE: [Recurrent steps as one unbind])
        per_step = [x.unbind(a) for x, a in zip(inputs, axes, strict=True)]
        for t in range(steps):
            slices = [
                views[steps - 1 - t if d else t]
                for views, d in zip(per_step, self.input_directions, strict=True)
            ]
            if t == 0 and self.hoisting is not None:
                ordered = [
                    (x.flip(a) if d else x).movedim(a, 0)
                    for x, a, d in zip(inputs, axes, self.input_directions, strict=True)
                ]
                hoisted = self.hoisting.start_scan([*states, *slices, *outer], ordered)
            step_inputs = (*states, *slices, *outer)
            outs = as_tuple(
                self.body(*step_inputs)
                if hoisted is None
                else hoisted.step(t, step_inputs, self.body)
            )
            states = list(outs[:n])
            if not collected:
                collected = [[] for _ in outs[n:]]
            for k, element in enumerate(outs[n:]):
                collected[k].append(element)
        if steps == 0:
            raise Mat2GradError(f"{self.where}: the Scan inputs are empty (no step to run)")
        scans = []
        for k, elements in enumerate(collected):
            if self.output_directions[k]:
                elements = elements[::-1]
            axis = self.output_axes[k] % (elements[0].ndim + 1)
            scans.append(torch.stack(elements, axis))
        results = (*states, *scans)
        return results[0] if len(results) == 1 else results


class OnnxIf(nn.Module):
    """ONNX ``If``: ``(cond, outer...) -> outputs of then_branch or else_branch``; each branch
    receives the outer-scope values it reads (``then_outer`` / ``else_outer`` index them)."""

    def __init__(
        self,
        then_branch: nn.Module,
        else_branch: nn.Module,
        then_outer: Sequence[int],
        else_outer: Sequence[int],
        where: str,
    ) -> None:
        super().__init__()
        self.then_branch = then_branch
        self.else_branch = else_branch
        self.then_outer = list(then_outer)
        self.else_outer = list(else_outer)
        self.where = where

    def forward(self, cond: torch.Tensor, *outer: torch.Tensor):  # noqa: D102
        if _as_python(cond, self.where, "condition", bool):
            results = as_tuple(self.then_branch(*pick(outer, self.then_outer)))
        else:
            results = as_tuple(self.else_branch(*pick(outer, self.else_outer)))
        return results[0] if len(results) == 1 else results


def _where(node: Any) -> str:
    return f"{node.operation_type} node '{node.name or node.output_values[0]}'"


def _result(node: Any, module: nn.Module, inputs: Sequence[str]) -> Any:
    """onnx2torch's converter result, with the outer-scope values as extra inputs."""
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult

    mapping = OnnxMapping(inputs=tuple(inputs), outputs=tuple(node.output_values))
    return OperationConverterResult(torch_module=module, onnx_mapping=mapping)


def _loop_converter(version: int) -> Converter:
    def convert(node: Any, graph: Any) -> Any:
        where = _where(node)
        explicit = list(node.input_values)
        explicit += [""] * (2 - len(explicit))
        carried = explicit[2:]
        if any(not name for name in carried):
            raise ValueError(f"{where}: an omitted loop-carried value is not supported")
        body, outer = convert_subgraph(
            node.attributes["body"].g, graph, subgraph_opset("Loop", version), where
        )
        num_scan = len(node.attributes["body"].g.output) - 1 - len(carried)
        module = OnnxLoop(
            body,
            where,
            bool(explicit[0]),
            bool(explicit[1]),
            len(carried),
            num_scan,
            plan_hoisting(body, len(carried)),
        )
        return _result(node, module, [n for n in explicit[:2] if n] + carried + outer)

    return convert


def _scan_converter(version: int) -> Converter:
    def convert(node: Any, graph: Any) -> Any:
        where = _where(node)
        attrs = node.attributes
        m = int(attrs["num_scan_inputs"])
        n = len(node.input_values) - m
        body_proto = attrs["body"].g
        k = len(body_proto.output) - n
        body, outer = convert_subgraph(body_proto, graph, subgraph_opset("Scan", version), where)
        module = OnnxScan(
            body,
            where,
            num_states=n,
            num_scan_inputs=m,
            input_axes=list(attrs.get("scan_input_axes", [0] * m)),
            input_directions=list(attrs.get("scan_input_directions", [0] * m)),
            output_axes=list(attrs.get("scan_output_axes", [0] * k)),
            output_directions=list(attrs.get("scan_output_directions", [0] * k)),
            hoisting=plan_scan_hoisting(body, n, m),
        )
        return _result(node, module, list(node.input_values) + outer)

    return convert


def _if_converter(version: int) -> Converter:
    def convert(node: Any, graph: Any) -> Any:
        where = _where(node)
        opset = subgraph_opset("If", version)
        then_gm, then_free = convert_subgraph(node.attributes["then_branch"].g, graph, opset, where)
        else_gm, else_free = convert_subgraph(node.attributes["else_branch"].g, graph, opset, where)
        outer = list(dict.fromkeys(then_free + else_free))
        module = OnnxIf(
            then_gm,
            else_gm,
            [outer.index(v) for v in then_free],
            [outer.index(v) for v in else_free],
            where,
        )
        return _result(node, module, [node.input_values[0], *outer])

    return convert


CONVERTERS: list[tuple[str, int, Converter]] = [
    *(("Loop", v, _loop_converter(v)) for v in (1, 11, 13, 16, 19, 21, 23, 24, 25)),
    *(("Scan", v, _scan_converter(v)) for v in (9, 11, 16, 19, 21, 23, 24, 25)),
    *(("If", v, _if_converter(v)) for v in (1, 11, 13, 16, 19, 21, 23, 24, 25)),
]

FIXES: dict[str, Fix] = {}  # onnx2torch has no control-flow modules of its own
