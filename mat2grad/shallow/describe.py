"""A readable multi-line description of a network spec (``repr`` of a network and
``mat2grad info``)."""

from __future__ import annotations

from .spec import NetworkSpec

__all__ = ["describe_spec"]


def describe_spec(spec: NetworkSpec, indent: str = "  ") -> str:
    """A readable multi-line description (used by ``repr`` and ``mat2grad info``)."""
    lines = [f"'{spec.path}'" + (f" from {spec.source}" if spec.source else "")]
    lines.append(
        f"{indent}name: {spec.name or '-'}; format version {spec.version or '?'}; "
        f"performance {spec.perform_fcn or '-'}; training {spec.train_fcn or '-'}"
    )
    sizes = " -> ".join(
        f"[{layer.size} {layer.transfer}]" for layer in (spec.layers[i - 1] for i in spec.order)
    )
    ins = "+".join(str(i.size) for i in spec.inputs)
    outs = "+".join(str(o.size) for o in spec.outputs)
    lines.append(f"{indent}{ins} -> {sizes} -> {outs}")
    for inp in spec.inputs:
        proc = ", ".join(s.fcn for s in inp.steps) or "none"
        fb = f"; feedback of layer {inp.feedback_output}" if inp.feedback_output else ""
        lines.append(
            f"{indent}input {inp.index} '{inp.name}': {inp.size} rows -> {inp.processed_size} "
            f"after processing ({proc}){fb}"
        )
    for layer in spec.layers:
        extra = "" if layer.net_input == "netsum" else f", {layer.net_input}"
        feeds = ", ".join(
            f"{w.label} {w.fcn}" + (f" delays {list(w.delays)}" if w.delays != (0,) else "")
            for w in spec.weights
            if w.to == layer.index
        )
        bias = " + b" if spec.biases[layer.index - 1] is not None else ""
        lines.append(
            f"{indent}layer {layer.index} '{layer.name}': {layer.size} {layer.transfer}{extra} "
            f"<- {feeds or 'nothing'}{bias}"
        )
    for out in spec.outputs:
        proc = ", ".join(s.fcn for s in reversed(out.steps)) or "none"
        fb = f"; feedback {out.feedback_mode}" if out.feedback_mode != "none" else ""
        lines.append(
            f"{indent}output {out.layer} '{out.name}': layer {out.layer} ({out.processed_size} "
            f"rows) -> {out.size} rows after reverse processing ({proc}){fb}"
        )
    if spec.is_dynamic:
        lines.append(
            f"{indent}dynamic: numInputDelays {spec.num_input_delays}, numLayerDelays "
            f"{spec.num_layer_delays}; {_delay_summary(spec)}"
        )
    if spec.zero_derivative:
        lines.append(
            f"{indent}note: zero derivative almost everywhere in {', '.join(spec.zero_derivative)}"
        )
    return "\n".join(lines)


def _delay_summary(spec: NetworkSpec) -> str:
    parts = [f"{w.label} delays {list(w.delays)}" for w in spec.weights if w.delays != (0,)]
    parts += [
        f"output {o.layer} feedback {o.feedback_mode}"
        for o in spec.outputs
        if o.feedback_mode != "none"
    ]
    return "; ".join(parts)
