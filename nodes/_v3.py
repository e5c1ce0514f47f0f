"""V3 twins of the pack's V1 nodes, for hosts that ship ``comfy_api.latest`` (ComfyUI 0.3.x).

One generic translation instead of a second hand-written class per node: :func:`twin` turns a V1 class into
an ``io.ComfyNode`` with the same node id, inputs (types, defaults, limits, tooltips), outputs, category
and output-node flag, and runs the V1 method.  The schema is rebuilt from ``INPUT_TYPES()`` every time
ComfyUI asks for it, so combo lists such as the model files refresh without a restart.

``validate_inputs`` is the V1 ``VALIDATE_INPUTS`` function itself, not a ``**kwargs`` wrapper: ComfyUI
skips its own checks (combo membership, min/max) for every input the validate function names, and for
all of them when it takes ``**kwargs``.
"""
from __future__ import annotations

# V1 option keys each V3 widget type takes as arguments; other keys pass through unchanged (extra_dict)
_WIDGETS = {
    "INT": ("Int", ("default", "min", "max", "step", "control_after_generate")),
    "FLOAT": ("Float", ("default", "min", "max", "step", "round")),
    "BOOLEAN": ("Boolean", ("default", "label_on", "label_off")),
    "STRING": ("String", ("default", "multiline", "placeholder", "dynamic_prompts")),
}


def _io_type(io, kind: str):
    return {"IMAGE": io.Image, "VIDEO": io.Video, "STRING": io.String}.get(kind) or io.Custom(kind)


def _input(io, name: str, decl: tuple, optional: bool):
    kind, opts = decl[0], dict(decl[1]) if len(decl) > 1 else {}
    tooltip = opts.pop("tooltip", None)
    if isinstance(kind, (list, tuple)):
        made = io.Combo.Input(name, options=list(kind), default=opts.pop("default", None), tooltip=tooltip,
                              optional=optional)
    elif kind in _WIDGETS:
        type_name, keys = _WIDGETS[kind]
        made = getattr(io, type_name).Input(name, tooltip=tooltip, optional=optional,
                                            **{k: opts.pop(k) for k in keys if k in opts})
    else:
        made = _io_type(io, kind).Input(name, tooltip=tooltip, optional=optional)
    made.extra_dict.update(opts)
    return made


def twin(v1_cls: type, node_id: str, display_name: str) -> type:
    """The V3 node for ``v1_cls`` (needs ``comfy_api.latest``)."""
    from comfy_api.latest import io

    class Twin(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            spec = v1_cls.INPUT_TYPES()
            inputs = [_input(io, n, d, False) for n, d in spec.get("required", {}).items()]
            inputs += [_input(io, n, d, True) for n, d in spec.get("optional", {}).items()]
            names = getattr(v1_cls, "RETURN_NAMES", v1_cls.RETURN_TYPES)
            outputs = [_io_type(io, kind).Output(display_name=name) for kind, name in zip(v1_cls.RETURN_TYPES, names)]
            return io.Schema(node_id=node_id, display_name=display_name, category=v1_cls.CATEGORY,
                             description=(v1_cls.__doc__ or "").strip(), inputs=inputs, outputs=outputs,
                             is_output_node=bool(getattr(v1_cls, "OUTPUT_NODE", False)))

        @classmethod
        def fingerprint_inputs(cls, **inputs):
            changed = getattr(v1_cls, "IS_CHANGED", None)
            return changed(**inputs) if changed is not None else None

        @classmethod
        def execute(cls, **inputs):
            out = getattr(v1_cls(), v1_cls.FUNCTION)(**inputs)
            if isinstance(out, dict):
                return io.NodeOutput(*out.get("result", ()), ui=out.get("ui") or None)
            return io.NodeOutput(*out)

    validate = getattr(v1_cls, "VALIDATE_INPUTS", None)
    if validate is not None:     # the V1 function, so ComfyUI sees exactly the inputs it names
        Twin.validate_inputs = classmethod(validate.__func__)
    Twin.__name__ = Twin.__qualname__ = f"{v1_cls.__name__}V3"
    return Twin
