"""The few ComfyUI services our nodes use, with fallbacks so the nodes import and run without it.

* ``progress(total)``: a ``(done, total)`` callback driving ``comfy.utils.ProgressBar`` (whose
  ``update`` is also ComfyUI's interrupt point); a no-op outside ComfyUI.
* ``input_directory()``: ``folder_paths.get_input_directory()``, else ``$V2V_INPUT_DIR``, else
  ``./input``.
* ``resolve_input_path`` / ``validate_input_path``: paths are relative to the input directory
  (absolute paths are accepted only when they lie inside it); anything outside is refused.
* ``file_fingerprint``: hash of path + mtime (+ size), the IS_CHANGED value.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

try:  # ComfyUI present
    from comfy.utils import ProgressBar as _ProgressBar
except Exception:  # noqa: BLE001  (absent, or a host whose import fails outside its process)
    _ProgressBar = None

try:
    import folder_paths as _folder_paths
except Exception:  # noqa: BLE001
    _folder_paths = None

SOURCE_TYPE = "V2V_SOURCE"


def progress(total: int | None = None) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback that updates a ComfyUI ProgressBar (no-op without ComfyUI).

    The bar is created on the first call, so callers that learn the frame count only after
    decoding (file inputs) still get one."""
    if _ProgressBar is None:
        return lambda done, total_: None
    state = {}

    def update(done: int, total_: int) -> None:
        if "bar" not in state:
            state["bar"] = _ProgressBar(int(total_ or total or 1))
        state["bar"].update_absolute(done, total_)

    return update


def input_directory() -> Path:
    if _folder_paths is not None:
        return Path(_folder_paths.get_input_directory())
    return Path(os.environ.get("V2V_INPUT_DIR") or Path.cwd() / "input")


def resolve_input_path(path: str) -> Path:
    """``path`` under the input directory, resolved; ``ValueError`` if it leaves that directory
    or does not exist."""
    root = input_directory().resolve()
    p = Path(path.strip())
    full = (p if p.is_absolute() else root / p).resolve()
    if full != root and root not in full.parents:
        raise ValueError(f"path {path!r} is outside ComfyUI's input directory {root}")
    if not full.exists():
        raise ValueError(f"path {path!r} does not exist in ComfyUI's input directory {root}")
    return full


def validate_input_path(path: str) -> bool | str:
    """VALIDATE_INPUTS helper: True, or the error string ComfyUI shows."""
    if not path or not str(path).strip():
        return True  # the node then needs an IMAGE input (checked when it runs)
    try:
        resolve_input_path(str(path))
    except ValueError as exc:
        return str(exc)
    return True


def file_fingerprint(path: str) -> str:
    """IS_CHANGED value: hash of the resolved path and its mtime/size (a folder: its files')."""
    if not path or not str(path).strip():
        return ""
    try:
        full = resolve_input_path(str(path))
    except ValueError as exc:
        return f"invalid:{exc}"
    h = hashlib.sha256(str(full).encode())
    entries = [full] + (sorted(full.iterdir()) if full.is_dir() else [])
    for e in entries:
        st = e.stat()
        h.update(f"{e.name}:{st.st_mtime_ns}:{st.st_size}".encode())
    return h.hexdigest()


def frame_limit(max_frames: int) -> int | None:
    return int(max_frames) if max_frames and int(max_frames) > 0 else None


def video_inputs(path_tooltip: str, **extra) -> dict:
    """The optional inputs every source node takes: an IMAGE batch, a path under the input directory or a
    core VIDEO (newer hosts' Load Video), node-specific ``extra`` inputs, a frame cap and the fps."""
    return {
        "images": ("IMAGE",),
        "path": ("STRING", {"default": "", "tooltip": path_tooltip}),
        **extra,
        "max_frames": ("INT", {"default": 0, "min": 0, "max": 100000}),
        "fps": ("FLOAT", {"default": 30.0, "min": 1.0, "max": 240.0}),
        "video": ("VIDEO", {"tooltip": "a core VIDEO (Load Video): streamed from its file; its frame rate wins"}),
    }


def core_video(video, fps: float):
    """A core VIDEO input as what the sources read, and its frame rate: the file it was loaded from
    (streamed), else its frames as an IMAGE batch (a VIDEO made from images is in RAM already)."""
    rate = getattr(video, "get_frame_rate", None)
    fps = float(rate()) if rate is not None else fps
    source = video.get_stream_source() if hasattr(video, "get_stream_source") else None
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        return Path(source), fps
    components = video.get_components()
    return components.images, float(components.frame_rate or fps)


class SourceNode:
    """What the source nodes share: category, outputs' first two types, and IS_CHANGED over the file inputs
    named in ``PATH_INPUTS`` (ComfyUI passes every input to IS_CHANGED).  VALIDATE_INPUTS stays on each node
    with explicit parameters: ComfyUI passes it only the inputs its signature names."""

    CATEGORY = "vid2vid/sources"
    PATH_INPUTS: tuple[str, ...] = ("path",)

    @classmethod
    def IS_CHANGED(cls, **inputs):
        return "".join(file_fingerprint(inputs.get(name, "")) for name in cls.PATH_INPUTS)
