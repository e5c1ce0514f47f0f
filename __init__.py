"""comfyui-vid2vid as a ComfyUI custom node pack.

ComfyUI imports this folder as a package named after the folder (``comfyui-vid2vid``, or whatever
the clone is called) with ``importlib.util.spec_from_file_location``; the folder itself is NOT on
``sys.path``.  Two names need care:

* ``nodes``: ComfyUI's own module.  Our node package is only ever imported relatively, as
  ``<pack>.nodes`` (below), never as the top-level ``nodes``.
* ``v2v``: the model package, which node modules, the CLI, the trainer and the tests all import by
  its top-level name (and v2v's own modules partly do too).  Rather than putting the pack folder
  on ``sys.path`` (which would also expose ``train``, ``tests``, ``scripts`` to every other pack,
  and let an unrelated installed ``v2v`` win), ``_bind_v2v`` loads exactly this checkout's
  ``v2v/`` under the name ``v2v`` and refuses, loudly, a different ``v2v`` already imported.

Outside ComfyUI the same file imports cleanly too: as a package by folder name, or (pytest
collecting the repository root) as a lone module, which registers nothing.  ``v2v`` then usually
is already imported from the repository root, which is the same folder.

Registration: the V1 mappings always exist; on hosts that ship ``comfy_api.latest`` and where every
node has a V3 schema, the pack offers ``comfy_entrypoint`` instead (ComfyUI ignores the entry
point of a pack that also exports ``NODE_CLASS_MAPPINGS``).  ``comfy_api`` is never imported
unconditionally: older hosts do not have it.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys

_PACK_DIR = os.path.dirname(os.path.realpath(__file__))


def _bind_v2v() -> None:
    """Make ``import v2v`` resolve to this pack's ``v2v/`` package, whatever ``sys.path`` holds."""
    here = os.path.join(_PACK_DIR, "v2v")
    loaded = sys.modules.get("v2v")
    if loaded is not None:
        where = [os.path.realpath(p) for p in getattr(loaded, "__path__", [])]
        if os.path.realpath(here) not in where:
            raise ImportError(f"another package named 'v2v' is already imported from {where or loaded!r}; "
                              f"the vid2vid pack needs its own {here}")
        return
    spec = importlib.util.spec_from_file_location(
        "v2v", os.path.join(here, "__init__.py"), submodule_search_locations=[here])
    module = importlib.util.module_from_spec(spec)
    sys.modules["v2v"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop("v2v", None)
        raise


_bind_v2v()

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, v3_nodes
else:
    # Imported as a lone module rather than as the pack's package.  pytest does that when it
    # collects a checkout whose folder name is not a Python identifier (``comfyui-vid2vid``); the
    # tests import ``nodes`` themselves.  ComfyUI always imports the folder as a package.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

    def v3_nodes():
        return None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]


def _v3_entrypoint():
    """``comfy_entrypoint`` for hosts with ``comfy_api.latest``, or None (then V1 stands)."""
    try:
        from comfy_api.latest import ComfyExtension
    except ImportError:
        return None
    try:
        node_list = v3_nodes()
    except Exception:  # a V3 schema the host's comfy_api rejects must not cost users the V1 nodes
        logging.getLogger(__name__).warning("vid2vid: V3 schemas unusable, registering V1 nodes",
                                            exc_info=True)
        return None
    if not node_list:
        return None

    class Vid2VidExtension(ComfyExtension):
        async def get_node_list(self):
            return list(node_list)

    async def comfy_entrypoint():
        return Vid2VidExtension()

    return comfy_entrypoint


_entrypoint = _v3_entrypoint()
if _entrypoint is not None:
    comfy_entrypoint = _entrypoint
    del NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    __all__ = ["comfy_entrypoint"]
del _entrypoint
