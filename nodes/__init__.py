"""The pack's node registry: one line per node module, assembled into ComfyUI's mappings.

Each module listed in ``NODE_MODULES`` (a file ``nodes/<name>.py``) defines its own
``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``; keys are the stable node names that
``workflows/`` uses.  Where ``comfy_api.latest`` imports, ``v3_nodes`` gives every V1 node its V3 twin
(``._v3.twin``: same node id, inputs and outputs), and the pack root registers those instead.

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
    "style_sample",
    "vid2vid_generate",
    "future_predict",
)

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}


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


for _name in NODE_MODULES:
    _register(import_module(f".{_name}", __name__))


def v3_nodes() -> list[type] | None:
    """The V3 twins of every node, in menu order, or None where ``comfy_api.latest`` is absent (older
    hosts, tests).  ComfyUI reads a pack's ``NODE_CLASS_MAPPINGS`` and then ignores its
    ``comfy_entrypoint``, so the pack root offers these by leaving the V1 mappings out."""
    try:
        import comfy_api.latest  # noqa: F401  (present on newer hosts only)
    except ImportError:
        return None
    from ._v3 import twin

    return [twin(cls, key, NODE_DISPLAY_NAME_MAPPINGS.get(key, key)) for key, cls in NODE_CLASS_MAPPINGS.items()]


__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "NODE_MODULES", "v3_nodes"]
