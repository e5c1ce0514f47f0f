"""The pack's node registry: one line per node module, assembled into ComfyUI's mappings.

Each module listed in ``NODE_MODULES`` (a file ``nodes/<name>.py``) defines its own
``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``; keys are the stable node names that
``workflows/`` uses.  A module may also define ``V3_NODES``: a list of ``comfy_api.latest``
``io.ComfyNode`` classes (built only where ``comfy_api`` imports), one per V1 node, with the same
node ids.  The pack root offers V3 only when every V1 node has its V3 twin (see ``v3_nodes``).

Rules for node modules.  Inside ComfyUI this package is imported as ``<pack folder>.nodes``: the
pack folder is not on ``sys.path`` there, and the top-level name ``nodes`` is ComfyUI's own
``nodes.py``.  So:

* import the model package absolutely, ``from v2v.sampler import StreamingSampler``: the pack's
  root ``__init__`` registers this checkout's ``v2v/`` under the name ``v2v`` before importing
  this package, and tests and the CLI import the same name from the repository root;
* import siblings relatively (``from ._comfy import ...``); never ``import nodes.<x>``;
* import optional extras (mediapipe, dlib, scikit-learn) inside the function that needs them,
  through ``v2v.sources.extras``: a missing extra is a node error at run time, never an import failure;
* import ComfyUI (``comfy``, ``folder_paths``, ``server``, ``comfy_api``) only lazily or guarded,
  so the pack also imports where ComfyUI is absent (tests, the CLI).

Nothing here catches import errors: a node module that fails to import is a bug, and it fails the
whole pack loudly (ComfyUI's "IMPORT FAILED", the test suite) rather than silently losing a node.
"""
from __future__ import annotations

from importlib import import_module

# One line per node module, in menu order.  Add yours here.
NODE_MODULES: tuple[str, ...] = (
    "label_video_loader",
    "sketch_extract",
    "pose_extract",
    "vid2vid_generate",
)

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
_MODULES = []


def _register(module) -> None:
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
    if not isinstance(mappings, dict) or not mappings:
        raise ImportError(f"{module.__name__} defines no NODE_CLASS_MAPPINGS")
    for key, cls in mappings.items():
        if key in NODE_CLASS_MAPPINGS and NODE_CLASS_MAPPINGS[key] is not cls:
            raise ImportError(f"node name {key!r} of {module.__name__} is already taken by "
                              f"{NODE_CLASS_MAPPINGS[key].__module__}")
        NODE_CLASS_MAPPINGS[key] = cls
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}) or {})
    _MODULES.append(module)


for _name in NODE_MODULES:
    _register(import_module(f".{_name}", __name__))


def v3_nodes() -> list[type] | None:
    """The V3 node classes, or None where V3 cannot replace the V1 mappings whole.

    ComfyUI reads a pack's ``NODE_CLASS_MAPPINGS`` and then ignores its ``comfy_entrypoint``, so a
    pack offers V3 by leaving the V1 mappings out.  That is only safe when every V1 node has a V3
    class with the same node id; otherwise the pack stays V1 and no node goes missing.  Returns
    None also where ``comfy_api.latest`` is absent (older hosts, tests).
    """
    try:
        import comfy_api.latest  # noqa: F401  (present on newer hosts only)
    except ImportError:
        return None
    found: dict[str, type] = {}
    for module in _MODULES:
        for cls in getattr(module, "V3_NODES", None) or ():
            found[cls.define_schema().node_id] = cls
    if not found or set(found) != set(NODE_CLASS_MAPPINGS):
        return None
    return [found[key] for key in NODE_CLASS_MAPPINGS]


__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODE_MODULES", "v3_nodes"]
